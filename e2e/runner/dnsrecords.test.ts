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
    spec: { clusterIP: "127.96.0.10", clusterIPs: ["127.96.0.10"], selector: { app: "api" }, ports: [{ name: "http", port: 80, protocol: "TCP" }, { port: 9090 }] },
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

// A selector-less Service's endpoints come from the EndpointSlices someone else writes.
const slices = [
  model<V1EndpointSlice>({
    metadata: { name: "manual-1", namespace: "prod", labels: { "kubernetes.io/service-name": "manual" } },
    addressType: "IPv4",
    ports: [{ name: "x", port: 1, protocol: "TCP" }],
    endpoints: [{ addresses: ["127.5.0.5"], hostname: "m0", conditions: { ready: true } }],
  }),
];

function dbPod(name: string, ip: string, ready: boolean, extra: { namespace?: string; phase?: string } = {}): V1Pod {
  return model<V1Pod>({
    metadata: { name, namespace: extra.namespace ?? "prod", labels: { app: "db" } },
    spec: { hostname: name, subdomain: "db", containers: [{ name: "c", ports: [{ name: "peer", containerPort: 2380 }] }] },
    status: { phase: extra.phase ?? "Running", podIP: ip, podIPs: [{ ip }], conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  });
}

const pods = [
  dbPod("db-1", "127.1.0.3", true),
  dbPod("db-0", "127.1.0.2", true),
  dbPod("db-2", "127.1.0.4", false),
  dbPod("db-0", "127.1.0.8", true, { namespace: "other" }),
  dbPod("db-old", "127.1.0.9", true, { phase: "Failed" }),
];

const dns = new ClusterDnsRecords(z, { services, endpointSlices: slices, pods });

describe("cluster DNS records", () => {
  it("a ClusterIP Service's name is its ClusterIP", () => {
    expect(dns.lookup("api.prod.svc.cluster.local")).toMatchObject({ type: "Found", a: ["127.96.0.10"] });
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
    expect(dns.lookup("db.prod.svc.cluster.local")).toMatchObject({ type: "Found", a: ["127.1.0.2", "127.1.0.3"] });
  });

  it("publishNotReadyAddresses includes not-ready endpoints", () => {
    expect(dns.lookup("db-all.prod.svc.cluster.local")).toMatchObject({ a: ["127.1.0.2", "127.1.0.3", "127.1.0.4"] });
  });

  it("pods whose subdomain is the Service (StatefulSet pods) get <hostname>.<svc> names", () => {
    expect(dns.lookup("db-0.db.prod.svc.cluster.local")).toMatchObject({ type: "Found", a: ["127.1.0.2"] });
    expect(dns.lookup("db-2.db.prod.svc.cluster.local")).toEqual({ type: "NxDomain" }); // not ready
  });

  it("other endpoints are named by their dashed IP", () => {
    expect(dns.lookup("127-1-0-4.db-all.prod.svc.cluster.local")).toMatchObject({ a: ["127.1.0.4"] });
    expect(dns.lookup("db-0.db-all.prod.svc.cluster.local")).toEqual({ type: "NxDomain" });
  });

  it("takes selector-less Services' endpoints from their EndpointSlices", () => {
    expect(dns.lookup("m0.manual.prod.svc.cluster.local")).toMatchObject({ a: ["127.5.0.5"] });
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
    expect(dns.lookup("127-1-0-2.prod.pod.cluster.local")).toMatchObject({ type: "Found", a: ["127.1.0.2"] });
    expect(dns.lookup("127-1-0-2.other.pod.cluster.local")).toEqual({ type: "NxDomain" });
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
