// The peer transport: how a Concord member's Raft messages reach the other
// members (etcd's rafthttp, as framed TCP). See wire.ts for the protocol,
// outbound.ts for the stream to one peer, inbound.ts for the listening side.
//
// Guarantees, and their absence:
// - send() never blocks and never throws for network reasons; it throws only
//   for bugs (a local message, a wrong sender).
// - Messages to one peer arrive in the order sent, or not at all. Loss is
//   expected (peer down, queue full, connection broken) and is reported
//   through metrics.sentFailure and onUnreachable, which Raft turns into a
//   probe; nothing is retransmitted here.
// - Callbacks never run inside send(): they are deferred to a microtask, so
//   the caller can step its RawNode from them without re-entering itself.
// - Membership queries (queryPeer in membership-query.ts, answered through
//   onQuery) use connections of their own and never touch the streams.
//
// Peers are the members of this member's directory (setPeers, addPeer), plus
// remotes: members of the cluster that dialled this one before its directory
// listed them, added from their hello so that replies reach them (etcd's
// rafthttp remotes). A remote is kept until the directory lists it (then it
// is an ordinary peer) or says it was removed (isRemoved; then it goes).

import { createServer } from "node:net";
import type { Server, Socket } from "node:net";
import type { Message, NodeId } from "../raft/types.ts";
import { isRemote } from "../raft/types.ts";
import { monotonicMs } from "./clock.ts";
import { InboundConnection } from "./inbound.ts";
import type { InboundContext } from "./inbound.ts";
import type { Logger, TransportMetrics } from "./observability.ts";
import { noMetrics, silentLogger } from "./observability.ts";
import type { DropReason, StreamContext, StreamStatus } from "./outbound.ts";
import { PeerStream } from "./outbound.ts";
import type { PeerError, PeerResult } from "./peer-error.ts";
import { describePeerError } from "./peer-error.ts";
import type { PeerAddress } from "./peer-url.ts";
import { isInvalidPeerUrl, parsePeerUrl, sameAddress } from "./peer-url.ts";
import { SnapshotSend } from "./snapshot-sender.ts";
import { Throttle } from "./throttle.ts";
import type { QueryReply } from "./wire.ts";
import { FRAME_HEADER_BYTES, encodeMessageFrame } from "./wire.ts";

