// The Raft consensus core: a synchronous, deterministic state machine.
//
// It does no I/O and reads no clock. Time enters as tick(), randomness from
// the injected Rng, and every other input as a Message to step(). Output is
// collected by ready() and acknowledged by advance(); see Ready for the order
// in which the caller must act on it.
//
// References are to Ongaro & Ousterhout, "In Search of an Understandable
// Consensus Algorithm" (§N) and Ongaro's thesis "Consensus: Bridging Theory
// and Practice" (thesis §N).

import { applyConfChange, isMember, validateConfChange } from "./confchange.ts";
import { RaftLog } from "./log.ts";
import { Progress } from "./progress.ts";
import { committedIndex, quorumSize, voteOutcome } from "./quorum.ts";
import type { Rng } from "./rng.ts";
import type { Storage } from "./storage.ts";
import type {
  ConfState,
  Entry,
  HardState,
  LogIndex,
  Message,
  MsgApp,
  MsgAppResp,
  MsgHeartbeat,
  MsgHeartbeatResp,
  MsgPropose,
  MsgReadIndex,
  MsgSnap,
  MsgVote,
  MsgVoteResp,
  NodeId,
  ProposalError,
  ReadState,
  Role,
  Snapshot,
  StepResult,
  Term,
} from "./types.ts";
import { entrySize, hardStateEqual, proposedSize, stepOk } from "./types.ts";

/**
 * Known bugs that the simulator's tests plant to prove the checkers can fail.
 * Never set outside tests.
 */
export type PlantedBug =
  | "commitPriorTerm" // count replicas of entries from earlier terms (violates §5.4.2)
  | "doubleVote" // grant a second vote in the same term (violates §5.2)
  | "skipUpToDateCheck" // grant votes without the log comparison (violates §5.4.1)
  | "readIndexNoQuorum"; // serve ReadIndex without confirming leadership (violates thesis §6.4)

export const plantedBugs: readonly PlantedBug[] = ["commitPriorTerm", "doubleVote", "skipUpToDateCheck", "readIndexNoQuorum"];

export interface RaftConfig {
  readonly id: NodeId;
  /** T, in ticks. A follower campaigns after a random timeout in [T, 2T). */
  readonly electionTick: number;
  /** The leader sends heartbeats every heartbeatTick ticks. Must be < electionTick. */
  readonly heartbeatTick: number;
  readonly rng: Rng;
  /** Maximum bytes of entries in one append message (at least one entry is always sent). */
  readonly maxSizePerMsg: number;
  /** Maximum append messages in flight to one follower in replicate state. */
  readonly maxInflightMsgs: number;
  /** Maximum bytes in flight to one follower (0: no limit beyond the message count). */
  readonly maxInflightBytes: number;
  /** The leader refuses proposals beyond this many uncommitted bytes (0: no limit). */
  readonly maxUncommittedBytes: number;
  /** Maximum bytes of committed entries handed out in one Ready. */
  readonly maxApplyBytes: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** The index the state machine has applied, when restarting with one (0: start from the snapshot). */
  readonly applied: LogIndex;
  readonly plantedBugs: ReadonlySet<PlantedBug>;
}

export function defaultRaftConfig(id: NodeId, rng: Rng): RaftConfig {
  return {
    id,
    electionTick: 10,
    heartbeatTick: 1,
    rng,
    maxSizePerMsg: 1024 * 1024,
    maxInflightMsgs: 256,
    maxInflightBytes: 0,
    maxUncommittedBytes: 64 * 1024 * 1024,
    maxApplyBytes: 64 * 1024 * 1024,
    preVote: true,
    checkQuorum: true,
    applied: 0,
    plantedBugs: new Set(),
  };
}

/** Volatile state that the caller may want to report; not persisted. */
export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/**
 * The output of the core since the last advance(). The caller must act in
 * this order:
 *  1. Persist `snapshot` (if any), `hardState` (if any) and `entries`, and
 *     fsync them together, before anything else. Then add them to Storage
 *     (applySnapshot, append, setHardState).
 *  2. Send `messages`. They may depend on the state persisted in step 1.
 *  3. Restore the state machine from `snapshot` (if any), then apply
 *     `committedEntries` in order. With no snapshot, committed entries may
 *     be applied while step 1 is in progress (before its fsync returns):
 *     they are already durable on a quorum, whether or not they are on this
 *     member's disk yet (etcd's raft allows the same).
 *  4. Serve each of `readStates` once the state machine has applied its index.
 *  5. Call advance(ready).
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /**
   * Whether step 1 must fsync. False when the only change is a higher commit
   * index: the commit index can be learned again after a restart, so it may
   * be written lazily (with the next synced write) or not at all.
   */
  readonly mustSync: boolean;
}

