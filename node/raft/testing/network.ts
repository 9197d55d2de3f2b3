// A deterministic, in-memory network of RawNodes for scenario tests.
//
// Each member is driven exactly as the Ready doc comment prescribes:
// persist (snapshot, entries, hard state) into its MemoryStorage, queue the
// outgoing messages, restore/apply to a toy state machine, collect read
// states, advance. Nothing is delivered until the test says so, which lets a
// scenario read like a script:
//
//   net.campaign("1");
//   net.deliver({ drop: to("2") });   // deliver messages, drop those to 2
//   net.stabilize();                   // deliver until nothing is in flight
//
// Time passes only through tick()/run(); randomness comes from one seed.

import { applyConfChange } from "../confchange.ts";
import type { RaftConfig, RaftStatus, Ready } from "../raft.ts";
import { defaultRaftConfig } from "../raft.ts";
import { RawNode } from "../rawnode.ts";
import { SeededRng } from "../rng.ts";
import { isStorageError, MemoryStorage } from "../storage.ts";
import type { ConfChange, ConfState, Entry, LogIndex, Message, MessageType, NodeId, ReadState, Snapshot, StepResult, Term } from "../types.ts";
import { nodeId } from "../types.ts";

/** One entry as the toy state machine saw it. */
export interface Applied {
  readonly index: LogIndex;
  readonly term: Term;
  /** Normal entries: the proposed text ("" for a leader's no-op). Conf entries: e.g. "conf:addLearner:4". */
  readonly data: string;
}

export type MessageFilter = (m: Message) => boolean;

export type ConfigOverrides = Partial<Omit<RaftConfig, "id" | "rng">>;

export interface NetworkOptions {
  /** Decides every randomized election timeout. */
  readonly seed?: number;
  /** Applied to every member's defaultRaftConfig. */
  readonly config?: ConfigOverrides;
  /** Runs on each bootstrapped member's storage before its RawNode is created (to pre-build logs). */
  readonly setup?: (id: NodeId, storage: MemoryStorage) => void;
}

export interface DeliverOptions {
  /** Only messages matching this are delivered now; the others stay in flight. */
  readonly only?: MessageFilter;
  /** Matching messages are lost. */
  readonly drop?: MessageFilter;
}

// --- Message filters --------------------------------------------------------

export const to =
  (...ids: string[]): MessageFilter =>
  (m) =>
    ids.includes(m.to);
export const from =
  (...ids: string[]): MessageFilter =>
  (m) =>
    ids.includes(m.from);
export const ofType =
  (...types: MessageType[]): MessageFilter =>
  (m) =>
    types.includes(m.type);
export const between =
  (a: string, b: string): MessageFilter =>
  (m) =>
    (m.from === a && m.to === b) || (m.from === b && m.to === a);
export const both =
  (f: MessageFilter, g: MessageFilter): MessageFilter =>
  (m) =>
    f(m) && g(m);
export const not =
  (f: MessageFilter): MessageFilter =>
  (m) =>
    !f(m);
export const either =
  (f: MessageFilter, g: MessageFilter): MessageFilter =>
  (m) =>
    f(m) || g(m);

/** The message interface that carries type T (some interfaces carry two types, e.g. vote and preVote). */
export type MessageOf<T extends MessageType> = Message extends infer M
  ? M extends { readonly type: infer U }
    ? T extends U
      ? M
      : never
    : never
  : never;

/** The messages of one type, narrowed. */
export function messagesOf<T extends MessageType>(msgs: readonly Message[], type: T): MessageOf<T>[] {
  const out: MessageOf<T>[] = [];
  for (const m of msgs) if (m.type === type) out.push(m as MessageOf<T>);
  return out;
}

// --- The toy state machine's snapshot format ---------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const bytes = (s: string): Uint8Array => encoder.encode(s);
export const text = (b: Uint8Array): string => decoder.decode(b);

function encodeState(applied: readonly Applied[]): Uint8Array {
  return bytes(JSON.stringify(applied));
}

function decodeState(data: Uint8Array): Applied[] {
  if (data.byteLength === 0) return [];
  return JSON.parse(text(data)) as Applied[];
}

function describe(e: Entry): string {
  return e.kind === "normal" ? text(e.data) : `conf:${e.change.type}:${e.change.node}`;
}