export interface TransportOptions {
  readonly self: NodeId;
  /** Both ends of every connection must agree on it; it keeps two clusters from talking. */
  readonly clusterId: string;
  /** Port 0 picks a free port; start() returns it. */
  readonly listen: { readonly host: string; readonly port: number };
  /** Peer URLs, e.g. http://10.0.0.2:2380 or tcp://host:2380. An entry for self is ignored. */
  readonly peers: Iterable<readonly [NodeId, string]>;
  /**
   * This member's own peer URL, named in every hello so that a member whose
   * directory does not list this one yet can answer it. Without it, such a
   * member refuses the connection.
   */
  readonly advertiseUrl?: string;
  /**
   * Whether a committed change removed `id` from the cluster: its connections
   * are refused (RemovedMember), it never becomes a remote, and setPeers
   * drops it. Default: no id is removed.
   */
  isRemoved?(id: NodeId): boolean;
  /**
   * A peer refused this member's message stream because a committed change
   * removed this member (etcd's 410 Gone). Member ids are never reused, so
   * this is final: the stream to that peer is not redialled.
   */
  onRemovedByPeer?(peer: NodeId): void;
  /** Every message received from a peer, in the order that peer sent it. */
  onMessage(m: Message): void;
  /** Messages to `peer` were lost. At most once per 100 ms per peer. */
  onUnreachable?(peer: NodeId): void;
  /** The outcome of one snapshot send; `failed` if the peer did not acknowledge it. */
  onSnapshotStatus?(peer: NodeId, failed: boolean): void;
  /**
   * Answers a membership query from a member starting with an empty data
   * directory (see queryPeer). `info` is opaque here, e.g. the encoded member
   * list, and must fit maxFrameBytes, or the query goes unanswered. Without
   * this callback the answer is `bootstrapped: false`.
   */
  onQuery?(): QueryReply;
  readonly metrics?: TransportMetrics;
  readonly logger?: Logger;
  /** Bound on bytes queued for one peer (including what its socket buffers). Default 16 MiB. */
  readonly maxQueueBytes?: number;
  /** Largest frame payload on a message stream, sent or received. Default 4 MiB (Raft's maxSizePerMsg is 1 MiB). */
  readonly maxFrameBytes?: number;
  /** Largest snapshot frame, sent or received. Default 1 GiB. */
  readonly maxSnapshotBytes?: number;
  /** In [0, 1); jitter for reconnection backoff. Default Math.random. */
  readonly random?: () => number;
  /** How often each stream sends a ping. Default 1000 ms. */
  readonly pingIntervalMs?: number;
  /** A connection on which nothing arrives for this long is closed (and redialled). Default 5000 ms. */
  readonly idleTimeoutMs?: number;
  /** Default 1000 ms. */
  readonly dialTimeoutMs?: number;
  /** Redial delays double from initial to max, with jitter. Default 20 ms → 1000 ms. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
}

export const transportDefaults = {
  maxQueueBytes: 16 * 1024 * 1024,
  maxFrameBytes: 4 * 1024 * 1024,
  maxSnapshotBytes: 1024 * 1024 * 1024,
  pingIntervalMs: 1000,
  idleTimeoutMs: 5000,
  dialTimeoutMs: 1000,
  backoffInitialMs: 20,
  backoffMaxMs: 1000,
} as const;

/** onUnreachable is rate-limited to once per this interval per peer. */
const unreachableIntervalMs = 100;
/** Drop log lines are aggregated over this interval per peer. */
const dropLogIntervalMs = 1000;
/** Bound on concurrent inbound connections (peers dial one stream each, plus snapshots). */
const maxInboundConnections = 1024;
/**
 * Bound on remote peers. A member has at most as many as the cluster has
 * members its directory does not list yet; this is far more.
 */
export const maxRemotePeers = 64;

const ok: PeerResult = { ok: true };
const notBootstrapped: QueryReply = { bootstrapped: false };

export interface PeerStatus extends StreamStatus {
  readonly address: PeerAddress;
  readonly snapshotsInFlight: number;
  /** Added from its hello, not (or no longer) in the member directory. */
  readonly remote: boolean;
}

interface Peer {
  readonly id: NodeId;
  address: PeerAddress;
  /** Added from its hello, not from the member directory (see the top of this file). */
  remote: boolean;
  readonly stream: PeerStream;
  readonly snapshots: Set<SnapshotSend>;
  readonly unreachable: Throttle;
  readonly dropLog: Throttle;
  /** Drops not yet reported in a log line. */
  droppedUnlogged: number;
}

type Phase = "new" | "running" | "stopped";

export class Transport {
  private readonly self: NodeId;
  private readonly opts: TransportOptions;
  private readonly logger: Logger;
  private readonly metrics: TransportMetrics;
  private readonly maxFrameBytes: number;
  private readonly maxSnapshotBytes: number;
  private readonly streamContext: StreamContext;
  private readonly inboundContext: InboundContext;
  private readonly peers = new Map<NodeId, Peer>();
  private readonly inbound = new Set<InboundConnection>();
  /** The current inbound message stream from each peer. */
  private readonly streamsFrom = new Map<NodeId, InboundConnection>();
  private readonly unknownPeerLog = new Throttle(dropLogIntervalMs);
  private server: Server | null = null;
  private phase: Phase = "new";
  private stopping: Promise<void> | null = null;

