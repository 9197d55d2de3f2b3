// A Service's endpoints, computed the way kube-controller-manager's
// EndpointSlice controller does, from the Service's selector and the pods.
//
// Why not read the EndpointSlices: the apiserver rejects loopback endpoint
// addresses ("may not be in the loopback range"), so with pod IPs in 127/8 the
// controller's slices stay empty (it logs FailedToUpdateEndpointSlices). DNS
// and the service proxy therefore derive endpoints here; EndpointSlices are
// used only for Services without a selector, whose endpoints someone else
// manages. Pure.
//
// Reference: pkg/controller/endpointslice (reconciler.go, utils.go podToEndpoint).

import type { V1EndpointSlice, V1Pod, V1Service } from "@kubernetes/client-node";

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
  readonly podName?: string;
  readonly ports: readonly EndpointPort[];
}

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function isPodReady(p: V1Pod): boolean {
  return p.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
}

function isIPv4(ip: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(ip);
}

/** The Service's ports as this pod serves them; a named targetPort the pod lacks drops the port. */
function podPorts(svc: V1Service, pod: V1Pod): EndpointPort[] {
  const out: EndpointPort[] = [];
  for (const sp of svc.spec?.ports ?? []) {
    const target: unknown = sp.targetPort ?? sp.port;
    let port: number | undefined;
    if (typeof target === "number") port = target;
    else if (typeof target === "string" && /^\d+$/.test(target)) port = Number(target);
    else if (typeof target === "string") {
      for (const c of pod.spec?.containers ?? []) {
        const cp = (c.ports ?? []).find((p) => p.name === target && (p.protocol ?? "TCP") === (sp.protocol ?? "TCP"));
        if (cp !== undefined) {
          port = cp.containerPort;
          break;
        }
      }
    }
    if (port !== undefined) out.push({ name: sp.name ?? "", port, protocol: sp.protocol ?? "TCP" });
  }
  return out;
}

/** Endpoints of a Service with a selector, from the pods it selects. */
export function endpointsFromPods(svc: V1Service, pods: readonly V1Pod[]): Endpoint[] {
  const selector = svc.spec?.selector;
  if (selector === undefined || Object.keys(selector).length === 0) return [];
  const ns = svc.metadata?.namespace;
  const publishNotReady = svc.spec?.publishNotReadyAddresses === true;
  const out: Endpoint[] = [];
  for (const p of pods) {
    const md = p.metadata;
    if (md === undefined || md.namespace !== ns || !selects(selector, md.labels)) continue;
    const phase = p.status?.phase;
    if (phase === "Succeeded" || phase === "Failed") continue;
    const ip = p.status?.podIP;
    if (ip === undefined || ip === "" || !isIPv4(ip)) continue;
    const terminating = md.deletionTimestamp !== undefined;
    const hostname = p.spec?.hostname !== undefined && p.spec.hostname !== "" && p.spec.subdomain === svc.metadata?.name ? p.spec.hostname : undefined;
    out.push({
      ip,
      ...(hostname !== undefined ? { hostname } : {}),
      ready: publishNotReady || (isPodReady(p) && !terminating),
      ...(md.name !== undefined ? { podName: md.name } : {}),
      ports: podPorts(svc, p),
    });
  }
  return out.sort((a, b) => compareIp(a.ip, b.ip));
}

/** Endpoints of a selector-less Service, from the EndpointSlices someone else maintains. */
export function endpointsFromSlices(svc: V1Service, slices: readonly V1EndpointSlice[]): Endpoint[] {
  const out: Endpoint[] = [];
  for (const s of slices) {
    if (s.metadata?.namespace !== svc.metadata?.namespace || s.metadata?.labels?.["kubernetes.io/service-name"] !== svc.metadata?.name) continue;
    if (s.addressType !== "IPv4") continue;
    const ports = (s.ports ?? []).flatMap((p) => (p.port !== undefined ? [{ name: p.name ?? "", port: p.port, protocol: p.protocol ?? "TCP" }] : []));
    for (const ep of s.endpoints ?? []) {
      for (const ip of ep.addresses) {
        out.push({ ip, ...(ep.hostname !== undefined ? { hostname: ep.hostname } : {}), ready: ep.conditions?.ready !== false, ports });
      }
    }
  }
  return out.sort((a, b) => compareIp(a.ip, b.ip));
}

export function serviceEndpoints(svc: V1Service, pods: readonly V1Pod[], slices: readonly V1EndpointSlice[]): Endpoint[] {
  const selector = svc.spec?.selector;
  return selector !== undefined && Object.keys(selector).length > 0 ? endpointsFromPods(svc, pods) : endpointsFromSlices(svc, slices);
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
