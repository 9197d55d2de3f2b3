import { afterEach, describe, expect, it } from "vitest";
import { Counter, Registry } from "prom-client";
import { startHealthServer } from "./health.ts";
import type { HealthServer, HealthServerOptions } from "./health.ts";

let server: HealthServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(o: Omit<HealthServerOptions, "host" | "port">): Promise<(path: string) => Promise<{ status: number; body: string }>> {
  server = await startHealthServer({ ...o, host: "127.0.0.1", port: 0 });
  const base = `http://127.0.0.1:${server.port}`;
  return async (path) => {
    const r = await fetch(base + path);
    return { status: r.status, body: await r.text() };
  };
}

describe("health server", () => {
  it("is ready once every informer has synced; a standby is ready by default", async () => {
    const cms = { name: "configmaps", synced: false, hasSynced(): boolean { return this.synced; } };
    const ccs = { name: "consensusclusters", hasSynced: () => true };
    const get = await start({ registry: new Registry(), informers: [cms, ccs], leader: { isLeader: () => false } });
    expect((await get("/healthz")).status).toBe(200);
    const notReady = await get("/readyz");
    expect(notReady.status).toBe(503);
    expect(notReady.body).toContain("[-]informer-synced:configmaps not synced");
    expect(notReady.body).toContain("[+]informer-synced:consensusclusters ok");
    cms.synced = true;
    expect((await get("/readyz")).status).toBe(200);
  });

  it("can require leadership for readiness", async () => {
    let leading = false;
    const get = await start({ registry: new Registry(), informers: [], leader: { isLeader: () => leading }, readyRequiresLeadership: true });
    const standby = await get("/readyz");
    expect(standby.status).toBe(503);
    expect(standby.body).toContain("[-]leader not leading");
    leading = true;
    expect((await get("/readyz")).status).toBe(200);
  });

  it("serves the registry's metrics, reports liveness, and 404s anything else", async () => {
    const registry = new Registry();
    new Counter({ name: "concord_operator_reconciles_total", help: "Reconciles.", registers: [registry] }).inc(3);
    let live = true;
    const get = await start({ registry, informers: [], live: () => live });
    const m = await get("/metrics");
    expect(m.status).toBe(200);
    expect(m.body).toContain("concord_operator_reconciles_total 3");
    live = false;
    expect((await get("/healthz")).status).toBe(503);
    expect((await get("/nope")).status).toBe(404);
  });
});
