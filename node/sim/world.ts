// A deterministic simulated world for the Raft core: nodes with disks that
// may be slow or lose unsynced writes on a crash, a network that drops,
// duplicates, delays and partitions, clients that write and read
// throughout, and a fault schedule, all decided by one seed.

import type { ConfState, Entry, LogIndex, Message, NodeId, Ready, Snapshot } from "../raft/index.ts";
import { MemoryStorage, RawNode, SeededRng, defaultRaftConfig, nodeId } from "../raft/index.ts";
import { applyConfChange } from "../raft/confchange.ts";
import { isStorageError } from "../raft/storage.ts";
import type { LogView } from "./checkers.ts";
import { SafetyCheckers, entryKey } from "./checkers.ts";
import { EventHeap } from "./heap.ts";
import type { Scenario } from "./scenario.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The simulated state machine: a hash chain over applied entries. */
interface StateMachine {
  applied: LogIndex;
  hash: number;
  conf: ConfState;
}

function chain(hash: number, key: string): number {
  let h = hash ^ 0x9e3779b9;
  for (let k = 0; k < key.length; k++) h = Math.imul(h ^ key.charCodeAt(k), 0x01000193);
  return h >>> 0;
}

interface PendingRead {
  readonly id: number;
  readonly ackedBefore: LogIndex;
  readonly start: number;
}

class SimNode {
  readonly id: NodeId;
  readonly storage = new MemoryStorage();
  raw: RawNode | null = null;
  incarnation = 0;
  busy = false;
  slowDisk = false;
  /** The highest commit index this node has reached as leader, for the checkers. */
  leaderCommit: LogIndex = 0;
  sm: StateMachine = { applied: 0, hash: 0, conf: { voters: [], learners: [] } };
  /** Reads confirmed by ReadIndex and waiting for the state machine to catch up. */
  readWaits: { index: LogIndex; read: PendingRead }[] = [];
  /** Reads issued here and not yet confirmed, by context. */
  readsIssued = new Map<string, PendingRead>();
  /** Writes proposed here, by content, waiting to be applied. */
  writes = new Map<string, number>();

  constructor(id: NodeId) {
    this.id = id;
  }

  get up(): boolean {
    return this.raw !== null;
  }
}

type SimEvent =
  | { at: number; seq: number; type: "tick"; node: NodeId }
  | { at: number; seq: number; type: "deliver"; msg: Message }
  | { at: number; seq: number; type: "diskDone"; node: NodeId; incarnation: number; rd: Ready }
  | { at: number; seq: number; type: "restart"; node: NodeId }
  | { at: number; seq: number; type: "heal"; cut: readonly string[] }
  | { at: number; seq: number; type: "fault"; kind: FaultKind }
  | { at: number; seq: number; type: "client"; kind: "write" | "read" }
  | { at: number; seq: number; type: "slowDiskEnd"; node: NodeId }
  | { at: number; seq: number; type: "crashNode"; node: NodeId }
  | { at: number; seq: number; type: "isolate"; node: NodeId };

type FaultKind = "partition" | "crash" | "membership" | "transfer" | "slowDisk";

export interface Stats {
  events: number;
  delivered: number;
  dropped: number;
  writesAcked: number;
  writesFailed: number;
  readsServed: number;
  elections: number;
  crashes: number;
  partitions: number;
  confChanges: number;
  transfers: number;
  snapshotsSent: number;
}

export interface LivenessResult {
  readonly ok: boolean;
  readonly tookUs: number;
  readonly reason: string;
}

export class World {
  readonly s: Scenario;
  readonly rng: SeededRng;
  readonly checkers = new SafetyCheckers();
  readonly nodes = new Map<NodeId, SimNode>();
  readonly trace: string[] | null;
  readonly stats: Stats = {
    events: 0,
    delivered: 0,
    dropped: 0,
    writesAcked: 0,
    writesFailed: 0,
    readsServed: 0,
    elections: 0,
    crashes: 0,
    partitions: 0,
    confChanges: 0,
    transfers: 0,
    snapshotsSent: 0,
  };

  now = 0;
  private seq = 0;
  private readonly events = new EventHeap<SimEvent>();
  /** Directed links that are cut, as "from>to". */
  private cut = new Set<string>();
  private faultsOn = true;
  private nextWrite = 0;
  private nextRead = 0;
  private nextNode: number;
  private readonly maxNodes: number;
  /** The highest index of any acknowledged write so far. */
  private maxAcked: LogIndex = 0;
  private drop: number;
  private duplicate: number;
  private jitter: number;

