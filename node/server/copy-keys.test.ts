// Loading a backup into a new cluster: a member restored from a snapshot
// (--restore-snapshot), then every key copied into a fresh cluster, bytes intact.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { copyKeys } from "../../scripts/copy-keys.ts";
import { LocalCluster } from "./testing/cluster.ts";
import { put, startedCluster } from "./testing/client.ts";

const clusters: LocalCluster[] = [];

afterAll(async () => {
  for (const c of clusters) await c.destroy();
});

test("a snapshot restored on one member copies into a new cluster byte for byte", async () => {
  const source = await LocalCluster.create({ size: 1, namePrefix: "s" });
  clusters.push(source);
  source.start();
  await source.waitLeader(30_000);
  const m = source.members[0];
  if (m === undefined) throw new Error("no member");
  const binary = new Uint8Array([0, 1, 2, 250, 255]);
  expect((await put(m, "app/bin", binary)).status).toBe(201);
  for (let k = 0; k < 1500; k++) expect((await put(m, `app/k${String(k).padStart(4, "0")}`, `v${k}`)).status).toBe(201);
  const snap = new Uint8Array(await (await fetch(`${m.url}/v1/snapshot?consistency=serializable`)).arrayBuffer());
  const file = join(source.dir, "backup.snap");
  writeFileSync(file, snap);

  // The backup, opened by a member restored from it.
  const restored = await LocalCluster.create({ size: 1, namePrefix: "r" });
  clusters.push(restored);
  const r = restored.members[0];
  if (r === undefined) throw new Error("no member");
  r.start(["--restore-snapshot", file, "--initial-cluster", `${r.name}=${r.peerUrl}`]);
  await restored.waitLeader(30_000);

  const target = await startedCluster("dst");
  clusters.push(target);
  const t = target.members[1];
  if (t === undefined) throw new Error("no member");
  const copied = await copyKeys(r.url, t.url, "app/");
  expect(copied.keys).toBe(1501);
  const bin = new Uint8Array(await (await fetch(`${t.url}/v1/kv/app%2Fbin`)).arrayBuffer());
  expect([...bin]).toEqual([...binary]);
  expect(await (await fetch(`${t.url}/v1/kv/app%2Fk1499`)).text()).toBe("v1499");
});
