// A container's environment, command and args as the kubelet computes them:
// envFrom, then env in order, each value expanded against the variables defined
// before it; downward API fieldRef/resourceFieldRef; configMap/secret key refs.
// Pure: configMaps and secrets come in already fetched (see EnvSources).
//
// Reference: kubelet makeEnvironmentVariables (pkg/kubelet/kubelet_pods.go) and
// third_party/forked/golang/expansion.

import type { V1Container, V1ObjectFieldSelector, V1Pod, V1ResourceFieldSelector } from "@kubernetes/client-node";
import { parseQuantity } from "./quantity.ts";

/** `$(NAME)` → mapping(NAME) when defined, else left as written; `$$` → `$`. */
export function expand(input: string, mapping: (name: string) => string | undefined): string {
  let out = "";
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== "$" || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const next = input[cursor + 1];
    let advance = 1;
    if (next === "$") {
      out += "$";
    } else if (next === "(") {
      const close = input.indexOf(")", cursor + 2);
      if (close === -1) {
        // An unterminated reference is kept as written.
        out += "$(";
      } else {
        const name = input.slice(cursor + 2, close);
        out += mapping(name) ?? `$(${name})`;
        advance = close - cursor;
      }
    } else {
      out += `$${next ?? ""}`;
    }
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

/** ConfigMap and Secret data by name; null when the object does not exist. */
export interface EnvSources {
  configMap(name: string): Readonly<Record<string, string>> | null;
  secret(name: string): Readonly<Record<string, string>> | null;
}

/** What resourceFieldRef reports for an unset limit (the kubelet uses node allocatable). */
export interface NodeAllocatable {
  readonly cpu: number;
  readonly memory: number;
  readonly ephemeralStorage: number;
}

export interface PodRuntimeFields {
  readonly podIP: string;
  readonly hostIP: string;
}

export type EnvResult =
  | { readonly type: "Ok"; readonly env: ReadonlyMap<string, string> }
  /** The kubelet's CreateContainerConfigError: the container waits until the reference resolves. */
  | { readonly type: "ConfigError"; readonly message: string };

const envNamePattern = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

function parseBracketKey(path: string, prefix: string): string | null {
  if (!path.startsWith(`${prefix}['`) || !path.endsWith("']")) return null;
  return path.slice(prefix.length + 2, -2);
}

/** A downward API field as a string, or an error message. */
export function fieldRefValue(pod: V1Pod, ref: V1ObjectFieldSelector, rt: PodRuntimeFields): { ok: true; value: string } | { ok: false; message: string } {
  const p = ref.fieldPath;
  const md = pod.metadata;
  const label = parseBracketKey(p, "metadata.labels");
  if (label !== null) return { ok: true, value: md?.labels?.[label] ?? "" };
  const ann = parseBracketKey(p, "metadata.annotations");
  if (ann !== null) return { ok: true, value: md?.annotations?.[ann] ?? "" };
  switch (p) {
    case "metadata.name":
      return { ok: true, value: md?.name ?? "" };
    case "metadata.namespace":
      return { ok: true, value: md?.namespace ?? "" };
    case "metadata.uid":
      return { ok: true, value: md?.uid ?? "" };
    case "metadata.labels":
      return { ok: true, value: formatMap(md?.labels ?? {}) };
    case "metadata.annotations":
      return { ok: true, value: formatMap(md?.annotations ?? {}) };
    case "spec.nodeName":
      return { ok: true, value: pod.spec?.nodeName ?? "" };
    case "spec.serviceAccountName":
      return { ok: true, value: pod.spec?.serviceAccountName ?? "" };
    case "status.podIP":
      return { ok: true, value: rt.podIP };
    case "status.podIPs":
      return { ok: true, value: rt.podIP };
    case "status.hostIP":
      return { ok: true, value: rt.hostIP };
    case "status.hostIPs":
      return { ok: true, value: rt.hostIP };
    default:
      return { ok: false, message: `unsupported fieldPath ${p}` };
  }
}

/** The downward API's map format (volumes only): `key="value"` lines, sorted by key. */
export function formatMap(m: Readonly<Record<string, string>>): string {
  return Object.keys(m)
    .sort()
    .map((k) => `${k}=${JSON.stringify(m[k] ?? "")}`)
    .join("\n");
}

/** A resourceFieldRef value: the quantity divided by the divisor, rounded up, as the kubelet does. */
export function resourceFieldValue(
  pod: V1Pod,
  containerName: string,
  ref: V1ResourceFieldSelector,
  node: NodeAllocatable,
): { ok: true; value: string } | { ok: false; message: string } {
  const name = ref.containerName !== undefined && ref.containerName !== "" ? ref.containerName : containerName;
  const c = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((x) => x.name === name);
  if (c === undefined) return { ok: false, message: `resourceFieldRef names unknown container ${name}` };
  const [kind, resource] = ref.resource.split(".", 2) as [string, string | undefined];
  if ((kind !== "limits" && kind !== "requests") || resource === undefined) {
    return { ok: false, message: `unsupported resource ${ref.resource}` };
  }
  const set = kind === "limits" ? c.resources?.limits : c.resources?.requests;
  const raw: unknown = set?.[resource];
  let value: number | null;
  if (typeof raw === "string" || typeof raw === "number") {
    value = parseQuantity(raw);
  } else if (kind === "limits") {
    value = resource === "cpu" ? node.cpu : resource === "memory" ? node.memory : resource === "ephemeral-storage" ? node.ephemeralStorage : null;
  } else {
    value = 0;
  }
  if (value === null) return { ok: false, message: `cannot read ${ref.resource} of container ${name}` };
  const divisor = parseQuantity(ref.divisor ?? "1") ?? 1;
  // Rounding to whole divisor units (millicores, bytes) first keeps 0.1/0.001 from becoming 101.
  const units = resource === "cpu" ? Math.round(value * 1000) / Math.round(divisor * 1000) : value / divisor;
  return { ok: true, value: String(Math.ceil(units - 1e-9)) };
}

export interface EnvInput {
  readonly pod: V1Pod;
  readonly container: V1Container;
  readonly runtime: PodRuntimeFields;
  readonly node: NodeAllocatable;
  readonly sources: EnvSources;
  /** Variables the "image" defines; env and envFrom override them. */
  readonly imageEnv?: Readonly<Record<string, string>>;
  /** Variables the runtime always sets (HOSTNAME, KUBERNETES_SERVICE_*), overridable like service env. */
  readonly runtimeEnv?: Readonly<Record<string, string>>;
}

/** The container's environment, in the order the kubelet would hand it to the runtime. */
export function containerEnv(input: EnvInput): EnvResult {
  const { pod, container, sources } = input;
  const env = new Map<string, string>();
  for (const [k, v] of Object.entries(input.imageEnv ?? {})) env.set(k, v);
  const defined = new Map<string, string>();
  const runtimeEnv = input.runtimeEnv ?? {};
  const mapping = (name: string): string | undefined => defined.get(name) ?? runtimeEnv[name];

  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? "";
    let data: Readonly<Record<string, string>> | null;
    let optional: boolean;
    let what: string;
    if (from.configMapRef !== undefined) {
      data = sources.configMap(from.configMapRef.name ?? "");
      optional = from.configMapRef.optional ?? false;
      what = `configmap "${from.configMapRef.name ?? ""}"`;
    } else if (from.secretRef !== undefined) {
      data = sources.secret(from.secretRef.name ?? "");
      optional = from.secretRef.optional ?? false;
      what = `secret "${from.secretRef.name ?? ""}"`;
    } else {
      continue;
    }
    if (data === null) {
      if (optional) continue;
      return { type: "ConfigError", message: `${what} not found` };
    }
    for (const [k, v] of Object.entries(data)) {
      // The kubelet skips keys that are not valid variable names (and records an event).
      if (envNamePattern.test(prefix + k)) defined.set(prefix + k, v);
    }
  }

  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      // Only literal values are expanded; values from references are taken as they are.
      defined.set(e.name, expand(e.value ?? "", mapping));
      continue;
    }
    const vf = e.valueFrom;
    if (vf.fieldRef !== undefined) {
      const r = fieldRefValue(pod, vf.fieldRef, input.runtime);
      if (!r.ok) return { type: "ConfigError", message: `env ${e.name}: ${r.message}` };
      defined.set(e.name, r.value);
    } else if (vf.resourceFieldRef !== undefined) {
      const r = resourceFieldValue(pod, container.name, vf.resourceFieldRef, input.node);
      if (!r.ok) return { type: "ConfigError", message: `env ${e.name}: ${r.message}` };
      defined.set(e.name, r.value);
    } else if (vf.configMapKeyRef !== undefined || vf.secretKeyRef !== undefined) {
      const kind = vf.configMapKeyRef !== undefined ? "configmap" : "secret";
      const ref: { name?: string; key: string; optional?: boolean } | undefined = vf.configMapKeyRef ?? vf.secretKeyRef;
      if (ref === undefined) continue;
      const data = kind === "configmap" ? sources.configMap(ref.name ?? "") : sources.secret(ref.name ?? "");
      const optional = ref.optional ?? false;
      if (data === null) {
        if (optional) continue;
        return { type: "ConfigError", message: `${kind} "${ref.name ?? ""}" not found` };
      }
      const v = data[ref.key];
      if (v === undefined) {
        if (optional) continue;
        return { type: "ConfigError", message: `couldn't find key ${ref.key} in ${kind} ${pod.metadata?.namespace ?? ""}/${ref.name ?? ""}` };
      }
      defined.set(e.name, v);
    } else {
      return { type: "ConfigError", message: `env ${e.name}: unsupported valueFrom (only fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef)` };
    }
  }

  for (const [k, v] of Object.entries(runtimeEnv)) if (!defined.has(k)) env.set(k, v);
  for (const [k, v] of defined) env.set(k, v);
  return { type: "Ok", env };
}

/**
 * The argv a container runs: `command` replaces the image's entrypoint (and drops
 * its cmd), `args` replace cmd; both are expanded against the container's env.
 */
export function containerArgv(
  image: { readonly entrypoint: readonly string[]; readonly cmd?: readonly string[] },
  container: Pick<V1Container, "command" | "args">,
  env: ReadonlyMap<string, string>,
): string[] {
  const mapping = (name: string): string | undefined => env.get(name);
  const command = container.command !== undefined && container.command.length > 0 ? container.command.map((s) => expand(s, mapping)) : null;
  const args = container.args !== undefined && container.args.length > 0 ? container.args.map((s) => expand(s, mapping)) : null;
  const entry = command ?? [...image.entrypoint];
  const rest = args ?? (command !== null ? [] : [...(image.cmd ?? [])]);
  return [...entry, ...rest];
}
