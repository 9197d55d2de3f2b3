// The driver around the pure Raft core: it owns the clock, the disk and the
// sockets. One loop takes a Ready, persists it (one fsync), sends its
// messages, applies its committed entries, serves its reads and advances.
// Messages that do not depend on local durability (heartbeats, the leader's
// appends) are sent at once, so they never wait behind a disk write; and
// entries already committed are applied while the fsync runs.

import type { ConfChange, ConfState, Entry, Message, NodeId, NormalEntry, ProposalError, RaftConfig, Ready, Snapshot } from "../raft/index.ts";
import { RawNode } from "../raft/index.ts";
import type { Envelope, EnvelopeKind } from "./envelope.ts";
import { decodeEnvelope, encodeEnvelope } from "./envelope.ts";
import { isDecodeError } from "../raft/codec.ts";
import { runInSteps } from "../steps.ts";

type StorageOutcome = { readonly ok: true } | { readonly ok: false; readonly error: { readonly message: string } };

/** What the driver needs from durable storage (DurableStorage). */
export interface Persistence {
  persist(rd: Pick<Ready, "hardState" | "entries" | "snapshot">): Promise<StorageOutcome>;
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Promise<StorageOutcome>;
  readonly memory: { snapshot(): Snapshot; firstIndex(): number; lastIndex(): number };
}

/** What the driver needs from the peer transport. */
export interface PeerSender {
  send(messages: readonly Message[]): void;
  /** Writes what send() queued now rather than at the end of the event-loop turn. */
  flush(): void;
}

/**
 * Liveness beacons (PeerBeacon in the transport): the driver tells it this
 * member's view and whom it heard from on every tick (a tick that is late
 * is what makes the beacon worker send), and takes the beacons that arrived
 * since, which it steps into the core as MsgBeacon.
 */
export interface BeaconPort {
  publish(view: { term: number; role: "leader" | "follower" | "other"; lead: NodeId | null }, heard: Iterable<NodeId>): void;
  take(peer: NodeId): { readonly term: number; readonly leads: boolean } | null;
}

/** The replicated state machine. */
export interface Applier {
  /** Applies a client envelope; the result goes back to the proposer. */
  applyEnvelope(index: number, env: Envelope): unknown;
  /** Records an entry that carries no client command (the leader's no-op, an undecodable entry). */
  applyOther(index: number): void;
  /** A membership change was committed; `conf` is the configuration after it. */
  applyConf(index: number, change: ConfChange, conf: ConfState): void;
  /** The state as of now, encoded in steps (runInSteps) while applies go on. */
  snapshotSteps(): Generator<void, Uint8Array, void>;
  restore(snapshot: Snapshot): void;
  appliedIndex(): number;
}

export interface DriverEvents {
  onLeaderChange?(leader: NodeId | null, term: number): void;
  onRoleChange?(role: string): void;
  onApplied?(index: number): void;
  /** Entries committed and applied in one batch. */
  onEntriesApplied?(count: number): void;
  /** A local proposal was refused or timed out. */
  onProposalFailed?(error: DriverError): void;
  /** How long one Ready took to persist (WAL write and fsync, plus a snapshot file if any). */
  onPersist?(seconds: number): void;
  /** A snapshot at `index` (the applied index it captured) was saved, `seconds` after it started. */
  onSnapshot?(seconds: number, index: number): void;
  /** A snapshot from the leader was installed. */
  onSnapshotInstalled?(index: number, term: number): void;
  /**
   * A beacon from `peer` was stepped in after no Raft message came from it
   * for half an election timeout or more: the beacon stood in for late
   * heartbeats (or late responses to them).
   */
  onBeaconBridged?(peer: NodeId): void;
}

export type DriverError =
  | ProposalError
  | { readonly type: "Timeout"; readonly afterMs: number }
  | { readonly type: "Stopped" }
  | { readonly type: "LeaderChanged" };

export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: DriverError };

interface Waiter {
  resolve(o: Outcome<unknown>): void;
  timer: NodeJS.Timeout;
}

interface ReadWaiter {
  resolve(o: Outcome<number>): void;
}

export interface DriverOptions {
  readonly raft: RaftConfig;
  readonly storage: Persistence;
  readonly tickMs: number;
  readonly snapshotCount: number;
  readonly requestTimeoutMs: number;
}

export class RaftDriver {
  readonly id: NodeId;
  readonly raw: RawNode;
  private readonly opts: DriverOptions;
  private readonly applier: Applier;
  private transport: PeerSender | null = null;
  private beacon: BeaconPort | null = null;
  /** Peers a Raft message arrived from since the last tick (for the beacon). */
  private readonly heard = new Set<NodeId>();
  /** Per peer, ticks in a row with no Raft message from it (for onBeaconBridged). */
  private readonly silentTicks = new Map<NodeId, number>();
  private events: DriverEvents;

