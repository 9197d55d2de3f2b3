// Cluster DNS records from sample objects, per the Kubernetes DNS-based
// service discovery specification (kubernetes/dns docs/specification.md).

import { describe, expect, it } from "vitest";
import type { V1EndpointSlice, V1Pod, V1Service } from "@kubernetes/client-node";
import { ClusterDnsRecords } from "./dnsrecords.ts";
import { model } from "./kube.ts";

const z = "cluster.local";

const services = [
  model<V1Service>({
    metadata: { name: "api", namespace: "prod" },
    spec: { clusterIP: "198.19.1.10", clusterIPs: ["198.19.1.10"], selector: { app: "api" }, ports: [{ name: "http", port: 80, protocol: "TCP" }, { port: 9090 }] },
  }),
  model<V1Service>({
    metadata: { name: "db", namespace: "prod" },
    spec: { clusterIP: "None", selector: { app: "db" }, ports: [{ name: "peer", port: 2380, targetPort: "peer", protocol: "TCP" }] },
  }),
  model<V1Service>({
    metadata: { name: "db-all", namespace: "prod" },
    spec: { clusterIP: "None", selector: { app: "db" }, publishNotReadyAddresses: true, ports: [{ name: "peer", port: 2380, targetPort: 12380 }] },
  }),
  model<V1Service>({ metadata: { name: "manual", namespace: "prod" }, spec: { clusterIP: "None", ports: [{ name: "x", port: 1 }] } }),
  model<V1Service>({ metadata: { name: "ext", namespace: "prod" }, spec: { type: "ExternalName", externalName: "example.com" } }),
];

function slice(name: string, service: string, port: { name: string; port: number }, endpoints: { ip: string; hostname?: string; ready: boolean }[]): V1EndpointSlice {
  return model<V1EndpointSlice>({
    metadata: { name, namespace: "prod", labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    ports: [{ ...port, protocol: "TCP" }],
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], ...(e.hostname !== undefined ? { hostname: e.hostname } : {}), conditions: { ready: e.ready } })),
  });
}

// As kube-controller-manager writes them: hostnames for pods whose subdomain is
// the Service, readiness decided (everything ready under publishNotReadyAddresses),
// named target ports resolved. Selector-less Services' slices come from someone else.
const slices = [
  slice("db-abc", "db", { name: "peer", port: 2380 }, [
    { ip: "198.18.1.3", hostname: "db-1", ready: true },
    { ip: "198.18.1.2", hostname: "db-0", ready: true },
    { ip: "198.18.1.4", hostname: "db-2", ready: false },
  ]),
  slice("db-all-abc", "db-all", { name: "peer", port: 12380 }, [
    { ip: "198.18.1.2", ready: true },
    { ip: "198.18.1.3", ready: true },
    { ip: "198.18.1.4", ready: true },
  ]),
  // The same address again, in a second slice the controller has yet to clean up.
  slice("db-all-def", "db-all", { name: "peer", port: 12380 }, [{ ip: "198.18.1.4", ready: false }]),
  slice("manual-1", "manual", { name: "x", port: 1 }, [{ ip: "198.18.5.5", hostname: "m0", ready: true }]),
];

function dbPod(name: string, ip: string, namespace = "prod"): V1Pod {
  return model<V1Pod>({
    metadata: { name, namespace, labels: { app: "db" } },
    spec: { hostname: name, subdomain: "db", containers: [{ name: "c" }] },
    status: { phase: "Running", podIP: ip, podIPs: [{ ip }] },
  });
}

const pods = [dbPod("db-1", "198.18.1.3"), dbPod("db-0", "198.18.1.2"), dbPod("db-2", "198.18.1.4"), dbPod("db-0", "198.18.1.8", "other")];

const dns = new ClusterDnsRecords(z, { services, endpointSlices: slices, pods });