interface PendingRead {
  readonly round: number;
  readonly index: LogIndex;
  readonly context: Uint8Array;
  readonly from: NodeId;
}

/** A configuration and the log index it came from (the snapshot's, or a conf entry's). */
interface ConfAt {
  readonly index: LogIndex;
  readonly conf: ConfState;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly lastIndex: LogIndex;
  readonly firstIndex: LogIndex;
  readonly conf: ConfState;
  readonly leadTransferee: NodeId | null;
  /** Leader only: each member's replication state. */
  readonly progress: ReadonlyMap<NodeId, { match: LogIndex; next: LogIndex; state: string; recentActive: boolean }>;
}

export class Raft {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly bugs: ReadonlySet<PlantedBug>;
  readonly log: RaftLog;

  term: Term = 0;
  vote: NodeId | null = null;
  role: Role = "follower";
  lead: NodeId | null = null;

  /** Configurations in log order. Invariant: non-empty; confs[0] is at or below the log's first index. */
  private confs: ConfAt[];
  /** The leader's view of each member. Only meaningful on the leader. */
  private prs = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  leadTransferee: NodeId | null = null;
  private uncommittedBytes = 0;
  /** The no-op this leader appended on election; it is not counted against maxUncommittedBytes. */
  private noopIndex: LogIndex = 0;

  // ReadIndex (thesis §6.4). Rounds are numbered per leadership; a quorum of
  // acknowledgements for round r confirms every request in rounds <= r.
  private readRoundSent = 0;
  private readConfirmed = 0;
  private readAcks = new Map<NodeId, number>();
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term. */
  private readsAwaitingCommit: MsgReadIndex[] = [];

  private msgs: Message[] = [];
  readStates: ReadState[] = [];

  constructor(cfg: RaftConfig, storage: Storage) {
    if (cfg.heartbeatTick <= 0 || cfg.electionTick <= cfg.heartbeatTick) {
      throw new Error(`raft config: need 0 < heartbeatTick (${cfg.heartbeatTick}) < electionTick (${cfg.electionTick})`);
    }
    this.id = cfg.id;
    this.cfg = cfg;
    this.bugs = cfg.plantedBugs;
    this.log = new RaftLog(storage);
    const { hardState, confState } = storage.initialState();
    const snap = storage.snapshot();
    this.confs = [{ index: snap.meta.index, conf: confState }];
    this.scanConfs(storage.firstIndex(), storage.lastIndex());
    this.term = hardState.term;
    this.vote = hardState.vote;
    if (hardState.commit > 0) {
      if (hardState.commit > this.log.lastIndex()) {
        throw new Error(`raft: persisted commit ${hardState.commit} beyond last index ${this.log.lastIndex()}`);
      }
      this.log.commitTo(hardState.commit);
    }
    if (cfg.applied > 0) this.log.appliedTo(Math.min(cfg.applied, this.log.committed));
    this.becomeFollower(this.term, null);
  }

  get maxApplyBytes(): number {
    return this.cfg.maxApplyBytes;
  }

  // --- Configuration --------------------------------------------------------

  conf(): ConfState {
    const last = this.confs[this.confs.length - 1];
    if (last === undefined) throw new Error("raft invariant: no configuration");
    return last.conf;
  }

  /** The index of the newest conf entry in the log, or 0 if none after the snapshot. */
  private lastConfIndex(): LogIndex {
    return this.confs.length > 1 ? (this.confs[this.confs.length - 1]?.index ?? 0) : 0;
  }

  isVoter(id: NodeId = this.id): boolean {
    return this.conf().voters.includes(id);
  }

  /** Adds the configurations of conf entries in [lo, hi] of the log. */
  private scanConfs(lo: LogIndex, hi: LogIndex): void {
    if (lo > hi) return;
    const ents = this.log.slice(lo, hi + 1, Number.MAX_SAFE_INTEGER);
    if (ents === undefined) throw new Error(`raft: log entries [${lo}, ${hi}] unavailable`);
    for (const e of ents) if (e.kind === "conf") this.pushConf(e.index, applyConfChange(this.conf(), e.change));
  }

  private pushConf(index: LogIndex, conf: ConfState): void {
    this.confs.push({ index, conf });
    this.onConfChanged();
  }

