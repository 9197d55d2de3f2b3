// A minimal kube-proxy: for each TCP port of each ClusterIP Service, listen on
// ClusterIP:port (Service IPs are loopback addresses here, see
// e2e/harness/controlplane.ts serviceCidr) and forward each connection to a
// ready endpoint (as endpoints.ts derives them), round-robin. Only connections, no iptables: a client sees the
// proxy's address as the peer, and UDP, NodePorts and session affinity are not
// served.
//
// `default/kubernetes` is left alone: every control plane gives it the same IP,
// so two runners on one machine would fight over it. Pods reach the apiserver
// through KUBERNETES_SERVICE_HOST/PORT instead, which point at the real address.

import { connect, createServer } from "node:net";
import type { Server, Socket } from "node:net";
import type { V1EndpointSlice, V1Pod, V1Service } from "@kubernetes/client-node";
import { serviceEndpoints } from "./endpoints.ts";

export interface Backend {
  readonly ip: string;
  readonly port: number;
}

/** What to listen on and where to forward: key "ip:port". Pure. */
export function proxyTable(
  services: readonly V1Service[],
  pods: readonly V1Pod[],
  slices: readonly V1EndpointSlice[],
  inRange: (ip: string) => boolean,
): Map<string, Backend[]> {
  const table = new Map<string, Backend[]>();
  for (const svc of services) {
    const ns = svc.metadata?.namespace ?? "";
    const name = svc.metadata?.name ?? "";
    if (ns === "default" && name === "kubernetes") continue;
    const ip = svc.spec?.clusterIP;
    if (ip === undefined || ip === "None" || ip === "" || !inRange(ip)) continue;
    if (svc.spec?.type === "ExternalName") continue;
    const endpoints = serviceEndpoints(svc, pods, slices).filter((e) => e.ready);
    for (const p of svc.spec?.ports ?? []) {
      if ((p.protocol ?? "TCP") !== "TCP") continue;
      const backends: Backend[] = [];
      for (const e of endpoints) {
        const ep = e.ports.find((x) => x.name === (p.name ?? "") && x.protocol === "TCP");
        if (ep !== undefined) backends.push({ ip: e.ip, port: ep.port });
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
  /** Addresses we could not bind (another runner has them); retried on every update. */
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
      const upstream = connect({ host: b.ip, port: b.port });
      sockets.add(upstream);
      const done = (): void => {
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.resetAndDestroy());
      client.on("close", () => {
        upstream.destroy();
        done();
      });
      upstream.on("close", () => {
        client.end();
        done();
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
