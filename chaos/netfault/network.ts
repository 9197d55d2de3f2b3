// A userspace fault layer for the peer traffic of real members on loopback,
// in the manner of Jepsen's nemesis, but as TCP proxies we control.
//
// Topology. Each member B gets a proxy listening at the peer URL B
// advertises (its --initial-advertise-peer-urls, and its entry in
// --initial-cluster), forwarding to B's real --listen-peer-urls port. Every
// member dialling B therefore goes through B's proxy, and the proxy reads the
// first frame of each connection (the hello, decoded with the transport's own
// wire.ts) to learn the stream kind and the dialer's member id. A directed
// link from A to B is every connection A opens to B's proxy: Raft messages
// from A to B travel only there, and B's control frames (accept, pong,
// snapAck) come back on the same connections. Client traffic never passes a
// proxy.
//
// Member ids. Rules name members by the name given to addMember; a hello
// names the dialer by member id. A member matches a hello's `from` if that is
// its name (test transports use names as ids) or its id, given to addMember
// or learned: every hello B's proxy reads names B's id in `to`, so once each
// member has been dialled all ids are known. A connection from an id not
// (yet) known is re-attributed when the id is learned.
//
// What each fault does, and what Raft then sees:
//
// - Cut, mode "refuse" (partition, isolate and cutOneWay by default): the
//   link's open connections are reset, and every new one is accepted, its
//   hello read, and reset. The dialer's transport sees its stream break: the
//   messages it had queued or written are lost and reported (metrics and
//   onUnreachable, which the Raft node turns into MsgUnreachable: the leader
//   moves that follower to probing). It redials with backoff (20 ms doubling
//   to 1 s), and each attempt fails the same way; while it waits, messages to
//   that peer are dropped at once. The target just stops receiving.
//   Under a partition or isolate this is loss both ways: followers cut off
//   from the leader hear no heartbeats and, after an election timeout,
//   pre-vote; a majority side elects a leader; a leader without a quorum
//   steps down after an election timeout (check-quorum), so its linearizable
//   reads and writes fail rather than succeed on stale state.
//
// - cutOneWay(A, B): only A's connections to B are cut, so messages from A
//   never reach B while everything B sends reaches A (B's stream to A is its
//   own connection, at A's proxy). Raft is not symmetric about this:
//   * A leads: B hears no heartbeats and pre-votes after its election
//     timeout. Its pre-vote reaches A and C, but A's answer is lost and C,
//     which hears from A, refuses; pre-vote keeps B's term from rising, so B
//     does not disrupt the cluster, it just falls behind. B answers no
//     appends or heartbeats (it gets none), so A's check-quorum counts B as
//     inactive; A and C are still a quorum. A client write sent to B is
//     forwarded to A and may well commit, but B never hears of it: on B it
//     times out, and its outcome is indeterminate.
//   * B leads: A hears B's heartbeats and stays a follower, but its answers
//     are lost, so B counts A inactive (with a third member B keeps its
//     quorum), and anything A forwards to B (proposals, ReadIndex) is lost
//     and times out on A.
//
// - Cut, mode "blackhole": open connections of the link stay open but the
//   dialer's bytes are discarded (delayed bytes with them); new connections
//   are accepted, read and discarded, never forwarded. The dialer's transport
//   is not told: its stream looks connected (a new one simply never gets its
//   accept), it keeps writing messages into the void and reports nothing
//   until its idle timeout (5 s without a frame from the peer) tears the
//   stream down, reports the peer unreachable and redials into the blackhole
//   again. For Raft this is silent loss: for up to the idle timeout the
//   leader keeps replicating optimistically until its in-flight window is
//   full, instead of probing. The target's inbound connection sees silence
//   and is closed by its own idle timeout, which reaches the dialer (the
//   other direction works). A blackholed stream has lost bytes, possibly
//   mid-frame, so it can never resume: lifting the cut resets it and the
//   transport redials a clean stream.
//
// - delay(A, B, {ms, jitterMs}): every chunk A writes to B is held
//   ms ± jitterMs (seeded, see rng.ts) and then written, in order; a chunk
//   is never released before the one ahead of it. B's control frames back to
//   A are not delayed, so A's measured RTT to B grows by about ms, and B's
//   RTT to A by nothing unless delay(B, A) too. Raft sees every message late
//   but in order; a delay near the election timeout makes followers
//   campaign. A connection holding more than maxDelayedBytesPerConnection is
//   reset (counted as closedByOverflow): to the dialer, a broken stream.
//
// - heal(): removes every rule. Open connections are reset only where they
//   were blackholed; delayed chunks are released at once, in order.
//
// Membership queries (kind query) name no member, so they cannot be
// attributed to a link: they pass unless their target is isolated. A
// connection whose first frame is not a hello (garbage, another protocol
// version, or nothing within helloTimeoutMs) is forwarded unchanged, so the
// member handles it as it would without a proxy, and is counted under
// UNATTRIBUTED; like a hello from an unknown id, it fails closed: it is cut
// whenever some link into its target is cut. A connection the proxy accepts
// but cannot forward, because the member is not listening, is reset: the
// nearest a dialer can get to the refusal it would see without a proxy.

import { createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { SeededRng } from "../../node/raft/rng.ts";
import type { StreamKind } from "../../node/transport/wire.ts";
import type { ConnectionContext, FirstFrame, Outcome, Phase } from "./connection.ts";
import { ProxyConnection } from "./connection.ts";
import type { CutMode, DelayRule, DelaySpec, Rule, Source } from "./rules.ts";
import { linkPolicy, validateRule } from "./rules.ts";
import type { FaultChange, FaultEvent, LinkCounters, LinkStats } from "./stats.ts";
import { QUERY_SOURCE, UNATTRIBUTED, counterNames, emptyCounters } from "./stats.ts";

export interface FaultNetworkOptions {
  /** Where the proxies listen and the members' real peer ports are. Default 127.0.0.1. */
  readonly host?: string;
  /** Decides every jitter draw. Default 1. */
  readonly seed?: number;
  /** Bytes a delay may hold per connection before the connection is reset. Default 16 MiB (the transport's own queue bound). */
  readonly maxDelayedBytesPerConnection?: number;
  /** A connection with no complete first frame by then is forwarded unattributed. Default 5000 ms. */
  readonly helloTimeoutMs?: number;
  /** Bound on open connections per proxy. Default 1024. */
  readonly maxConnectionsPerProxy?: number;
}

export interface MemberPorts {
  /** Where the proxy listens: the port of the member's advertised peer URL. 0 picks a free port (see peerUrl). */
  readonly advertisedPort: number;
  /** The member's real peer port (--listen-peer-urls). */
  readonly targetPort: number;
  /** The member id, if known; otherwise it is learned from the hellos the proxy reads. */
  readonly id?: string;
}

export interface CutOptions {
  /** Default "refuse". */
  readonly mode?: CutMode;
}

export interface DelayOptions {
  readonly ms: number;
  /** Default 0. */
  readonly jitterMs?: number;
}

export type StartError = { readonly type: "ListenFailed"; readonly member: string; readonly port: number; readonly message: string };
export type StartResult = { readonly ok: true } | { readonly ok: false; readonly error: StartError };

export interface OpenConnection {
  readonly from: string;
  readonly to: string;
  /** The hello's stream kind; "other" when the first frame was not a hello or is not in yet. */
  readonly kind: StreamKind | "other";
  readonly phase: Phase;
  readonly delayedBytes: number;
}

export interface MemberInfo {
  readonly name: string;
  readonly id: string | null;
  readonly peerUrl: string | null;
  readonly targetPort: number;
}

export interface FaultReport {
  readonly members: readonly MemberInfo[];
  readonly rules: readonly Rule[];
  readonly events: readonly FaultEvent[];
  readonly links: readonly LinkStats[];
}

interface MemberProxy {
  readonly name: string;
  readonly requestedPort: number;
  readonly targetPort: number;
  id: string | null;
  server: Server | null;
  port: number | null;
  readonly ctx: ConnectionContext;
}

interface Attribution {
  readonly to: string;
  kind: StreamKind | "other";
  /** The hello's `from`, for a member hello. */
  fromId: string | null;
  source: Source;
}

type Lifecycle = "new" | "running" | "stopped";

/** A link's counters as the proxies update them. */
interface MutableLinkStats extends LinkCounters {
  readonly from: string;
  readonly to: string;
}

export class FaultNetwork {
  private readonly host: string;
  private readonly maxDelayedBytes: number;
  private readonly helloTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly rng: SeededRng;
  private readonly members = new Map<string, MemberProxy>();
  private readonly open = new Map<ProxyConnection, Attribution>();
  private readonly links = new Map<string, MutableLinkStats>();
  private activeRules: Rule[] = [];
  private readonly ruleRngs = new Map<DelayRule, SeededRng>();
  private readonly log: FaultEvent[] = [];
  private state: Lifecycle = "new";
  private startedAt = performance.now();

  constructor(opts: FaultNetworkOptions = {}) {
    this.host = opts.host ?? "127.0.0.1";
    this.rng = new SeededRng(opts.seed ?? 1);
    this.maxDelayedBytes = positive("maxDelayedBytesPerConnection", opts.maxDelayedBytesPerConnection ?? 16 * 1024 * 1024);
    this.helloTimeoutMs = positive("helloTimeoutMs", opts.helloTimeoutMs ?? 5000);
    this.maxConnections = positive("maxConnectionsPerProxy", opts.maxConnectionsPerProxy ?? 1024);
  }

  /** Registers a member; its proxy listens from the next start(). `name` is what rules use. */
  addMember(name: string, ports: MemberPorts): void {
    if (this.state === "stopped") throw new Error("netfault: addMember() after stop()");
    if (name === "" || name === UNATTRIBUTED || name === QUERY_SOURCE) throw new Error(`netfault: invalid member name ${JSON.stringify(name)}`);
    if (this.members.has(name)) throw new Error(`netfault: member ${name} added twice`);
    for (const [label, port] of [["advertisedPort", ports.advertisedPort], ["targetPort", ports.targetPort]] as const) {
      if (!(Number.isInteger(port) && port >= 0 && port < 65536)) throw new Error(`netfault: ${label} ${port} of ${name} is not a port`);
    }
    if (ports.targetPort === 0) throw new Error(`netfault: member ${name} needs its real targetPort`);
    const id = ports.id ?? null;
    if (id !== null && this.memberByFrom(id) !== undefined) throw new Error(`netfault: id ${id} of ${name} is already a member's`);
    const member: MemberProxy = {
      name,
      requestedPort: ports.advertisedPort,
      targetPort: ports.targetPort,
      id,
      server: null,
      port: null,
      ctx: {
        upstream: { host: this.host, port: ports.targetPort },
        maxDelayedBytes: this.maxDelayedBytes,
        helloTimeoutMs: this.helloTimeoutMs,
        now: () => performance.now(),
        identified: (conn, first) => {
          this.identified(member, conn, first);
        },
        jitter: (rule) => this.jitterFor(rule),
        closed: (conn) => {
          this.open.delete(conn);
        },
      },
    };
    this.members.set(name, member);
  }

  /**
   * Starts a proxy for every member added since the last start. A port that
   * cannot be listened on is an expected failure (it may have been taken
   * since it was picked); the proxies already listening keep running until
   * stop().
   */
  async start(): Promise<StartResult> {
    if (this.state === "stopped") throw new Error("netfault: start() after stop()");
    if (this.state === "new") this.startedAt = performance.now();
    this.state = "running";
    for (const m of this.members.values()) {
      if (m.server !== null) continue;
      const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
        this.accept(m, socket);
      });
      server.maxConnections = this.maxConnections;
      m.server = server;
      try {
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host: this.host, port: m.requestedPort }, () => {
            server.off("error", reject);
            resolve();
          });
        });
      } catch (e) {
        m.server = null;
        return { ok: false, error: { type: "ListenFailed", member: m.name, port: m.requestedPort, message: (e as Error).message } };
      }
      const address = server.address();
      if (address === null || typeof address === "string") throw new Error("netfault: a proxy has no TCP address");
      m.port = address.port;
    }
    return { ok: true };
  }

  /** Closes every proxy and connection. Rules, counters and the log stay readable. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    for (const conn of [...this.open.keys()]) conn.close("destroy");
    await Promise.all(
      [...this.members.values()].map(async (m) => {
        const server = m.server;
        m.server = null;
        if (server === null) return;
        await new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
        });
      }),
    );
  }

  /** The URL the member must advertise (and others must know it by): its proxy. Throws before the port is known. */
  peerUrl(name: string): string {
    const m = this.member(name);
    const port = m.port ?? (m.requestedPort === 0 ? null : m.requestedPort);
    if (port === null) throw new Error(`netfault: the proxy of ${name} picks its port at start()`);
    return `http://${this.host}:${port}`;
  }

  /** Cuts every link between members of different groups, both ways. Members in no group keep their links. */
  partition(groups: readonly (readonly string[])[], opts: CutOptions = {}): FaultEvent {
    const mode = opts.mode ?? "refuse";
    const frozen = groups.map((g) => [...g]);
    return this.addRule({ type: "partition", groups: frozen, mode }, { type: "partition", groups: frozen, mode });
  }

  /** Cuts every link to and from the member, and membership queries to it. */
  isolate(member: string, opts: CutOptions = {}): FaultEvent {
    const mode = opts.mode ?? "refuse";
    return this.addRule({ type: "isolate", member, mode }, { type: "isolate", member, mode });
  }

  /** Messages from `from` to `to` are lost; those from `to` to `from` still arrive. */
  cutOneWay(from: string, to: string, opts: CutOptions = {}): FaultEvent {
    const mode = opts.mode ?? "refuse";
    return this.addRule({ type: "cutOneWay", from, to, mode }, { type: "cutOneWay", from, to, mode });
  }

  /** Delays what `from` sends to `to`, preserving order; replaces an earlier delay on that link. */
  delay(from: string, to: string, opts: DelayOptions): FaultEvent {
    const spec: DelaySpec = { ms: opts.ms, jitterMs: opts.jitterMs ?? 0 };
    const rule: DelayRule = { type: "delay", from, to, delay: spec };
    validateRule(rule, this.names());
    for (const r of this.activeRules) if (r.type === "delay" && r.from === from && r.to === to) this.ruleRngs.delete(r);
    this.activeRules = this.activeRules.filter((r) => !(r.type === "delay" && r.from === from && r.to === to));
    this.ruleRngs.set(rule, this.rng.fork());
    return this.addRule(rule, { type: "delay", from, to, delay: spec });
  }

  /** Removes every rule: blackholed connections are reset, delayed chunks released now. */
  heal(): FaultEvent {
    this.activeRules = [];
    this.ruleRngs.clear();
    return this.record({ type: "heal" });
  }

  /** Counters per directed link that has counted anything, sorted by from, then to. */
  stats(): LinkStats[] {
    const counted = (s: LinkStats): boolean => counterNames.some((k) => s[k] !== 0);
    return [...this.links.values()].filter(counted).map((s) => ({ ...s })).sort((a, b) => (a.from === b.from ? cmp(a.to, b.to) : cmp(a.from, b.from)));
  }

  /** The counters of one link (zeros if it has seen no connection). */
  link(from: string, to: string): LinkStats {
    const s = this.links.get(linkKey(from, to));
    return s === undefined ? { from, to, ...emptyCounters() } : { ...s };
  }

  /** Every rule change so far, in order. */
  events(): readonly FaultEvent[] {
    return [...this.log];
  }

  rules(): readonly Rule[] {
    return [...this.activeRules];
  }

  /** The live connections through the proxies. */
  connections(): OpenConnection[] {
    return [...this.open].map(([conn, a]) => ({ from: sourceLabel(a.source), to: a.to, kind: a.kind, phase: conn.phase, delayedBytes: conn.delayedBytes }));
  }

  memberInfo(): MemberInfo[] {
    return [...this.members.values()].map((m) => ({
      name: m.name,
      id: m.id,
      peerUrl: m.port === null ? null : `http://${this.host}:${m.port}`,
      targetPort: m.targetPort,
    }));
  }

  /** Everything a chaos report needs, as plain JSON-able data. */
  report(): FaultReport {
    return { members: this.memberInfo(), rules: this.rules(), events: this.events(), links: this.stats() };
  }

  private addRule(rule: Rule, change: FaultChange): FaultEvent {
    validateRule(rule, this.names());
    this.activeRules.push(rule);
    return this.record(change);
  }

  private record(change: FaultChange): FaultEvent {
    const { closed, blackholed } = this.enforce();
    const event: FaultEvent = { at: Date.now(), elapsedMs: performance.now() - this.startedAt, change, closed, blackholed };
    this.log.push(event);
    return event;
  }

  /** Brings every open connection in line with the rules (level-triggered; idempotent). */
  private enforce(): { closed: number; blackholed: number } {
    let closed = 0;
    let blackholed = 0;
    for (const [conn, a] of [...this.open]) {
      if (a.source.type === "unknown" && a.fromId !== null) {
        const m = this.memberByFrom(a.fromId);
        if (m !== undefined) {
          a.source = { type: "member", name: m.name };
          conn.countTowards(this.counters(m.name, a.to));
        }
      }
      const outcome: Outcome = conn.apply(linkPolicy(this.activeRules, this.names(), a.source, a.to));
      if (outcome === "closed") closed++;
      if (outcome === "blackholed") blackholed++;
    }
    return { closed, blackholed };
  }

  private accept(m: MemberProxy, socket: Socket): void {
    if (this.state !== "running") {
      socket.destroy();
      return;
    }
    socket.on("error", () => undefined);
    // Counts go to a scratch record until the first frame says which link this is.
    const conn = new ProxyConnection(socket, m.ctx, emptyCounters());
    this.open.set(conn, { to: m.name, kind: "other", fromId: null, source: { type: "unknown" } });
  }

  private identified(m: MemberProxy, conn: ProxyConnection, first: FirstFrame): void {
    const a = this.open.get(conn);
    if (a === undefined) return;
    let learned = false;
    if (first.type === "hello") {
      const h = first.hello;
      a.kind = h.kind;
      if (h.kind === "query") {
        a.source = { type: "query" };
      } else {
        // Every member dialling m names m's id: the cheapest way to learn it.
        if (m.id === null && h.to !== "" && this.memberByFrom(h.to) === undefined) {
          m.id = h.to;
          learned = true;
        }
        a.fromId = h.from;
        const from = this.memberByFrom(h.from);
        if (from !== undefined) a.source = { type: "member", name: from.name };
      }
    }
    conn.countTowards(this.counters(sourceLabel(a.source), m.name));
    conn.open(linkPolicy(this.activeRules, this.names(), a.source, m.name));
    // Connections from the newly known id can now be held to their link's rules.
    if (learned) this.enforce();
  }

  private jitterFor(rule: DelayRule): SeededRng {
    let r = this.ruleRngs.get(rule);
    if (r === undefined) {
      r = this.rng.fork();
      this.ruleRngs.set(rule, r);
    }
    return r.fork();
  }

  private counters(from: string, to: string): LinkCounters {
    const key = linkKey(from, to);
    let s = this.links.get(key);
    if (s === undefined) {
      s = { from, to, ...emptyCounters() };
      this.links.set(key, s);
    }
    return s;
  }

  private memberByFrom(from: string): MemberProxy | undefined {
    for (const m of this.members.values()) if (m.name === from || m.id === from) return m;
    return undefined;
  }

  private member(name: string): MemberProxy {
    const m = this.members.get(name);
    if (m === undefined) throw new Error(`netfault: unknown member ${JSON.stringify(name)}`);
    return m;
  }

  private names(): string[] {
    return [...this.members.keys()];
  }
}

function sourceLabel(s: Source): string {
  switch (s.type) {
    case "member":
      return s.name;
    case "query":
      return QUERY_SOURCE;
    case "unknown":
      return UNATTRIBUTED;
  }
}

const linkKey = (from: string, to: string): string => `${from}\u0000${to}`;
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function positive(name: string, v: number): number {
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`netfault: ${name} must be a positive number, got ${v}`);
  return v;
}
