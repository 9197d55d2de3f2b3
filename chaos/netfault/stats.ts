// Counters per directed link and the log of rule changes: what a chaos
// report shows next to the history it checked.

import type { CutMode, DelaySpec } from "./rules.ts";

/** The `from` of connections whose first frame named no known member (garbage, unknown id). */
export const UNATTRIBUTED = "?";
/** The `from` of membership queries, which name no member. */
export const QUERY_SOURCE = "(query)";

export interface LinkCounters {
  /** Connections forwarded to the target. */
  connections: number;
  /** New connections reset by a cut. */
  refused: number;
  /** New connections whose bytes were discarded by a cut. */
  blackholed: number;
  /** Open connections reset when a cut took effect. */
  closedByCut: number;
  /** Blackholed connections reset when their cut was lifted, so that the dialer redials a clean stream. */
  closedByHeal: number;
  /** Connections reset because their delay queue exceeded its bound. */
  closedByOverflow: number;
  /** Connections closed because the target's real port did not answer. */
  upstreamFailures: number;
  /** Bytes from the dialer written to the target (its Raft messages, pings, the hello). */
  bytesForwarded: number;
  /** Bytes from the target back to the dialer (accept, pong, snapAck, reject, queryReply). */
  bytesReturned: number;
  /** Bytes from the dialer discarded by a blackhole, delayed bytes dropped with it included. */
  bytesDiscarded: number;
}

export interface LinkStats extends Readonly<LinkCounters> {
  /** A member name, UNATTRIBUTED or QUERY_SOURCE. */
  readonly from: string;
  readonly to: string;
}

export function emptyCounters(): LinkCounters {
  return {
    connections: 0,
    refused: 0,
    blackholed: 0,
    closedByCut: 0,
    closedByHeal: 0,
    closedByOverflow: 0,
    upstreamFailures: 0,
    bytesForwarded: 0,
    bytesReturned: 0,
    bytesDiscarded: 0,
  };
}

export const counterNames = Object.keys(emptyCounters()) as readonly (keyof LinkCounters)[];

/** A rule change, as the caller asked for it. */
export type FaultChange =
  | { readonly type: "partition"; readonly groups: readonly (readonly string[])[]; readonly mode: CutMode }
  | { readonly type: "isolate"; readonly member: string; readonly mode: CutMode }
  | { readonly type: "cutOneWay"; readonly from: string; readonly to: string; readonly mode: CutMode }
  | { readonly type: "delay"; readonly from: string; readonly to: string; readonly delay: DelaySpec }
  | { readonly type: "heal" };

export interface FaultEvent {
  /** Wall-clock time (ms since the epoch), to line up with member logs. */
  readonly at: number;
  /** Milliseconds since the network started, on the monotonic clock. */
  readonly elapsedMs: number;
  readonly change: FaultChange;
  /** Open connections this change reset (cut, or a lifted blackhole). */
  readonly closed: number;
  /** Open connections this change started to blackhole. */
  readonly blackholed: number;
}
