// Server-side apply: send the desired object, let the apiserver merge it by
// field ownership (our fieldManager owns what we set; fields we stop setting are
// removed), and get the live object back. Expected failures come back as values.
//
// client-node 2.0.1 can do SSA: KubernetesObjectApi.patch(spec, undefined,
// undefined, fieldManager, force, PatchStrategy.ServerSideApply) sets the
// Content-Type to application/apply-patch+yaml and passes fieldManager/force.
// We do not use it because it serializes the body through ObjectSerializer for
// built-in kinds, which keeps only the attributes client-node's models know, under
// their TypeScript names: a field newer than the models is silently dropped, and so
// is one whose model name differs from the wire name (NetworkPolicy `from` is
// `_from`), so an apply quietly does less than asked (see the test). Nor can it
// address the status subresource, through which the operator writes status. So we
// PATCH the same endpoint with the object's JSON exactly as built (rest.ts), with
// fieldValidation=Strict so that a field the schema lacks is an error.

import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { failed, ok } from "./errors.ts";
import type { Result } from "./errors.ts";
import { RestClient, isWireObject, resourcePath } from "./rest.ts";
import type { ObjectRef, ResourceInfo, WireObject } from "./rest.ts";

export const defaultFieldManager = "concord-operator";

export interface ApplyOptions {
  readonly fieldManager: string;
  /** Take ownership of fields another manager owns instead of failing with Conflict. */
  readonly force: boolean;
  /** Apply to the status subresource (the object's status only). */
  readonly subresource?: "status";
  readonly dryRun?: boolean;
}

/** Applies `obj`; resolves to the object as the apiserver now has it. */
export async function apply(
  kc: KubeConfig,
  obj: KubernetesObject,
  opts: ApplyOptions = { fieldManager: defaultFieldManager, force: true },
): Promise<Result<WireObject>> {
  const { apiVersion, kind } = obj;
  const name = obj.metadata?.name;
  // A desired object without these is a builder bug, not an API failure.
  if (apiVersion === undefined || kind === undefined || name === undefined) {
    throw new Error(`apply: apiVersion, kind and metadata.name are required (got ${String(apiVersion)} ${String(kind)} ${String(name)})`);
  }
  const rest = RestClient.for(kc);
  const located = await locate(rest, { apiVersion, kind, name, ...(obj.metadata?.namespace !== undefined ? { namespace: obj.metadata.namespace } : {}) });
  if (!located.ok) return located;
  const r = await rest.request({
    method: "PATCH",
    path: opts.subresource === undefined ? located.value : `${located.value}/${opts.subresource}`,
    query: {
      fieldManager: opts.fieldManager,
      force: opts.force ? "true" : undefined,
      fieldValidation: "Strict",
      dryRun: opts.dryRun === true ? "All" : undefined,
    },
    contentType: "application/apply-patch+yaml",
    body: obj,
  });
  if (!r.ok) return r;
  if (!isWireObject(r.value)) return failed({ type: "Transient", status: 0, reason: "", message: `apply ${kind} ${name}: malformed response` });
  return ok(r.value);
}

export interface DeleteOptions {
  readonly propagationPolicy?: "Foreground" | "Background" | "Orphan";
  /** Delete only this incarnation: a recreated object (new uid) yields Conflict. */
  readonly uid?: string;
}

/** Deletes the object; `deleted: false` when it did not exist. */
export async function deleteIfExists(kc: KubeConfig, ref: ObjectRef, opts: DeleteOptions = {}): Promise<Result<{ readonly deleted: boolean }>> {
  const rest = RestClient.for(kc);
  const located = await locate(rest, ref);
  if (!located.ok) return located.error.type === "NotFound" ? ok({ deleted: false }) : located;
  const r = await rest.request({
    method: "DELETE",
    path: located.value,
    body: {
      apiVersion: "v1",
      kind: "DeleteOptions",
      ...(opts.propagationPolicy !== undefined ? { propagationPolicy: opts.propagationPolicy } : {}),
      ...(opts.uid !== undefined ? { preconditions: { uid: opts.uid } } : {}),
    },
  });
  if (r.ok) return ok({ deleted: true });
  return r.error.type === "NotFound" ? ok({ deleted: false }) : r;
}

/** The object's URL path, from discovery (NotFound when the kind is not served). */
async function locate(rest: RestClient, ref: ObjectRef): Promise<Result<string>> {
  const r = await rest.resource(ref.apiVersion, ref.kind);
  if (!r.ok) return r;
  const info: ResourceInfo = r.value;
  if (info.namespaced && ref.namespace === undefined) {
    throw new Error(`${ref.kind} ${ref.name}: metadata.namespace is required for a namespaced kind`);
  }
  return ok(resourcePath(info, info.namespaced ? ref.namespace : undefined, ref.name));
}
