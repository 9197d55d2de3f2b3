// Cluster DNS records from Services, EndpointSlices and Pods, with CoreDNS's
// kubernetes plugin semantics (the Kubernetes DNS-based service discovery spec):
//
//   <svc>.<ns>.svc.<zone>              A: ClusterIP; headless: ready endpoint IPs
//                                      (from the Service's EndpointSlices, endpoints.ts)
//   <host>.<svc>.<ns>.svc.<zone>       A: a headless Service's endpoint, named by its
//                                      hostname (StatefulSet pods) or dashed IP
//   _<port>._<proto>.<svc>.<ns>.svc.<zone>  SRV per named port
//   <svc>.<ns>.svc.<zone>              SRV: every port, unnamed ones too
//   <a-b-c-d>.<ns>.pod.<zone>          A: a pod with that IP in that namespace
//                                      (CoreDNS's "pods verified" mode)
//
// Pure: an index built from object snapshots. The runner rebuilds it when its
// informers see a change.
//
// Reference: https://github.com/kubernetes/dns/blob/master/docs/specification.md

import type { V1EndpointSlice, V1Pod, V1Service } from "@kubernetes/client-node";
import type { DnsAnswer, DnsRecords, SrvTarget } from "./dns.ts";
import { compareIp, serviceEndpoints } from "./endpoints.ts";

interface Entry {
  a: string[];
  srv: SrvTarget[];
}

function dashed(ip: string): string {
  return ip.replaceAll(".", "-");
}

/** SRV weights as CoreDNS gives them: an equal share of 100 per record. */
function weighted(targets: readonly Omit<SrvTarget, "weight">[]): SrvTarget[] {
  const w = targets.length === 0 ? 0 : Math.floor(100 / targets.length);
  return targets.map((t) => ({ ...t, weight: w }));
}

function isIPv4(ip: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(ip);
}

export interface DnsSnapshot {
  readonly services: readonly V1Service[];
  readonly endpointSlices: readonly V1EndpointSlice[];
  readonly pods: readonly V1Pod[];
}

export class ClusterDnsRecords implements DnsRecords {
  readonly zone: string;
  private readonly names = new Map<string, Entry>();
  /** Names that exist without records of their own (empty non-terminals). */
  private readonly interior = new Set<string>();

  constructor(zone: string, snapshot: DnsSnapshot) {
    this.zone = zone.toLowerCase().replace(/\.$/, "");
    this.build(snapshot);
  }

  lookup(name: string): DnsAnswer {
    const n = name.toLowerCase().replace(/\.$/, "");
    if (n !== this.zone && !n.endsWith(`.${this.zone}`)) return { type: "NotAuthoritative" };
    const e = this.names.get(n);
    if (e !== undefined) return { type: "Found", a: e.a, srv: e.srv };
    if (n === this.zone || this.interior.has(n)) return { type: "NoData" };
    return { type: "NxDomain" };
  }

  /** Every name with records, for debugging (`runner.dnsNames()`). */
  allNames(): string[] {
    return [...this.names.keys()].sort();
  }

  private entry(name: string): Entry {
    let e = this.names.get(name);
    if (e === undefined) {
      e = { a: [], srv: [] };
      this.names.set(name, e);
      // Every ancestor inside the zone exists too.
      let parent = name;
      for (;;) {
        const dot = parent.indexOf(".");
        if (dot === -1) break;
        parent = parent.slice(dot + 1);
        if (parent === this.zone || !parent.endsWith(this.zone)) break;
        this.interior.add(parent);
      }
    }
    return e;
  }

  private build(s: DnsSnapshot): void {
    const z = this.zone;
    for (const svc of s.services) {
      const ns = svc.metadata?.namespace ?? "";
      const name = svc.metadata?.name ?? "";
      if (ns === "" || name === "") continue;
      const base = `${name}.${ns}.svc.${z}`.toLowerCase();
      const spec = svc.spec;
      if (spec === undefined) continue;
      if (spec.type === "ExternalName") {
        // CNAMEs are not served (see dns.ts): the name exists without records.
        this.interior.add(base);
        this.interior.add(`${ns}.svc.${z}`);
        continue;
      }
      const headless = spec.clusterIP === "None";
      if (!headless) {
        const e = this.entry(base);
        const ips = (spec.clusterIPs ?? (spec.clusterIP !== undefined ? [spec.clusterIP] : [])).filter(isIPv4);
        e.a.push(...ips);
        const ports = (spec.ports ?? []).filter((p) => p.port > 0);
        e.srv.push(...weighted(ports.map((p) => ({ priority: 0, port: p.port, target: base }))));
        for (const p of ports) {
          if (p.name === undefined || p.name === "") continue;
          const srvName = `_${p.name}._${(p.protocol ?? "TCP").toLowerCase()}.${base}`.toLowerCase();
          this.entry(srvName).srv.push(...weighted([{ priority: 0, port: p.port, target: base }]));
        }
        continue;
      }
      const be = this.entry(base);
      const bareSrv: Omit<SrvTarget, "weight">[] = [];
      const namedSrv = new Map<string, Omit<SrvTarget, "weight">[]>();
      // Readiness (and publishNotReadyAddresses) is already decided per endpoint.
      for (const ep of serviceEndpoints(svc, s.endpointSlices)) {
        if (!ep.ready || !isIPv4(ep.ip)) continue;
        const host = (ep.hostname ?? dashed(ep.ip)).toLowerCase();
        const hostName = `${host}.${base}`;
        if (!be.a.includes(ep.ip)) be.a.push(ep.ip);
        const he = this.entry(hostName);
        if (!he.a.includes(ep.ip)) he.a.push(ep.ip);
        for (const p of ep.ports) {
          bareSrv.push({ priority: 0, port: p.port, target: hostName });
          if (p.name !== "") {
            const srvName = `_${p.name}._${p.protocol.toLowerCase()}.${base}`.toLowerCase();
            const list = namedSrv.get(srvName) ?? [];
            list.push({ priority: 0, port: p.port, target: hostName });
            namedSrv.set(srvName, list);
          }
        }
      }
      be.a.sort(compareIp);
      be.srv = weighted(bareSrv.sort(compareSrv));
      for (const [n, list] of namedSrv) this.entry(n).srv = weighted(list.sort(compareSrv));
      // The protocol level below a Service name exists too (e.g. `_tcp.<svc>...`).
      for (const p of spec.ports ?? []) this.interior.add(`_${(p.protocol ?? "TCP").toLowerCase()}.${base}`);
    }

    for (const pod of s.pods) {
      const ns = pod.metadata?.namespace ?? "";
      const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter(isIPv4);
      if (ips.length === 0 && pod.status?.podIP !== undefined && isIPv4(pod.status.podIP)) ips.push(pod.status.podIP);
      if (ns === "" || pod.spec?.hostNetwork === true) continue;
      for (const ip of ips) {
        const e = this.entry(`${dashed(ip)}.${ns}.pod.${z}`);
        if (!e.a.includes(ip)) e.a.push(ip);
      }
    }
    this.interior.add(`svc.${z}`);
    this.interior.add(`pod.${z}`);
  }
}

function compareSrv(a: Omit<SrvTarget, "weight">, b: Omit<SrvTarget, "weight">): number {
  return a.target < b.target ? -1 : a.target > b.target ? 1 : a.port - b.port;
}
