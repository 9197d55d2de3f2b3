// A minimal kube-proxy: for each TCP port of each ClusterIP Service, listen on
// ClusterIP:port and forward each connection to a ready endpoint from the
// Service's EndpointSlices (endpoints.ts), round-robin. ClusterIPs are local
// addresses of the root network namespace (podnetwork.ts routes the block's
// whole service range `local` on its bridge), so both pods, through their
// route via the bridge, and the host reach the listeners. Only connections, no
// iptables: a backend sees the bridge's address as the peer, and UDP,
// NodePorts and session affinity are not served.
//
// `default/kubernetes` has no endpoints (the apiserver runs with
// --endpoint-reconciler-type none, because it listens on loopback only): its
// port 443 is forwarded to the apiserver's real address, so in-cluster clients
// use KUBERNETES_SERVICE_HOST=<its ClusterIP>:443 and verify the serving
// certificate, which names that IP, as in a cluster.

import { connect, createServer } from "node:net";
import type { Server, Socket } from "node:net";
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { serviceEndpoints } from "./endpoints.ts";

export interface Backend {
  readonly host: string;
  readonly port: number;
}

/** What to listen on and where to forward: key "ip:port". Pure. */
export function proxyTable(
  services: readonly V1Service[],
  slices: readonly V1EndpointSlice[],
  inRange: (ip: string) => boolean,
  apiserver: Backend,
): Map<string, Backend[]> {
  const table = new Map<string, Backend[]>();
  for (const svc of services) {
    const ip = svc.spec?.clusterIP;
    if (ip === undefined || ip === "None" || ip === "" || !inRange(ip)) continue;
    if (svc.spec?.type === "ExternalName") continue;
    if (svc.metadata?.namespace === "default" && svc.metadata.name === "kubernetes") {
      table.set(`${ip}:443`, [apiserver]);
      continue;
    }
    const endpoints = serviceEndpoints(svc, slices).filter((e) => e.ready);
    for (const p of svc.spec?.ports ?? []) {
      if ((p.protocol ?? "TCP") !== "TCP") continue;
      const backends: Backend[] = [];
      for (const e of endpoints) {
        const ep = e.ports.find((x) => x.name === (p.name ?? "") && x.protocol === "TCP");
        if (ep !== undefined) backends.push({ host: e.ip, port: ep.port });
      }
      table.set(`${ip}:${p.port}`, backends);
    }
  }
  return table;
}

interface Listener {
  readonly server: Server;
  backends: Backend[];
  next: number;
  readonly sockets: Set<Socket>;
}

export class ServiceProxy {
  private readonly listeners = new Map<string, Listener>();
  /** Addresses we could not bind (a port in use); retried on every update. */
  private readonly failed = new Map<string, string>();
  private readonly log: (msg: string) => void;
  private closed = false;

  constructor(log: (msg: string) => void) {
    this.log = log;
  }

  update(table: ReadonlyMap<string, Backend[]>): void {
    if (this.closed) return;
    for (const [key, l] of this.listeners) {
      if (!table.has(key)) {
        this.listeners.delete(key);
        l.server.close();
        for (const s of l.sockets) s.destroy();
      }
    }
    for (const [key, backends] of table) {
      const l = this.listeners.get(key);
      if (l !== undefined) {
        l.backends = backends;
        continue;
      }
      this.listen(key, backends);
    }
  }

  private listen(key: string, backends: Backend[]): void {
    const colon = key.lastIndexOf(":");
    const host = key.slice(0, colon);
    const port = Number(key.slice(colon + 1));
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const l = this.listeners.get(key);
      if (l === undefined || l.backends.length === 0) {
        // kube-proxy rejects connections to a Service without ready endpoints.
        client.resetAndDestroy();
        return;
      }
      const b = l.backends[l.next % l.backends.length];
      l.next++;
      if (b === undefined) return;
      sockets.add(client);
      const upstream = connect({ host: b.host, port: b.port });
      sockets.add(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.resetAndDestroy());
      // Each socket stays tracked until it is itself closed: a client still
      // open after its upstream went (a half-close) must be destroyed on close().
      client.on("close", () => {
        upstream.destroy();
        sockets.delete(client);
      });
      upstream.on("close", () => {
        client.end();
        sockets.delete(upstream);
      });
    });
    const l: Listener = { server, backends, next: 0, sockets };
    this.listeners.set(key, l);
    server.on("error", (e) => {
      if (this.listeners.get(key) === l) this.listeners.delete(key);
      if (this.failed.get(key) !== e.message) this.log(`service proxy: cannot listen on ${key}: ${e.message}`);
      this.failed.set(key, e.message);
    });
    server.listen({ host, port }, () => {
      this.failed.delete(key);
    });
  }

  /** Listening addresses, for diagnostics. */
  addresses(): string[] {
    return [...this.listeners.keys()].sort();
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(
      all.map(
        (l) =>
          new Promise<void>((r) => {
            for (const s of l.sockets) s.destroy();
            l.server.close(() => {
              r();
            });
          }),
      ),
    );
  }
}