  constructor(opts: TransportOptions) {
    this.self = opts.self;
    this.opts = opts;
    this.logger = opts.logger ?? silentLogger;
    this.metrics = opts.metrics ?? noMetrics;
    const d = transportDefaults;
    const positive = (name: string, v: number): number => {
      if (!(Number.isFinite(v) && v > 0)) throw new Error(`transport: ${name} must be a positive number, got ${v}`);
      return v;
    };
    const maxQueueBytes = positive("maxQueueBytes", opts.maxQueueBytes ?? d.maxQueueBytes);
    this.maxFrameBytes = positive("maxFrameBytes", opts.maxFrameBytes ?? d.maxFrameBytes);
    this.maxSnapshotBytes = positive("maxSnapshotBytes", opts.maxSnapshotBytes ?? d.maxSnapshotBytes);
    if (this.maxFrameBytes >= 2 ** 32 || this.maxSnapshotBytes >= 2 ** 32) throw new Error("transport: frame limits must fit the u32 length prefix");
    const timing = {
      pingIntervalMs: positive("pingIntervalMs", opts.pingIntervalMs ?? d.pingIntervalMs),
      idleTimeoutMs: positive("idleTimeoutMs", opts.idleTimeoutMs ?? d.idleTimeoutMs),
      dialTimeoutMs: positive("dialTimeoutMs", opts.dialTimeoutMs ?? d.dialTimeoutMs),
      backoffInitialMs: positive("backoffInitialMs", opts.backoffInitialMs ?? d.backoffInitialMs),
      backoffMaxMs: positive("backoffMaxMs", opts.backoffMaxMs ?? d.backoffMaxMs),
    };
    if (opts.advertiseUrl !== undefined) {
      const own = parsePeerUrl(opts.advertiseUrl);
      if (isInvalidPeerUrl(own)) throw new Error(`transport: advertiseUrl: ${describePeerError(own)}`);
    }
    this.streamContext = {
      self: opts.self,
      clusterId: opts.clusterId,
      ...(opts.advertiseUrl === undefined ? {} : { advertiseUrl: opts.advertiseUrl }),
      logger: this.logger,
      timing,
      maxQueueBytes,
      maxFrameBytes: this.maxFrameBytes,
      random: opts.random ?? Math.random,
      dropped: (peer, count, reason) => {
        this.dropped(peer, count, reason);
      },
      unreachable: (peer) => {
        this.reportUnreachable(peer);
      },
      rtt: (peer, seconds) => {
        this.metrics.rtt(peer, seconds);
      },
      removedByPeer: (peer) => {
        opts.onRemovedByPeer?.(peer);
      },
    };
    this.inboundContext = {
      self: opts.self,
      clusterId: opts.clusterId,
      logger: this.logger,
      maxFrameBytes: this.maxFrameBytes,
      maxSnapshotBytes: this.maxSnapshotBytes,
      idleTimeoutMs: timing.idleTimeoutMs,
      isPeer: (id) => this.peers.has(id),
      isRemoved: (id) => this.isRemoved(id),
      addRemote: (id, url) => this.addRemote(id, url),
      deliver: (m) => {
        opts.onMessage(m);
      },
      streamOpened: (conn) => {
        this.streamOpened(conn);
      },
      query: () => opts.onQuery?.() ?? notBootstrapped,
      closed: (conn) => {
        this.inbound.delete(conn);
        if (conn.peer !== null && this.streamsFrom.get(conn.peer) === conn) this.streamsFrom.delete(conn.peer);
      },
    };
    for (const [id, url] of opts.peers) {
      const r = this.addPeer(id, url);
      if (!r.ok) throw new Error(`transport: peer ${id}: ${describePeerError(r.error)}`);
    }
  }

