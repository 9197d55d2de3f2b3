// What the transport reports to the rest of the node: log lines and metrics.
// Both are optional; the defaults discard everything.

import type { NodeId } from "../raft/types.ts";

/** The subset of a pino logger the transport uses: `logger.warn({ peer }, "message")`. */
export interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export interface TransportMetrics {
  /** One round-trip sample on the stream to `peer` (ping to pong, queueing included). */
  rtt(peer: NodeId, seconds: number): void;
  /** One message to `peer` was dropped: peer unreachable, queue full or frame too large. */
  sentFailure(peer: NodeId): void;
}

const discard = (): void => undefined;

export const silentLogger: Logger = { info: discard, warn: discard, debug: discard };

export const noMetrics: TransportMetrics = { rtt: discard, sentFailure: discard };
