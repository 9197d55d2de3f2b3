// The operator's probe and metrics endpoint (one port, like controller-runtime's
// probe and metrics servers folded together):
//
//   /healthz  200 while the process is live (the optional `live` check).
//   /readyz   200 once every informer has synced and, if readyRequiresLeadership,
//             while this replica leads. By default a standby is ready: its caches
//             are warm and it can take over, and an unready standby would stall a
//             rolling update.
//   /metrics  the given prom-client registry.
//
// Failing checks are listed in the body in the apiserver's style ("[-]name reason").

import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface SyncSource {
  readonly name: string;
  hasSynced(): boolean;
}

export interface HealthServerOptions {
  readonly registry: Registry;
  readonly informers: readonly SyncSource[];
  readonly leader?: { isLeader(): boolean };
  readonly readyRequiresLeadership?: boolean;
  readonly live?: () => boolean;
  /** Default 0.0.0.0 (probes come from the kubelet, on the pod IP). */
  readonly host?: string;
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly why: string;
}

export function readinessChecks(o: HealthServerOptions): Check[] {
  const checks: Check[] = o.informers.map((i) => ({ name: `informer-synced:${i.name}`, ok: i.hasSynced(), why: "not synced" }));
  if (o.readyRequiresLeadership === true) {
    checks.push({ name: "leader", ok: o.leader?.isLeader() ?? false, why: "not leading" });
  }
  return checks;
}

function report(res: ServerResponse, checks: readonly Check[], what: string): void {
  const failed = checks.some((c) => !c.ok);
  const lines = checks.map((c) => (c.ok ? `[+]${c.name} ok` : `[-]${c.name} ${c.why}`));
  lines.push(failed ? `${what} check failed` : `${what} check passed`);
  res.writeHead(failed ? 503 : 200, { "content-type": "text/plain; charset=utf-8" });
  res.end(lines.join("\n") + "\n");
}

export function startHealthServer(o: HealthServerOptions): Promise<HealthServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405).end();
      return;
    }
    switch (path) {
      case "/healthz":
      case "/livez":
        report(res, [{ name: "live", ok: o.live?.() ?? true, why: "failed" }], "livez");
        return;
      case "/readyz":
        report(res, readinessChecks(o), "readyz");
        return;
      case "/metrics": {
        const body = await o.registry.metrics();
        res.writeHead(200, { "content-type": o.registry.contentType });
        res.end(body);
        return;
      }
      default:
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      res.writeHead(500, { "content-type": "text/plain" }).end(`${e instanceof Error ? e.message : String(e)}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 8080, o.host ?? "0.0.0.0", () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => {
              r();
            });
          }),
      });
    });
  });
}
