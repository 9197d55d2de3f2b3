// A local-path dynamic provisioner, in the shape of an external provisioner:
// kube-controller-manager's PV controller marks a claim of our StorageClass
// with `volume.kubernetes.io/storage-provisioner: concord.dev/local-path`; we
// create a hostPath PV for it (a new directory under <root>/volumes), pre-bound
// through claimRef; the PV controller then binds the pair. A Released PV of
// ours whose reclaim policy is Delete loses its directory, then its object.
// Growing a claim's request grows the PV (the directory has no size limit).
//
// The builders are pure; LocalPathProvisioner is the thin API layer around them.

import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { CoreV1Api, StorageV1Api, V1PersistentVolume, V1PersistentVolumeClaim, V1StorageClass } from "@kubernetes/client-node";
import { parseQuantity } from "./quantity.ts";
import { isApiStatus, mergePatch, model } from "./kube.ts";

export const provisionerName = "concord.dev/local-path";
export const storageClassName = "local-path";
const provisionerAnnotations = ["volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner"];

export function defaultStorageClass(): V1StorageClass {
  return model<V1StorageClass>({
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: {
      name: storageClassName,
      annotations: {
        "storageclass.kubernetes.io/is-default-class": "true",
        "concord.dev/description": "Directories on the pod runner's machine (e2e only; see e2e/README.md)",
      },
    },
    provisioner: provisionerName,
    reclaimPolicy: "Delete",
    volumeBindingMode: "Immediate",
    allowVolumeExpansion: true,
  });
}

/** Whether this claim waits for us to provision it. */
export function wantsProvisioning(pvc: V1PersistentVolumeClaim): boolean {
  const ann = pvc.metadata?.annotations ?? {};
  if (!provisionerAnnotations.some((a) => ann[a] === provisionerName)) return false;
  if (pvc.metadata?.deletionTimestamp !== undefined) return false;
  return (pvc.spec?.volumeName ?? "") === "" && (pvc.status?.phase ?? "Pending") === "Pending";
}

/** The PV name external provisioners use: pvc-<claim uid>. */
export function volumeNameFor(pvc: V1PersistentVolumeClaim): string {
  return `pvc-${pvc.metadata?.uid ?? ""}`;
}

export function volumeFor(pvc: V1PersistentVolumeClaim, sc: V1StorageClass, root: string, nodeName: string): V1PersistentVolume {
  const name = volumeNameFor(pvc);
  const request = pvc.spec?.resources?.requests?.["storage"] ?? "1Gi";
  return model<V1PersistentVolume>({
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: {
      name,
      annotations: { "pv.kubernetes.io/provisioned-by": provisionerName, "concord.dev/pod-runner-node": nodeName },
    },
    spec: {
      capacity: { storage: request },
      accessModes: pvc.spec?.accessModes ?? ["ReadWriteOnce"],
      persistentVolumeReclaimPolicy: sc.reclaimPolicy ?? "Delete",
      storageClassName: sc.metadata?.name ?? storageClassName,
      volumeMode: "Filesystem",
      claimRef: {
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        namespace: pvc.metadata?.namespace ?? "",
        name: pvc.metadata?.name ?? "",
        uid: pvc.metadata?.uid ?? "",
      },
      hostPath: { path: join(root, "volumes", name), type: "DirectoryOrCreate" },
      nodeAffinity: {
        required: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [nodeName] }] }] },
      },
    },
  });
}

/** Whether a PV of ours is to be deleted: Released with reclaim policy Delete. */
export function wantsDeletion(pv: V1PersistentVolume): boolean {
  return (
    pv.metadata?.annotations?.["pv.kubernetes.io/provisioned-by"] === provisionerName &&
    pv.status?.phase === "Released" &&
    (pv.spec?.persistentVolumeReclaimPolicy ?? "Delete") === "Delete" &&
    pv.metadata.deletionTimestamp === undefined
  );
}

