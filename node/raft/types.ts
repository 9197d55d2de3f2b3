// Values exchanged between the Raft core, its storage and its driver.
// Everything here is plain data: the core never mutates an object it has
// handed out, and the driver must not mutate one it passes in.

/** A member's identity. Branded so that it cannot be confused with a term or an index. */
export type NodeId = string & { readonly __brand: "NodeId" };
export const nodeId = (s: string): NodeId => s as NodeId;

/** Terms and log indices are plain non-negative integers; 0 means "none". */
export type Term = number;
export type LogIndex = number;

export type ConfChangeType = "addLearner" | "promote" | "remove";

/** A single-server membership change (Raft thesis §4.1). */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly node: NodeId;
  /** Opaque to the core; the node layer stores the member's name and URLs here. */
  readonly context?: Uint8Array;
}

export interface NormalEntry {
  readonly kind: "normal";
  readonly term: Term;
  readonly index: LogIndex;
  /** Empty for the no-op entry a new leader appends (thesis §6.4). */
  readonly data: Uint8Array;
}

export interface ConfEntry {
  readonly kind: "conf";
  readonly term: Term;
  readonly index: LogIndex;
  readonly change: ConfChange;
}

export type Entry = NormalEntry | ConfEntry;

/** Approximate encoded size, used for the byte bounds on messages and uncommitted entries. */
export function entrySize(e: Entry): number {
  return e.kind === "normal" ? 24 + e.data.byteLength : 64 + (e.change.context?.byteLength ?? 0);
}

/** The membership as of some log index. Invariant: voters and learners are disjoint. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** State that must be durable before any message that depends on it is sent (§5.1, Figure 2). */
export interface HardState {
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly commit: LogIndex;
}

export const emptyHardState: HardState = { term: 0, vote: null, commit: 0 };

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export interface SnapshotMetadata {
  readonly index: LogIndex;
  readonly term: Term;
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly meta: SnapshotMetadata;
  readonly data: Uint8Array;
}

export type Role = "follower" | "preCandidate" | "candidate" | "leader" | "learner";

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly index: LogIndex;
  readonly context: Uint8Array;
}

// ---------------------------------------------------------------------------
// Messages. Local inputs (timeouts, proposals, reports from the transport)
// are messages too, so that every input to the core goes through step().
// ---------------------------------------------------------------------------

interface Base {
  readonly from: NodeId;
  readonly to: NodeId;
  /** 0 for local messages and for forwarded proposals and reads. */
  readonly term: Term;
}

/** Local: the election timer fired, or the caller asks for an election. */
export interface MsgHup extends Base { readonly type: "hup"; readonly transfer: boolean }
/** Local: the heartbeat timer fired on the leader. */
export interface MsgBeat extends Base { readonly type: "beat" }
/** Local: the leader's check-quorum timer fired (§6.2). */
export interface MsgCheckQuorum extends Base { readonly type: "checkQuorum" }
/** Local or forwarded from a follower: new entries to append. */
export interface MsgPropose extends Base { readonly type: "propose"; readonly entries: readonly ProposedEntry[] }
/** Local or forwarded: a linearizable read request (thesis §6.4). */
export interface MsgReadIndex extends Base { readonly type: "readIndex"; readonly context: Uint8Array }
export interface MsgReadIndexResp extends Base {
  readonly type: "readIndexResp";
  readonly context: Uint8Array;
  readonly index: LogIndex;
}
/** Local or forwarded: move leadership to `transferee` (thesis §3.10). */
export interface MsgTransferLeader extends Base { readonly type: "transferLeader"; readonly transferee: NodeId }
export interface MsgTimeoutNow extends Base { readonly type: "timeoutNow" }

export interface MsgVote extends Base {
  readonly type: "vote" | "preVote";
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  /** Set when campaigning because of a leadership transfer: voters skip the leader-lease check. */
  readonly transfer: boolean;
}
export interface MsgVoteResp extends Base { readonly type: "voteResp" | "preVoteResp"; readonly reject: boolean }

export interface MsgApp extends Base {
  readonly type: "app";
  readonly prevIndex: LogIndex;
  readonly prevTerm: Term;
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
}
export interface MsgAppResp extends Base {
  readonly type: "appResp";
  /** On success, the last index the follower now matches; on reject, the rejected prevIndex. */
  readonly index: LogIndex;
  readonly reject: boolean;
  /** On reject: the follower's probe hint, an index and its term, for fast backtracking. */
  readonly rejectHint: LogIndex;
  readonly logTerm: Term;
}
export interface MsgHeartbeat extends Base {
  readonly type: "heartbeat";
  readonly commit: LogIndex;
  /** The newest ReadIndex round this heartbeat confirms (0 if none). */
  readonly readRound: number;
}
export interface MsgHeartbeatResp extends Base { readonly type: "heartbeatResp"; readonly readRound: number }
export interface MsgSnap extends Base { readonly type: "snap"; readonly snapshot: Snapshot }
/** Local: the transport could not reach a peer. */
export interface MsgUnreachable extends Base { readonly type: "unreachable" }
/** Local: the transport finished (or failed) sending a snapshot to a peer. */
export interface MsgSnapStatus extends Base { readonly type: "snapStatus"; readonly failed: boolean }
/**
 * Local: a liveness beacon from peer `from` (the driver's PeerBeacon, sent
 * outside the peer streams). `leads`: the peer says it leads `peerTerm`;
 * otherwise it says it follows this member in `peerTerm`. It carries no log
 * position and only ever stands in for a heartbeat's effect on the
 * election and check-quorum clocks.
 */
export interface MsgBeacon extends Base { readonly type: "beacon"; readonly peerTerm: Term; readonly leads: boolean }

export type Message =
  | MsgHup
  | MsgBeat
  | MsgCheckQuorum
  | MsgPropose
  | MsgReadIndex
  | MsgReadIndexResp
  | MsgTransferLeader
  | MsgTimeoutNow
  | MsgVote
  | MsgVoteResp
  | MsgApp
  | MsgAppResp
  | MsgHeartbeat
  | MsgHeartbeatResp
  | MsgSnap
  | MsgUnreachable
  | MsgSnapStatus
  | MsgBeacon;

export type MessageType = Message["type"];

/** An entry as proposed, before the leader assigns its term and index. */
export type ProposedEntry =
  | { readonly kind: "normal"; readonly data: Uint8Array }
  | { readonly kind: "conf"; readonly change: ConfChange };

export function proposedSize(e: ProposedEntry): number {
  return e.kind === "normal" ? 24 + e.data.byteLength : 64 + (e.change.context?.byteLength ?? 0);
}

/** Messages that travel between members, as opposed to local inputs. */
export function isRemote(m: Message): boolean {
  switch (m.type) {
    case "hup":
    case "beat":
    case "checkQuorum":
    case "unreachable":
    case "snapStatus":
    case "beacon":
      return false;
    default:
      return true;
  }
}

// ---------------------------------------------------------------------------
// Expected failures are values.
// ---------------------------------------------------------------------------

export type ProposalError =
  | { readonly type: "NoLeader" }
  | { readonly type: "NotLeader"; readonly leaderHint: NodeId | null }
  | { readonly type: "TooManyUncommitted"; readonly limitBytes: number }
  | { readonly type: "TransferInProgress"; readonly transferee: NodeId }
  | { readonly type: "ConfChangePending"; readonly pendingIndex: LogIndex }
  | { readonly type: "ConfChangeInvalid"; readonly reason: string }
  | { readonly type: "NotMember" };

export type StepResult = { readonly ok: true } | { readonly ok: false; readonly error: ProposalError };

export const stepOk: StepResult = { ok: true };
