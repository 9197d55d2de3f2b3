// A pod's volumes as host directories, which the container shim then
// bind-mounts (container.ts):
//
//   emptyDir               <pod dir>/volumes/empty-dir/<name>, removed with the pod
//   configMap, secret,
//   projected, downwardAPI <pod dir>/volumes/<kind>/<name>, files written once
//                          when the pod's sandbox is set up (not refreshed)
//   persistentVolumeClaim,
//   ephemeral              the bound PV's hostPath/local path (outlives the pod)
//   hostPath               the host path itself
//
// A volume that cannot be set up yet (claim not bound, configMap missing) is a
// value, not an error: the pod waits in ContainerCreating, as with the kubelet.

import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type {
  V1ConfigMap,
  V1DownwardAPIVolumeFile,
  V1KeyToPath,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Secret,
  V1Volume,
} from "@kubernetes/client-node";
import type { NodeAllocatable, PodRuntimeFields } from "./env.ts";
import { fieldRefValue, resourceFieldValue } from "./env.ts";

export interface VolumeApi {
  configMap(namespace: string, name: string): Promise<V1ConfigMap | null>;
  secret(namespace: string, name: string): Promise<V1Secret | null>;
  /** A bound service account token from the TokenRequest API. */
  token(namespace: string, serviceAccount: string, audience: string | undefined, expirationSeconds: number, pod: { name: string; uid: string }): Promise<string>;
  claim(namespace: string, name: string): V1PersistentVolumeClaim | undefined;
  persistentVolume(name: string): V1PersistentVolume | undefined;
}

export interface HostVolume {
  readonly path: string;
  /** Forced for configMap, secret, projected and downwardAPI volumes. */
  readonly readOnly: boolean;
  /** The path is a file (hostPath of type File/FileOrCreate). */
  readonly file: boolean;
}

export type VolumeSetup =
  | { readonly type: "Ready"; readonly volumes: ReadonlyMap<string, HostVolume> }
  | { readonly type: "Waiting"; readonly reason: string; readonly message: string };

interface ProjectedFile {
  readonly path: string;
  readonly content: Buffer;
  readonly mode: number;
}

type Files = { ok: true; files: ProjectedFile[] } | { ok: false; message: string };

const defaultMode = 0o644;

function pickKeys(
  kind: string,
  ref: string,
  data: ReadonlyMap<string, Buffer>,
  items: readonly V1KeyToPath[] | undefined,
  mode: number,
  optional: boolean,
): Files {
  if (items === undefined || items.length === 0) {
    return { ok: true, files: [...data].map(([k, v]) => ({ path: k, content: v, mode })) };
  }
  const files: ProjectedFile[] = [];
  for (const it of items) {
    const v = data.get(it.key);
    if (v === undefined) {
      if (optional) continue;
      return { ok: false, message: `${kind} ${ref} references non-existent key: ${it.key}` };
    }
    files.push({ path: it.path, content: v, mode: it.mode ?? mode });
  }
  return { ok: true, files };
}

function configMapData(cm: V1ConfigMap): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(cm.data ?? {})) m.set(k, Buffer.from(v, "utf8"));
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) m.set(k, Buffer.from(v, "base64"));
  return m;
}

function secretData(s: V1Secret): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(s.data ?? {})) m.set(k, Buffer.from(v, "base64"));
  for (const [k, v] of Object.entries(s.stringData ?? {})) m.set(k, Buffer.from(v, "utf8"));
  return m;
}

function downwardFiles(pod: V1Pod, items: readonly V1DownwardAPIVolumeFile[], mode: number, rt: PodRuntimeFields, node: NodeAllocatable): Files {
  const files: ProjectedFile[] = [];
  for (const it of items) {
    let r: { ok: true; value: string } | { ok: false; message: string };
    if (it.fieldRef !== undefined) r = fieldRefValue(pod, it.fieldRef, rt);
    else if (it.resourceFieldRef !== undefined) r = resourceFieldValue(pod, it.resourceFieldRef.containerName ?? "", it.resourceFieldRef, node);
    else continue;
    if (!r.ok) return { ok: false, message: `downwardAPI ${it.path}: ${r.message}` };
    files.push({ path: it.path, content: Buffer.from(r.value, "utf8"), mode: it.mode ?? mode });
  }
  return { ok: true, files };
}

