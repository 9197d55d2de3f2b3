export type { Logger, TransportMetrics } from "./observability.ts";
export { noMetrics, silentLogger } from "./observability.ts";
export type { InvalidPeerUrl, PeerAddress } from "./peer-url.ts";
export { parsePeerUrl } from "./peer-url.ts";
export type { DropReason, StreamState } from "./outbound.ts";
export type { PeerError, PeerResult, PeerStatus, TransportOptions, UnknownPeer } from "./transport.ts";
export { Transport, describePeerError, transportDefaults } from "./transport.ts";
