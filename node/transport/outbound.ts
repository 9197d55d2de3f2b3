// The dialling side of the message stream to one peer: one persistent TCP
// connection carrying every message from this member to that peer, with a
// bounded queue, batching, reconnection with backoff, ping/pong RTT and
// dead-connection detection.
//
// States:
//   idle ──start──▶ dialing ──connect──▶ connected ──close/error/idle──▶ backoff ──timer──▶ dialing
//                      └──────────── refused/timeout ────────────────────────▲
//   connected ──rejected as a removed member──▶ removed (for good: the peer
//   will refuse this member's id forever, so it is not redialled)
// While dialing or connected, messages are queued (bounded by maxQueueBytes,
// counting bytes the socket has buffered too) and written once per
// event-loop turn as one socket write. In backoff they are dropped: Raft
// tolerates loss, and buffering for a peer that may be gone for hours is
// unbounded. Frames are fire-and-forget; nothing waits for a response.

import { connect } from "node:net";
import type { Socket } from "node:net";
import { isDecodeError } from "../raft/codec.ts";
import type { NodeId } from "../raft/types.ts";
import { Backoff } from "./backoff.ts";
import { monotonicMicros } from "./clock.ts";
import { FrameReader, describeFramingError } from "./frame-reader.ts";
import type { Logger } from "./observability.ts";
import type { PeerAddress } from "./peer-url.ts";
import { RttEstimator } from "./rtt.ts";
import { FRAME_HEADER_BYTES, MAX_CONTROL_FRAME_BYTES, decodeFrame, encodeHello, encodePing } from "./wire.ts";

export type StreamState = "idle" | "dialing" | "connected" | "backoff" | "removed" | "closed";

export interface StreamTiming {
  readonly pingIntervalMs: number;
  /** A connection on which no frame (accept, pong) arrives for this long is destroyed and redialled. */
  readonly idleTimeoutMs: number;
  readonly dialTimeoutMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
}

/** Why messages were dropped. */
export type DropReason = "notStarted" | "unreachable" | "queueFull" | "tooLarge" | "connectionLost";

export interface StreamContext {
  readonly self: NodeId;
  readonly clusterId: string;
  /** This member's peer URL, sent in the hello; absent if it advertises none. */
  readonly advertiseUrl?: string;
  readonly logger: Logger;
  readonly timing: StreamTiming;
  readonly maxQueueBytes: number;
  /** Larger messages are dropped here rather than sent to a peer that would refuse them. */
  readonly maxFrameBytes: number;
  readonly random: () => number;
  /** `count` messages to `peer` were lost: dropped from the queue or refused. */
  dropped(peer: NodeId, count: number, reason: DropReason): void;
  /** The connection to `peer` broke; messages written to it may be lost. */
  unreachable(peer: NodeId): void;
  rtt(peer: NodeId, seconds: number): void;
  /** `peer` refused this member's id: a committed change removed this member from the cluster. */
  removedByPeer(peer: NodeId): void;
}

export interface StreamCounters {
  /** Connection attempts. */
  dials: number;
  /** Connections the peer accepted. */
  connects: number;
  /** socket.write calls. */
  writes: number;
  /** Message frames handed to the socket (pings and the hello not included). */
  messagesWritten: number;
  bytesWritten: number;
  /** Messages dropped: unreachable, queue full, or queued when the connection broke. */
  dropped: number;
}

export interface StreamStatus extends Readonly<StreamCounters> {
  readonly state: StreamState;
  /** The peer accepted the current connection's hello. */
  readonly accepted: boolean;
  /** The socket refused more data; writing resumes on 'drain'. */
  readonly blocked: boolean;
  /**
   * Bytes queued here plus bytes the socket has buffered. Invariant: a
   * message is queued only if this stays <= maxQueueBytes (the hello and
   * pings may add a few bytes more).
   */
  readonly pendingBytes: number;
  readonly rttSeconds: number | undefined;
}

export class PeerStream {
  readonly peer: NodeId;
  private address: PeerAddress;
  private readonly ctx: StreamContext;
  private state: StreamState = "idle";
  private socket: Socket | null = null;
  private reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
  /** The peer accepted the current connection. */
  private accepted = false;
  /** Messages were handed to the current connection's socket (and are lost if it breaks). */
  private wroteMessages = false;
  /** Frames not yet handed to the socket. Invariant: queuedBytes is the sum of their lengths. */
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  /** How many of the queued frames are messages (the rest are pings and the hello). */
  private queuedMessages = 0;
  /** socket.write returned false; nothing more is written until 'drain'. */
  private blocked = false;
  private flushHandle: NodeJS.Immediate | null = null;
  private dialTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly backoff: Backoff;
  private readonly rttEstimate = new RttEstimator();
  /** Set after a failure is logged at warn, so that repeated failures log at debug until the peer is back. */
  private down = false;
  private lastRejectReason = "";
  private readonly counters: StreamCounters = { dials: 0, connects: 0, writes: 0, messagesWritten: 0, bytesWritten: 0, dropped: 0 };