/** Replaces a directory's contents (not the directory: running containers have it mounted). */
function writeFiles(dir: string, files: readonly ProjectedFile[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const e of readdirSync(dir)) rmSync(join(dir, e), { recursive: true, force: true });
  for (const f of files) {
    const p = join(dir, f.path);
    mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
    writeFileSync(p, f.content, { mode: f.mode });
    chmodSync(p, f.mode);
  }
}

/** The kubelet's fsGroup ownership change: group-owned, group-writable, setgid directories. */
export function applyFsGroup(path: string, gid: number): void {
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    chownSync(p, st.uid, gid);
    if (st.isDirectory()) {
      chmodSync(p, (st.mode & 0o7777) | 0o2070);
      for (const e of readdirSync(p)) walk(join(p, e));
    } else {
      chmodSync(p, (st.mode & 0o7777) | 0o060);
    }
  };
  walk(path);
}

/** The host path of a PersistentVolume the runner can mount: hostPath or local. */
export function persistentVolumePath(pv: V1PersistentVolume): string | null {
  return pv.spec?.hostPath?.path ?? pv.spec?.local?.path ?? null;
}

function claimVolume(ns: string, claimName: string, readOnly: boolean, api: VolumeApi): { ok: true; v: HostVolume } | { ok: false; message: string } {
  const pvc = api.claim(ns, claimName);
  if (pvc === undefined) return { ok: false, message: `persistentvolumeclaim "${claimName}" not found` };
  if (pvc.status?.phase !== "Bound" || pvc.spec?.volumeName === undefined) return { ok: false, message: `persistentvolumeclaim "${claimName}" is not bound` };
  const pv = api.persistentVolume(pvc.spec.volumeName);
  if (pv === undefined) return { ok: false, message: `persistentvolume "${pvc.spec.volumeName}" not found` };
  const path = persistentVolumePath(pv);
  if (path === null) return { ok: false, message: `persistentvolume "${pv.metadata?.name ?? ""}" is neither hostPath nor local; the pod runner cannot mount it` };
  mkdirSync(path, { recursive: true });
  return { ok: true, v: { path, readOnly, file: false } };
}

async function projectionFiles(pod: V1Pod, v: V1Volume, api: VolumeApi, rt: PodRuntimeFields, node: NodeAllocatable): Promise<Files | null> {
  const ns = pod.metadata?.namespace ?? "";
  if (v.configMap !== undefined) {
    const name = v.configMap.name ?? "";
    const cm = await api.configMap(ns, name);
    const optional = v.configMap.optional ?? false;
    if (cm === null) return optional ? { ok: true, files: [] } : { ok: false, message: `configmap "${name}" not found` };
    return pickKeys("configmap", name, configMapData(cm), v.configMap.items, v.configMap.defaultMode ?? defaultMode, optional);
  }
  if (v.secret !== undefined) {
    const name = v.secret.secretName ?? "";
    const s = await api.secret(ns, name);
    const optional = v.secret.optional ?? false;
    if (s === null) return optional ? { ok: true, files: [] } : { ok: false, message: `secret "${name}" not found` };
    return pickKeys("secret", name, secretData(s), v.secret.items, v.secret.defaultMode ?? defaultMode, optional);
  }
  if (v.downwardAPI !== undefined) return downwardFiles(pod, v.downwardAPI.items ?? [], v.downwardAPI.defaultMode ?? defaultMode, rt, node);
  if (v.projected !== undefined) {
    const mode = v.projected.defaultMode ?? defaultMode;
    const files: ProjectedFile[] = [];
    for (const src of v.projected.sources ?? []) {
      let part: Files;
      if (src.configMap !== undefined) {
        const name = src.configMap.name ?? "";
        const cm = await api.configMap(ns, name);
        const optional = src.configMap.optional ?? false;
        if (cm === null) part = optional ? { ok: true, files: [] } : { ok: false, message: `configmap "${name}" not found` };
        else part = pickKeys("configmap", name, configMapData(cm), src.configMap.items, mode, optional);
      } else if (src.secret !== undefined) {
        const name = src.secret.name ?? "";
        const s = await api.secret(ns, name);
        const optional = src.secret.optional ?? false;
        if (s === null) part = optional ? { ok: true, files: [] } : { ok: false, message: `secret "${name}" not found` };
        else part = pickKeys("secret", name, secretData(s), src.secret.items, mode, optional);
      } else if (src.downwardAPI !== undefined) {
        part = downwardFiles(pod, src.downwardAPI.items ?? [], mode, rt, node);
      } else if (src.serviceAccountToken !== undefined) {
        const t = src.serviceAccountToken;
        const token = await api.token(ns, pod.spec?.serviceAccountName ?? "default", t.audience, t.expirationSeconds ?? 3600, {
          name: pod.metadata?.name ?? "",
          uid: pod.metadata?.uid ?? "",
        });
        part = { ok: true, files: [{ path: t.path, content: Buffer.from(token, "utf8"), mode }] };
      } else {
        part = { ok: false, message: "projected source not supported by the pod runner (clusterTrustBundle, podCertificate)" };
      }
      if (!part.ok) return part;
      files.push(...part.files);
    }
    return { ok: true, files };
  }
  return null;
}

