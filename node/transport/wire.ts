// The peer protocol on the wire.
//
// A connection carries frames: [u32 big-endian length][payload], where the
// length counts the payload bytes only. The payload's first byte is the frame
// kind; the rest is encoded with the Raft codec's Writer/Reader (varints,
// length-prefixed strings and bytes):
//
//   hello       1  u32 magic "CNCD", uint version, u8 stream kind
//                  (0 stream, 1 snapshot, 2 query),
//                  str cluster id, str from, str to,
//                  str from's peer URL ("" for none)      dialer → listener, first frame
//   accept      2  (empty)                                 listener → dialer
//   reject      3  str reason, str detail                  listener → dialer, then close
//   message     4  the codec's encoded Message             dialer → listener
//   ping        5  uint sender's monotonic clock, µs       dialer → listener
//   pong        6  the ping's value, echoed                listener → dialer
//   snapAck     7  (empty)                                 listener → dialer, snapshot received
//   queryReply  8  bool bootstrapped, then if true:        listener → dialer, then close
//                  bytes info (opaque to the transport)
//
// Raft traffic flows one way on a connection, from the member that dialled:
// each member dials every peer and sends through that connection only. The
// listener sends control frames back (accept, reject, pong, snapAck, queryReply).
//
// A query connection is how a member starting with an empty data directory
// asks a peer whether the cluster exists, and what it looks like (etcd's
// GetClusterFromRemotePeers). Such a member may not know its own member id,
// so the hello's from, to and peer URL are empty, and the listener does not
// check them; an empty cluster id means "any cluster", and a non-empty one must
// match. The listener answers with one queryReply (or a reject) and closes;
// there is no accept. The reply's payload is at most the listener's
// maxFrameBytes.
//
// The query kind was added without a version bump, since stream and snapshot
// connections are unchanged: a listener that predates it closes a query
// connection without answering, which the dialer reports as a protocol error.
//
// Version 2 added the dialer's peer URL to the hello (etcd's X-PeerURLs
// header): a listener whose member directory does not list the dialer yet
// (it is behind, or installed an older snapshot) answers it at that URL
// instead of refusing it. Members of versions 1 and 2 refuse each other's
// hellos (UnsupportedVersion).
//
// The magic and version come first in the hello, and every future version
// must keep them there, so that a listener can name what it is talking to
// before it understands the rest.

import type { DecodeError } from "../raft/codec.ts";
import { Writer, decodeWith, readMessage, writeMessage } from "../raft/codec.ts";
import type { Reader } from "../raft/codec.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { entrySize, proposedSize } from "../raft/types.ts";

export const PROTOCOL_MAGIC = 0x434e4344; // "CNCD"
export const PROTOCOL_VERSION = 2;
export const FRAME_HEADER_BYTES = 4;
/** Limit on frames before the hello is accepted, and on every frame a listener sends except a queryReply. */
export const MAX_CONTROL_FRAME_BYTES = 4096;

/** What a connection is for: the long-lived message stream, one snapshot, or one membership query. */
export type StreamKind = "stream" | "snapshot" | "query";

/** Indexed by the stream kind's wire value. */
const streamKinds = ["stream", "snapshot", "query"] as const satisfies readonly StreamKind[];

/** Opens a member's message stream or snapshot connection to another member. */
export interface MemberHello {
  readonly kind: "stream" | "snapshot";
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  /**
   * Where `from` listens for peers, so that a listener that does not know it
   * yet can answer it. Absent: the dialer advertises none (empty on the wire).
   */
  readonly peerUrl?: string;
}

/**
 * Opens a membership query. The dialer names no member (from, to and the
 * peer URL go out empty and are ignored on receipt); an empty clusterId
 * means any cluster.
 */
export interface QueryHello {
  readonly kind: "query";
  readonly clusterId: string;
}

export type Hello = MemberHello | QueryHello;

/** A listener's answer to a membership query; `info` is opaque to the transport. */
export type QueryReply = { readonly bootstrapped: false } | { readonly bootstrapped: true; readonly info: Uint8Array };

/**
 * Why a listener refused a connection. RemovedMember: a committed change
 * removed the dialer from the cluster, for good (etcd answers 410 Gone).
 */
export type RejectReason = "UnsupportedVersion" | "ClusterMismatch" | "WrongMember" | "UnknownMember" | "RemovedMember";

export type Frame =
  | { readonly kind: "hello"; readonly hello: Hello }
  /** A hello from a different protocol version; its body is not parsed. */
  | { readonly kind: "unsupportedHello"; readonly version: number }
  | { readonly kind: "accept" }
  /** `reason` is a RejectReason from this version; a newer peer may send others. */
  | { readonly kind: "reject"; readonly reason: string; readonly detail: string }
  | { readonly kind: "message"; readonly message: Message }
  | { readonly kind: "ping"; readonly micros: number }
  | { readonly kind: "pong"; readonly micros: number }
  | { readonly kind: "snapAck" }
  | { readonly kind: "queryReply"; readonly reply: QueryReply };

const code = { hello: 1, accept: 2, reject: 3, message: 4, ping: 5, pong: 6, snapAck: 7, queryReply: 8 } as const;

