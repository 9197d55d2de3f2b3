// The listening side of one connection: checks the hello, then delivers the
// dialer's messages (a stream) or its one snapshot, or answers its membership
// query. Anything malformed closes this connection, with a log line, and
// nothing else.
//
// Who may connect (etcd's rafthttp handlers do the same):
// - a member removed by a committed change never (RemovedMember), whatever
//   else is true: its id is gone for good;
// - a peer, that is a member of this member's directory, or a remote added
//   earlier;
// - a member of the same cluster that this member does not know yet, if its
//   hello names its peer URL: it becomes a remote peer, so that replies reach
//   it. This member's directory may lag behind the dialer's (it is catching
//   up, or installed an older snapshot), and refusing the leader it does not
//   know yet would keep it from ever learning of it.

import type { Socket } from "node:net";
import { isDecodeError } from "../raft/codec.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { FrameReader, describeFramingError } from "./frame-reader.ts";
import type { Logger } from "./observability.ts";
import type { PeerResult } from "./peer-error.ts";
import { describePeerError } from "./peer-error.ts";
import type { Hello, MemberHello, QueryHello, QueryReply, RejectReason } from "./wire.ts";
import {
  FRAME_HEADER_BYTES,
  MAX_CONTROL_FRAME_BYTES,
  PROTOCOL_VERSION,
  decodeFrame,
  encodeAccept,
  encodePong,
  encodeQueryReply,
  encodeReject,
  encodeSnapAck,
} from "./wire.ts";

export interface InboundContext {
  readonly self: NodeId;
  readonly clusterId: string;
  readonly logger: Logger;
  readonly maxFrameBytes: number;
  readonly maxSnapshotBytes: number;
  /** A connection with no incoming bytes for this long is closed (the dialer pings every second). */
  readonly idleTimeoutMs: number;
  isPeer(id: NodeId): boolean;
  /** The id was removed from the cluster by a committed change. */
  isRemoved(id: NodeId): boolean;
  /** Makes a dialer that is not a peer a remote peer, reached at `url`. */
  addRemote(id: NodeId, url: string): PeerResult;
  deliver(m: Message): void;
  /** A message stream from `peer` was accepted. */
  streamOpened(conn: InboundConnection): void;
  /** The answer to a membership query. */
  query(): QueryReply;
  closed(conn: InboundConnection): void;
}

/** How long a rejected dialer gets to read the reject frame and hang up. */
const lingerMs = 1000;
/** Bound on pongs buffered for a dialer that does not read them. */
const maxUnreadPongBytes = 64 * 1024;

type Phase = "hello" | "stream" | "snapshot" | "done";

export class InboundConnection {
  private readonly socket: Socket;
  private readonly ctx: InboundContext;
  private readonly reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
  private phase: Phase = "hello";
  /** The dialer, once its hello is accepted. */
  private from: NodeId | null = null;
  private readonly remote: string;