  constructor(s: Scenario, trace: boolean) {
    this.s = s;
    this.rng = new SeededRng(s.seed);
    this.trace = trace ? [] : null;
    this.drop = s.net.drop;
    this.duplicate = s.net.duplicate;
    this.jitter = s.net.jitterUs;
    const voters: NodeId[] = [];
    for (let k = 1; k <= s.nodes; k++) voters.push(nodeId(`n${k}`));
    this.nextNode = s.nodes + 1;
    this.maxNodes = s.nodes + 4;
    for (const id of voters) {
      const n = new SimNode(id);
      n.storage.bootstrap(voters, this.snapshotData({ applied: 1, hash: 0, conf: { voters, learners: [] } }));
      this.nodes.set(id, n);
      this.start(n);
      this.schedule(this.rng.int(s.tickUs), { type: "tick", node: id });
    }
    this.schedule(s.writeEveryUs, { type: "client", kind: "write" });
    this.schedule(s.readEveryUs, { type: "client", kind: "read" });
    for (const [kind, every] of [
      ["partition", s.every.partitionUs],
      ["crash", s.every.crashUs],
      ["membership", s.every.membershipUs],
      ["transfer", s.every.transferUs],
      ["slowDisk", s.every.slowDiskUs],
    ] as const) {
      if (every > 0) this.schedule(this.rng.int(2 * every), { type: "fault", kind });
    }
    if (s.disk.slowChance > 0) for (const n of this.nodes.values()) n.slowDisk = this.rng.chance(s.disk.slowChance);
  }

  private log(line: string): void {
    if (this.trace !== null) this.trace.push(`[${(this.now / 1000).toFixed(3).padStart(9)}ms] ${line}`);
  }

  private schedule(delay: number, e: DistributiveOmit<SimEvent, "at" | "seq">): void {
    this.events.push({ ...e, at: this.now + delay, seq: this.seq++ });
  }

  // --- Nodes ------------------------------------------------------------------

  private snapshotData(sm: StateMachine): Uint8Array {
    return encoder.encode(JSON.stringify({ applied: sm.applied, hash: sm.hash }));
  }

  private start(n: SimNode): void {
    n.incarnation++;
    const snap = n.storage.snapshot();
    n.sm = this.restoreStateMachine(snap);
    const cfg = {
      ...defaultRaftConfig(n.id, this.rng.fork()),
      electionTick: this.s.electionTick,
      heartbeatTick: this.s.heartbeatTick,
      maxSizePerMsg: this.s.maxSizePerMsg,
      maxInflightMsgs: this.s.maxInflightMsgs,
      maxUncommittedBytes: this.s.maxUncommittedBytes,
      applied: snap.meta.index,
      plantedBugs: this.s.bugs,
    };
    n.raw = new RawNode(cfg, n.storage);
    n.busy = false;
    n.readWaits = [];
    n.readsIssued.clear();
    n.writes.clear();
    this.log(`${n.id} starts (incarnation ${n.incarnation}) at term ${n.storage.hardState().term}, last index ${n.storage.lastIndex()}`);
  }

  private restoreStateMachine(snap: Snapshot): StateMachine {
    if (snap.meta.index === 0) return { applied: 0, hash: 0, conf: snap.meta.conf };
    const parsed = JSON.parse(decoder.decode(snap.data)) as { applied: number; hash: number };
    return { applied: snap.meta.index, hash: parsed.hash, conf: snap.meta.conf };
  }

  private crash(n: SimNode): void {
    if (!n.up) return;
    this.stats.crashes++;
    this.log(`${n.id} crashes${n.busy ? " with an unsynced write" : ""}`);
    n.raw = null;
    n.busy = false;
    n.readWaits = [];
    n.readsIssued.clear();
    n.writes.clear();
  }

  // --- Ready processing -------------------------------------------------------