/** Builds entries with the given terms, starting at index `first`, for pre-built logs. */
export function entriesWithTerms(first: LogIndex, terms: readonly Term[], label = "pre"): Entry[] {
  return terms.map((term, k) => ({ kind: "normal", term, index: first + k, data: bytes(`${label}-${first + k}`) }));
}

// --- Members ----------------------------------------------------------------

export class Member {
  readonly id: NodeId;
  readonly cfg: RaftConfig;
  readonly storage: MemoryStorage;
  node: RawNode;
  /** The state machine: every entry applied so far, snapshot contents first. */
  applied: Applied[] = [];
  appliedIndex: LogIndex = 0;
  /** Configurations as applied, for snapshots. Invariant: non-empty, indices increase. */
  private confs: { index: LogIndex; conf: ConfState }[] = [];
  /** Every ReadState this member's Readies handed out, in order. */
  readStates: ReadState[] = [];
  /** Every Ready this member produced, for tests that inspect the output order. */
  readonly readies: Ready[] = [];
  crashed = false;

  constructor(cfg: RaftConfig, storage: MemoryStorage) {
    this.id = cfg.id;
    this.cfg = cfg;
    this.storage = storage;
    this.node = new RawNode(cfg, storage);
    this.restoreStateMachine(storage.snapshot());
  }

  restoreStateMachine(s: Snapshot): void {
    this.applied = decodeState(s.data);
    this.appliedIndex = s.meta.index;
    this.confs = [{ index: s.meta.index, conf: s.meta.conf }];
  }

  apply(e: Entry): void {
    if (e.index !== this.appliedIndex + 1) {
      throw new Error(`${this.id}: applying ${e.index} after ${this.appliedIndex}`);
    }
    this.applied.push({ index: e.index, term: e.term, data: describe(e) });
    this.appliedIndex = e.index;
    if (e.kind === "conf") this.confs.push({ index: e.index, conf: applyConfChange(this.confAt(e.index), e.change) });
  }

  confAt(index: LogIndex): ConfState {
    let conf: ConfState | undefined;
    for (const c of this.confs) if (c.index <= index) conf = c.conf;
    if (conf === undefined) throw new Error(`${this.id}: no configuration at ${index}`);
    return conf;
  }

  /** The data of applied normal entries, without the leaders' empty no-ops. */
  data(): string[] {
    return this.applied.filter((a) => a.data !== "" && !a.data.startsWith("conf:")).map((a) => a.data);
  }

  status(): RaftStatus {
    return this.node.status();
  }

  /** Persisted log entries (from storage), for log-matching assertions. */
  log(): Entry[] {
    const first = this.storage.firstIndex();
    const last = this.storage.lastIndex();
    if (last < first) return [];
    const ents = this.storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER);
    if (isStorageError(ents)) throw new Error(`${this.id}: log unavailable (${ents.type})`);
    return [...ents];
  }

  /** The terms of the persisted log, from the first stored index. */
  logTerms(): Term[] {
    return this.log().map((e) => e.term);
  }
}

// --- The network --------------------------------------------------------------

export class Network {
  readonly members = new Map<NodeId, Member>();
  /** Messages sent and not yet delivered or dropped, in send order. */
  pending: Message[] = [];
  /** Every message delivered so far, in order. */
  readonly delivered: Message[] = [];
  private readonly isolated = new Set<NodeId>();
  private readonly rng: SeededRng;
  private readonly overrides: ConfigOverrides;

  private constructor(seed: number, overrides: ConfigOverrides) {
    this.rng = new SeededRng(seed);
    this.overrides = overrides;
  }

  /** A new cluster whose members all bootstrap with `ids` as voters. */
  static create(ids: readonly string[], opts: NetworkOptions = {}): Network {
    const net = new Network(opts.seed ?? 1, opts.config ?? {});
    const voters = ids.map(nodeId);
    for (const id of voters) {
      const storage = new MemoryStorage();
      storage.bootstrap(voters, encodeState([]));
      opts.setup?.(id, storage);
      net.members.set(id, new Member(net.config(id), storage));
    }
    return net;
  }

  config(id: NodeId, extra: ConfigOverrides = {}): RaftConfig {
    return { ...defaultRaftConfig(id, this.rng.fork()), ...this.overrides, ...extra };
  }