describe("cluster DNS records", () => {
  it("a ClusterIP Service's name is its ClusterIP", () => {
    expect(dns.lookup("api.prod.svc.cluster.local")).toMatchObject({ type: "Found", a: ["198.19.1.10"] });
  });

  it("SRV for a named port of a ClusterIP Service targets the Service name", () => {
    expect(dns.lookup("_http._tcp.api.prod.svc.cluster.local")).toEqual({
      type: "Found",
      a: [],
      srv: [{ priority: 0, weight: 100, port: 80, target: "api.prod.svc.cluster.local" }],
    });
    expect(dns.lookup("_nope._tcp.api.prod.svc.cluster.local")).toEqual({ type: "NxDomain" });
  });

  it("a headless Service's name lists its ready endpoints, sorted", () => {
    expect(dns.lookup("db.prod.svc.cluster.local")).toMatchObject({ type: "Found", a: ["198.18.1.2", "198.18.1.3"] });
  });

  it("publishNotReadyAddresses includes not-ready endpoints", () => {
    expect(dns.lookup("db-all.prod.svc.cluster.local")).toMatchObject({ a: ["198.18.1.2", "198.18.1.3", "198.18.1.4"] });
  });

  it("pods whose subdomain is the Service (StatefulSet pods) get <hostname>.<svc> names", () => {
    expect(dns.lookup("db-0.db.prod.svc.cluster.local")).toMatchObject({ type: "Found", a: ["198.18.1.2"] });
    expect(dns.lookup("db-2.db.prod.svc.cluster.local")).toEqual({ type: "NxDomain" }); // not ready
  });

  it("other endpoints are named by their dashed IP", () => {
    expect(dns.lookup("198-18-1-4.db-all.prod.svc.cluster.local")).toMatchObject({ a: ["198.18.1.4"] });
    expect(dns.lookup("db-0.db-all.prod.svc.cluster.local")).toEqual({ type: "NxDomain" });
  });

  it("takes selector-less Services' endpoints from their EndpointSlices too", () => {
    expect(dns.lookup("m0.manual.prod.svc.cluster.local")).toMatchObject({ a: ["198.18.5.5"] });
    expect(dns.lookup("_x._tcp.manual.prod.svc.cluster.local")).toMatchObject({ srv: [{ port: 1, target: "m0.manual.prod.svc.cluster.local" }] });
  });

  it("resolves numeric target ports for SRV", () => {
    const r = dns.lookup("_peer._tcp.db-all.prod.svc.cluster.local");
    expect(r.type === "Found" ? r.srv.map((x) => x.port) : r).toEqual([12380, 12380, 12380]);
  });

  it("SRV for a headless named port lists each endpoint by name, weights sharing 100", () => {
    const r = dns.lookup("_peer._tcp.db.prod.svc.cluster.local");
    expect(r).toEqual({
      type: "Found",
      a: [],
      srv: [
        { priority: 0, weight: 50, port: 2380, target: "db-0.db.prod.svc.cluster.local" },
        { priority: 0, weight: 50, port: 2380, target: "db-1.db.prod.svc.cluster.local" },
      ],
    });
  });

  it("pod A records are verified against the namespace's pods", () => {
    expect(dns.lookup("198-18-1-2.prod.pod.cluster.local")).toMatchObject({ type: "Found", a: ["198.18.1.2"] });
    expect(dns.lookup("198-18-1-2.other.pod.cluster.local")).toEqual({ type: "NxDomain" });
  });

  it("names that exist without records are NODATA, unknown ones NXDOMAIN", () => {
    expect(dns.lookup("cluster.local")).toEqual({ type: "NoData" });
    expect(dns.lookup("svc.cluster.local")).toEqual({ type: "NoData" });
    expect(dns.lookup("prod.svc.cluster.local")).toEqual({ type: "NoData" });
    expect(dns.lookup("_tcp.db.prod.svc.cluster.local")).toEqual({ type: "NoData" });
    expect(dns.lookup("ext.prod.svc.cluster.local")).toEqual({ type: "NoData" });
    expect(dns.lookup("nope.prod.svc.cluster.local")).toEqual({ type: "NxDomain" });
    expect(dns.lookup("nope.cluster.local")).toEqual({ type: "NxDomain" });
  });

  it("answers only for its zone", () => {
    expect(dns.lookup("example.com")).toEqual({ type: "NotAuthoritative" });
  });
});
