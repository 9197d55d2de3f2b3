// A Service's endpoints as CoreDNS and kube-proxy read them: from the
// EndpointSlices labelled kubernetes.io/service-name=<svc>, which
// kube-controller-manager's EndpointSlice controller writes for Services with a
// selector (and someone else for Services without one). The controller has
// already decided readiness (publishNotReadyAddresses included), hostnames
// (pods whose subdomain is the Service) and named target ports. Pure.
//
// (An earlier version derived endpoints from pods itself, because the apiserver
// refused the loopback pod IPs the runner used then; pod IPs are in
// 198.18.0.0/15 now and the slices are real.)

import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";

export interface EndpointPort {
  readonly name: string;
  readonly port: number;
  readonly protocol: string;
}

export interface Endpoint {
  readonly ip: string;
  /** Set for pods whose spec.subdomain names the Service (StatefulSet pods). */
  readonly hostname?: string;
  readonly ready: boolean;
  readonly ports: readonly EndpointPort[];
}

/**
 * The Service's IPv4 endpoints, sorted by IP. An address in several slices
 * (briefly, while the controller moves it) counts once, ready if any says so.
 */
export function serviceEndpoints(svc: V1Service, slices: readonly V1EndpointSlice[]): Endpoint[] {
  const byIp = new Map<string, Endpoint>();
  for (const s of slices) {
    if (s.metadata?.namespace !== svc.metadata?.namespace || s.metadata?.labels?.["kubernetes.io/service-name"] !== svc.metadata?.name) continue;
    if (s.addressType !== "IPv4") continue;
    const ports = (s.ports ?? []).flatMap((p) => (p.port !== undefined ? [{ name: p.name ?? "", port: p.port, protocol: p.protocol ?? "TCP" }] : []));
    for (const ep of s.endpoints ?? []) {
      // "ready" unset means unknown, which consumers treat as ready (discovery/v1 docs).
      const ready = ep.conditions?.ready !== false;
      for (const ip of ep.addresses) {
        const prev = byIp.get(ip);
        if (prev !== undefined && (prev.ready || !ready)) continue;
        byIp.set(ip, { ip, ...(ep.hostname !== undefined ? { hostname: ep.hostname } : {}), ready, ports });
      }
    }
  }
  return [...byIp.values()].sort((a, b) => compareIp(a.ip, b.ip));
}

export function compareIp(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 4; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