/** The new size when a bound claim asks for more than its PV has, else null. */
export function expansionFor(pvc: V1PersistentVolumeClaim, pv: V1PersistentVolume): string | null {
  if (pv.metadata?.annotations?.["pv.kubernetes.io/provisioned-by"] !== provisionerName) return null;
  const want = pvc.spec?.resources?.requests?.["storage"];
  const have = pv.spec?.capacity?.["storage"];
  if (want === undefined || have === undefined) return null;
  const w = parseQuantity(want);
  const h = parseQuantity(have);
  return w !== null && h !== null && w > h ? want : null;
}

export class LocalPathProvisioner {
  private readonly core: CoreV1Api;
  private readonly storage: StorageV1Api;
  private readonly root: string;
  private readonly nodeName: string;
  private readonly log: (msg: string) => void;
  /** Claims we created a PV for; the PV controller binds them shortly. */
  private readonly inFlight = new Set<string>();

  constructor(o: { core: CoreV1Api; storage: StorageV1Api; root: string; nodeName: string; log: (msg: string) => void }) {
    this.core = o.core;
    this.storage = o.storage;
    this.root = o.root;
    this.nodeName = o.nodeName;
    this.log = o.log;
  }

  async ensureStorageClass(): Promise<void> {
    try {
      await this.storage.createStorageClass({ body: defaultStorageClass() });
      this.log(`created StorageClass ${storageClassName}`);
    } catch (e) {
      if (!isApiStatus(e, 409)) throw e;
    }
  }

  async reconcileClaim(pvc: V1PersistentVolumeClaim, volumeExists: (name: string) => boolean): Promise<void> {
    if (!wantsProvisioning(pvc)) return;
    const pvName = volumeNameFor(pvc);
    if (volumeExists(pvName) || this.inFlight.has(pvName)) return;
    const className = pvc.spec?.storageClassName ?? "";
    let sc: V1StorageClass;
    try {
      sc = await this.storage.readStorageClass({ name: className });
    } catch (e) {
      if (isApiStatus(e, 404)) return;
      throw e;
    }
    if (sc.provisioner !== provisionerName) return;
    if (pvc.spec?.volumeMode === "Block") {
      this.log(`claim ${pvc.metadata?.namespace ?? ""}/${pvc.metadata?.name ?? ""}: block volumes are not supported`);
      return;
    }
    const pv = volumeFor(pvc, sc, this.root, this.nodeName);
    const path = pv.spec?.hostPath?.path ?? "";
    mkdirSync(path, { recursive: true, mode: 0o777 });
    this.inFlight.add(pvName);
    try {
      await this.core.createPersistentVolume({ body: pv });
      this.log(`provisioned ${pvName} for ${pvc.metadata?.namespace ?? ""}/${pvc.metadata?.name ?? ""} at ${path}`);
    } catch (e) {
      this.inFlight.delete(pvName);
      if (!isApiStatus(e, 409)) throw e;
    }
  }

  async reconcileVolume(pv: V1PersistentVolume): Promise<void> {
    const name = pv.metadata?.name ?? "";
    this.inFlight.delete(name);
    if (!wantsDeletion(pv)) return;
    const path = pv.spec?.hostPath?.path;
    // Only ever delete what we created: a directory under our root named for the PV.
    if (path === join(this.root, "volumes", name)) rmSync(path, { recursive: true, force: true });
    try {
      await this.core.deletePersistentVolume({ name });
      this.log(`deleted released volume ${name}`);
    } catch (e) {
      if (!isApiStatus(e, 404)) throw e;
    }
  }

  async reconcileExpansion(pvc: V1PersistentVolumeClaim, pv: V1PersistentVolume): Promise<void> {
    const size = expansionFor(pvc, pv);
    if (size === null) return;
    await this.core.patchPersistentVolume({ name: pv.metadata?.name ?? "", body: { spec: { capacity: { storage: size } } } }, mergePatch);
    await this.core.patchNamespacedPersistentVolumeClaimStatus(
      { name: pvc.metadata?.name ?? "", namespace: pvc.metadata?.namespace ?? "", body: { status: { capacity: { storage: size } } } },
      mergePatch,
    );
    this.log(`expanded ${pv.metadata?.name ?? ""} to ${size}`);
  }
}
