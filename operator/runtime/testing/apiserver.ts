// Helpers for tests against the real control plane (e2e/harness/controlplane.ts).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { ControlPlane } from "../../../e2e/harness/controlplane.ts";

export interface TestControlPlane {
  readonly cp: ControlPlane;
  readonly kc: KubeConfig;
  readonly dir: string;
  stop(): Promise<void>;
}

export async function startControlPlane(prefix: string): Promise<TestControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), `concord-${prefix}-`));
  const cp = await ControlPlane.start({ dir });
  return {
    cp,
    kc: cp.kubeConfig(),
    dir,
    stop: async () => {
      await cp.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function createNamespace(kc: KubeConfig, name: string): Promise<string> {
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

/**
 * A kubeconfig for a new ServiceAccount in `namespace`, optionally granted `rules`
 * there through a Role and RoleBinding.
 */
export async function serviceAccount(
  t: TestControlPlane,
  namespace: string,
  name: string,
  rules: readonly { apiGroups: string[]; resources: string[]; verbs: string[] }[] = [],
): Promise<KubeConfig> {
  const core = t.kc.makeApiClient(CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  if (rules.length > 0) await grant(t.kc, namespace, name, rules);
  const file = await t.cp.serviceAccountKubeconfig(namespace, name, join(t.dir, `${namespace}-${name}.kubeconfig`));
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

export async function grant(
  kc: KubeConfig,
  namespace: string,
  serviceAccountName: string,
  rules: readonly { apiGroups: string[]; resources: string[]; verbs: string[] }[],
): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name: serviceAccountName }, rules: [...rules] } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: serviceAccountName },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: serviceAccountName },
      subjects: [{ kind: "ServiceAccount", name: serviceAccountName, namespace }],
    },
  });
}

/** Polls `check` until it returns without throwing; rethrows its last error after `timeoutMs`. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