  private processReady(n: SimNode): void {
    const raw = n.raw;
    if (raw === null) return;
    // Messages that do not depend on local durability go out at once, even
    // while the node waits for its disk.
    for (const m of raw.takeImmediateMessages()) this.send(m);
    if (n.busy || !raw.hasReady()) return;
    const rd = raw.ready();
    if (rd.softState !== null) {
      this.log(`${n.id} is ${rd.softState.role} (term ${raw.raft.term}, leader ${rd.softState.leader ?? "none"})`);
      if (rd.softState.role === "leader") {
        this.stats.elections++;
        this.checkers.onLeader(this.now, n.id, raw.raft.term, this.logView(n));
        this.maybeStrikeNewLeader(n);
      }
    }
    if (rd.hardState !== null && raw.raft.role === "leader" && rd.hardState.commit > n.leaderCommit) {
      n.leaderCommit = rd.hardState.commit;
      this.checkers.onLeaderCommit(this.now, n.id, rd.hardState.commit, this.allLogs());
    }
    if (!rd.mustSync) {
      // As the node does: a commit-only hard state is not written.
      this.finishReady(n, rd);
      return;
    }
    n.busy = true;
    const slow = n.slowDisk && this.rng.chance(0.5);
    const delay = slow ? this.s.disk.slowUs / 2 + this.rng.int(this.s.disk.slowUs) : this.s.disk.fastUs;
    this.schedule(delay, { type: "diskDone", node: n.id, incarnation: n.incarnation, rd });
  }

  /** A running node's whole log; a stopped node's durable log. */
  private logView(n: SimNode): LogView {
    const log = n.raw?.raft.log;
    if (log === undefined) {
      const st = n.storage;
      return {
        entryAt: (i) => {
          if (i < st.firstIndex() || i > st.lastIndex()) return undefined;
          const got = st.entries(i, i + 1, 1);
          return isStorageError(got) ? undefined : got[0];
        },
        termAt: (i) => {
          const t = st.term(i);
          return typeof t === "number" ? t : undefined;
        },
        firstIndex: () => st.firstIndex(),
        lastIndex: () => st.lastIndex(),
      };
    }
    return {
      entryAt: (i) => (i > log.lastIndex() ? undefined : log.slice(i, i + 1, 1)?.[0]),
      termAt: (i) => log.term(i),
      firstIndex: () => log.firstIndex(),
      lastIndex: () => log.lastIndex(),
    };
  }

  private allLogs(): Map<NodeId, LogView> {
    const out = new Map<NodeId, LogView>();
    for (const n of this.nodes.values()) out.set(n.id, this.logView(n));
    return out;
  }

