// The runner's control channel: HTTP over a unix socket in its root
// (<root>/runner.sock), for what a kubelet API or a node's shell would give a
// test: pod details, logs, DNS lookups through the runner, fault injection and
// stop. A unix socket: no address or port to share with anything else.
//
//   GET  /status                              RunnerStatus
//   GET  /pods                                PodInfo[]
//   GET  /pod?namespace=&name=                PodInfo (404 if not on this node)
//   GET  /logs?namespace=&name=&container=[&restart=]   text/plain
//   GET  /resolve?name=[&type=A|SRV]          ResolveResult
//   POST /kill?namespace=&name=[&container=]  KillResult
//   POST /stop?killPods=true|false            then the runner process exits

import { createServer, request } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { PodInfo } from "./pod.ts";
import type { KillResult, PodRunner, ResolveResult, RunnerStatus } from "./runner.ts";

export function socketPath(root: string): string {
  return join(root, "runner.sock");
}

function send(res: ServerResponse, code: number, body: unknown, text = false): void {
  const payload = text ? String(body) : JSON.stringify(body);
  res.writeHead(code, { "content-type": text ? "text/plain; charset=utf-8" : "application/json" });
  res.end(payload);
}

export function serveAdmin(runner: PodRunner, onStop: (killPods: boolean) => void): Promise<Server> {
  const path = socketPath(runner.root);
  rmSync(path, { force: true });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://runner");
    const q = (k: string): string => url.searchParams.get(k) ?? "";
    void (async () => {
      try {
        switch (`${req.method ?? "GET"} ${url.pathname}`) {
          case "GET /status":
            send(res, 200, runner.status());
            return;
          case "GET /pods":
            send(res, 200, runner.pods());
            return;
          case "GET /pod": {
            const p = runner.pod(q("namespace"), q("name"));
            if (p === undefined) send(res, 404, { message: `no pod ${q("namespace")}/${q("name")} on this node` });
            else send(res, 200, p);
            return;
          }
          case "GET /logs": {
            const restart = url.searchParams.get("restart");
            const text = runner.logs(q("namespace"), q("name"), q("container"), restart !== null ? Number(restart) : undefined);
            if (text === null) send(res, 404, "no such log", true);
            else send(res, 200, text, true);
            return;
          }
          case "GET /resolve":
            send(res, 200, await runner.resolve(q("name"), q("type") === "SRV" ? "SRV" : "A"));
            return;
          case "POST /kill": {
            const container = url.searchParams.get("container");
            const r = runner.killContainer(q("namespace"), q("name"), container !== null && container !== "" ? container : undefined);
            send(res, r.type === "Killed" ? 200 : 404, r);
            return;
          }
          case "POST /stop":
            send(res, 202, { stopping: true });
            onStop(q("killPods") !== "false");
            return;
          default:
            send(res, 404, { message: `no route ${req.method ?? ""} ${url.pathname}` });
        }
      } catch (e) {
        send(res, 500, { message: e instanceof Error ? e.message : String(e) });
      }
    })();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/** The client side, for the test harness. */
export class AdminClient {
  readonly socket: string;

  constructor(root: string) {
    this.socket = socketPath(root);
  }

  call(method: "GET" | "POST", path: string, params: Readonly<Record<string, string | number | undefined>> = {}, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) qs.set(k, String(v));
    const full = qs.size > 0 ? `${path}?${qs.toString()}` : path;
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socket, path: full, method, timeout: timeoutMs }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`runner admin ${method} ${path}: timeout`)));
      req.on("error", reject);
      req.end();
    });
  }

  /** The runner's answer; its shape is the route's (see the table above). */
  private async json(method: "GET" | "POST", path: string, params: Readonly<Record<string, string | number | undefined>> = {}): Promise<{ status: number; value: unknown }> {
    const r = await this.call(method, path, params);
    return { status: r.status, value: JSON.parse(r.body) };
  }

  async status(): Promise<RunnerStatus> {
    return (await this.json("GET", "/status")).value as RunnerStatus;
  }

  async pods(): Promise<PodInfo[]> {
    return (await this.json("GET", "/pods")).value as PodInfo[];
  }

  async pod(namespace: string, name: string): Promise<PodInfo | undefined> {
    const r = await this.json("GET", "/pod", { namespace, name });
    return r.status === 200 ? (r.value as PodInfo) : undefined;
  }

  async logs(namespace: string, name: string, container: string, restart?: number): Promise<string | null> {
    const r = await this.call("GET", "/logs", { namespace, name, container, restart });
    return r.status === 200 ? r.body : null;
  }

  async resolve(name: string, type: "A" | "SRV" = "A"): Promise<ResolveResult> {
    return (await this.json("GET", "/resolve", { name, type })).value as ResolveResult;
  }

  async kill(namespace: string, name: string, container?: string): Promise<KillResult> {
    return (await this.json("POST", "/kill", { namespace, name, container })).value as KillResult;
  }

  async stop(killPods: boolean): Promise<void> {
    await this.call("POST", "/stop", { killPods: String(killPods) });
  }
}
