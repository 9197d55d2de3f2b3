// One KV client interface over each system's native API, as the load generator
// uses it: Concord over HTTP/1.1 (node:http with a keep-alive agent), etcd over
// gRPC/HTTP2 with the etcd3 package.

import { Agent, request } from "node:http";
import { noop } from "cockatiel";
import { Etcd3 } from "etcd3";
import type { SystemKind } from "./jobs.ts";

export type Outcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

export interface KvClient {
  put(key: string, value: Buffer, timeoutMs: number): Promise<Outcome>;
  get(key: string, serializable: boolean, timeoutMs: number): Promise<Outcome>;
  /**
   * Starts `count` watchers of key, all on this client's one watch stream
   * (as an etcd client multiplexes its watchers), and calls onValue with the
   * put value for every watcher's every event; resolves once they are
   * established.
   */
  watch(key: string, count: number, onValue: (value: Buffer) => void): Promise<void>;
  close(): void;
}

export function connect(system: SystemKind, endpoint: string, maxConnections: number): KvClient {
  switch (system) {
    case "concord":
      return new ConcordClient(endpoint, maxConnections);
    case "etcd":
      return new EtcdClient(endpoint);
  }
}

class ConcordClient implements KvClient {
  private readonly endpoint: string;
  private readonly agent: Agent;
  private readonly watches: (() => void)[] = [];

  constructor(endpoint: string, maxConnections: number) {
    this.endpoint = endpoint;
    // One connection per concurrent client at most, kept alive between requests.
    this.agent = new Agent({ keepAlive: true, maxSockets: maxConnections, maxFreeSockets: maxConnections });
  }

  private call(method: string, path: string, body: Buffer | null, timeoutMs: number): Promise<Outcome> {
    return new Promise((resolve) => {
      const req = request(
        new URL(path, this.endpoint),
        { method, agent: this.agent, timeout: timeoutMs, headers: body === null ? {} : { "Content-Length": body.byteLength } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const code = res.statusCode ?? 0;
            resolve(code < 300 ? { ok: true } : { ok: false, error: `HTTP ${code} ${Buffer.concat(chunks).toString("utf8").slice(0, 200)}` });
          });
          res.on("error", (e) => {
            resolve({ ok: false, error: e.message });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
      req.on("error", (e) => {
        resolve({ ok: false, error: e.message });
      });
      req.end(body ?? undefined);
    });
  }

  put(key: string, value: Buffer, timeoutMs: number): Promise<Outcome> {
    return this.call("PUT", `/v1/kv/${key}`, value, timeoutMs);
  }

  get(key: string, serializable: boolean, timeoutMs: number): Promise<Outcome> {
    return this.call("GET", `/v1/kv/${key}${serializable ? "?consistency=serializable" : ""}`, null, timeoutMs);
  }

  watch(key: string, count: number, onValue: (value: Buffer) => void): Promise<void> {
    // One multiplexed stream (POST /v1/watch) on a connection of its own, outside the request pool.
    const body = JSON.stringify({ watches: Array.from({ length: count }, () => ({ key })) });
    return new Promise((resolve, reject) => {
      const headers = { Accept: "text/event-stream", "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) };
      const req = request(new URL("/v1/watch", this.endpoint), { method: "POST", headers, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`watch: HTTP ${res.statusCode ?? 0}`));
          res.resume();
          return;
        }
        res.setEncoding("utf8");
        let buf = "";
        res.on("data", (chunk: string) => {
          buf += chunk;
          for (let cut = buf.indexOf("\n\n"); cut >= 0; cut = buf.indexOf("\n\n")) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            if (!block.startsWith("event: put\n")) continue;
            const data = block.split("\n").find((l) => l.startsWith("data: "));
            if (data === undefined) continue;
            const ev = JSON.parse(data.slice(6)) as { value?: string; valueBase64?: string };
            onValue(ev.valueBase64 !== undefined ? Buffer.from(ev.valueBase64, "base64") : Buffer.from(ev.value ?? "", "utf8"));
          }
        });
        res.on("error", () => undefined);
        resolve();
      });
      req.on("error", reject);
      this.watches.push(() => req.destroy());
      req.end(body);
    });
  }

  close(): void {
    for (const w of this.watches) w();
    this.agent.destroy();
  }
}

class EtcdClient implements KvClient {
  private readonly client: Etcd3;

  constructor(endpoint: string) {
    // No retries and no circuit breaker: every failure is counted as it happens,
    // as Concord's client does.
    this.client = new Etcd3({ hosts: endpoint, faultHandling: { host: () => noop, global: noop } });
  }

  private async attempt(f: () => Promise<unknown>): Promise<Outcome> {
    try {
      await f();
      return { ok: true };
    } catch (e) {
      return { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
  }

  put(key: string, value: Buffer, timeoutMs: number): Promise<Outcome> {
    return this.attempt(() => this.client.put(key).value(value).options({ deadline: Date.now() + timeoutMs }).exec());
  }

  get(key: string, serializable: boolean, timeoutMs: number): Promise<Outcome> {
    return this.attempt(() => this.client.get(key).serializable(serializable).options({ deadline: Date.now() + timeoutMs }).exec());
  }

  async watch(key: string, count: number, onValue: (value: Buffer) => void): Promise<void> {
    // etcd3 puts every watcher of one client on that client's single watch stream.
    await Promise.all(
      Array.from({ length: count }, async () => {
        const w = await this.client.watch().key(key).create();
        w.on("put", (kv) => {
          onValue(kv.value);
        });
      }),
    );
  }

  close(): void {
    this.client.close();
  }
}