  private ticker: NodeJS.Timeout | null = null;
  private scheduled = false;
  private persisting = false;
  private stopped = false;
  /** Resolves when the loop has nothing in flight (for shutdown). */
  private idleWaiters: (() => void)[] = [];

  /** Random per process run, so that sequence numbers never repeat across restarts. */
  private readonly epoch: string;
  private seq = 0;
  private readonly waiters = new Map<number, Waiter>();

  private readBatch: ReadWaiter[] = [];
  private readonly readsInFlight = new Map<string, ReadWaiter[]>();
  private readCtx = 0;
  /** Reads confirmed at an index the state machine has not reached yet. */
  private readsAwaitingApply: { index: number; waiters: ReadWaiter[] }[] = [];
  private appliedListeners: { index: number; resolve: () => void }[] = [];

  private lastLeader: NodeId | null = null;
  private pendingLeaderChange = false;
  private pendingReadRetry = false;
  private lastSnapshotIndex: number;
  /** The applied index at which the next snapshot is due (nextSnapshotIndex), worked out after each snapshot. */
  private snapshotDue: number;
  /** A background snapshot is being encoded or written (maybeSnapshot). */
  private snapshotting = false;

  constructor(opts: DriverOptions, storage: ConstructorParameters<typeof RawNode>[1], applier: Applier, events: DriverEvents, epoch: string) {
    this.opts = opts;
    this.id = opts.raft.id;
    this.applier = applier;
    this.events = events;
    this.epoch = epoch;
    this.raw = new RawNode(opts.raft, storage);
    this.lastSnapshotIndex = opts.storage.memory.snapshot().meta.index;
    this.snapshotDue = this.dueAfter(this.lastSnapshotIndex);
  }

  /** When the snapshot after one at `index` is due, from this member's rank among the voters at `index`. */
  private dueAfter(index: number): number {
    const voters = [...this.raw.raft.confAt(index).voters].sort();
    return nextSnapshotIndex(index, this.opts.snapshotCount, Math.max(0, voters.indexOf(this.id)), Math.max(1, voters.length));
  }

  setEvents(e: DriverEvents): void {
    this.events = e;
  }

  setTransport(t: PeerSender): void {
    this.transport = t;
  }

  setBeacon(b: BeaconPort): void {
    this.beacon = b;
  }

  start(): void {
    this.ticker = setInterval(() => {
      this.beaconTick();
      this.raw.tick();
      this.kick();
    }, this.opts.tickMs);
    this.kick();
  }

  /** A message from a peer. */
  receive(m: Message): void {
    if (this.stopped) return;
    if (this.beacon !== null) this.heard.add(m.from);
    this.raw.step(m);
    this.kick();
  }

  /**
   * Before each tick: publish this member's view for the beacon worker, and
   * step in what the peers that matter beaconed since the last tick (the
   * leader, for a follower; the voters, for a leader).
   */
  private beaconTick(): void {
    const b = this.beacon;
    if (b === null) return;
    const r = this.raw.raft;
    const role = r.role === "leader" ? "leader" : r.role === "follower" || r.role === "learner" ? "follower" : "other";
    b.publish({ term: r.term, role, lead: r.lead }, this.heard);
    if (role === "follower" && r.lead !== null) {
      this.takeBeacon(b, r.lead, r.term, true);
    } else if (role === "leader") {
      for (const id of r.conf().voters) if (id !== this.id) this.takeBeacon(b, id, r.term, false);
    }
    this.heard.clear();
  }

  private takeBeacon(b: BeaconPort, peer: NodeId, term: number, fromLeader: boolean): void {
    const silent = this.heard.has(peer) ? 0 : (this.silentTicks.get(peer) ?? 0) + 1;
    this.silentTicks.set(peer, silent);
    const got = b.take(peer);
    if (got === null) return;
    this.raw.beacon(peer, got.term, got.leads);
    if (got.term === term && got.leads === fromLeader && silent >= Math.max(2, Math.floor(this.opts.raft.electionTick / 2))) {
      this.events.onBeaconBridged?.(peer);
    }
  }