  /** Acts on a Ready in the order its documentation gives. */
  private finishReady(n: SimNode, rd: Ready): void {
    const raw = n.raw;
    if (raw === null) return;
    // 1. Persist.
    if (rd.snapshot !== null) n.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) {
      const first = rd.entries[0];
      n.storage.append(rd.entries);
      const prevTerm = first === undefined ? undefined : n.storage.term(first.index - 1);
      this.checkers.onPersisted(this.now, n.id, rd.entries, typeof prevTerm === "number" ? prevTerm : undefined);
    }
    if (rd.hardState !== null && rd.mustSync) n.storage.setHardState(rd.hardState);
    // 2. Send.
    for (const m of rd.messages) this.send(m);
    // 3. Apply.
    if (rd.snapshot !== null) {
      n.sm = this.restoreStateMachine(rd.snapshot);
      this.log(`${n.id} restores snapshot at ${rd.snapshot.meta.index}`);
    }
    for (const e of rd.committedEntries) this.apply(n, e);
    // 4. Reads.
    for (const rs of rd.readStates) {
      const key = decoder.decode(rs.context);
      const read = n.readsIssued.get(key);
      if (read === undefined) continue;
      n.readsIssued.delete(key);
      n.readWaits.push({ index: rs.index, read });
    }
    this.serveReads(n);
    // 5. Advance.
    raw.advance(rd);
    n.busy = false;
    this.checkers.onIndices(this.now, n.id, n.incarnation, raw.raft.log.committed, raw.raft.log.applied);
    this.maybeSnapshot(n);
    this.processReady(n);
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index <= n.sm.applied) return;
    if (e.index !== n.sm.applied + 1) throw new Error(`sim: ${n.id} applies ${e.index} after ${n.sm.applied}`);
    this.checkers.onApplied(this.now, n.id, e);
    const key = entryKey(e);
    n.sm.applied = e.index;
    n.sm.hash = chain(n.sm.hash, key);
    if (e.kind === "conf") n.sm.conf = applyConfChange(n.sm.conf, e.change);
    if (n.writes.delete(key)) {
      this.stats.writesAcked++;
      if (e.index > this.maxAcked) this.maxAcked = e.index;
      this.livenessAcked.add(key);
    } else if (key.startsWith("L")) {
      this.livenessAcked.add(key);
    }
  }

  private serveReads(n: SimNode): void {
    if (n.readWaits.length === 0) return;
    const rest: typeof n.readWaits = [];
    for (const w of n.readWaits) {
      if (w.index <= n.sm.applied) {
        this.stats.readsServed++;
        this.checkers.onReadServed(this.now, n.id, w.read.id, n.sm.applied, w.read.ackedBefore);
        this.livenessReads.add(w.read.id);
      } else {
        rest.push(w);
      }
    }
    n.readWaits = rest;
  }

  private maybeSnapshot(n: SimNode): void {
    const snapIndex = n.storage.snapshot().meta.index;
    if (n.sm.applied - snapIndex < this.s.snapshotEvery || n.sm.applied > n.storage.lastIndex()) return;
    n.storage.createSnapshot(n.sm.applied, n.sm.conf, this.snapshotData(n.sm));
    const upTo = n.sm.applied - this.s.keepEntries;
    if (upTo > n.storage.firstIndex()) n.storage.compact(upTo);
  }

  // --- Network ----------------------------------------------------------------

  private send(m: Message): void {
    if (m.type === "snap") this.stats.snapshotsSent++;
    if (this.cut.has(`${m.from}>${m.to}`) || this.rng.chance(this.drop)) {
      this.stats.dropped++;
      if (m.type === "snap") this.reportSnapshotFailure(m.from, m.to);
      return;
    }
    const delay = this.s.net.minDelayUs + this.rng.int(this.jitter + 1);
    this.schedule(delay, { type: "deliver", msg: m });
    if (this.rng.chance(this.duplicate)) this.schedule(delay + this.rng.int(this.jitter + 1000), { type: "deliver", msg: m });
  }

  private reportSnapshotFailure(from: NodeId, to: NodeId): void {
    const n = this.nodes.get(from);
    n?.raw?.reportSnapshot(to, true);
  }

  private deliver(m: Message): void {
    const n = this.nodes.get(m.to);
    if (n?.raw == null || this.cut.has(`${m.from}>${m.to}`)) {
      this.stats.dropped++;
      if (m.type === "snap") this.reportSnapshotFailure(m.from, m.to);
      return;
    }
    this.stats.delivered++;
    if (this.trace !== null) this.log(`${m.from} -> ${m.to} ${describe(m)}`);
    n.raw.step(m);
    if (m.type === "snap") {
      const sender = this.nodes.get(m.from);
      sender?.raw?.reportSnapshot(m.to, false);
      if (sender !== undefined) this.processReady(sender);
    }
    this.processReady(n);
  }

  // --- Clients ----------------------------------------------------------------

  private upNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.up) out.push(n);
    return out;
  }

  private clientWrite(): void {
    const up = this.upNodes();
    if (up.length === 0) return;
    const n = this.rng.pick(up);
    const key = `w${this.nextWrite++}`;
    const res = n.raw?.propose(encoder.encode(key));
    if (res?.ok === true) n.writes.set(key, this.now);
    else this.stats.writesFailed++;
    this.processReady(n);
  }

  private clientRead(): void {
    const up = this.upNodes();
    if (up.length === 0) return;
    const n = this.rng.pick(up);
    const id = this.nextRead++;
    const key = `r${id}`;
    const res = n.raw?.readIndex(encoder.encode(key));
    if (res?.ok === true) n.readsIssued.set(key, { id, ackedBefore: this.maxAcked, start: this.now });
    this.processReady(n);
  }

  // --- Faults -----------------------------------------------------------------

  /** The leader with the highest term among running nodes, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      const r = n.raw?.raft;
      if (r?.role !== "leader") continue;
      if (best === undefined || r.term > (best.raw?.raft.term ?? 0)) best = n;
    }
    return best;
  }

  private fault(kind: FaultKind): void {
    switch (kind) {
      case "partition":
        this.partition();
        break;
      case "crash": {
        const up = this.upNodes();
        if (up.length === 0) break;
        const leader = this.leader();
        const victim = leader !== undefined && this.rng.chance(0.5) ? leader : this.rng.pick(up);
        this.crashAndRestart(victim);
        break;
      }
      case "membership":
        this.changeMembership();
        break;
      case "transfer": {
        const leader = this.leader();
        const voters = leader?.raw?.raft.conf().voters.filter((v) => v !== leader.id) ?? [];
        if (leader?.raw == null || voters.length === 0) break;
        const to = this.rng.pick(voters);
        this.stats.transfers++;
        this.log(`transfer leadership ${leader.id} -> ${to}`);
        leader.raw.transferLeadership(to);
        this.processReady(leader);
        break;
      }
      case "slowDisk": {
        const n = this.rng.pick([...this.nodes.values()]);
        n.slowDisk = true;
        this.schedule(this.rng.pick([100, 500, 1500]) * 1000, { type: "slowDiskEnd", node: n.id });
        break;
      }
    }
  }

  /**
   * The moments right after an election are where Raft's subtle cases live
   * (an entry of the new term on one node only, entries of earlier terms
   * not yet committed), so faults aim there too.
   */
  private maybeStrikeNewLeader(n: SimNode): void {
    if (!this.faultsOn) return;
    const delay = this.rng.int(3000);
    if (this.s.every.crashUs > 0 && this.rng.chance(this.s.strikeNewLeader)) {
      this.schedule(delay, { type: "crashNode", node: n.id });
    } else if (this.s.every.partitionUs > 0 && this.rng.chance(this.s.strikeNewLeader)) {
      this.schedule(delay, { type: "isolate", node: n.id });
    }
  }

  private isolate(victim: NodeId): void {
    const cut: string[] = [];
    for (const b of this.nodes.keys()) if (b !== victim) cut.push(`${victim}>${b}`, `${b}>${victim}`);
    const fresh = cut.filter((c) => !this.cut.has(c));
    if (fresh.length === 0) return;
    for (const c of fresh) this.cut.add(c);
    this.stats.partitions++;
    this.log(`partition (isolate ${victim}): cut ${fresh.join(" ")}`);
    this.schedule(this.rng.pick([50, 200, 600]) * 1000, { type: "heal", cut: fresh });
  }

  private crashAndRestart(victim: SimNode): void {
    this.crash(victim);
    this.schedule(this.rng.pick([5, 50, 300, 1000]) * 1000, { type: "restart", node: victim.id });
  }

  private partition(): void {
    const ids = [...this.nodes.keys()];
    const cut: string[] = [];
    const leader = this.leader();
    const shape = this.rng.pick(["split", "isolateLeader", "oneWay", "oneWayLeader"] as const);
    const pair = (a: NodeId, b: NodeId): void => {
      cut.push(`${a}>${b}`, `${b}>${a}`);
    };
    switch (shape) {
      case "split": {
        const side = new Set(ids.filter(() => this.rng.chance(0.5)));
        for (const a of ids) for (const b of ids) if (side.has(a) && !side.has(b)) pair(a, b);
        break;
      }
      case "isolateLeader": {
        const victim = leader?.id ?? this.rng.pick(ids);
        for (const b of ids) if (b !== victim) pair(victim, b);
        break;
      }
      case "oneWay": {
        const a = this.rng.pick(ids);
        const b = this.rng.pick(ids);
        if (a !== b) cut.push(`${a}>${b}`);
        break;
      }
      case "oneWayLeader": {
        // The leader can send but not hear back, or hear but not send.
        const victim = leader?.id ?? this.rng.pick(ids);
        const outgoing = this.rng.chance(0.5);
        for (const b of ids) if (b !== victim) cut.push(outgoing ? `${victim}>${b}` : `${b}>${victim}`);
        break;
      }
    }
    const fresh = cut.filter((c) => !this.cut.has(c));
    if (fresh.length === 0) return;
    for (const c of fresh) this.cut.add(c);
    this.stats.partitions++;
    this.log(`partition (${shape}): cut ${fresh.join(" ")}`);
    this.schedule(this.rng.pick([50, 200, 600, 1500]) * 1000, { type: "heal", cut: fresh });
  }

  private changeMembership(): void {
    const leader = this.leader();
    const raw = leader?.raw;
    if (leader === undefined || raw == null) return;
    const conf = raw.raft.conf();
    const minVoters = Math.min(this.s.nodes, 3);
    const maxVoters = Math.min(7, this.s.nodes + 2);
    let change: { type: "addLearner" | "promote" | "remove"; node: NodeId } | undefined;
    const learner = conf.learners[0];
    if (learner !== undefined) {
      change = this.rng.chance(0.8) ? { type: "promote", node: learner } : { type: "remove", node: learner };
    } else if (conf.voters.length < maxVoters && this.nextNode <= this.maxNodes && this.rng.chance(0.6)) {
      const id = nodeId(`n${this.nextNode++}`);
      const n = new SimNode(id);
      this.nodes.set(id, n);
      this.start(n);
      this.schedule(this.rng.int(this.s.tickUs), { type: "tick", node: id });
      change = { type: "addLearner", node: id };
    } else if (conf.voters.length > minVoters) {
      change = { type: "remove", node: this.rng.pick(conf.voters) };
    }
    if (change === undefined) return;
    const res = raw.proposeConfChange(change);
    this.log(`propose ${change.type} ${change.node} at ${leader.id}: ${res.ok ? "ok" : res.error.type}`);
    if (res.ok) this.stats.confChanges++;
    this.processReady(leader);
  }

  // --- Running ----------------------------------------------------------------

  private handle(e: SimEvent): void {
    this.stats.events++;
    switch (e.type) {
      case "tick": {
        const n = this.nodes.get(e.node);
        if (n?.raw != null) {
          n.raw.tick();
          this.processReady(n);
        }
        this.schedule(this.s.tickUs, { type: "tick", node: e.node });
        return;
      }
      case "deliver":
        this.deliver(e.msg);
        return;
      case "diskDone": {
        const n = this.nodes.get(e.node);
        // A crash before the write completed loses it.
        if (n?.raw == null || n.incarnation !== e.incarnation) return;
        this.finishReady(n, e.rd);
        return;
      }
      case "restart": {
        const n = this.nodes.get(e.node);
        if (n !== undefined && !n.up) {
          this.start(n);
          this.processReady(n);
        }
        return;
      }
      case "heal":
        for (const c of e.cut) this.cut.delete(c);
        this.log(`heal ${e.cut.join(" ")}`);
        return;
      case "fault":
        if (!this.faultsOn) return;
        this.fault(e.kind);
        this.schedule(this.gap(e.kind), { type: "fault", kind: e.kind });
        return;
      case "client":
        if (e.kind === "write") {
          if (this.faultsOn) this.clientWrite();
          this.schedule(this.s.writeEveryUs, e);
        } else {
          if (this.faultsOn) this.clientRead();
          this.schedule(this.s.readEveryUs, e);
        }
        return;
      case "crashNode": {
        const n = this.nodes.get(e.node);
        if (this.faultsOn && n?.up === true) this.crashAndRestart(n);
        return;
      }
      case "isolate":
        if (this.faultsOn) this.isolate(e.node);
        return;
      case "slowDiskEnd": {
        const n = this.nodes.get(e.node);
        if (n !== undefined) n.slowDisk = false;
        return;
      }
    }
  }

  private gap(kind: FaultKind): number {
    const every = this.s.every[`${kind}Us`];
    return every / 2 + this.rng.int(every);
  }

  /** Runs events until simulated time `until`, or until `stop` returns true. */
  runUntil(until: number, stop?: () => boolean): void {
    for (;;) {
      const e = this.events.peek();
      if (e === undefined || e.at > until) break;
      this.events.pop();
      this.now = e.at;
      this.handle(e);
      if (this.checkers.violations.length > 0) return;
      if (stop?.()) return;
    }
    this.now = Math.max(this.now, until);
  }

  // --- Liveness ---------------------------------------------------------------

  private livenessAcked = new Set<string>();
  private livenessReads = new Set<number>();

  /**
   * Heals every fault, then requires that within the bound a leader exists
   * that all members follow, that fresh proposals commit and are applied by
   * every member, and that a linearizable read completes.
   */
  runLiveness(): LivenessResult {
    const start = this.now;
    this.faultsOn = false;
    this.cut.clear();
    this.drop = 0;
    this.duplicate = 0;
    this.jitter = Math.min(this.jitter, 1000);
    for (const n of this.nodes.values()) {
      n.slowDisk = false;
      if (!n.up) {
        this.start(n);
        this.processReady(n);
      }
    }
    this.log("liveness phase: all faults healed");
    const proposals = ["L0", "L1", "L2"];
    let readId: number | null = null;
    const deadline = start + this.s.livenessBoundUs;
    const step = 20_000;
    while (this.now < deadline) {
      this.runUntil(Math.min(deadline, this.now + step));
      if (this.checkers.violations.length > 0) return { ok: true, tookUs: this.now - start, reason: "stopped by a safety violation" };
      const leader = this.leader();
      if (leader?.raw == null) continue;
      for (const p of proposals) {
        if (!this.livenessAcked.has(p)) {
          leader.raw.propose(encoder.encode(p));
        }
      }
      if (readId === null || !this.livenessReads.has(readId)) {
        readId = this.nextRead++;
        leader.readsIssued.set(`r${readId}`, { id: readId, ackedBefore: this.maxAcked, start: this.now });
        leader.raw.readIndex(encoder.encode(`r${readId}`));
      }
      this.processReady(leader);
      if (this.converged(proposals, readId)) return { ok: true, tookUs: this.now - start, reason: "" };
    }
    return { ok: false, tookUs: this.now - start, reason: this.whyNotConverged(proposals, readId) };
  }

  private members(): NodeId[] {
    const leader = this.leader();
    const conf = leader?.raw?.raft.conf();
    return conf === undefined ? [] : [...conf.voters, ...conf.learners];
  }

  private converged(proposals: readonly string[], readId: number | null): boolean {
    const leader = this.leader();
    const lr = leader?.raw?.raft;
    if (leader === undefined || lr === undefined) return false;
    if (readId === null || !this.livenessReads.has(readId)) return false;
    if (!proposals.every((p) => this.livenessAcked.has(p))) return false;
    const commit = lr.log.committed;
    for (const id of this.members()) {
      const r = this.nodes.get(id)?.raw?.raft;
      if (r === undefined) return false;
      if (id !== leader.id && (r.lead !== leader.id || r.term !== lr.term)) return false;
      if (r.log.applied < commit) return false;
    }
    return true;
  }

  private whyNotConverged(proposals: readonly string[], readId: number | null): string {
    const lines: string[] = [];
    const leader = this.leader();
    lines.push(leader === undefined ? "no leader among running nodes" : `leader ${leader.id} in term ${leader.raw?.raft.term ?? "?"}`);
    const missing = proposals.filter((p) => !this.livenessAcked.has(p));
    if (missing.length > 0) lines.push(`proposals not applied: ${missing.join(", ")}`);
    if (readId === null || !this.livenessReads.has(readId)) lines.push("no linearizable read completed");
    lines.push(`members: ${this.members().join(", ") || "unknown"}`);
    for (const n of this.nodes.values()) {
      const st = n.raw?.status();
      if (st === undefined) {
        lines.push(`  ${n.id}: down`);
        continue;
      }
      lines.push(
        `  ${n.id}: ${st.role} term=${st.term} leader=${st.leader ?? "none"} commit=${st.commit} applied=${st.applied} ` +
          `last=${st.lastIndex} voters=[${st.conf.voters.join(",")}] learners=[${st.conf.learners.join(",")}]` +
          (st.progress.size > 0
            ? ` progress={${[...st.progress].map(([id, p]) => `${id}:${p.state}/${p.match}/${p.next}${p.recentActive ? "" : "?"}`).join(" ")}}`
            : ""),
      );
    }
    return lines.join("\n");
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export function describe(m: Message): string {
  switch (m.type) {
    case "app":
      return `app t${m.term} prev=${m.prevIndex}/${m.prevTerm} n=${m.entries.length} commit=${m.commit}`;
    case "appResp":
      return `appResp t${m.term} index=${m.index}${m.reject ? ` reject hint=${m.rejectHint}/${m.logTerm}` : ""}`;
    case "vote":
    case "preVote":
      return `${m.type} t${m.term} last=${m.lastIndex}/${m.lastTerm}${m.transfer ? " transfer" : ""}`;
    case "voteResp":
    case "preVoteResp":
      return `${m.type} t${m.term} ${m.reject ? "reject" : "grant"}`;
    case "heartbeat":
      return `heartbeat t${m.term} commit=${m.commit} round=${m.readRound}`;
    case "heartbeatResp":
      return `heartbeatResp t${m.term} round=${m.readRound}`;
    case "snap":
      return `snap t${m.term} at ${m.snapshot.meta.index}/${m.snapshot.meta.term}`;
    case "readIndexResp":
      return `readIndexResp t${m.term} index=${m.index}`;
    default:
      return `${m.type} t${m.term}`;
  }
}