  constructor(peer: NodeId, address: PeerAddress, ctx: StreamContext) {
    this.peer = peer;
    this.address = address;
    this.ctx = ctx;
    this.backoff = new Backoff(ctx.timing.backoffInitialMs, ctx.timing.backoffMaxMs, ctx.random);
  }

  start(): void {
    if (this.state === "idle") this.dial();
  }

  /** Queues one encoded message frame, or drops it. Never blocks, never throws for network reasons. */
  send(frame: Uint8Array): void {
    switch (this.state) {
      case "idle":
        this.drop(1, "notStarted");
        return;
      case "backoff":
      case "removed":
        this.drop(1, "unreachable");
        return;
      case "closed":
        return;
      case "dialing":
      case "connected":
        if (frame.byteLength - FRAME_HEADER_BYTES > this.ctx.maxFrameBytes) {
          this.ctx.logger.warn({ peer: this.peer, bytes: frame.byteLength, limit: this.ctx.maxFrameBytes }, "message exceeds maxFrameBytes");
          this.drop(1, "tooLarge");
          return;
        }
        if (this.pendingBytes + frame.byteLength > this.ctx.maxQueueBytes) {
          this.drop(1, "queueFull");
          return;
        }
        this.enqueue(frame, true);
    }
  }

  /** Points the stream at a new address: the current connection is closed and the new one dialled at once. */
  setAddress(address: PeerAddress): void {
    this.address = address;
    this.rttEstimate.reset();
    if (this.state === "idle" || this.state === "removed" || this.state === "closed") return;
    this.teardown("peer URL changed", false);
    this.clearRetry();
    this.backoff.reset();
    this.dial();
  }

  /** Closes the connection for good and drops whatever is queued, without reporting it. */
  close(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.clearRetry();
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedMessages = 0;
    this.teardown("stream closed", false);
  }

  get rttSeconds(): number | undefined {
    return this.rttEstimate.seconds;
  }

  status(): StreamStatus {
    return { ...this.counters, state: this.state, accepted: this.accepted, blocked: this.blocked, pendingBytes: this.pendingBytes, rttSeconds: this.rttEstimate.seconds };
  }

  private get pendingBytes(): number {
    return this.queuedBytes + (this.socket?.writableLength ?? 0);
  }

  private drop(count: number, reason: DropReason): void {
    this.counters.dropped += count;
    this.ctx.dropped(this.peer, count, reason);
  }

  private enqueue(frame: Uint8Array, isMessage: boolean): void {
    this.queue.push(frame);
    this.queuedBytes += frame.byteLength;
    if (isMessage) this.queuedMessages++;
    // One write per event-loop turn: everything queued until the check phase
    // goes out together.
    if (this.flushHandle === null && this.state === "connected" && !this.blocked) {
      this.flushHandle = setImmediate(this.write);
    }
  }

  /** Writes the queued frames now (see Transport.flush). */
  flush(): void {
    if (this.flushHandle === null) return;
    clearImmediate(this.flushHandle);
    this.write();
  }

  private readonly write = (): void => {
    this.flushHandle = null;
    const socket = this.socket;
    if (socket === null || this.state !== "connected" || this.blocked || this.queue.length === 0) return;
    const batch = this.queue.length === 1 && this.queue[0] !== undefined ? this.queue[0] : Buffer.concat(this.queue, this.queuedBytes);
    this.counters.writes++;
    this.counters.messagesWritten += this.queuedMessages;
    if (this.queuedMessages > 0) this.wroteMessages = true;
    this.counters.bytesWritten += batch.byteLength;
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedMessages = 0;
    if (!socket.write(batch)) this.blocked = true;
  };

