// Server-side apply and error classification against a real kube-apiserver.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiextensionsV1Api, CoreV1Api, KubernetesObjectApi, PatchStrategy } from "@kubernetes/client-node";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { apply, defaultFieldManager, deleteIfExists } from "./apply.ts";
import { classifyError } from "./errors.ts";
import type { ApiError, Result } from "./errors.ts";
import { createNamespace, eventually, serviceAccount, startControlPlane } from "./testing/apiserver.ts";
import type { TestControlPlane } from "./testing/apiserver.ts";

let t: TestControlPlane;
let core: CoreV1Api;
let ns: string;

beforeAll(async () => {
  t = await startControlPlane("apply");
  core = t.kc.makeApiClient(CoreV1Api);
  ns = await createNamespace(t.kc, "apply");
}, 90_000);

afterAll(async () => {
  await t.stop();
});

/** Desired objects are plain JSON, as the operator's builders make them. */
interface ConfigMapJson {
  readonly apiVersion: "v1";
  readonly kind: "ConfigMap";
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly data: Record<string, string>;
}

function cm(name: string, data: Record<string, string>): ConfigMapJson {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: ns }, data };
}

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${JSON.stringify(r.error)}`);
  return r.value;
}

function error<T>(r: Result<T>): ApiError {
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.value)}`);
  return r.error;
}

/** A field no ConfigMap schema has. */
function withBogusField<T extends object>(o: T): T {
  return { ...o, bogus: 1 };
}

const force = { fieldManager: defaultFieldManager, force: true } as const;

