// The dialling side of a membership query (see wire.ts): a member starting
// with an empty data directory asks a peer whether the cluster already exists
// and, if so, gets the peer's opaque membership info, from which it learns its
// own member id (etcd's GetClusterFromRemotePeers). One short-lived
// connection per query: dial, hello, one reply frame, close. It needs no
// Transport, because the asking member has no identity to run one with yet.

import { connect } from "node:net";
import { isDecodeError } from "../raft/codec.ts";
import { FrameReader, describeFramingError } from "./frame-reader.ts";
import { isInvalidPeerUrl, parsePeerUrl } from "./peer-url.ts";
import { transportDefaults } from "./transport.ts";
import { decodeFrame, encodeHello } from "./wire.ts";

export interface QueryOptions {
  /** The cluster the asker expects; a peer of another cluster rejects the query. Empty or absent: any cluster. */
  readonly clusterId?: string;
  /** Bound on the whole query, dial included. */
  readonly timeoutMs: number;
  /** Largest reply payload accepted. Default transportDefaults.maxFrameBytes, the most a default listener sends. */
  readonly maxReplyBytes?: number;
}

/**
 * Why a query got no answer:
 * - Unreachable: no connection, or it broke (reset) before the reply.
 * - Rejected: the peer refused the query; the message names its reason (e.g. ClusterMismatch).
 * - Timeout: no reply within timeoutMs, dial included.
 * - Protocol: the peer answered with something other than a reply, or closed
 *   without answering, as a member predating queries does.
 */
export interface QueryError {
  readonly type: "Unreachable" | "Rejected" | "Timeout" | "Protocol";
  readonly message: string;
}

export type QueryResult =
  | { readonly ok: true; readonly bootstrapped: false }
  | { readonly ok: true; readonly bootstrapped: true; readonly info: Uint8Array }
  | { readonly ok: false; readonly error: QueryError };

/**
 * Asks the member at `url` (a peer URL, as for Transport) whether its cluster
 * is bootstrapped. Never rejects for network reasons: every failure is a
 * QueryResult. An invalid URL or timeout is a bug in the caller and throws.
 */
export function queryPeer(url: string, opts: QueryOptions): Promise<QueryResult> {
  const address = parsePeerUrl(url);
  if (isInvalidPeerUrl(address)) throw new Error(`queryPeer: invalid peer URL ${JSON.stringify(url)}: ${address.reason}`);
  const { timeoutMs } = opts;
  const maxReplyBytes = opts.maxReplyBytes ?? transportDefaults.maxFrameBytes;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new Error(`queryPeer: timeoutMs must be a positive number, got ${timeoutMs}`);
  if (!(Number.isInteger(maxReplyBytes) && maxReplyBytes > 0)) throw new Error(`queryPeer: maxReplyBytes must be a positive integer, got ${maxReplyBytes}`);

  return new Promise((resolve) => {
    const where = `${address.host}:${address.port}`;
    const socket = connect({ host: address.host, port: address.port, noDelay: true });
    const reader = new FrameReader(maxReplyBytes);
    let connected = false;
    let settled = false;
    const finish = (result: QueryResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const fail = (type: QueryError["type"], message: string): void => {
      finish(failure(type, `${where}: ${message}`));
    };
    const timer = setTimeout(() => {
      fail("Timeout", connected ? `no reply within ${timeoutMs} ms` : `no connection within ${timeoutMs} ms`);
    }, timeoutMs);

    socket.on("connect", () => {
      connected = true;
      socket.write(encodeHello({ kind: "query", clusterId: opts.clusterId ?? "" }));
    });
    socket.on("data", (chunk: Buffer) => {
      const err = reader.push(chunk, (payload) => {
        finish(toResult(payload, where));
        return false;
      });
      if (err !== null) fail("Protocol", `peer sent a bad frame: ${describeFramingError(err)}`);
    });
    socket.on("error", (err: Error) => {
      fail("Unreachable", err.message);
    });
    socket.on("close", () => {
      fail(connected ? "Protocol" : "Unreachable", "connection closed without a reply");
    });
  });
}

function failure(type: QueryError["type"], message: string): QueryResult {
  return { ok: false, error: { type, message } };
}

/** The one reply frame, as a result; anything but a reply or a reject is a protocol error. */
function toResult(payload: Uint8Array, where: string): QueryResult {
  const frame = decodeFrame(payload);
  if (isDecodeError(frame)) return failure("Protocol", `${where}: peer sent a malformed frame: ${frame.message} at byte ${frame.offset}`);
  switch (frame.kind) {
    case "queryReply":
      return frame.reply.bootstrapped ? { ok: true, bootstrapped: true, info: frame.reply.info } : { ok: true, bootstrapped: false };
    case "reject":
      return failure("Rejected", `${where}: peer rejected the query: ${frame.reason}: ${frame.detail}`);
    default:
      return failure("Protocol", `${where}: peer sent an unexpected ${frame.kind} frame`);
  }
}
