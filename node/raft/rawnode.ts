// The driver-facing wrapper around the core: inputs in, Ready out.
// ready() and advance() strictly alternate; between them the caller may keep
// stepping messages and ticking.

import type { RaftConfig, RaftStatus, Ready, SoftState } from "./raft.ts";
import { Raft } from "./raft.ts";
import type { Storage } from "./storage.ts";
import type { ConfChange, Entry, HardState, Message, MessageType, NodeId, Snapshot, StepResult } from "./types.ts";
import { emptyHardState, isRemote } from "./types.ts";

const immediateTypes: ReadonlySet<MessageType> = new Set<MessageType>([
  "app",
  "heartbeat",
  "heartbeatResp",
  "snap",
  "timeoutNow",
  "preVote",
  "preVoteResp",
  "propose",
  "readIndex",
  "readIndexResp",
  "transferLeader",
]);

function isImmediate(m: Message): boolean {
  return immediateTypes.has(m.type);
}

export class RawNode {
  readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** The hard state as of the last advance(): known to be durable. */
  private durableHard: HardState;
  /** The Ready handed out and not yet advanced. */
  private outstanding: Ready | null = null;

  constructor(cfg: RaftConfig, storage: Storage) {
    this.raft = new Raft(cfg, storage);
    this.prevSoft = this.softState();
    this.prevHard = storage.initialState().hardState;
    if (this.prevHard.term === 0 && this.prevHard.vote === null && this.prevHard.commit === 0) this.prevHard = emptyHardState;
    this.durableHard = this.prevHard;
  }

  /**
   * Messages that may be sent at once, without waiting for the outstanding
   * or next Ready to be persisted, so that heartbeats never queue behind
   * disk writes. They are the ones that promise nothing about local
   * durability: the leader's appends, heartbeats and snapshots (thesis
   * §10.2.1: the leader may write to its disk in parallel with replicating),
   * heartbeat responses, pre-votes, and forwarded requests. Votes and append
   * responses always wait for the fsync. None is released while the
   * current term itself is not yet durable: a leader that crashed before
   * persisting its term could otherwise lead the same term twice.
   */
  takeImmediateMessages(): Message[] {
    if (this.raft.term !== this.durableHard.term || !this.raft.hasMessages()) return [];
    return this.raft.takeMessagesWhere(isImmediate);
  }

  tick(): void {
    this.raft.tick();
  }

  /** A message from a peer. Local message types are refused: use the methods below. */
  step(m: Message): StepResult {
    if (!isRemote(m) && m.type !== "unreachable" && m.type !== "snapStatus") {
      throw new Error(`rawnode: ${m.type} is a local message`);
    }
    return this.raft.step(m);
  }

  /** Starts an election now (as if the election timer fired). */
  campaign(): void {
    this.raft.step({ type: "hup", from: this.raft.id, to: this.raft.id, term: 0, transfer: false });
  }

  propose(data: Uint8Array): StepResult {
    return this.raft.step({ type: "propose", from: this.raft.id, to: this.raft.id, term: 0, entries: [{ kind: "normal", data }] });
  }

  /** Proposes several entries at once: they are appended and replicated together. */
  proposeBatch(datas: readonly Uint8Array[]): StepResult {
    return this.raft.step({
      type: "propose",
      from: this.raft.id,
      to: this.raft.id,
      term: 0,
      entries: datas.map((data) => ({ kind: "normal" as const, data })),
    });
  }

  proposeConfChange(change: ConfChange): StepResult {
    return this.raft.step({ type: "propose", from: this.raft.id, to: this.raft.id, term: 0, entries: [{ kind: "conf", change }] });
  }

  /**
   * Requests a linearizable read. When it is confirmed, a ReadState with the
   * same context appears in a Ready; the read may be served once the state
   * machine has applied its index. Concurrent reads should share one call.
   */
  readIndex(context: Uint8Array): StepResult {
    return this.raft.step({ type: "readIndex", from: this.raft.id, to: this.raft.id, term: 0, context });
  }

  transferLeadership(transferee: NodeId): StepResult {
    return this.raft.step({ type: "transferLeader", from: this.raft.id, to: this.raft.id, term: 0, transferee });
  }

  reportUnreachable(peer: NodeId): void {
    this.raft.step({ type: "unreachable", from: peer, to: this.raft.id, term: 0 });
  }

  reportSnapshot(peer: NodeId, failed: boolean): void {
    this.raft.step({ type: "snapStatus", from: peer, to: this.raft.id, term: 0, failed });
  }

  /**
   * A liveness beacon from `peer` (MsgBeacon): it says it leads `peerTerm`
   * (leads), or that it follows this member in `peerTerm`.
   */
  beacon(peer: NodeId, peerTerm: number, leads: boolean): void {
    this.raft.step({ type: "beacon", from: peer, to: this.raft.id, term: 0, peerTerm, leads });
  }

  private softState(): SoftState {
    return { leader: this.raft.lead, role: this.raft.role };
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const r = this.raft;
    const soft = this.prevSoft;
    if (soft.leader !== r.lead || soft.role !== r.role) return true;
    if (r.hasMessages() || r.readStates.length > 0) return true;
    if (r.log.pendingSnapshot !== null) return true;
    if (r.log.entriesToPersist().length > 0) return true;
    if (r.log.committed > r.log.applying) return true;
    return r.hardStateChanged(this.prevHard);
  }

  /** Collects the output to act on; see Ready for the order. Call advance() when done. */
  ready(): Ready {
    if (this.outstanding !== null) throw new Error("rawnode: ready() called again before advance()");
    const r = this.raft;
    const soft = this.softState();
    const softChanged = soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role;
    const snapshot: Snapshot | null = r.log.pendingSnapshot;
    const entries = r.log.entriesToPersist();
    r.log.markPersisting();
    const hard = r.hardState();
    const hardChanged = r.hardStateChanged(this.prevHard);
    const committedEntries = r.log.entriesToApply(r.maxApplyBytes);
    const last = committedEntries[committedEntries.length - 1];
    if (last !== undefined) r.log.applying = last.index;
    r.onApplying(committedEntries);
    const mustSync =
      entries.length > 0 || snapshot !== null || (hardChanged && (hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote));
    const rd: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hard : null,
      entries,
      snapshot,
      committedEntries,
      messages: r.takeMessages(),
      readStates: r.readStates,
      mustSync,
    };
    r.readStates = [];
    if (softChanged) this.prevSoft = soft;
    if (hardChanged) this.prevHard = hard;
    this.outstanding = rd;
    return rd;
  }

  /** The caller has acted on `rd` (persisted, sent, applied). */
  advance(rd: Ready): void {
    if (this.outstanding !== rd) throw new Error("rawnode: advance() with a Ready that is not outstanding");
    this.outstanding = null;
    const r = this.raft;
    if (rd.snapshot !== null) r.log.snapshotStable(rd.snapshot);
    const lastEntry: Entry | undefined = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) r.onPersisted(lastEntry.index, lastEntry.term);
    else if (rd.snapshot !== null) r.onPersisted(rd.snapshot.meta.index, rd.snapshot.meta.term);
    if (rd.hardState !== null) this.durableHard = rd.hardState;
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied !== undefined) r.log.appliedTo(lastApplied.index);
  }

  status(): RaftStatus {
    return this.raft.status();
  }
}