  constructor(socket: Socket, ctx: InboundContext) {
    this.socket = socket;
    this.ctx = ctx;
    this.remote = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? 0}`;
    socket.setNoDelay(true);
    socket.setTimeout(ctx.idleTimeoutMs, () => {
      this.fail(`no data for ${ctx.idleTimeoutMs} ms`, "debug");
    });
    socket.on("data", (chunk: Buffer) => {
      this.onData(chunk);
    });
    socket.on("error", (err) => {
      ctx.logger.debug({ remote: this.remote, peer: this.from, err: err.message }, "peer connection error");
    });
    socket.on("close", () => {
      this.phase = "done";
      ctx.closed(this);
    });
  }

  /** The dialer, once its hello was accepted. */
  get peer(): NodeId | null {
    return this.from;
  }

  close(why: string): void {
    if (this.phase === "done") return;
    this.ctx.logger.debug({ remote: this.remote, peer: this.from }, `closing peer connection: ${why}`);
    this.phase = "done";
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    // After a reject or a snapshot ack, input is read and discarded until the
    // dialer hangs up: closing with unread input would reset the connection
    // and could destroy the frame just sent.
    if (this.phase === "done") return;
    const err = this.reader.push(chunk, (payload) => this.onFrame(payload));
    if (err !== null) this.fail(describeFramingError(err));
  }

  /** Returns false once the connection is closed, to stop reading. */
  private onFrame(payload: Uint8Array): boolean {
    const frame = decodeFrame(payload);
    if (isDecodeError(frame)) {
      this.fail(`malformed frame: ${frame.message} at byte ${frame.offset}`);
      return false;
    }
    switch (this.phase) {
      case "hello":
        if (frame.kind === "unsupportedHello") {
          this.reject("UnsupportedVersion", `protocol version ${frame.version}, but this member speaks ${PROTOCOL_VERSION}`, null);
          return false;
        }
        if (frame.kind !== "hello") {
          this.fail(`expected a hello, got a ${frame.kind} frame`);
          return false;
        }
        return this.onHello(frame.hello);
      case "stream":
        if (frame.kind === "message") return this.onMessage(frame.message);
        if (frame.kind === "ping") {
          // Pongs are all a listener writes; a dialer that does not read them is broken.
          if (this.socket.writableLength > maxUnreadPongBytes) {
            this.fail(`peer does not read its pongs (${this.socket.writableLength} bytes unread)`);
            return false;
          }
          this.socket.write(encodePong(frame.micros));
          return true;
        }
        this.fail(`unexpected ${frame.kind} frame on a message stream`);
        return false;
      case "snapshot":
        if (frame.kind !== "message" || frame.message.type !== "snap") {
          this.fail(`expected a snapshot message, got a ${frame.kind === "message" ? frame.message.type : frame.kind} frame`);
          return false;
        }
        if (!this.onMessage(frame.message)) return false;
        this.phase = "done";
        this.socket.end(encodeSnapAck());
        this.lingerThenDestroy();
        return false;
      case "done":
        return false;
    }
  }

  private onHello(h: Hello): boolean {
    return h.kind === "query" ? this.onQuery(h) : this.onMemberHello(h);
  }

  private onMemberHello(h: MemberHello): boolean {
    const { self, clusterId } = this.ctx;
    if (h.clusterId !== clusterId) {
      this.reject("ClusterMismatch", `cluster id ${JSON.stringify(h.clusterId)} does not match this member's ${JSON.stringify(clusterId)}`, h);
      return false;
    }
    if (h.to !== self) {
      this.reject("WrongMember", `connection meant for member ${h.to}, but this is member ${self}`, h);
      return false;
    }
    if (this.ctx.isRemoved(h.from)) {
      this.reject("RemovedMember", `member ${h.from} was removed from the cluster`, h);
      return false;
    }
    if (!this.ctx.isPeer(h.from)) {
      if (h.from === self || h.peerUrl === undefined) {
        this.reject("UnknownMember", `member ${h.from} is not a peer of member ${self}`, h);
        return false;
      }
      const added = this.ctx.addRemote(h.from, h.peerUrl);
      if (!added.ok) {
        this.reject("UnknownMember", `member ${h.from} is not a peer of member ${self}, and cannot be added as a remote: ${describePeerError(added.error)}`, h);
        return false;
      }
    }
    this.from = h.from;
    this.phase = h.kind;
    this.reader.maxFrameBytes = h.kind === "stream" ? this.ctx.maxFrameBytes : this.ctx.maxSnapshotBytes;
    this.socket.write(encodeAccept());
    if (h.kind === "stream") {
      this.ctx.logger.debug({ remote: this.remote, peer: h.from }, "accepted message stream");
      this.ctx.streamOpened(this);
    }
    return true;
  }

  /** Answers, then closes: a query connection carries one reply and nothing else. */
  private onQuery(h: QueryHello): boolean {
    const { clusterId } = this.ctx;
    if (h.clusterId !== "" && h.clusterId !== clusterId) {
      this.reject("ClusterMismatch", `cluster id ${JSON.stringify(h.clusterId)} does not match this member's ${JSON.stringify(clusterId)}`, h);
      return false;
    }
    const reply = this.ctx.query();
    // The callback may have stopped the transport, closing this connection.
    if (this.phase === "done") return false;
    const frame = encodeQueryReply(reply);
    const bytes = frame.byteLength - FRAME_HEADER_BYTES;
    if (bytes > this.ctx.maxFrameBytes) {
      // The dialer sees the connection close without a reply.
      this.fail(`membership query reply of ${bytes} bytes exceeds maxFrameBytes (${this.ctx.maxFrameBytes})`);
      return false;
    }
    this.ctx.logger.debug({ remote: this.remote, cluster: h.clusterId, bootstrapped: reply.bootstrapped, bytes }, "answered membership query");
    // Like a reject: input is discarded until the dialer hangs up.
    this.phase = "done";
    this.socket.end(frame);
    this.lingerThenDestroy();
    return false;
  }

  private onMessage(m: Message): boolean {
    // The hello authenticated the dialer (as far as a cluster id does); a
    // frame claiming another sender or recipient is a bug or an attack.
    if (m.from !== this.from || m.to !== this.ctx.self) {
      this.fail(`${m.type} message from ${m.from} to ${m.to} on a connection from ${String(this.from)} to ${this.ctx.self}`);
      return false;
    }
    this.ctx.deliver(m);
    // deliver() may have removed the peer, closing this connection.
    return this.phase !== "done";
  }

  private reject(reason: RejectReason, detail: string, h: Hello | null): void {
    this.ctx.logger.warn(
      { remote: this.remote, peer: h === null || h.kind === "query" ? undefined : h.from, kind: h?.kind, cluster: h?.clusterId, reason },
      `rejected peer connection: ${detail}`,
    );
    this.phase = "done";
    this.socket.end(encodeReject(reason, detail));
    this.lingerThenDestroy();
  }

  private lingerThenDestroy(): void {
    this.socket.setTimeout(lingerMs, () => this.socket.destroy());
  }

  private fail(why: string, level: "warn" | "debug" = "warn"): void {
    if (this.phase === "done") return;
    this.ctx.logger[level]({ remote: this.remote, peer: this.from }, `closing peer connection: ${why}`);
    this.phase = "done";
    this.socket.destroy();
  }
}