/** Writes one frame; `sizeHint` (payload bytes) avoids regrowing the buffer for large messages. */
function frame(kind: number, sizeHint: number, body?: (w: Writer) => void): Uint8Array {
  const w = new Writer(FRAME_HEADER_BYTES + 1 + sizeHint);
  w.u32(0); // patched below, once the length is known
  w.u8(kind);
  body?.(w);
  const out = w.finish();
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(0, out.byteLength - FRAME_HEADER_BYTES);
  return out;
}

export function encodeHello(h: Hello): Uint8Array {
  const from = h.kind === "query" ? "" : h.from;
  const to = h.kind === "query" ? "" : h.to;
  const peerUrl = h.kind === "query" ? "" : (h.peerUrl ?? "");
  return frame(code.hello, 64 + 3 * (h.clusterId.length + from.length + to.length + peerUrl.length), (w) => {
    w.u32(PROTOCOL_MAGIC);
    w.uint(PROTOCOL_VERSION);
    w.u8(streamKinds.indexOf(h.kind));
    w.str(h.clusterId);
    w.str(from);
    w.str(to);
    w.str(peerUrl);
  });
}

export function encodeAccept(): Uint8Array {
  return frame(code.accept, 0);
}

export function encodeReject(reason: RejectReason, detail: string): Uint8Array {
  // Clipped so that the frame stays within MAX_CONTROL_FRAME_BYTES.
  const clipped = detail.length > 512 ? `${detail.slice(0, 509)}...` : detail;
  return frame(code.reject, 32 + 3 * clipped.length, (w) => {
    w.str(reason);
    w.str(clipped);
  });
}

export function encodePing(micros: number): Uint8Array {
  return frame(code.ping, 8, (w) => {
    w.uint(micros);
  });
}

export function encodePong(micros: number): Uint8Array {
  return frame(code.pong, 8, (w) => {
    w.uint(micros);
  });
}

export function encodeSnapAck(): Uint8Array {
  return frame(code.snapAck, 0);
}

/** The caller bounds the frame: its payload must fit the listener's maxFrameBytes. */
export function encodeQueryReply(reply: QueryReply): Uint8Array {
  return frame(code.queryReply, reply.bootstrapped ? 8 + reply.info.byteLength : 1, (w) => {
    w.bool(reply.bootstrapped);
    if (reply.bootstrapped) w.bytes(reply.info);
  });
}

/** Throws (a bug) for local message types, which never leave the node. */
export function encodeMessageFrame(m: Message): Uint8Array {
  return frame(code.message, messageSizeHint(m), (w) => {
    writeMessage(w, m);
  });
}

function messageSizeHint(m: Message): number {
  const ids = 3 * (m.from.length + m.to.length);
  switch (m.type) {
    case "app":
      return 48 + ids + m.entries.reduce((n, e) => n + entrySize(e), 0);
    case "propose":
      return 48 + ids + m.entries.reduce((n, e) => n + proposedSize(e), 0);
    case "snap": {
      const conf = m.snapshot.meta.conf;
      const members = [...conf.voters, ...conf.learners].reduce((n, id) => n + 3 * id.length + 4, 0);
      return 64 + ids + members + m.snapshot.data.byteLength;
    }
    case "readIndex":
    case "readIndexResp":
      return 48 + ids + m.context.byteLength;
    default:
      return 48 + ids;
  }
}

function readFrame(r: Reader): Frame {
  const kind = r.u8();
  switch (kind) {
    case code.hello: {
      const magic = r.u32();
      if (magic !== PROTOCOL_MAGIC) r.fail(`bad magic 0x${magic.toString(16)}: not a Concord peer`);
      const version = r.uint();
      if (version !== PROTOCOL_VERSION) {
        r.pos += r.remaining;
        return { kind: "unsupportedHello", version };
      }
      const stream = r.u8();
      const streamKind = streamKinds[stream] ?? r.fail(`unknown stream kind ${stream}`);
      const clusterId = r.str();
      const from = r.str() as NodeId;
      const to = r.str() as NodeId;
      const peerUrl = r.str();
      if (streamKind === "query") return { kind: "hello", hello: { kind: "query", clusterId } };
      return { kind: "hello", hello: { kind: streamKind, clusterId, from, to, ...(peerUrl === "" ? {} : { peerUrl }) } };
    }
    case code.accept:
      return { kind: "accept" };
    case code.reject:
      return { kind: "reject", reason: r.str(), detail: r.str() };
    case code.message:
      return { kind: "message", message: readMessage(r) };
    case code.ping:
      return { kind: "ping", micros: r.uint() };
    case code.pong:
      return { kind: "pong", micros: r.uint() };
    case code.snapAck:
      return { kind: "snapAck" };
    case code.queryReply:
      return { kind: "queryReply", reply: r.bool() ? { bootstrapped: true, info: r.bytes() } : { bootstrapped: false } };
    default:
      return r.fail(`unknown frame kind ${kind}`);
  }
}

/** Decodes one frame's payload (without the length prefix). Never throws on bad input. */
export function decodeFrame(payload: Uint8Array): Frame | DecodeError {
  // The codec copies byte fields with slice(), which on a Buffer (what
  // sockets deliver) is a view: decoded messages would pin whole receive
  // chunks and be Buffers. A plain view makes slice() copy.
  const plain = Buffer.isBuffer(payload) ? new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength) : payload;
  return decodeWith(plain, readFrame);
}
