// Helpers for the transport's tests: real transports on 127.0.0.1 with
// port 0, raw sockets and servers, a proxy that can hold a connection, and
// bounded polling. Everything created through a Harness is closed by cleanup().

import { createSocket } from "node:dgram";
import { connect, createServer } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";
import type { Message, MessageType, NodeId } from "../../raft/types.ts";
import { nodeId } from "../../raft/types.ts";
import { FrameReader } from "../frame-reader.ts";
import type { Logger, TransportMetrics } from "../observability.ts";
import { Transport } from "../transport.ts";
import type { TransportOptions } from "../transport.ts";
import type { Frame } from "../wire.ts";
import { decodeFrame } from "../wire.ts";

export const clusterId = "test-cluster";

/** Polls `cond` every few milliseconds; fails after `timeoutMs` (a bound, not a timing assumption). */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A UDP port on 127.0.0.1 that was free a moment ago (the kernel's pick). */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => {
        resolve(port);
      });
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lets one event-loop turn pass, so that queued messages are flushed. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface LogLine {
  readonly level: "info" | "warn" | "debug";
  readonly fields: object;
  readonly message: string;
}

export class CapturingLogger implements Logger {
  readonly lines: LogLine[] = [];
  info(fields: object, message: string): void {
    this.lines.push({ level: "info", fields, message });
  }
  warn(fields: object, message: string): void {
    this.lines.push({ level: "warn", fields, message });
  }
  debug(fields: object, message: string): void {
    this.lines.push({ level: "debug", fields, message });
  }
  has(level: LogLine["level"], text: string): boolean {
    return this.lines.some((l) => l.level === level && l.message.includes(text));
  }
}

export class CountingMetrics implements TransportMetrics {
  readonly rtts: number[] = [];
  readonly failures = new Map<NodeId, number>();
  rtt(_peer: NodeId, seconds: number): void {
    this.rtts.push(seconds);
  }
  sentFailure(peer: NodeId): void {
    this.failures.set(peer, (this.failures.get(peer) ?? 0) + 1);
  }
  failuresTo(peer: NodeId): number {
    return this.failures.get(peer) ?? 0;
  }
}

/** A started transport and everything its callbacks reported. */
export interface TestNode {
  readonly id: NodeId;
  readonly transport: Transport;
  readonly port: number;
  readonly url: string;
  readonly received: Message[];
  readonly unreachable: { readonly peer: NodeId; readonly at: number }[];
  readonly snapshotStatus: { readonly peer: NodeId; readonly failed: boolean }[];
  readonly log: CapturingLogger;
  readonly metrics: CountingMetrics;
}

export type NodeOverrides = Partial<Omit<TransportOptions, "self" | "onMessage" | "onUnreachable" | "onSnapshotStatus" | "logger" | "metrics">>;

export class Harness {
  private readonly transports: Transport[] = [];
  private readonly servers: Server[] = [];
  private readonly sockets: Socket[] = [];

  /** Starts a transport listening on 127.0.0.1 (port 0 unless overridden). */
  async node(id: string, overrides: NodeOverrides = {}): Promise<TestNode> {
    const received: Message[] = [];
    const unreachable: { peer: NodeId; at: number }[] = [];
    const snapshotStatus: { peer: NodeId; failed: boolean }[] = [];
    const log = new CapturingLogger();
    const metrics = new CountingMetrics();
    const transport = new Transport({
      self: nodeId(id),
      clusterId,
      listen: { host: "127.0.0.1", port: 0 },
      peers: [],
      ...overrides,
      onMessage: (m) => received.push(m),
      onUnreachable: (peer) => unreachable.push({ peer, at: Date.now() }),
      onSnapshotStatus: (peer, failed) => snapshotStatus.push({ peer, failed }),
      logger: log,
      metrics,
    });
    this.transports.push(transport);
    const { port } = await transport.start();
    return { id: nodeId(id), transport, port, url: `tcp://127.0.0.1:${port}`, received, unreachable, snapshotStatus, log, metrics };
  }

  /**
   * A node that names its own URL in its hellos, as concord-node does, so
   * that a node that does not know it can answer it.
   */
  async advertisingNode(id: string, overrides: NodeOverrides = {}): Promise<TestNode> {
    const port = await this.freePort();
    return this.node(id, { ...overrides, listen: { host: "127.0.0.1", port }, advertiseUrl: `tcp://127.0.0.1:${port}` });
  }

  /** Nodes that know each other, with every stream accepted. */
  async cluster(ids: readonly string[], overrides: NodeOverrides = {}): Promise<TestNode[]> {
    const nodes: TestNode[] = [];
    for (const id of ids) nodes.push(await this.node(id, overrides));
    for (const a of nodes) {
      for (const b of nodes) {
        if (a !== b && !a.transport.addPeer(b.id, b.url).ok) throw new Error(`addPeer ${b.url} failed`);
      }
    }
    for (const a of nodes) for (const b of nodes) if (a !== b) await waitFor(`${a.id} → ${b.id} accepted`, () => a.transport.peerStatus(b.id)?.accepted === true);
    return nodes;
  }

  /** A raw server; `onSocket` decides what it does with each connection. */
  async server(onSocket: (s: Socket) => void, options: { pauseOnConnect?: boolean } = {}): Promise<{ server: Server; port: number }> {
    const server = createServer({ pauseOnConnect: options.pauseOnConnect ?? false }, (s) => {
      this.sockets.push(s);
      s.on("error", () => undefined);
      onSocket(s);
    });
    this.servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { server, port: (server.address() as AddressInfo).port };
  }