  /** Listens, and starts dialling every peer. Messages sent before start() are dropped. */
  async start(): Promise<{ port: number }> {
    if (this.phase !== "new") throw new Error(`transport: start() in phase ${this.phase}`);
    this.phase = "running";
    for (const p of this.peers.values()) p.stream.start();
    const server = createServer({ noDelay: true, keepAlive: true }, (socket) => {
      this.accept(socket);
    });
    server.maxConnections = maxInboundConnections;
    this.server = server;
    const { host, port } = this.opts.listen;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host, port }, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      await this.stop();
      throw e;
    }
    server.on("error", (err) => {
      this.logger.warn({ err: err.message }, "peer listener error");
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("transport: the listener has no TCP address");
    this.logger.info({ self: this.self, host, port: address.port }, "listening for peers");
    return { port: address.port };
  }

  /**
   * Queues messages for their peers and returns at once. Messages to one peer
   * are written together once per event-loop turn, or at flush(). Snapshots
   * go over a connection of their own; their outcome arrives via
   * onSnapshotStatus.
   */
  send(messages: readonly Message[]): void {
    for (const m of messages) {
      if (!isRemote(m)) throw new Error(`transport: ${m.type} is a local message and never leaves the node`);
      if (m.from !== this.self) throw new Error(`transport: ${m.type} message from ${m.from}, but this member is ${this.self}`);
      if (m.to === this.self) throw new Error(`transport: ${m.type} message addressed to this member itself`);
      if (this.phase === "stopped") continue;
      const peer = this.peers.get(m.to);
      if (peer === undefined) {
        // Normal while membership changes propagate; not a peer to report unreachable.
        this.metrics.sentFailure(m.to);
        if (this.unknownPeerLog.allow(monotonicMs())) this.logger.debug({ peer: m.to, type: m.type }, "dropped message to an unknown peer");
        continue;
      }
      const frame = encodeMessageFrame(m);
      if (m.type === "snap") this.sendSnapshot(peer, frame);
      else peer.stream.send(frame);
    }
  }

  /** Writes what is queued for every peer now, instead of at the end of this event-loop turn. */
  flush(): void {
    for (const p of this.peers.values()) p.stream.flush();
  }

  /** Adds a peer, or points an existing one at a new URL. Adding self is ignored. */
  addPeer(id: NodeId, url: string): PeerResult {
    if (id === this.self) return ok;
    const address = parsePeerUrl(url);
    if (isInvalidPeerUrl(address)) return { ok: false, error: address };
    const existing = this.peers.get(id);
    if (existing !== undefined) {
      if (existing.remote) {
        existing.remote = false;
        this.logger.info({ peer: id }, "remote peer is now in the member directory");
      }
      return this.updatePeer(id, url);
    }
    this.createPeer(id, address, false);
    return ok;
  }

  /**
   * Makes the peers the members of `directory` (self excluded), plus the
   * remotes that are still wanted. A peer the directory does not list is
   * dropped if it was removed from the cluster; otherwise it is kept as a
   * remote if it is one already or has a message stream open to this member
   * (the directory may just be older than the cluster, as after installing an
   * old snapshot: dropping the leader then would refuse the very entries that
   * bring the directory up to date), and dropped if not. Invalid URLs are
   * reported, and their peers left as they were.
   */
  setPeers(directory: Iterable<readonly [NodeId, string]>): PeerError[] {
    const errors: PeerError[] = [];
    const listed = new Set<NodeId>();
    for (const [id, url] of directory) {
      listed.add(id);
      const r = this.addPeer(id, url);
      if (!r.ok) errors.push(r.error);
    }
    for (const peer of [...this.peers.values()]) {
      if (listed.has(peer.id)) continue;
      if (this.isRemoved(peer.id)) {
        this.removePeer(peer.id);
      } else if (peer.remote) {
        continue;
      } else if (this.streamsFrom.has(peer.id)) {
        peer.remote = true;
        this.logger.info({ peer: peer.id }, "kept a peer that is not in the member directory as a remote: it is connected, and not removed");
      } else {
        this.removePeer(peer.id);
      }
    }
    return errors;
  }

  private isRemoved(id: NodeId): boolean {
    return this.opts.isRemoved?.(id) ?? false;
  }

  /** A dialer that is not a peer, not removed, and named its URL in its hello. */
  private addRemote(id: NodeId, url: string): PeerResult {
    if (this.peers.has(id)) return ok;
    if (id === this.self) return { ok: false, error: { type: "UnknownPeer", peer: id } };
    const address = parsePeerUrl(url);
    if (isInvalidPeerUrl(address)) return { ok: false, error: address };
    let remotes = 0;
    for (const p of this.peers.values()) if (p.remote) remotes++;
    if (remotes >= maxRemotePeers) return { ok: false, error: { type: "TooManyRemotes", peer: id, limit: maxRemotePeers } };
    this.createPeer(id, address, true);
    return ok;
  }

  private createPeer(id: NodeId, address: PeerAddress, remote: boolean): void {
    const peer: Peer = {
      id,
      address,
      remote,
      stream: new PeerStream(id, address, this.streamContext),
      snapshots: new Set(),
      unreachable: new Throttle(unreachableIntervalMs),
      dropLog: new Throttle(dropLogIntervalMs),
      droppedUnlogged: 0,
    };
    this.peers.set(id, peer);
    if (this.phase === "running") {
      if (remote) this.logger.info({ peer: id, address }, "added a remote peer: it dialled this member, which does not list it yet");
      else this.logger.info({ peer: id, address }, "added peer");
      peer.stream.start();
    }
  }

  /**
   * Forgets a peer: closes its connections both ways. It may dial again,
   * and is then refused if it was removed (isRemoved) or names no URL, and
   * added back as a remote otherwise.
   */
  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.peers.delete(id);
    peer.stream.close();
    for (const s of peer.snapshots) {
      s.abort();
      this.defer(() => this.opts.onSnapshotStatus?.(id, true));
    }
    peer.snapshots.clear();
    for (const conn of this.inbound) if (conn.peer === id) conn.close("peer removed");
    this.logger.info({ peer: id }, "removed peer");
  }

  /** Points a peer at a new URL; its connection is re-established at once. */
  updatePeer(id: NodeId, url: string): PeerResult {
    const peer = this.peers.get(id);
    if (peer === undefined) return { ok: false, error: { type: "UnknownPeer", peer: id } };
    const address = parsePeerUrl(url);
    if (isInvalidPeerUrl(address)) return { ok: false, error: address };
    if (sameAddress(address, peer.address)) return ok;
    this.logger.info({ peer: id, from: peer.address, to: address }, "peer URL changed");
    peer.address = address;
    peer.stream.setAddress(address);
    return ok;
  }

  /** The smoothed round-trip time to a peer in seconds, once measured. */
  peerRtt(id: NodeId): number | undefined {
    return this.peers.get(id)?.stream.rttSeconds;
  }