  /** A log suffix from `from` was replaced: forget configurations it carried (thesis §4.1). */
  private truncateConfs(from: LogIndex): void {
    let changed = false;
    while (this.confs.length > 1 && (this.confs[this.confs.length - 1]?.index ?? 0) >= from) {
      this.confs.pop();
      changed = true;
    }
    if (changed) this.onConfChanged();
  }

  private onConfChanged(): void {
    const conf = this.conf();
    if (this.role === "follower" || this.role === "learner") {
      this.role = conf.learners.includes(this.id) ? "learner" : "follower";
    }
    if (this.role !== "leader") return;
    for (const id of [...conf.voters, ...conf.learners]) {
      const pr = this.prs.get(id);
      if (pr === undefined) {
        const np = this.newProgress(id);
        np.recentActive = true;
        this.prs.set(id, np);
      } else {
        pr.isLearner = conf.learners.includes(id);
      }
    }
    for (const id of [...this.prs.keys()]) if (!isMember(conf, id)) this.prs.delete(id);
    if (this.leadTransferee !== null && !conf.voters.includes(this.leadTransferee)) this.leadTransferee = null;
    // A smaller quorum may now be satisfied, for commits and for reads.
    if (this.maybeCommit()) this.bcastAppend();
    this.releaseReads();
  }

  private newProgress(id: NodeId): Progress {
    const pr = new Progress(
      this.log.lastIndex() + 1,
      this.cfg.maxInflightMsgs,
      this.cfg.maxInflightBytes,
      this.conf().learners.includes(id),
    );
    if (id === this.id) pr.match = this.log.persistedIndex();
    return pr;
  }

  // --- Role transitions -----------------------------------------------------