  /** A new, empty member (not yet in any configuration), as when adding a server. */
  add(id: string, extra: ConfigOverrides = {}): Member {
    const nid = nodeId(id);
    if (this.members.has(nid)) throw new Error(`network: ${id} already exists`);
    const m = new Member(this.config(nid, extra), new MemoryStorage());
    this.members.set(nid, m);
    return m;
  }

  get(id: string): Member {
    const m = this.members.get(nodeId(id));
    if (m === undefined) throw new Error(`network: no member ${id}`);
    return m;
  }

  node(id: string): RawNode {
    return this.get(id).node;
  }

  status(id: string): RaftStatus {
    return this.get(id).status();
  }

  ids(): NodeId[] {
    return [...this.members.keys()];
  }

  live(): Member[] {
    return [...this.members.values()].filter((m) => !m.crashed);
  }

  /** The live leader with the highest term, if any. */
  leader(): NodeId | null {
    let best: RaftStatus | null = null;
    for (const m of this.live()) {
      const s = m.status();
      if (s.role === "leader" && (best === null || s.term > best.term)) best = s;
    }
    return best?.id ?? null;
  }

  // --- Faults -----------------------------------------------------------------

  /** Cuts every link to and from these members (messages are lost on delivery). */
  isolate(...ids: string[]): void {
    for (const id of ids) this.isolated.add(nodeId(id));
  }

  heal(): void {
    this.isolated.clear();
  }

  /** Stops a member: it is not ticked and messages to it are lost. Storage survives. */
  crash(id: string): void {
    this.get(id).crashed = true;
  }

  /** Restarts a member from its storage: only persisted state survives. */
  restart(id: string, extra: ConfigOverrides = {}): Member {
    const old = this.get(id);
    const m = new Member({ ...old.cfg, ...extra }, old.storage);
    this.members.set(old.id, m);
    return m;
  }

  private blocked(m: Message): boolean {
    const dst = this.members.get(m.to);
    return dst === undefined || dst.crashed || this.isolated.has(m.from) || this.isolated.has(m.to);
  }

  // --- Driving members ---------------------------------------------------------

  /** Acts on every Ready of a member, in the documented order. */
  process(id: string): void {
    const m = this.get(id);
    if (m.crashed) return;
    while (m.node.hasReady()) {
      const rd = m.node.ready();
      m.readies.push(rd);
      // 1. Persist.
      if (rd.snapshot !== null) m.storage.applySnapshot(rd.snapshot);
      m.storage.append(rd.entries);
      if (rd.hardState !== null) m.storage.setHardState(rd.hardState);
      // 2. Send.
      for (const msg of rd.messages) this.pending.push(msg);
      // 3. Restore, then apply.
      if (rd.snapshot !== null) m.restoreStateMachine(rd.snapshot);
      for (const e of rd.committedEntries) m.apply(e);
      // 4. Serve reads (recorded for the test to inspect).
      for (const r of rd.readStates) m.readStates.push(r);
      // 5. Acknowledge.
      m.node.advance(rd);
    }
  }

  campaign(id: string): void {
    this.node(id).campaign();
    this.process(id);
  }

  propose(id: string, data: string): StepResult {
    const r = this.node(id).propose(bytes(data));
    this.process(id);
    return r;
  }

  proposeBatch(id: string, datas: readonly string[]): StepResult {
    const r = this.node(id).proposeBatch(datas.map(bytes));
    this.process(id);
    return r;
  }

  proposeConfChange(id: string, change: ConfChange): StepResult {
    const r = this.node(id).proposeConfChange(change);
    this.process(id);
    return r;
  }

  readIndex(id: string, context: string): StepResult {
    const r = this.node(id).readIndex(bytes(context));
    this.process(id);
    return r;
  }

  transfer(id: string, transferee: string): StepResult {
    const r = this.node(id).transferLeadership(nodeId(transferee));
    this.process(id);
    return r;
  }

  /** Hands a message straight to its recipient, bypassing the network. */
  stepDirect(m: Message): StepResult {
    const r = this.node(m.to).step(m);
    this.process(m.to);
    return r;
  }

  /** Ticks the given members (default: all live ones) n times. Sends, but delivers nothing. */
  tick(ids: readonly string[] | null = null, n = 1): void {
    const targets = ids === null ? this.live() : ids.map((id) => this.get(id));
    for (let k = 0; k < n; k++) {
      for (const m of targets) {
        if (m.crashed) continue;
        m.node.tick();
        this.process(m.id);
      }
    }
  }