  /** A port that nothing listens on (it was free a moment ago). */
  async freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    return port;
  }

  /** A raw client connection that records the frames it receives. */
  async client(port: number): Promise<RawClient> {
    const socket = connect({ host: "127.0.0.1", port });
    this.sockets.push(socket);
    const client = new RawClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return client;
  }

  /** A proxy to `targetPort` that forwards the first `free` connections and holds later ones until release(). */
  async proxy(targetPort: number, free: number): Promise<HoldingProxy> {
    const proxy = new HoldingProxy(targetPort, free, (s) => this.sockets.push(s));
    const { server, port } = await this.server((s) => {
      proxy.accept(s);
    }, { pauseOnConnect: true });
    proxy.port = port;
    proxy.server = server;
    return proxy;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.transports.map((t) => t.stop()));
    for (const s of this.sockets) s.destroy();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => {
              resolve();
            });
          }),
      ),
    );
    this.transports.length = 0;
    this.servers.length = 0;
    this.sockets.length = 0;
  }
}

export class RawClient {
  readonly socket: Socket;
  readonly frames: Frame[] = [];
  closed = false;
  private readonly reader = new FrameReader(1 << 20);

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.reader.push(chunk, (payload) => {
        const f = decodeFrame(payload);
        if ("kind" in f) this.frames.push(f);
        return true;
      });
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      this.closed = true;
    });
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }
}

export class HoldingProxy {
  port = 0;
  server: Server | null = null;
  /** Connections accepted so far. */
  connections = 0;
  private readonly targetPort: number;
  private readonly free: number;
  private readonly held: (() => void)[] = [];
  private releasedAll = false;
  private readonly track: (s: Socket) => void;

  constructor(targetPort: number, free: number, track: (s: Socket) => void) {
    this.targetPort = targetPort;
    this.free = free;
    this.track = track;
  }

  accept(client: Socket): void {
    const index = this.connections++;
    const upstream = connect({ host: "127.0.0.1", port: this.targetPort });
    this.track(upstream);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    upstream.pipe(client);
    // A held client is not read at all, so its sender sees real backpressure.
    const forward = (): void => {
      client.pipe(upstream);
    };
    if (index < this.free || this.releasedAll) forward();
    else this.held.push(forward);
  }

  get holding(): number {
    return this.held.length;
  }

  release(): void {
    this.releasedAll = true;
    for (const f of this.held.splice(0)) f();
  }
}

type WireType = Exclude<MessageType, "hup" | "beat" | "checkQuorum" | "unreachable" | "snapStatus" | "beacon">;

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, k) => (k * 31 + seed) & 0xff);

/** One sample per message type that travels between members (the Record makes the list complete). */
const samples: Record<WireType, (from: NodeId, to: NodeId) => Message> = {
  propose: (from, to) => ({
    type: "propose",
    from,
    to,
    term: 0,
    entries: [
      { kind: "normal", data: bytes(40, 1) },
      { kind: "conf", change: { type: "addLearner", node: nodeId("n9"), context: bytes(12, 2) } },
    ],
  }),
  readIndex: (from, to) => ({ type: "readIndex", from, to, term: 0, context: bytes(16, 3) }),
  readIndexResp: (from, to) => ({ type: "readIndexResp", from, to, term: 7, context: bytes(16, 4), index: 123456 }),
  transferLeader: (from, to) => ({ type: "transferLeader", from, to, term: 0, transferee: to }),
  timeoutNow: (from, to) => ({ type: "timeoutNow", from, to, term: 8 }),
  vote: (from, to) => ({ type: "vote", from, to, term: 9, lastIndex: 2 ** 40, lastTerm: 8, transfer: true }),
  preVote: (from, to) => ({ type: "preVote", from, to, term: 10, lastIndex: 77, lastTerm: 9, transfer: false }),
  voteResp: (from, to) => ({ type: "voteResp", from, to, term: 9, reject: false }),
  preVoteResp: (from, to) => ({ type: "preVoteResp", from, to, term: 10, reject: true }),
  app: (from, to) => ({
    type: "app",
    from,
    to,
    term: 11,
    prevIndex: 99,
    prevTerm: 10,
    commit: 98,
    entries: [
      { kind: "normal", term: 11, index: 100, data: bytes(300, 5) },
      { kind: "normal", term: 11, index: 101, data: new Uint8Array(0) },
      { kind: "conf", term: 11, index: 102, change: { type: "promote", node: nodeId("n9") } },
    ],
  }),
  appResp: (from, to) => ({ type: "appResp", from, to, term: 11, index: 102, reject: true, rejectHint: 50, logTerm: 4 }),
  heartbeat: (from, to) => ({ type: "heartbeat", from, to, term: 11, commit: 102, readRound: 3 }),
  heartbeatResp: (from, to) => ({ type: "heartbeatResp", from, to, term: 11, readRound: 3 }),
  snap: (from, to) => ({
    type: "snap",
    from,
    to,
    term: 12,
    snapshot: { meta: { index: 500, term: 12, conf: { voters: [from, to], learners: [nodeId("n9")] } }, data: bytes(2048, 6) },
  }),
};

export const wireTypes = Object.keys(samples) as WireType[];

export function everyWireMessage(from: NodeId, to: NodeId): Message[] {
  return wireTypes.map((t) => samples[t](from, to));
}

export function heartbeat(from: NodeId, to: NodeId, readRound: number): Message {
  return { type: "heartbeat", from, to, term: 1, commit: readRound, readRound };
}

/** An append of `entries` entries of `size` bytes each (the benchmark's shape). */
export function append(from: NodeId, to: NodeId, index: number, entries: number, size: number): Message {
  const data = bytes(size, index);
  return {
    type: "app",
    from,
    to,
    term: 1,
    prevIndex: index,
    prevTerm: 1,
    commit: index,
    entries: Array.from({ length: entries }, (_, k) => ({ kind: "normal" as const, term: 1, index: index + k + 1, data })),
  };
}