  private reset(term: Term): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    this.prs.clear();
    this.uncommittedBytes = 0;
    this.readRoundSent = 0;
    this.readConfirmed = 0;
    this.readAcks.clear();
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.electionTick + this.cfg.rng.int(this.cfg.electionTick);
  }

  becomeFollower(term: Term, lead: NodeId | null): void {
    this.reset(term);
    this.lead = lead;
    this.role = this.conf().learners.includes(this.id) ? "learner" : "follower";
  }

  private becomePreCandidate(): void {
    if (this.role === "leader") throw new Error("raft invariant: leader cannot become pre-candidate");
    // Pre-vote does not change the term or the vote (thesis §9.6).
    this.votes.clear();
    this.lead = null;
    this.role = "preCandidate";
  }

  private becomeCandidate(): void {
    if (this.role === "leader") throw new Error("raft invariant: leader cannot become candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
  }

  private becomeLeader(): void {
    if (this.role !== "candidate") throw new Error(`raft invariant: ${this.role} cannot become leader`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = "leader";
    const conf = this.conf();
    for (const id of [...conf.voters, ...conf.learners]) {
      const pr = this.newProgress(id);
      pr.recentActive = true;
      this.prs.set(id, pr);
    }
    // Self is always replicating its own log.
    this.prs.get(this.id)?.becomeReplicate();
    // A no-op entry of the new term lets earlier entries commit (§5.4.2) and
    // confirms the commit index for reads (thesis §6.4). It is not counted
    // against the uncommitted limit.
    this.appendEntries([{ kind: "normal", data: new Uint8Array(0) }], false);
    this.noopIndex = this.log.lastIndex();
  }

  // --- Time -------------------------------------------------------------------

  tick(): void {
    this.electionElapsed++;
    if (this.role === "leader") {
      this.heartbeatElapsed++;
      if (this.electionElapsed >= this.cfg.electionTick) {
        this.electionElapsed = 0;
        if (this.cfg.checkQuorum) this.step({ type: "checkQuorum", from: this.id, to: this.id, term: 0 });
        // A transfer that has not finished within an election timeout is abandoned (thesis §3.10).
        if (this.isLeader()) this.leadTransferee = null;
      }
      if (this.isLeader() && this.heartbeatElapsed >= this.cfg.heartbeatTick) {
        this.heartbeatElapsed = 0;
        this.step({ type: "beat", from: this.id, to: this.id, term: 0 });
      }
      return;
    }
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step({ type: "hup", from: this.id, to: this.id, term: 0, transfer: false });
    }
  }

  /** A method rather than a field test, so that narrowing does not survive a step() that changes the role. */
  isLeader(): boolean {
    return this.role === "leader";
  }

  /**
   * Who may campaign: a voter of the latest configuration, and also a voter
   * whose removal is in its log but not known to be committed. Such a
   * server (typically the leader that proposed its own removal and then
   * lost leadership) may hold the only copy of the removal entry; it must be
   * able to lead again to commit it, counting votes by the new
   * configuration without itself (thesis §4.2.2). Otherwise the remaining
   * voters could wait forever for a vote it will not give them.
   */
  private promotable(): boolean {
    if (this.log.pendingSnapshot !== null) return false;
    return this.isVoter() || this.confAt(this.log.committed).voters.includes(this.id);
  }

  /**
   * The configuration in effect at log index `i` (the newest conf entry at or
   * below it). A snapshot at index i must carry this, not conf(): conf() may
   * include an appended change above i that is not committed and may yet be
   * truncated.
   */
  confAt(i: LogIndex): ConfState {
    for (let k = this.confs.length - 1; k >= 0; k--) {
      const c = this.confs[k];
      if (c !== undefined && c.index <= i) return c.conf;
    }
    return this.confs[0]?.conf ?? this.conf();
  }

  // --- Sending ----------------------------------------------------------------

  private send(m: Message): void {
    this.msgs.push(m);
  }

  /**
   * Sends an append (or a snapshot) to `to` if flow control allows.
   * Returns whether a message was sent.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (pr === undefined || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const last = this.log.lastIndex();
    const entries = prevTerm === undefined ? undefined : this.log.slice(pr.next, last + 1, this.cfg.maxSizePerMsg);
    if (prevTerm === undefined || entries === undefined) return this.sendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    let size = 0;
    for (const e of entries) size += entrySize(e);
    this.send({
      type: "app",
      from: this.id,
      to,
      term: this.term,
      prevIndex,
      prevTerm,
      entries,
      commit: this.log.committed,
    });
    const lastSent = entries[entries.length - 1];
    pr.sentEntries(lastSent?.index ?? prevIndex, entries.length, size);
    return true;
  }

  /** §7: the follower needs entries the leader has compacted. */
  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    const snap = this.log.storage.snapshot();
    if (snap.meta.index === 0) return false;
    pr.becomeSnapshot(snap.meta.index);
    this.send({ type: "snap", from: this.id, to, term: this.term, snapshot: snap });
    return true;
  }

  private bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.maybeSendAppend(id, true);
  }

  private sendHeartbeat(to: NodeId, readRound: number): void {
    const pr = this.prs.get(to);
    // Never tell a follower to commit beyond what it is known to have (its log may be shorter).
    const commit = Math.min(pr?.match ?? 0, this.log.committed);
    this.send({ type: "heartbeat", from: this.id, to, term: this.term, commit, readRound });
  }

  private bcastHeartbeat(readRound: number): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendHeartbeat(id, readRound);
  }

  // --- Log writes -------------------------------------------------------------

  /** The leader appends new entries of its term. Returns false if refused by the uncommitted limit. */
  private appendEntries(proposed: MsgPropose["entries"], countAgainstLimit: boolean): boolean {
    let size = 0;
    for (const p of proposed) size += proposedSize(p);
    if (countAgainstLimit) {
      const max = this.cfg.maxUncommittedBytes;
      if (max > 0 && this.uncommittedBytes > 0 && this.uncommittedBytes + size > max) return false;
      this.uncommittedBytes += size;
    }
    let index = this.log.lastIndex();
    const entries: Entry[] = new Array<Entry>(proposed.length);
    for (let k = 0; k < proposed.length; k++) {
      const p = proposed[k];
      if (p === undefined) continue;
      index++;
      entries[k] =
        p.kind === "normal"
          ? { kind: "normal", term: this.term, index, data: p.data }
          : { kind: "conf", term: this.term, index, change: p.change };
    }
    this.log.append(entries);
    for (const e of entries) if (e.kind === "conf") this.pushConf(e.index, applyConfChange(this.conf(), e.change));
    return true;
  }

  /** The leader's commit rule (§5.3, §5.4.2). Returns whether the commit index advanced. */
  private maybeCommit(): boolean {
    if (this.role !== "leader") return false;
    const voters = this.conf().voters;
    const mci = committedIndex(voters, (id) => this.prs.get(id)?.match ?? 0);
    let advanced: boolean;
    if (this.bugs.has("commitPriorTerm")) {
      advanced = mci > this.log.committed && mci <= this.log.lastIndex();
      if (advanced) this.log.commitTo(mci);
    } else {
      advanced = this.log.maybeCommit(mci, this.term);
    }
    if (advanced) this.onCommitAdvanced();
    return advanced;
  }

  private onCommitAdvanced(): void {
    // A leader removed from the configuration steps down once that change commits (thesis §4.2.2).
    if (this.role === "leader" && !this.isVoter() && this.lastConfIndex() <= this.log.committed) {
      this.becomeFollower(this.term, null);
      return;
    }
    if (this.role === "leader" && this.readsAwaitingCommit.length > 0 && this.committedInTerm()) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const m of waiting) this.handleReadIndexAsLeader(m);
    }
  }

  private committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  // --- Step -------------------------------------------------------------------

  /** Feeds one message (remote or local) into the state machine. */
  step(m: Message): StepResult {
    if (m.term === 0) {
      // Local messages, and proposals or reads forwarded by a follower.
    } else if (m.term > this.term) {
      if (m.type === "vote" || m.type === "preVote") {
        // A server that heard from a live leader recently ignores votes, so
        // that a partitioned or removed server cannot disrupt it (thesis §4.2.3).
        const inLease =
          this.cfg.checkQuorum && this.lead !== null && this.electionElapsed < this.cfg.electionTick;
        if (inLease && !m.transfer) return stepOk;
      }
      if (m.type === "preVote") {
        // Pre-votes never change our term.
      } else if (m.type === "preVoteResp" && !m.reject) {
        // A granted pre-vote carries the future term the candidate will use.
      } else if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === "heartbeat" || m.type === "app")) {
        // Tell a stale leader about the newer term; otherwise a leader cut off
        // by pre-vote or check-quorum could keep its followers from campaigning.
        this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (m.type === "preVote") {
        this.send({ type: "preVoteResp", from: this.id, to: m.from, term: this.term, reject: true });
      }
      return stepOk;
    }

    switch (m.type) {
      case "hup":
        this.hup(m.transfer);
        return stepOk;
      case "vote":
      case "preVote":
        this.handleVote(m);
        return stepOk;
      default:
        break;
    }

    switch (this.role) {
      case "leader":
        return this.stepLeader(m);
      case "candidate":
      case "preCandidate":
        return this.stepCandidate(m);
      case "follower":
      case "learner":
        return this.stepFollower(m);
    }
  }

  private hup(transfer: boolean): void {
    if (this.role === "leader" || !this.promotable()) return;
    if (this.cfg.preVote && !transfer) this.campaignPreVote();
    else this.campaign(transfer);
  }

  private campaignPreVote(): void {
    this.becomePreCandidate();
    this.votes.set(this.id, true);
    if (voteOutcome(this.conf().voters, this.votes) === "won") {
      this.campaign(false);
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.conf().voters) {
      if (id === this.id) continue;
      this.send({ type: "preVote", from: this.id, to: id, term: this.term + 1, lastIndex, lastTerm, transfer: false });
    }
  }

  /** §5.2: increment the term, vote for self, request votes. */
  private campaign(transfer: boolean): void {
    this.becomeCandidate();
    this.votes.set(this.id, true);
    if (voteOutcome(this.conf().voters, this.votes) === "won") {
      this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.conf().voters) {
      if (id === this.id) continue;
      this.send({ type: "vote", from: this.id, to: id, term: this.term, lastIndex, lastTerm, transfer });
    }
  }

  /** §5.2, §5.4.1: grant at most one vote per term, and only to an up-to-date log. */
  private handleVote(m: MsgVote): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      (m.type === "preVote" && m.term > this.term) ||
      (this.bugs.has("doubleVote") && m.type === "vote");
    const upToDate = this.bugs.has("skipUpToDateCheck") || this.log.isUpToDate(m.lastIndex, m.lastTerm);
    const respType = m.type === "vote" ? "voteResp" : "preVoteResp";
    if (canVote && upToDate) {
      // A granted pre-vote answers in the candidate's future term.
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === "vote") {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepCandidate(m: Message): StepResult {
    switch (m.type) {
      case "propose":
        return { ok: false, error: { type: "NoLeader" } };
      case "readIndex":
        return { ok: false, error: { type: "NoLeader" } };
      case "transferLeader":
        return { ok: false, error: { type: "NoLeader" } };
      case "app":
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return stepOk;
      case "heartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return stepOk;
      case "snap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return stepOk;
      case "voteResp":
      case "preVoteResp":
        this.handleVoteResp(m);
        return stepOk;
      default:
        return stepOk;
    }
  }

  private handleVoteResp(m: MsgVoteResp): void {
    const mine = this.role === "preCandidate" ? "preVoteResp" : "voteResp";
    if (m.type !== mine) return;
    this.votes.set(m.from, !m.reject);
    switch (voteOutcome(this.conf().voters, this.votes)) {
      case "won":
        if (this.role === "preCandidate") this.campaign(false);
        else this.becomeLeader();
        // Announce leadership at once instead of waiting for the next heartbeat.
        if (this.role === "leader") this.bcastAppend();
        return;
      case "lost":
        this.becomeFollower(this.term, null);
        return;
      case "pending":
        return;
    }
  }

  private stepFollower(m: Message): StepResult {
    switch (m.type) {
      case "propose":
        if (this.lead === null) return { ok: false, error: { type: "NoLeader" } };
        this.send({ ...m, from: this.id, to: this.lead, term: 0 });
        return stepOk;
      case "readIndex":
        if (this.lead === null) return { ok: false, error: { type: "NoLeader" } };
        this.send({ ...m, from: this.id, to: this.lead, term: 0 });
        return stepOk;
      case "transferLeader":
        if (this.lead === null) return { ok: false, error: { type: "NoLeader" } };
        this.send({ ...m, from: this.id, to: this.lead, term: 0 });
        return stepOk;
      case "app":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return stepOk;
      case "heartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return stepOk;
      case "snap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return stepOk;
      case "readIndexResp":
        this.readStates.push({ index: m.index, context: m.context });
        return stepOk;
      case "timeoutNow":
        // Leadership transfer: campaign at once, skipping pre-vote (thesis §3.10).
        this.hup(true);
        return stepOk;
      case "beacon":
        // Only from the leader we already follow, in our term: a beacon can
        // keep a known leader but never choose one.
        if (m.leads && m.peerTerm === this.term && this.lead === m.from) this.electionElapsed = 0;
        return stepOk;
      default:
        return stepOk;
    }
  }

  private handleAppend(m: MsgApp): void {
    if (m.prevIndex < this.log.committed) {
      // Everything up to our commit index is already known to match.
      this.send(this.appResp(m.from, this.log.committed, false, 0, 0));
      return;
    }
    const res = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries);
    if (res !== undefined) {
      if (res.firstWritten > 0) this.syncConfs(res.firstWritten, m.entries);
      this.send(this.appResp(m.from, res.lastNew, false, 0, 0));
      return;
    }
    // Reject, with a hint that lets the leader skip a whole term of
    // conflicting entries at once instead of one index per round trip.
    const hint = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    this.send(this.appResp(m.from, m.prevIndex, true, hint.index, hint.term));
  }

  /**
   * Entries from `firstWritten` on were (re)written from `entries`: the
   * configurations of any replaced entries no longer hold (thesis §4.1), and
   * those of the new conf entries take effect now.
   */
  private syncConfs(firstWritten: LogIndex, entries: readonly Entry[]): void {
    this.truncateConfs(firstWritten);
    for (const e of entries) {
      if (e.kind === "conf" && e.index >= firstWritten) this.pushConf(e.index, applyConfChange(this.conf(), e.change));
    }
  }

  private appResp(to: NodeId, index: LogIndex, reject: boolean, rejectHint: LogIndex, logTerm: Term): MsgAppResp {
    return { type: "appResp", from: this.id, to, term: this.term, index, reject, rejectHint, logTerm };
  }

  private handleHeartbeat(m: MsgHeartbeat): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: "heartbeatResp", from: this.id, to: m.from, term: this.term, readRound: m.readRound });
  }

  private handleSnapshot(m: MsgSnap): void {
    const s = m.snapshot;
    const { index, term } = s.meta;
    if (index <= this.log.committed) {
      this.send(this.appResp(m.from, this.log.committed, false, 0, 0));
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already have the entries the snapshot covers: fast-forward the commit index.
      this.log.commitTo(index);
      this.send(this.appResp(m.from, this.log.lastIndex(), false, 0, 0));
      return;
    }
    this.log.restore(s);
    this.confs = [{ index, conf: s.meta.conf }];
    this.onConfChanged();
    this.send(this.appResp(m.from, this.log.lastIndex(), false, 0, 0));
  }

  private stepLeader(m: Message): StepResult {
    switch (m.type) {
      case "beat":
        this.bcastHeartbeat(this.readRoundSent);
        return stepOk;
      case "checkQuorum":
        this.checkQuorum();
        return stepOk;
      case "propose":
        return this.propose(m);
      case "readIndex":
        this.handleReadIndexAsLeader(m);
        return stepOk;
      case "transferLeader":
        return this.transferLeader(m.transferee);
      default:
        break;
    }
    const pr = this.prs.get(m.from);
    if (pr === undefined) return stepOk;
    switch (m.type) {
      case "appResp":
        pr.recentActive = true;
        this.handleAppResp(m, pr);
        return stepOk;
      case "heartbeatResp":
        this.handleHeartbeatResp(m, pr);
        return stepOk;
      case "snapStatus":
        if (pr.state !== "snapshot") return stepOk;
        // Wait for the follower's append response before sending more, whether or not it worked.
        pr.becomeProbe();
        pr.probeSent = !m.failed;
        return stepOk;
      case "unreachable":
        if (pr.state === "replicate") pr.becomeProbe();
        return stepOk;
      case "beacon":
        // The follower says it follows us in this term: it is alive for
        // check-quorum even while its responses are late.
        if (!m.leads && m.peerTerm === this.term) pr.recentActive = true;
        return stepOk;
      default:
        return stepOk;
    }
  }

  /** §6.2 (thesis): a leader that cannot reach a quorum steps down. */
  private checkQuorum(): void {
    const voters = this.conf().voters;
    let active = 0;
    for (const id of voters) {
      const pr = this.prs.get(id);
      if (id === this.id || pr?.recentActive === true) active++;
    }
    for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
    if (voters.length > 0 && active < quorumSize(voters.length)) this.becomeFollower(this.term, null);
  }

  private propose(m: MsgPropose): StepResult {
    if (this.leadTransferee !== null) {
      return { ok: false, error: { type: "TransferInProgress", transferee: this.leadTransferee } };
    }
    if (!this.prs.has(this.id)) return { ok: false, error: { type: "NotMember" } };
    let conf = 0;
    for (const e of m.entries) {
      if (e.kind !== "conf") continue;
      conf++;
      const err = this.confChangeError(e.change);
      if (err !== null) return { ok: false, error: err };
    }
    if (conf > 1) return { ok: false, error: { type: "ConfChangeInvalid", reason: "one membership change per proposal" } };
    if (m.entries.length === 0) return stepOk;
    if (!this.appendEntries(m.entries, true)) {
      return { ok: false, error: { type: "TooManyUncommitted", limitBytes: this.cfg.maxUncommittedBytes } };
    }
    this.bcastAppend();
    return stepOk;
  }

  private confChangeError(cc: Parameters<typeof validateConfChange>[1]): ProposalError | null {
    const pending = this.lastConfIndex();
    if (pending > this.log.committed) return { type: "ConfChangePending", pendingIndex: pending };
    // A new leader must commit an entry of its own term before changing the
    // configuration, or two configurations could decide independently
    // (the single-server change bug; see the errata to thesis §4.1).
    if (!this.committedInTerm()) return { type: "ConfChangePending", pendingIndex: this.log.lastIndex() };
    const reason = validateConfChange(this.conf(), cc);
    return reason === null ? null : { type: "ConfChangeInvalid", reason };
  }

  private handleAppResp(m: MsgAppResp, pr: Progress): void {
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.maybeSendAppend(m.from, true);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (pr.maybeUpdate(m.index)) {
      switch (pr.state) {
        case "probe":
          pr.becomeReplicate();
          break;
        case "snapshot":
          if (pr.match + 1 >= this.log.firstIndex()) {
            pr.becomeProbe();
            pr.becomeReplicate();
          }
          break;
        case "replicate":
          pr.inflights.freeLE(m.index);
          break;
      }
      if (this.maybeCommit()) {
        if (this.role !== "leader") return;
        this.bcastAppend();
      } else if (oldPaused) {
        this.maybeSendAppend(m.from, false);
      }
      while (this.maybeSendAppend(m.from, false)) {
        // Keep the pipeline full.
      }
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    } else if (pr.state === "replicate") {
      pr.inflights.freeLE(m.index);
    }
  }

  private handleHeartbeatResp(m: MsgHeartbeatResp, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // Appends to this follower may have been lost (it may have restarted):
    // free one slot of a full window so that replication resumes, and a
    // rejection moves the follower back to probing.
    if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirst();
    if (pr.match < this.log.lastIndex()) this.maybeSendAppend(m.from, true);
    if (m.readRound > 0 && m.readRound > (this.readAcks.get(m.from) ?? 0)) {
      this.readAcks.set(m.from, m.readRound);
      this.releaseReads();
    }
  }

  // --- Linearizable reads (thesis §6.4) ------------------------------------

  private handleReadIndexAsLeader(m: MsgReadIndex): void {
    const from = m.from;
    if (this.bugs.has("readIndexNoQuorum")) {
      this.respondRead(from, this.log.committed, m.context);
      return;
    }
    // Until the leader commits an entry of its term it does not know the
    // latest commit index.
    if (!this.committedInTerm()) {
      this.readsAwaitingCommit.push(m);
      return;
    }
    const voters = this.conf().voters;
    if (voters.length === 1 && voters[0] === this.id) {
      this.respondRead(from, this.log.committed, m.context);
      return;
    }
    // Requests join the next round; at most one round is in flight, so reads
    // that arrive during a round trip are confirmed together.
    this.pendingReads.push({ round: this.readRoundSent + 1, index: this.log.committed, context: m.context, from });
    if (this.readConfirmed >= this.readRoundSent) this.sendReadRound();
  }

  private sendReadRound(): void {
    this.readRoundSent++;
    this.bcastHeartbeat(this.readRoundSent);
  }

  /** Serves every pending read whose round a quorum of voters has acknowledged. */
  private releaseReads(): void {
    if (this.role !== "leader" || this.pendingReads.length === 0) return;
    const voters = this.conf().voters;
    const confirmed = committedIndex(voters, (id) => (id === this.id ? this.readRoundSent : (this.readAcks.get(id) ?? 0)));
    if (confirmed <= this.readConfirmed) return;
    this.readConfirmed = confirmed;
    let k = 0;
    while (k < this.pendingReads.length) {
      const r = this.pendingReads[k];
      if (r === undefined || r.round > confirmed) break;
      this.respondRead(r.from, r.index, r.context);
      k++;
    }
    if (k > 0) this.pendingReads = this.pendingReads.slice(k);
    // Requests queued for the next round go out now that this one is done.
    const next = this.pendingReads[0];
    if (next !== undefined && confirmed >= this.readRoundSent) this.sendReadRound();
  }

  private respondRead(to: NodeId, index: LogIndex, context: Uint8Array): void {
    if (to === this.id) this.readStates.push({ index, context });
    else this.send({ type: "readIndexResp", from: this.id, to, term: this.term, index, context });
  }

  // --- Leadership transfer (thesis §3.10) ------------------------------------

  private transferLeader(transferee: NodeId): StepResult {
    if (transferee === this.id) return stepOk;
    const pr = this.prs.get(transferee);
    if (pr === undefined || pr.isLearner) return { ok: false, error: { type: "NotMember" } };
    if (this.leadTransferee === transferee) return stepOk;
    this.leadTransferee = transferee;
    // The transfer must finish within one election timeout.
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.maybeSendAppend(transferee, true);
    return stepOk;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: "timeoutNow", from: this.id, to, term: this.term });
  }

  // --- Output -----------------------------------------------------------------

  takeMessages(): Message[] {
    const out = this.msgs;
    this.msgs = [];
    return out;
  }

  /** Removes and returns the queued messages that satisfy `pred`, keeping the others in order. */
  takeMessagesWhere(pred: (m: Message) => boolean): Message[] {
    const out: Message[] = [];
    const keep: Message[] = [];
    for (const m of this.msgs) (pred(m) ? out : keep).push(m);
    if (out.length > 0) this.msgs = keep;
    return out;
  }

  hasMessages(): boolean {
    return this.msgs.length > 0;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  hardStateChanged(prev: HardState): boolean {
    return !hardStateEqual(prev, this.hardState());
  }

  /** The driver has persisted everything up to `index` (of `term`). */
  onPersisted(index: LogIndex, term: Term): void {
    this.log.stableTo(index, term);
    if (this.role === "leader") {
      const self = this.prs.get(this.id);
      if (self?.maybeUpdate(this.log.persistedIndex()) === true && this.maybeCommit()) this.bcastAppend();
    }
  }

  /** The driver has applied committed entries; reduces the uncommitted count on the leader. */
  onApplying(entries: readonly Entry[]): void {
    if (this.role !== "leader" || this.uncommittedBytes === 0) return;
    let size = 0;
    for (const e of entries) if (e.term === this.term && e.index !== this.noopIndex) size += entrySize(e);
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - size);
  }

  status(): RaftStatus {
    const progress = new Map<NodeId, { match: LogIndex; next: LogIndex; state: string; recentActive: boolean }>();
    if (this.role === "leader") {
      for (const [id, pr] of this.prs) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive });
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      conf: this.conf(),
      leadTransferee: this.leadTransferee,
      progress,
    };
  }
}
