// The event recorder against a real kube-apiserver.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreV1Api, EventsV1Api } from "@kubernetes/client-node";
import type { CoreV1Event, EventsV1Event, V1ConfigMap } from "@kubernetes/client-node";
import { EventRecorder, defaultReportingController } from "./events.ts";
import type { Logger } from "./logger.ts";
import { createNamespace, eventually, serviceAccount, startControlPlane } from "./testing/apiserver.ts";
import type { TestControlPlane } from "./testing/apiserver.ts";
import { FakeClock } from "./testing/fakeclock.ts";

let t: TestControlPlane;
let ns: string;
let core: CoreV1Api;

beforeAll(async () => {
  t = await startControlPlane("events");
  ns = await createNamespace(t.kc, "events");
  core = t.kc.makeApiClient(CoreV1Api);
}, 90_000);

afterAll(async () => {
  await t.stop();
});

async function configMap(name: string): Promise<V1ConfigMap> {
  const cm = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name } } });
  // Typed reads drop apiVersion/kind; an Event's regarding needs them.
  return { apiVersion: "v1", kind: "ConfigMap", metadata: cm.metadata ?? {} };
}

/** What `kubectl describe` asks for: core/v1 Events by involvedObject. */
async function describeEvents(cm: V1ConfigMap): Promise<CoreV1Event[]> {
  const sel = [`involvedObject.name=${cm.metadata?.name ?? ""}`, `involvedObject.namespace=${ns}`, "involvedObject.kind=ConfigMap", `involvedObject.uid=${cm.metadata?.uid ?? ""}`];
  return (await core.listNamespacedEvent({ namespace: ns, fieldSelector: sel.join(",") })).items;
}

async function eventsFor(name: string): Promise<EventsV1Event[]> {
  return (await t.kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: `regarding.name=${name}` })).items;
}

function capture(): { log: Logger; errors: string[] } {
  const errors: string[] = [];
  const put = (fields: object, message: string): void => {
    errors.push(`${message} ${JSON.stringify(fields)}`);
  };
  const none = (): void => undefined;
  return { log: { debug: none, info: none, warn: put, error: put }, errors };
}

describe("EventRecorder against kube-apiserver", () => {
  it("writes an events.k8s.io Event that kubectl describe's query finds, and folds repeats into a series", async () => {
    const cm = await configMap("described");
    const rec = new EventRecorder<"MemberAdded">({ kc: t.kc, reportingInstance: "operator-0_abc" });
    await rec.record(cm, { type: "Normal", reason: "MemberAdded", note: "added member 3" });

    const [first, ...rest] = await eventsFor("described");
    expect(rest).toHaveLength(0);
    expect(first).toMatchObject({
      type: "Normal",
      reason: "MemberAdded",
      note: "added member 3",
      action: "Reconcile",
      reportingController: defaultReportingController,
      reportingInstance: "operator-0_abc",
      regarding: { kind: "ConfigMap", name: "described", namespace: ns, uid: cm.metadata?.uid },
    });
    expect(first?.series).toBeUndefined();

    await rec.record(cm, { type: "Normal", reason: "MemberAdded", note: "added member 3" });
    await rec.record(cm, { type: "Normal", reason: "MemberAdded", note: "added member 3" });
    const after = await eventsFor("described");
    expect(after).toHaveLength(1);
    expect(after[0]?.series?.count).toBe(3);

    const described = await describeEvents(cm);
    expect(described).toHaveLength(1);
    expect(described[0]).toMatchObject({ reason: "MemberAdded", message: "added member 3", type: "Normal", reportingComponent: defaultReportingController });
    expect(described[0]?.series?.count).toBe(3);
  });

  it("coalesces a burst of repeats into one Event with the full count; different events stay separate", async () => {
    const cm = await configMap("burst");
    const rec = new EventRecorder({ kc: t.kc, reportingInstance: "operator-0" });
    await Promise.all(Array.from({ length: 25 }, () => rec.record(cm, { type: "Warning", reason: "QuorumLost", note: "2 of 5 members reachable" })));
    await rec.record(cm, { type: "Warning", reason: "QuorumLost", note: "1 of 5 members reachable" });
    await rec.record(cm, { type: "Normal", reason: "LeaderTransferred", note: "leader is now member 2" });
    const evs = await eventsFor("burst");
    expect(evs.map((e) => `${e.reason ?? ""} ${e.note ?? ""} x${e.series?.count ?? 1}`).sort()).toEqual([
      "LeaderTransferred leader is now member 2 x1",
      "QuorumLost 1 of 5 members reachable x1",
      "QuorumLost 2 of 5 members reachable x25",
    ]);
  });

  it("starts a new Event once the series window has passed", async () => {
    const cm = await configMap("windowed");
    const clock = new FakeClock(Date.now());
    const rec = new EventRecorder({ kc: t.kc, reportingInstance: "operator-0", clock, seriesWindowMs: 60_000 });
    const ev = { type: "Normal", reason: "UpgradeStarted", note: "rolling to 1.2.0" } as const;
    await rec.record(cm, ev);
    clock.advance(30_000);
    await rec.record(cm, ev);
    clock.advance(61_000);
    await rec.record(cm, ev);
    const evs = await eventsFor("windowed");
    expect(evs.map((e) => e.series?.count ?? 1).sort()).toEqual([1, 2]);
  });

  it("truncates a note over 1 kB", async () => {
    const cm = await configMap("long");
    const rec = new EventRecorder({ kc: t.kc, reportingInstance: "operator-0" });
    await rec.record(cm, { type: "Warning", reason: "Degraded", note: "é".repeat(2000) });
    const [e] = await eventsFor("long");
    expect(Buffer.byteLength(e?.note ?? "")).toBeLessThanOrEqual(1024);
    expect(e?.note?.endsWith("...")).toBe(true);
  });

  it("never throws: without RBAC the failure is logged and record() resolves", async () => {
    const cm = await configMap("denied");
    const kc = await serviceAccount(t, ns, "mute");
    const { log, errors } = capture();
    const rec = new EventRecorder({ kc, reportingInstance: "operator-0", log });
    await expect(rec.record(cm, { type: "Normal", reason: "MemberAdded", note: "x" })).resolves.toBeUndefined();
    await expect(rec.record({ apiVersion: "v1", kind: "ConfigMap", name: "denied", namespace: ns }, { type: "Normal", reason: "not camel", note: "x" })).resolves.toBeUndefined();
    expect(errors.some((e) => e.startsWith("could not record an event") && e.includes('"type":"Forbidden"'))).toBe(true);
    expect(errors.some((e) => e.startsWith("event reason is not CamelCase"))).toBe(true);
    await eventually(async () => {
      expect(await eventsFor("denied")).toHaveLength(0);
    });
  });
});
