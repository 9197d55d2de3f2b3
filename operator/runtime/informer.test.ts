// The informer against a real kube-apiserver: events, cache consistency, and
// recovery from a dropped watch, a 410 Gone, a hung watch and a denied list.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { ok } from "./errors.ts";
import { Informer, restTransport } from "./informer.ts";
import type { InformerOptions, ListWatchTransport } from "./informer.ts";
import type { WireObject } from "./rest.ts";
import { FakeClock } from "./testing/fakeclock.ts";
import { createNamespace, eventually, grant, serviceAccount, startControlPlane } from "./testing/apiserver.ts";
import type { TestControlPlane } from "./testing/apiserver.ts";

const configmaps = { group: "", version: "v1", plural: "configmaps" } as const;

let t: TestControlPlane;
let core: CoreV1Api;
const informers: Informer<WireObject>[] = [];

beforeAll(async () => {
  t = await startControlPlane("informer");
  core = t.kc.makeApiClient(CoreV1Api);
}, 90_000);

afterAll(async () => {
  await Promise.all(informers.map((i) => i.stop()));
  await t.stop();
});

function informer(o: Partial<InformerOptions<WireObject>> = {}): Informer<WireObject> {
  const inf = new Informer<WireObject>({
    kc: t.kc,
    resource: configmaps,
    decode: (obj) => obj,
    backoff: { initialMs: 50, maxMs: 400 },
    ...o,
  });
  informers.push(inf);
  return inf;
}

/** Every add/update/delete as "verb name", in order. */
function record(inf: Informer<WireObject>): string[] {
  const log: string[] = [];
  inf.onAdd((o) => log.push(`add ${o.metadata?.name ?? ""}`));
  inf.onUpdate((a, b) => log.push(`update ${b.metadata?.name ?? ""} ${String(a.metadata?.resourceVersion !== b.metadata?.resourceVersion)}`));
  inf.onDelete((o) => log.push(`delete ${o.metadata?.name ?? ""}`));
  return log;
}

async function createCm(namespace: string, name: string, data: Record<string, string> = {}, labels: Record<string, string> = {}): Promise<void> {
  await core.createNamespacedConfigMap({ namespace, body: { metadata: { name, labels }, data } });
}

/** The cache equals a fresh list from the apiserver: same names at the same resourceVersions. */
async function expectCacheMatchesList(inf: Informer<WireObject>, namespace: string): Promise<void> {
  await eventually(async () => {
    const fresh = await core.listNamespacedConfigMap({ namespace });
    const want = fresh.items.map((c) => `${c.metadata?.name ?? ""}@${c.metadata?.resourceVersion ?? ""}`).sort();
    const got = inf.list(namespace).map((c) => `${c.metadata?.name ?? ""}@${c.metadata?.resourceVersion ?? ""}`).sort();
    expect(got).toEqual(want);
  });
}

/**
 * Wraps the real transport so a test can drop the live watch, hold back the
 * next one (so that changes happen while nothing watches), and decide what the
 * next watch does: run for real, answer 410 Gone, or swallow every event (hung).
 */
function controllableTransport(): {
  transport: ListWatchTransport;
  drop(): void;
  hold(): void;
  release(): void;
  next: { mode: "real" | "gone" | "blackhole" };
  watchQueries: Record<string, string | undefined>[];
} {
  const real = restTransport(t.kc);
  let live: AbortController | undefined;
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  const next: { mode: "real" | "gone" | "blackhole" } = { mode: "real" };
  const watchQueries: Record<string, string | undefined>[] = [];
  const transport: ListWatchTransport = {
    list: (path, query, signal) => real.list(path, query, signal),
    watch: async (path, query, onEvent, signal) => {
      if (gate !== undefined) await gate.promise;
      watchQueries.push({ ...query });
      const mode = next.mode;
      next.mode = "real";
      if (mode === "gone") {
        // Exactly what kube-apiserver sends when the requested version is compacted away.
        onEvent({
          type: "ERROR",
          object: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `too old resource version: ${query["resourceVersion"] ?? ""} (999999)`, reason: "Expired", code: 410 },
        });
        return { type: "closed" };
      }
      live = new AbortController();
      const forward = mode === "blackhole" ? () => undefined : onEvent;
      return real.watch(path, query, forward, AbortSignal.any([signal, live.signal]));
    },
  };
  return {
    transport,
    drop: () => live?.abort(),
    hold: () => {
      let open = (): void => undefined;
      const promise = new Promise<void>((r) => (open = r));
      gate = { promise, open };
    },
    release: () => {
      const g = gate;
      gate = undefined;
      g?.open();
    },
    next,
    watchQueries,
  };
}