export interface VolumeContext {
  readonly pod: V1Pod;
  readonly podDir: string;
  readonly api: VolumeApi;
  readonly runtime: PodRuntimeFields;
  readonly node: NodeAllocatable;
}

/** Sets up every volume of the pod, or says what it waits for. */
export async function prepareVolumes(c: VolumeContext): Promise<VolumeSetup> {
  const { pod, podDir, api } = c;
  const ns = pod.metadata?.namespace ?? "";
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  const out = new Map<string, HostVolume>();
  for (const v of pod.spec?.volumes ?? []) {
    if (v.emptyDir !== undefined) {
      const path = join(podDir, "volumes", "empty-dir", v.name);
      mkdirSync(path, { recursive: true, mode: 0o777 });
      chmodSync(path, 0o777);
      if (fsGroup !== undefined) applyFsGroup(path, fsGroup);
      out.set(v.name, { path, readOnly: false, file: false });
      continue;
    }
    if (v.hostPath !== undefined) {
      const path = v.hostPath.path;
      const type = v.hostPath.type ?? "";
      if (type === "DirectoryOrCreate") mkdirSync(path, { recursive: true });
      if (type === "FileOrCreate") {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, "", { flag: "a" });
      }
      let isFile = false;
      try {
        const st = statSync(path);
        isFile = !st.isDirectory();
        if ((type === "Directory" || type === "DirectoryOrCreate") && !st.isDirectory()) {
          return { type: "Waiting", reason: "FailedMount", message: `hostPath type check failed: ${path} is not a directory` };
        }
      } catch {
        if (type !== "") return { type: "Waiting", reason: "FailedMount", message: `hostPath type check failed: ${path} does not exist` };
        // Type "" does no check; the mount point must exist to bind it, so make a directory.
        mkdirSync(path, { recursive: true });
      }
      out.set(v.name, { path, readOnly: false, file: isFile });
      continue;
    }
    if (v.persistentVolumeClaim !== undefined || v.ephemeral !== undefined) {
      const claimName = v.persistentVolumeClaim?.claimName ?? `${pod.metadata?.name ?? ""}-${v.name}`;
      const r = claimVolume(ns, claimName, v.persistentVolumeClaim?.readOnly ?? false, api);
      if (!r.ok) return { type: "Waiting", reason: "ContainerCreating", message: r.message };
      if (fsGroup !== undefined) applyFsGroup(r.v.path, fsGroup);
      out.set(v.name, r.v);
      continue;
    }
    const files = await projectionFiles(pod, v, api, c.runtime, c.node);
    if (files === null) {
      return { type: "Waiting", reason: "FailedMount", message: `volume "${v.name}": this volume type is not supported by the pod runner` };
    }
    if (!files.ok) return { type: "Waiting", reason: "FailedMount", message: `MountVolume.SetUp failed for volume "${v.name}": ${files.message}` };
    const kind = v.configMap !== undefined ? "configmap" : v.secret !== undefined ? "secret" : v.downwardAPI !== undefined ? "downward-api" : "projected";
    const path = join(podDir, "volumes", kind, v.name);
    writeFiles(path, files.files);
    if (fsGroup !== undefined) applyFsGroup(path, fsGroup);
    out.set(v.name, { path, readOnly: true, file: false });
  }
  return { type: "Ready", volumes: out };
}