describe("apply against kube-apiserver", () => {
  it("creates, is idempotent, records our field manager, and updates and prunes on change", async () => {
    const first = value(await apply(t.kc, cm("app", { a: "1", b: "2" }), force));
    expect(first["data"]).toEqual({ a: "1", b: "2" });
    const again = value(await apply(t.kc, cm("app", { a: "1", b: "2" }), force));
    expect(again.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion); // a no-op writes nothing
    expect(again.metadata?.managedFields?.map((m) => [m.manager, m.operation])).toEqual([[defaultFieldManager, "Apply"]]);

    const changed = value(await apply(t.kc, cm("app", { a: "3" }), force));
    expect(changed.metadata?.resourceVersion).not.toBe(first.metadata?.resourceVersion);
    // b was ours and we no longer set it, so SSA removed it.
    expect(changed["data"]).toEqual({ a: "3" });
    const live = await core.readNamespacedConfigMap({ namespace: ns, name: "app" });
    expect(live.data).toEqual({ a: "3" });
  });

  it("reports a field owned by another manager as Conflict unless forced", async () => {
    value(await apply(t.kc, cm("shared", { k: "theirs" }), { fieldManager: "someone-else", force: true }));
    const e = error(await apply(t.kc, cm("shared", { k: "ours" }), { fieldManager: defaultFieldManager, force: false }));
    expect(e).toMatchObject({ type: "Conflict", status: 409 });
    expect(e.message).toContain("someone-else");
    const taken = value(await apply(t.kc, cm("shared", { k: "ours" }), force));
    expect(taken["data"]).toEqual({ k: "ours" });
  });

  it("returns Invalid with the apiserver's message for an invalid object or an unknown field", async () => {
    const bad = error(await apply(t.kc, cm("bad", { "bad key!": "x" }), force));
    expect(bad).toMatchObject({ type: "Invalid", status: 422, reason: "Invalid" });
    expect(bad.message).toContain("a valid config key must consist of alphanumeric characters");

    // kube-apiserver answers 500 here (kubernetes/kubernetes#139253); it is still our mistake.
    const unknown = error(await apply(t.kc, withBogusField(cm("unknown", {})), force));
    expect(unknown).toMatchObject({ type: "Invalid" });
    expect(unknown.message).toContain(".bogus: field not declared in schema");
  });

  it("(why not KubernetesObjectApi.patch) client-node drops fields its models do not know", async () => {
    const objects = KubernetesObjectApi.makeApiClient(t.kc);
    const spec: V1ConfigMap = withBogusField(cm("dropped", { a: "1" }));
    const r = await objects.patch(spec, undefined, undefined, defaultFieldManager, true, PatchStrategy.ServerSideApply);
    // The apply "succeeded": the field never reached the apiserver.
    expect(r.metadata?.name).toBe("dropped");
  });

  it("returns NotFound for a missing namespace or an unserved kind, and Forbidden without RBAC", async () => {
    const noNs = error(await apply(t.kc, { ...cm("x", {}), metadata: { name: "x", namespace: "does-not-exist" } }, force));
    expect(noNs).toMatchObject({ type: "NotFound", status: 404 });
    const noKind = error(await apply(t.kc, { apiVersion: "test.concord.dev/v1", kind: "Gizmo", metadata: { name: "g", namespace: ns } }, force));
    expect(noKind.type).toBe("NotFound");

    const kc = await serviceAccount(t, ns, "no-rbac");
    const denied = error(await apply(kc, cm("denied", { a: "1" }), force));
    expect(denied).toMatchObject({ type: "Forbidden", status: 403, reason: "Forbidden" });
    expect(denied.message).toContain(`"system:serviceaccount:${ns}:no-rbac" cannot patch resource "configmaps"`);
  });

  it("applies a custom resource and its status subresource separately, once its CRD is served", async () => {
    const widget = (extra: object) => ({ apiVersion: "test.concord.dev/v1", kind: "Widget", metadata: { name: "w", namespace: ns }, ...extra });
    expect(error(await apply(t.kc, widget({ spec: { size: 1 } }), force)).type).toBe("NotFound");
    await t.kc.makeApiClient(ApiextensionsV1Api).createCustomResourceDefinition({
      body: {
        metadata: { name: "widgets.test.concord.dev" },
        spec: {
          group: "test.concord.dev",
          names: { kind: "Widget", plural: "widgets", singular: "widget", listKind: "WidgetList" },
          scope: "Namespaced",
          versions: [{
            name: "v1",
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: {
              openAPIV3Schema: {
                type: "object",
                properties: {
                  spec: { type: "object", properties: { size: { type: "integer" } } },
                  status: { type: "object", properties: { phase: { type: "string" } } },
                },
              },
            },
          }],
        },
      },
    });
    // Discovery is re-read on a miss, so the new kind is found without a restart.
    const created = await eventually(async () => value(await apply(t.kc, widget({ spec: { size: 3 }, status: { phase: "Ignored" } }), force)), 20_000, 200);
    expect(created["spec"]).toEqual({ size: 3 });
    expect(created["status"]).toBeUndefined(); // the main resource ignores status
    const withStatus = value(await apply(t.kc, widget({ status: { phase: "Ready" } }), { ...force, subresource: "status" }));
    expect(withStatus["status"]).toEqual({ phase: "Ready" });
    expect(withStatus["spec"]).toEqual({ size: 3 });
    expect(withStatus.metadata?.managedFields?.map((m) => [m.manager, m.subresource ?? ""]).sort()).toEqual([
      [defaultFieldManager, ""],
      [defaultFieldManager, "status"],
    ]);
  });

  it("deleteIfExists deletes once, then reports deleted: false; a uid precondition guards against a recreated object", async () => {
    const live = value(await apply(t.kc, cm("doomed", {}), force));
    const ref = { apiVersion: "v1", kind: "ConfigMap", name: "doomed", namespace: ns };
    expect(error(await deleteIfExists(t.kc, ref, { uid: "00000000-0000-0000-0000-000000000000" }))).toMatchObject({ type: "Conflict", status: 409 });
    expect(value(await deleteIfExists(t.kc, ref, { uid: live.metadata?.uid ?? "" }))).toEqual({ deleted: true });
    expect(value(await deleteIfExists(t.kc, ref))).toEqual({ deleted: false });
    expect(value(await deleteIfExists(t.kc, { apiVersion: "nope.concord.dev/v1", kind: "Nothing", name: "n", namespace: ns }))).toEqual({ deleted: false });
  });

  it("classifyError turns client-node's ApiException into the same values", async () => {
    const e = await core.readNamespacedConfigMap({ namespace: ns, name: "missing" }).then(
      () => undefined,
      (err: unknown) => classifyError(err),
    );
    expect(e).toMatchObject({ type: "NotFound", status: 404, reason: "NotFound" });
    expect(e?.message).toBe('configmaps "missing" not found');
  });
});