  // --- Delivery -------------------------------------------------------------

  /**
   * One round: delivers the messages in flight now (those matching `only`),
   * in send order. Messages they cause stay in flight for the next round.
   * Returns the messages that arrived.
   */
  deliver(opts: DeliverOptions = {}): Message[] {
    const batch = this.pending;
    this.pending = [];
    const arrived: Message[] = [];
    const keep: Message[] = [];
    for (const m of batch) {
      if (opts.only !== undefined && !opts.only(m)) {
        keep.push(m);
        continue;
      }
      const lost = this.blocked(m) || (opts.drop?.(m) ?? false);
      if (!lost) {
        this.node(m.to).step(m);
        this.process(m.to);
        arrived.push(m);
        this.delivered.push(m);
      }
      // The transport tells the sender how sending a snapshot went.
      if (m.type === "snap" && this.members.get(m.from)?.crashed === false) {
        this.node(m.from).reportSnapshot(m.to, lost);
        this.process(m.from);
      }
    }
    this.pending = [...keep, ...this.pending];
    return arrived;
  }

  /** Drops the messages in flight that match (all of them by default). */
  discard(filter: MessageFilter = () => true): Message[] {
    const gone = this.pending.filter(filter);
    this.pending = this.pending.filter((m) => !filter(m));
    return gone;
  }

  /** Delivers rounds until nothing is in flight. Returns every message that arrived. */
  stabilize(opts: { drop?: MessageFilter; maxRounds?: number } = {}): Message[] {
    const out: Message[] = [];
    const max = opts.maxRounds ?? 1000;
    for (let round = 0; this.pending.length > 0; round++) {
      if (round >= max) throw new Error(`network: not stable after ${max} rounds`);
      out.push(...this.deliver(opts.drop === undefined ? {} : { drop: opts.drop }));
    }
    return out;
  }

  /** Ticks every live member once and stabilizes, `ticks` times. */
  run(ticks: number, opts: { drop?: MessageFilter } = {}): Message[] {
    const out: Message[] = [];
    for (let k = 0; k < ticks; k++) {
      this.tick();
      out.push(...this.stabilize(opts));
    }
    return out;
  }

  /** Runs tick by tick until `done` holds; returns the ticks it took. */
  runUntil(done: () => boolean, maxTicks: number, opts: { drop?: MessageFilter } = {}): number {
    for (let k = 0; k <= maxTicks; k++) {
      if (done()) return k;
      this.run(1, opts);
    }
    throw new Error(`network: condition not reached within ${maxTicks} ticks`);
  }

  /** Campaign and deliver until quiet; `id` must end up leader. */
  elect(id: string): void {
    this.campaign(id);
    this.stabilize();
    const s = this.status(id);
    if (s.role !== "leader") throw new Error(`network: ${id} did not win the election (role ${s.role}, term ${s.term})`);
  }

  /** Snapshots a member's state machine at `index` (default: what it applied) and compacts its log there (§7). */
  compact(id: string, index?: LogIndex): Snapshot {
    const m = this.get(id);
    const at = index ?? m.appliedIndex;
    if (at > m.appliedIndex) throw new Error(`network: cannot snapshot ${id} at ${at}, applied only ${m.appliedIndex}`);
    const snap = m.storage.createSnapshot(at, m.confAt(at), encodeState(m.applied.filter((a) => a.index <= at)));
    m.storage.compact(at);
    return snap;
  }

  // --- Checks -------------------------------------------------------------------

  /**
   * State machine safety (§5.4.3): no two members applied different entries
   * at the same index. Returns a description of the first violation, or null.
   */
  safetyViolation(): string | null {
    const seen = new Map<LogIndex, { id: NodeId; a: Applied }>();
    for (const m of this.members.values()) {
      for (const a of m.applied) {
        const prev = seen.get(a.index);
        if (prev === undefined) seen.set(a.index, { id: m.id, a });
        else if (prev.a.term !== a.term || prev.a.data !== a.data) {
          return `index ${a.index}: ${prev.id} applied ${JSON.stringify(prev.a)} but ${m.id} applied ${JSON.stringify(a)}`;
        }
      }
    }
    return null;
  }
}