  /** Counters and state of the stream to a peer, for status pages and tests. */
  peerStatus(id: NodeId): PeerStatus | undefined {
    const peer = this.peers.get(id);
    if (peer === undefined) return undefined;
    return { ...peer.stream.status(), address: peer.address, snapshotsInFlight: peer.snapshots.size, remote: peer.remote };
  }

  /** Peers whose message stream to this member is currently open. */
  inboundPeers(): NodeId[] {
    return [...this.streamsFrom.keys()];
  }

  /** Closes every connection and the listener, and drops all queues. Callbacks stop. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.phase = "stopped";
    for (const peer of this.peers.values()) {
      peer.stream.close();
      for (const s of peer.snapshots) s.abort();
      peer.snapshots.clear();
    }
    for (const conn of this.inbound) conn.close("transport stopped");
    const server = this.server;
    this.server = null;
    if (server !== null) {
      await new Promise<void>((resolve) => {
        // The callback gets an error if the server never listened; stopping anyway.
        server.close(() => {
          resolve();
        });
      });
    }
  }

  private accept(socket: Socket): void {
    if (this.phase !== "running") {
      socket.destroy();
      return;
    }
    this.inbound.add(new InboundConnection(socket, this.inboundContext));
  }

  private streamOpened(conn: InboundConnection): void {
    const id = conn.peer;
    if (id === null) return;
    // A peer dials one stream at a time, so an older one is dead or half-open.
    const previous = this.streamsFrom.get(id);
    if (previous !== undefined && previous !== conn) {
      // Info, not debug: two processes claiming one member ID make this flap.
      this.logger.info({ peer: id }, "a newer message stream from the peer replaces the older one");
      previous.close("replaced by a newer stream from the same peer");
    }
    this.streamsFrom.set(id, conn);
  }

  /**
   * Not limited per peer: Raft sends a follower one snapshot and waits for
   * its status before sending another.
   */
  private sendSnapshot(peer: Peer, frame: Uint8Array): void {
    const fail = (why: string): void => {
      this.logger.warn({ peer: peer.id, bytes: frame.byteLength }, `snapshot send failed: ${why}`);
      this.metrics.sentFailure(peer.id);
      this.reportUnreachable(peer.id);
      this.defer(() => this.opts.onSnapshotStatus?.(peer.id, true));
    };
    if (frame.byteLength - FRAME_HEADER_BYTES > this.maxSnapshotBytes) {
      fail(`${frame.byteLength - FRAME_HEADER_BYTES} bytes exceed maxSnapshotBytes (${this.maxSnapshotBytes})`);
      return;
    }
    if (this.phase !== "running") {
      fail("transport not started");
      return;
    }
    const { timing } = this.streamContext;
    const started = monotonicMs();
    const send: SnapshotSend = new SnapshotSend({
      self: this.self,
      peer: peer.id,
      clusterId: this.opts.clusterId,
      ...(this.opts.advertiseUrl === undefined ? {} : { advertiseUrl: this.opts.advertiseUrl }),
      address: peer.address,
      frame,
      dialTimeoutMs: timing.dialTimeoutMs,
      idleTimeoutMs: timing.idleTimeoutMs,
      done: (failed, why) => {
        peer.snapshots.delete(send);
        if (failed) {
          fail(why);
          return;
        }
        const seconds = (monotonicMs() - started) / 1000;
        this.logger.info({ peer: peer.id, bytes: frame.byteLength, seconds }, "snapshot sent");
        this.defer(() => this.opts.onSnapshotStatus?.(peer.id, false));
      },
    });
    peer.snapshots.add(send);
  }

  private dropped(id: NodeId, count: number, reason: DropReason): void {
    for (let k = 0; k < count; k++) this.metrics.sentFailure(id);
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.reportUnreachable(id);
    peer.droppedUnlogged += count;
    if (!peer.dropLog.allow(monotonicMs())) return;
    // A full queue or an oversize message is news; drops while the peer is
    // known to be down were already announced by the stream.
    const level = reason === "queueFull" || reason === "tooLarge" ? "warn" : "debug";
    this.logger[level]({ peer: id, dropped: peer.droppedUnlogged, reason }, "dropped messages to peer");
    peer.droppedUnlogged = 0;
  }

  private reportUnreachable(id: NodeId): void {
    const peer = this.peers.get(id);
    if (peer === undefined || !peer.unreachable.allow(monotonicMs())) return;
    this.defer(() => {
      // Not for a peer removed meanwhile.
      if (this.peers.get(id) === peer) this.opts.onUnreachable?.(id);
    });
  }

  private defer(f: () => void): void {
    queueMicrotask(() => {
      if (this.phase !== "stopped") f();
    });
  }
}