  private dial(): void {
    const { host, port } = this.address;
    const { timing } = this.ctx;
    this.state = "dialing";
    this.counters.dials++;
    this.accepted = false;
    this.wroteMessages = false;
    this.blocked = false;
    this.reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
    const socket = connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: timing.idleTimeoutMs });
    this.socket = socket;
    this.dialTimer = setTimeout(() => {
      this.teardown(`no connection after ${timing.dialTimeoutMs} ms`, true);
    }, timing.dialTimeoutMs);
    socket.on("connect", () => {
      if (socket === this.socket) this.onConnect(socket);
    });
    socket.on("data", (chunk: Buffer) => {
      if (socket !== this.socket) return;
      const err = this.reader.push(chunk, (payload) => this.onFrame(payload));
      if (err !== null) this.teardown(`peer sent a bad frame: ${describeFramingError(err)}`, true);
    });
    socket.on("drain", () => {
      if (socket !== this.socket) return;
      this.blocked = false;
      this.write();
    });
    socket.on("error", (err: Error) => {
      if (socket === this.socket) this.teardown(err.message, true);
    });
    socket.on("close", () => {
      if (socket === this.socket) this.teardown("connection closed by peer", true);
    });
  }

  private onConnect(socket: Socket): void {
    const { timing, self, clusterId, advertiseUrl } = this.ctx;
    this.clearTimer("dialTimer");
    this.state = "connected";
    socket.setNoDelay(true);
    this.idleTimer = setTimeout(() => {
      this.teardown(`no frame from peer for ${timing.idleTimeoutMs} ms`, true);
    }, timing.idleTimeoutMs);
    this.pingTimer = setInterval(this.ping, timing.pingIntervalMs);
    // The hello goes first, ahead of anything queued while dialling; a ping
    // right behind it gives an RTT sample without waiting a whole interval.
    const hello = encodeHello({ kind: "stream", clusterId, from: self, to: this.peer, ...(advertiseUrl === undefined ? {} : { peerUrl: advertiseUrl }) });
    this.queue.unshift(hello);
    this.queuedBytes += hello.byteLength;
    this.enqueue(encodePing(monotonicMicros()), false);
  }

  private readonly ping = (): void => {
    if (this.state !== "connected") return;
    const frame = encodePing(monotonicMicros());
    // Pings queue behind a blocked socket too: the pong then measures what a
    // message experiences, and a peer that reads slowly still answers, so the
    // idle timeout tells a slow peer from a dead one.
    if (this.pendingBytes + frame.byteLength <= this.ctx.maxQueueBytes) this.enqueue(frame, false);
  };

  /** Returns false once the connection is torn down, to stop reading. */
  private onFrame(payload: Uint8Array): boolean {
    this.idleTimer?.refresh();
    const frame = decodeFrame(payload);
    if (isDecodeError(frame)) {
      this.teardown(`peer sent a malformed frame: ${frame.message}`, true);
      return false;
    }
    switch (frame.kind) {
      case "accept":
        if (this.accepted) break;
        this.accepted = true;
        this.counters.connects++;
        this.backoff.reset();
        this.lastRejectReason = "";
        this.ctx.logger.info({ peer: this.peer, address: this.address }, this.down ? "peer is reachable again" : "connected to peer");
        this.down = false;
        return true;
      case "pong": {
        const seconds = (monotonicMicros() - frame.micros) / 1e6;
        if (seconds < 0) return true; // not a ping of ours
        this.rttEstimate.observe(seconds);
        this.ctx.rtt(this.peer, seconds);
        return true;
      }
      case "reject": {
        if (frame.reason === "RemovedMember") {
          // The peer's committed state says this member is gone; redialling
          // cannot change that (member ids are never reused).
          this.ctx.logger.warn({ peer: this.peer, address: this.address, reason: frame.reason }, `peer rejected the connection: ${frame.detail}; not redialling it`);
          this.down = true;
          this.teardown(`rejected: ${frame.reason}`, false);
          this.state = "removed";
          this.ctx.removedByPeer(this.peer);
          return false;
        }
        // A misconfiguration that persists: warn once per reason, then redial quietly.
        const level = frame.reason === this.lastRejectReason ? "debug" : "warn";
        this.lastRejectReason = frame.reason;
        this.ctx.logger[level]({ peer: this.peer, address: this.address, reason: frame.reason }, `peer rejected the connection: ${frame.detail}`);
        this.down = true;
        this.teardown(`rejected: ${frame.reason}`, true);
        return false;
      }
      default:
        break;
    }
    this.teardown(`peer sent an unexpected ${frame.kind} frame`, true);
    return false;
  }

  /**
   * Drops the current connection, if any. Messages still queued are counted
   * as dropped; those already written may be lost too, so the peer is
   * reported unreachable. With `retry`, the failure is logged and the next
   * dial scheduled.
   */
  private teardown(why: string, retry: boolean): void {
    const socket = this.socket;
    if (socket === null) return;
    const wasAccepted = this.accepted;
    this.socket = null;
    this.accepted = false;
    this.blocked = false;
    this.clearTimer("dialTimer");
    this.clearTimer("idleTimer");
    this.clearTimer("pingTimer");
    if (this.flushHandle !== null) clearImmediate(this.flushHandle);
    this.flushHandle = null;
    socket.destroy();
    const lost = this.queuedMessages;
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedMessages = 0;
    if (this.state === "closed") return;
    if (lost > 0) this.drop(lost, "connectionLost");
    else if (this.wroteMessages) this.ctx.unreachable(this.peer);
    if (!retry) return;

    const fields = { peer: this.peer, address: this.address, reason: why };
    if (wasAccepted) this.ctx.logger.warn(fields, "lost connection to peer");
    else if (!this.down) this.ctx.logger.warn(fields, "cannot connect to peer");
    else this.ctx.logger.debug(fields, "cannot connect to peer");
    this.down = true;

    this.state = "backoff";
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state === "backoff") this.dial();
    }, this.backoff.next());
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private clearTimer(name: "dialTimer" | "idleTimer" | "pingTimer"): void {
    const t = this[name];
    if (t !== null) clearTimeout(t);
    this[name] = null;
  }
}
