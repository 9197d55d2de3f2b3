// Sends one snapshot over its own short-lived connection, so that many MiB of
// snapshot never queue ahead of heartbeats and appends on the message stream
// (etcd's rafthttp does the same). The listener acknowledges once it has
// handed the snapshot to Raft; only then is the send a success.

import { connect } from "node:net";
import type { Socket } from "node:net";
import { isDecodeError } from "../raft/codec.ts";
import type { NodeId } from "../raft/types.ts";
import { FrameReader, describeFramingError } from "./frame-reader.ts";
import type { PeerAddress } from "./peer-url.ts";
import { MAX_CONTROL_FRAME_BYTES, decodeFrame, encodeHello } from "./wire.ts";

export interface SnapshotSendOptions {
  readonly self: NodeId;
  readonly peer: NodeId;
  readonly clusterId: string;
  /** This member's peer URL, sent in the hello; absent if it advertises none. */
  readonly advertiseUrl?: string;
  readonly address: PeerAddress;
  /** The encoded message frame carrying the snapshot. */
  readonly frame: Uint8Array;
  readonly dialTimeoutMs: number;
  /** The send fails if the connection makes no progress (no bytes written or read) for this long. */
  readonly idleTimeoutMs: number;
  /** Called exactly once, unless the send is aborted. `why` says what failed. */
  done(failed: boolean, why: string): void;
}

export class SnapshotSend {
  private readonly opts: SnapshotSendOptions;
  private readonly socket: Socket;
  private readonly reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
  private finished = false;
  private readonly dialTimer: NodeJS.Timeout;

  constructor(opts: SnapshotSendOptions) {
    this.opts = opts;
    const { host, port } = opts.address;
    const socket = connect({ host, port, noDelay: true });
    this.socket = socket;
    this.dialTimer = setTimeout(() => {
      this.finish(true, `no connection after ${opts.dialTimeoutMs} ms`);
    }, opts.dialTimeoutMs);
    socket.on("connect", () => {
      clearTimeout(this.dialTimer);
      socket.setNoDelay(true);
      socket.setTimeout(opts.idleTimeoutMs, () => {
        this.finish(true, `no progress for ${opts.idleTimeoutMs} ms`);
      });
      socket.cork();
      const url = opts.advertiseUrl;
      socket.write(encodeHello({ kind: "snapshot", clusterId: opts.clusterId, from: opts.self, to: opts.peer, ...(url === undefined ? {} : { peerUrl: url }) }));
      socket.write(opts.frame);
      socket.uncork();
    });
    socket.on("data", (chunk: Buffer) => {
      const err = this.reader.push(chunk, (payload) => this.onFrame(payload));
      if (err !== null) this.finish(true, `peer sent a bad frame: ${describeFramingError(err)}`);
    });
    socket.on("error", (err: Error) => {
      this.finish(true, err.message);
    });
    socket.on("close", () => {
      this.finish(true, "connection closed before the peer acknowledged the snapshot");
    });
  }

  /** Stops the send without reporting an outcome. */
  abort(): void {
    this.finished = true;
    clearTimeout(this.dialTimer);
    this.socket.destroy();
  }

  get bytes(): number {
    return this.opts.frame.byteLength;
  }

  private onFrame(payload: Uint8Array): boolean {
    const frame = decodeFrame(payload);
    if (isDecodeError(frame)) {
      this.finish(true, `peer sent a malformed frame: ${frame.message}`);
      return false;
    }
    switch (frame.kind) {
      case "accept":
        return true;
      case "snapAck":
        this.finish(false, "");
        return false;
      case "reject":
        this.finish(true, `peer rejected the connection: ${frame.reason}: ${frame.detail}`);
        return false;
      default:
        this.finish(true, `peer sent an unexpected ${frame.kind} frame`);
        return false;
    }
  }

  private finish(failed: boolean, why: string): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.dialTimer);
    // After the ack nothing is left to read: the listener has closed its side.
    this.socket.destroy();
    this.opts.done(failed, why);
  }
}