  /**
   * Leadership moved: proposals made here may still commit (or not), so
   * their callers get an indeterminate LeaderChanged now instead of a
   * timeout later.
   */
  failPending(): void {
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.resolve({ ok: false, error: { type: "LeaderChanged" } });
    }
    this.waiters.clear();
  }

  reportUnreachable(peer: NodeId): void {
    this.raw.reportUnreachable(peer);
    this.kick();
  }

  reportSnapshot(peer: NodeId, failed: boolean): void {
    this.raw.reportSnapshot(peer, failed);
    this.kick();
  }

  // --- Requests -----------------------------------------------------------

  /** Proposes a command and resolves with the state machine's result once it is applied here. */
  propose(kind: EnvelopeKind, payload: Uint8Array, timeoutMs = this.opts.requestTimeoutMs): Promise<Outcome<unknown>> {
    if (this.stopped) return Promise.resolve({ ok: false, error: { type: "Stopped" } });
    const seq = ++this.seq;
    const data = encodeEnvelope({ kind, origin: this.origin(), seq, payload });
    return new Promise((resolve) => {
      const res = this.raw.propose(data);
      if (!res.ok) {
        this.events.onProposalFailed?.(res.error);
        resolve({ ok: false, error: res.error });
        return;
      }
      const timer = setTimeout(() => {
        this.waiters.delete(seq);
        const error: DriverError = { type: "Timeout", afterMs: timeoutMs };
        this.events.onProposalFailed?.(error);
        resolve({ ok: false, error });
      }, timeoutMs);
      this.waiters.set(seq, { resolve, timer });
      this.kick();
    });
  }

  private origin(): string {
    return `${this.id}/${this.epoch}`;
  }

  /**
   * A linearizable read barrier: resolves with an index once the state
   * machine has applied everything committed before the call. Concurrent
   * calls share one ReadIndex round.
   */
  readBarrier(timeoutMs = this.opts.requestTimeoutMs): Promise<Outcome<number>> {
    if (this.stopped) return Promise.resolve({ ok: false, error: { type: "Stopped" } });
    return new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        finish({ ok: false, error: { type: "Timeout", afterMs: timeoutMs } });
      }, timeoutMs);
      const finish = (o: Outcome<number>): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(o);
      };
      this.readBatch.push({ resolve: finish });
      this.kick();
    });
  }

  /** Resolves once the state machine has applied `index` (or the timeout passes). */
  waitApplied(index: number, timeoutMs: number): Promise<boolean> {
    if (this.applier.appliedIndex() >= index) return Promise.resolve(true);
    return new Promise((resolve) => {
      const entry = { index, resolve: () => {
        clearTimeout(timer);
        resolve(true);
      } };
      const timer = setTimeout(() => {
        this.appliedListeners = this.appliedListeners.filter((l) => l !== entry);
        resolve(false);
      }, timeoutMs);
      this.appliedListeners.push(entry);
    });
  }

  proposeConfChange(change: ConfChange): Outcome<null> {
    const res = this.raw.proposeConfChange(change);
    this.kick();
    return res.ok ? { ok: true, value: null } : { ok: false, error: res.error };
  }

  transferLeadership(to: NodeId): Outcome<null> {
    const res = this.raw.transferLeadership(to);
    this.kick();
    return res.ok ? { ok: true, value: null } : { ok: false, error: res.error };
  }

  // --- The loop -----------------------------------------------------------

  kick(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.run();
    });
  }

  private run(): void {
    if (this.stopped) return;
    this.startReadRound();
    this.transport?.send(this.raw.takeImmediateMessages());
    if (this.persisting || !this.raw.hasReady()) {
      if (!this.persisting && !this.snapshotting) this.notifyIdle();
      return;
    }
    const rd = this.raw.ready();
    if (rd.softState !== null) {
      const { leader, role } = rd.softState;
      this.events.onRoleChange?.(role);
      if (leader !== this.lastLeader) {
        const hadLeader = this.lastLeader !== null;
        this.lastLeader = leader;
        // Entries already applied in this Ready answer their callers first.
        this.pendingLeaderChange = hadLeader;
        // Read rounds sent to the old leader are never answered; once a new
        // leader is known, their reads join a fresh round (a read may take
        // effect at any point before it returns, so asking again is safe).
        if (leader !== null) this.pendingReadRetry = true;
        this.events.onLeaderChange?.(leader, this.raw.raft.term);
      }
    }
    if (!rd.mustSync) {
      // Nothing that must be durable before sending (at most a higher commit index).
      this.afterPersist(rd);
      this.maybeSnapshot();
      this.kick();
      return;
    }
    this.persisting = true;
    const started = performance.now();
    const persisted = this.opts.storage.persist(rd);
    // The committed entries are on a quorum's disks already: apply them (and
    // answer their callers) while this write's fsync runs, as etcd does,
    // instead of after it. On the next turn, so that the write has been
    // handed to the disk first. A membership change and what follows it
    // wait for the fsync as before.
    if (rd.snapshot === null && rd.committedEntries.length > 0) {
      setImmediate(() => {
        this.applyEarly(rd);
      });
    }
    persisted.then(
      (res) => {
        if (!res.ok) {
          this.fatal(new Error(`persist failed: ${res.error.message}`));
          return;
        }
        this.events.onPersist?.((performance.now() - started) / 1000);
        this.afterPersist(rd);
        this.maybeSnapshot();
      },
      (err: unknown) => {
        // The disk failed: nothing acknowledged may depend on this write.
        // Stop rather than continue with state the disk does not have.
        this.fatal(err);
      },
    ).finally(() => {
      this.persisting = false;
      this.kick();
    });
  }

  private afterPersist(rd: Ready): void {
    if (this.stopped) return;
    this.transport?.send(rd.messages);
    // Out before applying: the followers learn the new commit index (and the
    // leader a follower's acknowledgement) while this member applies,
    // answers its clients and feeds its watchers.
    this.transport?.flush();
    if (rd.snapshot !== null) {
      this.applier.restore(rd.snapshot);
      this.lastSnapshotIndex = rd.snapshot.meta.index;
      this.snapshotDue = this.dueAfter(this.lastSnapshotIndex);
      this.events.onSnapshotInstalled?.(rd.snapshot.meta.index, rd.snapshot.meta.term);
    }
    for (const e of rd.committedEntries) this.apply(e);
    if (rd.committedEntries.length > 0) this.events.onEntriesApplied?.(rd.committedEntries.length);
    for (const rs of rd.readStates) {
      const key = new TextDecoder().decode(rs.context);
      const waiters = this.readsInFlight.get(key);
      if (waiters === undefined) continue;
      this.readsInFlight.delete(key);
      this.readsAwaitingApply.push({ index: rs.index, waiters });
    }
    this.raw.advance(rd);
    this.releaseApplied();
    if (this.pendingLeaderChange) {
      this.pendingLeaderChange = false;
      this.failPending();
    }
    if (this.pendingReadRetry) {
      this.pendingReadRetry = false;
      for (const waiters of this.readsInFlight.values()) this.readBatch.push(...waiters);
      this.readsInFlight.clear();
      if (this.readBatch.length > 0) this.kick();
    }
  }

  /** Applies the leading normal entries of `rd.committedEntries` before `rd` is persisted (see run). */
  private applyEarly(rd: Ready): void {
    if (this.stopped || !this.persisting) return;
    // What run() queued for the peers goes out first (as in afterPersist).
    this.transport?.flush();
    let applied = false;
    for (const e of rd.committedEntries) {
      if (e.kind !== "normal") break;
      this.apply(e);
      applied = true;
    }
    if (applied) this.releaseApplied();
  }

  private apply(e: Entry): void {
    if (e.index <= this.applier.appliedIndex()) return;
    if (e.kind === "conf") {
      this.applier.applyConf(e.index, e.change, this.raw.raft.conf());
      return;
    }
    this.applyNormal(e);
  }

  private applyNormal(e: NormalEntry): void {
    if (e.data.byteLength === 0) {
      this.applier.applyOther(e.index);
      return;
    }
    const env = decodeEnvelope(e.data);
    if (isDecodeError(env)) {
      // Written by this software, so this is a bug or corruption; every
      // member skips it the same way, keeping the state machines equal.
      this.applier.applyOther(e.index);
      return;
    }
    const result = this.applier.applyEnvelope(e.index, env);
    if (env.origin === this.origin()) {
      const w = this.waiters.get(env.seq);
      if (w !== undefined) {
        this.waiters.delete(env.seq);
        clearTimeout(w.timer);
        w.resolve({ ok: true, value: result });
      }
    }
  }

  private releaseApplied(): void {
    const applied = this.applier.appliedIndex();
    this.events.onApplied?.(applied);
    if (this.readsAwaitingApply.length > 0) {
      const rest: typeof this.readsAwaitingApply = [];
      for (const r of this.readsAwaitingApply) {
        if (r.index <= applied) for (const w of r.waiters) w.resolve({ ok: true, value: r.index });
        else rest.push(r);
      }
      this.readsAwaitingApply = rest;
    }
    if (this.appliedListeners.length > 0) {
      const rest: typeof this.appliedListeners = [];
      for (const l of this.appliedListeners) {
        if (l.index <= applied) l.resolve();
        else rest.push(l);
      }
      this.appliedListeners = rest;
    }
  }

  /** Sends one ReadIndex request for every read that arrived since the last one. */
  private startReadRound(): void {
    if (this.readBatch.length === 0) return;
    const batch = this.readBatch;
    this.readBatch = [];
    const key = `${this.epoch}:${++this.readCtx}`;
    const res = this.raw.readIndex(new TextEncoder().encode(key));
    if (!res.ok) {
      for (const w of batch) w.resolve({ ok: false, error: res.error });
      return;
    }
    this.readsInFlight.set(key, batch);
    // A round lost with a leader change is retried when a new leader is
    // known (afterPersist); bound the map all the same.
    if (this.readsInFlight.size > 10_000) {
      const oldest = this.readsInFlight.keys().next().value;
      if (oldest !== undefined) this.readsInFlight.delete(oldest);
    }
  }

  /**
   * Starts a snapshot in the background when one is due (about every
   * snapshotCount applied entries: nextSnapshotIndex). The state is
   * captured at the applied index at once and encoded in steps, so that the
   * loop goes on persisting, sending and applying (and heartbeats keep
   * flowing) while a large store is encoded and written.
   */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.stopped) return;
    const applied = this.applier.appliedIndex();
    if (applied < this.snapshotDue) return;
    this.snapshotting = true;
    const started = performance.now();
    // The configuration as of the snapshot's index: a newer appended change may
    // be uncommitted, and must stay undoable if a new leader truncates it.
    const conf = this.raw.raft.confAt(applied);
    const steps = this.applier.snapshotSteps();
    void runInSteps(steps)
      .then((data) => (this.stopped ? null : this.opts.storage.createSnapshot(applied, conf, data)))
      .then(
        (res) => {
          if (res === null) return;
          if (!res.ok) {
            this.fatal(new Error(`snapshot failed: ${res.error.message}`));
            return;
          }
          this.lastSnapshotIndex = Math.max(this.lastSnapshotIndex, applied);
          this.snapshotDue = this.dueAfter(this.lastSnapshotIndex);
          this.events.onSnapshot?.((performance.now() - started) / 1000, applied);
        },
        (err: unknown) => {
          this.fatal(err);
        },
      )
      .finally(() => {
        this.snapshotting = false;
        if (!this.persisting && !this.scheduled) this.notifyIdle();
      });
  }

  // --- Shutdown -------------------------------------------------------------

  private notifyIdle(): void {
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }

  /** Resolves when no write is in flight. */
  idle(): Promise<void> {
    if (!this.persisting && !this.scheduled && !this.snapshotting) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private fatalHandler: ((err: unknown) => void) | null = null;

  onFatal(f: (err: unknown) => void): void {
    this.fatalHandler = f;
  }

  private fatal(err: unknown): void {
    this.stop();
    this.fatalHandler?.(err);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.resolve({ ok: false, error: { type: "Stopped" } });
    }
    this.waiters.clear();
    for (const w of this.readBatch) w.resolve({ ok: false, error: { type: "Stopped" } });
    for (const ws of this.readsInFlight.values()) for (const w of ws) w.resolve({ ok: false, error: { type: "Stopped" } });
    for (const r of this.readsAwaitingApply) for (const w of r.waiters) w.resolve({ ok: false, error: { type: "Stopped" } });
    this.readBatch = [];
    this.readsInFlight.clear();
    this.readsAwaitingApply = [];
    this.notifyIdle();
  }

  pendingProposals(): number {
    return this.waiters.size;
  }
}

/**
 * The applied index at which a member snapshots next, after one at `last`:
 * the first index at least half of `count` past it that falls on this
 * member's phase, rank/members of the way through each `count` entries.
 * So snapshots come every `count` entries once the schedule has settled
 * (at most 1.5 x count apart, never closer than count/2), and the members
 * of a cluster take theirs one after another instead of all at once: a
 * snapshot rewrites the whole state, and members that share a machine or a
 * disk (or a leader whose followers all slow down together) would pay for
 * it at the same moment.
 */
export function nextSnapshotIndex(last: number, count: number, rank: number, members: number): number {
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`snapshot count ${count} is not a positive integer`);
  if (!Number.isSafeInteger(members) || members < 1 || !Number.isSafeInteger(rank) || rank < 0 || rank >= members) {
    throw new Error(`rank ${rank} of ${members} members is out of range`);
  }
  const phase = Math.floor((rank * count) / members);
  const earliest = last + Math.ceil(count / 2);
  // The first i >= earliest with i ≡ phase (mod count).
  const offset = (((phase - earliest) % count) + count) % count;
  return earliest + offset;
}
