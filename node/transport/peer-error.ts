// Why the transport could not add or change a peer: expected failures,
// returned as values.

import type { NodeId } from "../raft/types.ts";
import type { InvalidPeerUrl } from "./peer-url.ts";

export interface UnknownPeer {
  readonly type: "UnknownPeer";
  readonly peer: NodeId;
}

/** A dialer that is not a peer would become a remote, but `limit` remotes exist already. */
export interface TooManyRemotes {
  readonly type: "TooManyRemotes";
  readonly peer: NodeId;
  readonly limit: number;
}

export type PeerError = InvalidPeerUrl | UnknownPeer | TooManyRemotes;

export type PeerResult = { readonly ok: true } | { readonly ok: false; readonly error: PeerError };

export function describePeerError(e: PeerError): string {
  switch (e.type) {
    case "InvalidPeerUrl":
      return `invalid peer URL ${JSON.stringify(e.url)}: ${e.reason}`;
    case "UnknownPeer":
      return `unknown peer ${e.peer}`;
    case "TooManyRemotes":
      return `${e.limit} remote peers already, the most this member keeps`;
  }
}
