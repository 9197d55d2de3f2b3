// Peer URLs as members advertise them (etcd's --initial-advertise-peer-urls):
// http://10.0.0.1:2380 or tcp://host:2380. The transport speaks its own framed
// protocol over plain TCP whatever the scheme says; the scheme is accepted so
// that etcd-style configuration carries over. TLS is not supported yet, so
// https is refused rather than silently downgraded.

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface InvalidPeerUrl {
  readonly type: "InvalidPeerUrl";
  readonly url: string;
  readonly reason: string;
}

const schemes = new Set(["http:", "tcp:"]);

export function parsePeerUrl(url: string): PeerAddress | InvalidPeerUrl {
  const invalid = (reason: string): InvalidPeerUrl => ({ type: "InvalidPeerUrl", url, reason });
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return invalid("not a URL");
  }
  if (!schemes.has(parsed.protocol)) return invalid(`scheme ${parsed.protocol} is not supported (use http: or tcp:)`);
  // An explicit port avoids silently dialling :80 for "http://host".
  if (parsed.port === "") return invalid("the URL has no port");
  if (parsed.hostname === "") return invalid("the URL has no host");
  if ((parsed.pathname !== "" && parsed.pathname !== "/") || parsed.search !== "" || parsed.hash !== "") {
    return invalid("a peer URL has no path, query or fragment");
  }
  return { host: urlHost(parsed), port: Number(parsed.port) };
}

/**
 * A URL's host as net.listen and net.connect take it: URL.hostname keeps the
 * brackets of an IPv6 literal ([::1]), which they do not.
 */
export function urlHost(url: URL): string {
  const h = url.hostname;
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

export function isInvalidPeerUrl(x: PeerAddress | InvalidPeerUrl): x is InvalidPeerUrl {
  return "type" in x;
}

export function sameAddress(a: PeerAddress, b: PeerAddress): boolean {
  return a.host === b.host && a.port === b.port;
}
