// Object keys as the work queue and the informer cache use them: "namespace/name",
// or "name" for cluster-scoped objects (client-go's MetaNamespaceKeyFunc).

import type { KubernetesObject } from "@kubernetes/client-node";

export function keyOf(namespace: string | undefined, name: string): string {
  return namespace === undefined || namespace === "" ? name : `${namespace}/${name}`;
}

export function objectKey(obj: KubernetesObject): string {
  return keyOf(obj.metadata?.namespace, obj.metadata?.name ?? "");
}

export function splitKey(key: string): { readonly namespace: string | undefined; readonly name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