describe("Informer against kube-apiserver", () => {
  it("lists, then delivers add, update and delete; the cache matches a fresh list", async () => {
    const ns = await createNamespace(t.kc, "inf-events");
    await createCm(ns, "before", { a: "1" });
    const inf = informer({ namespace: ns });
    const log = record(inf);
    expect(inf.hasSynced()).toBe(false);
    inf.start();
    expect(await inf.waitForSync()).toBe(true);
    // kube-root-ca.crt is published into every namespace by the controller manager.
    await eventually(() => { expect(inf.get(ns, "kube-root-ca.crt")).toBeDefined(); });
    expect(log).toContain("add before");
    expect(inf.get(ns, "before")?.["data"]).toEqual({ a: "1" });
    expect(inf.get(ns, "before")?.kind).toBe("ConfigMap"); // filled in for list items

    await createCm(ns, "new", { b: "2" });
    await core.patchNamespacedConfigMap({ namespace: ns, name: "before", body: [{ op: "replace", path: "/data/a", value: "changed" }] });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: "new" });
    await eventually(() => { expect(log.filter((l) => !l.includes("kube-root-ca.crt"))).toEqual(["add before", "add new", "update before true", "delete new"]); });
    expect(inf.get(ns, "before")?.["data"]).toEqual({ a: "changed" });
    expect(inf.get(ns, "new")).toBeUndefined();
    await expectCacheMatchesList(inf, ns);
    expect(inf.lastSyncResourceVersion()).not.toBe("");
  });

  it("honours a label selector (an object relabelled out of it is deleted) and watches all namespaces", async () => {
    const ns1 = await createNamespace(t.kc, "inf-sel-1");
    const ns2 = await createNamespace(t.kc, "inf-sel-2");
    const selected = informer({ labelSelector: "app=concord" });
    const all = informer();
    const log = record(selected);
    selected.start();
    all.start();
    expect(await selected.waitForSync()).toBe(true);
    expect(await all.waitForSync()).toBe(true);
    await createCm(ns1, "yes", {}, { app: "concord" });
    await createCm(ns2, "yes", {}, { app: "concord" });
    await createCm(ns1, "no", {}, { app: "other" });
    await eventually(() => { expect(selected.list().map((o) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`).sort()).toEqual([`${ns1}/yes`, `${ns2}/yes`]); });
    await eventually(() => { expect(all.get(ns1, "no")).toBeDefined(); });
    await eventually(() => { expect(all.get(ns2, "yes")).toBeDefined(); });
    expect(all.list().length).toBeGreaterThan(selected.list().length);

    await core.patchNamespacedConfigMap({ namespace: ns2, name: "yes", body: [{ op: "replace", path: "/metadata/labels/app", value: "other" }] });
    await eventually(() => { expect(selected.get(ns2, "yes")).toBeUndefined(); });
    expect(log).toContain("delete yes");
  });

  it("recovers when the watch connection drops, and replays the changes made meanwhile", async () => {
    const ns = await createNamespace(t.kc, "inf-drop");
    await createCm(ns, "a");
    await createCm(ns, "b", { v: "1" });
    const c = controllableTransport();
    const inf = informer({ namespace: ns, transport: c.transport });
    const log = record(inf);
    inf.start();
    await inf.waitForSync();
    await eventually(() => { expect(c.watchQueries).toHaveLength(1); });

    c.hold();
    c.drop();
    await eventually(() => { expect(inf.counters().failures).toBe(1); });
    await createCm(ns, "c");
    await core.patchNamespacedConfigMap({ namespace: ns, name: "b", body: [{ op: "replace", path: "/data/v", value: "2" }] });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: "a" });
    c.release();

    await eventually(() => { expect(log.slice(-3)).toEqual(["add c", "update b true", "delete a"]); });
    await expectCacheMatchesList(inf, ns);
    // Resumed from where it was, without a second list.
    expect(inf.counters()).toMatchObject({ lists: 1, watches: 2, expired: 0 });
    expect(c.watchQueries[1]?.["resourceVersion"]).toBe(c.watchQueries[0]?.["resourceVersion"]);
    expect(c.watchQueries[0]?.["allowWatchBookmarks"]).toBe("true");
  });

  it("re-lists on 410 Gone, emitting deletes and adds for what changed while it was not watching", async () => {
    const ns = await createNamespace(t.kc, "inf-gone");
    await createCm(ns, "stays");
    await createCm(ns, "goes");
    const c = controllableTransport();
    const inf = informer({ namespace: ns, transport: c.transport });
    const log = record(inf);
    inf.start();
    await inf.waitForSync();
    await eventually(() => { expect(c.watchQueries).toHaveLength(1); });

    c.hold();
    c.drop();
    await eventually(() => { expect(inf.counters().failures).toBe(1); });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: "goes" });
    await createCm(ns, "arrives");
    c.next.mode = "gone";
    c.release();

    await eventually(() => { expect(inf.counters().expired).toBe(1); });
    await eventually(() => { expect(log).toEqual(expect.arrayContaining(["delete goes", "add arrives"])); });
    expect(inf.counters().lists).toBe(2);
    await expectCacheMatchesList(inf, ns);
    // Watching again from the new list's version.
    await createCm(ns, "after");
    await eventually(() => { expect(inf.get(ns, "after")).toBeDefined(); });
  });

  it("replaces a watch that goes quiet (a hung stream) and catches up from its last version", async () => {
    const ns = await createNamespace(t.kc, "inf-quiet");
    const c = controllableTransport();
    const inf = informer({ namespace: ns, transport: c.transport, quietTimeoutMs: 1500 });
    inf.start();
    await inf.waitForSync();
    await eventually(() => { expect(c.watchQueries).toHaveLength(1); });
    // The next watch is connected but delivers nothing, as a stalled connection would.
    c.next.mode = "blackhole";
    const started = Date.now();
    c.drop();
    await eventually(() => { expect(c.watchQueries).toHaveLength(2); });
    await createCm(ns, "while-hung");
    await eventually(() => { expect(inf.get(ns, "while-hung")).toBeDefined(); }, 10_000);
    const waited = Date.now() - started;
    expect(inf.counters().quietRestarts).toBeGreaterThanOrEqual(1);
    expect(waited).toBeGreaterThan(1000); // it took the quiet timeout, not the watch, to see it
    expect(inf.counters().lists).toBe(1);
  });

  it("keeps retrying a denied list and syncs once RBAC allows it; stop() is prompt", async () => {
    const ns = await createNamespace(t.kc, "inf-rbac");
    const kc = await serviceAccount(t, ns, "reader");
    const inf = new Informer<WireObject>({ kc, resource: configmaps, namespace: ns, decode: (o) => o, backoff: { initialMs: 50, maxMs: 200 } });
    informers.push(inf);
    inf.start();
    await eventually(() => { expect(inf.counters().failures).toBeGreaterThanOrEqual(3); });
    expect(inf.hasSynced()).toBe(false);
    await grant(t.kc, ns, "reader", [{ apiGroups: [""], resources: ["configmaps"], verbs: ["list", "watch"] }]);
    expect(await inf.waitForSync(AbortSignal.timeout(10_000))).toBe(true);

    const before = Date.now();
    await inf.stop();
    // Prompt: a stop that waited for the open watch would take minutes.
    expect(Date.now() - before).toBeLessThan(10_000);
    expect(await inf.waitForSync()).toBe(true);
  });

  it("waitForSync resolves false when stopped before syncing", async () => {
    const ns = await createNamespace(t.kc, "inf-unsynced");
    const kc = await serviceAccount(t, ns, "nobody");
    const inf = new Informer<WireObject>({ kc, resource: configmaps, namespace: ns, decode: (o) => o });
    inf.start();
    const waiting = inf.waitForSync();
    await inf.stop();
    expect(await waiting).toBe(false);
  });
});

describe("Informer (scripted transport, fake clock)", () => {
  function scripted(watch: ListWatchTransport["watch"]): ListWatchTransport {
    return {
      list: () => Promise.resolve(ok({ kind: "ConfigMapList", apiVersion: "v1", metadata: { resourceVersion: "5" }, items: [] })),
      watch,
    };
  }

  it("backs off when watches end at once without events, instead of spinning", async () => {
    const clock = new FakeClock();
    let watches = 0;
    const transport = scripted(() => {
      watches++;
      return Promise.resolve({ type: "closed" });
    });
    const inf = new Informer<WireObject>({ kc: new KubeConfig(), resource: configmaps, decode: (o) => o, transport, clock, random: () => 0.5 });
    inf.start();
    await clock.advanceAsync(60_000);
    // 800 ms doubling to 30 s, at 3/4 with this random: about 7 attempts a minute.
    expect(watches).toBeGreaterThanOrEqual(5);
    expect(watches).toBeLessThanOrEqual(8);
    expect(inf.counters().lists).toBe(1);
    await inf.stop();
  });

  it("treats an ERROR event other than 410 as a failed watch and resumes from the same version", async () => {
    const clock = new FakeClock();
    const versions: (string | undefined)[] = [];
    const transport = scripted((_path, query, onEvent, signal) => {
      versions.push(query["resourceVersion"]);
      if (versions.length === 1) {
        onEvent({ type: "ADDED", object: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a", namespace: "n", resourceVersion: "7" } } });
        onEvent({ type: "ERROR", object: { kind: "Status", apiVersion: "v1", code: 500, reason: "InternalError", message: "etcd hiccup" } });
      }
      // Like a real stream: it ends when the informer aborts it (at once for the first, on stop for the second).
      return new Promise((resolve) => {
        const end = (): void => {
          setImmediate(() => {
            resolve({ type: "error", error: { type: "Transient", status: 0, reason: "", message: "aborted" } });
          });
        };
        if (signal.aborted) end();
        else signal.addEventListener("abort", end, { once: true });
      });
    });
    const inf = new Informer<WireObject>({ kc: new KubeConfig(), resource: configmaps, decode: (o) => o, transport, clock, random: () => 0.5 });
    inf.start();
    // Small steps: the transport settles on a real macrotask, after which the backoff timer is set.
    for (let i = 0; i < 40; i++) await clock.advanceAsync(50);
    expect(inf.get("n", "a")).toBeDefined();
    expect(inf.counters()).toMatchObject({ failures: 1, lists: 1, expired: 0 });
    expect(versions.slice(0, 2)).toEqual(["5", "7"]);
    await inf.stop();
  });
});
