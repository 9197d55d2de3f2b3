// A seeded random workload: clients put, delete, compare-and-swap and run
// transactions through random members; every acknowledged write must be
// visible at once through any member (linearizable reads), and at the end
// every member must hold exactly the model's state. A failure prints the
// seed; CONCORD_TEST_SEED=N replays the same choices.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster } from "./testing/cluster.ts";
import type { PutResult } from "./testing/client.ts";
import { startedCluster } from "./testing/client.ts";
import { Rng, call, del, get, json, keepLogs, listAll, postJson, put } from "./testing/client.ts";

const seed = Number(process.env["CONCORD_TEST_SEED"] ?? String(Date.now() % 1_000_000));
const clients = 4;
const opsPerClient = 60;
const keysPerClient = 8;

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startedCluster("r");
});

afterAll(async () => {
  keepLogs(cluster, "workload");
  await cluster.destroy();
});

interface ModelEntry {
  value: string;
  modRevision: number;
  createRevision: number;
  version: number;
}

type Model = Map<string, ModelEntry>;

function fail(what: string, got: { status: number; text: string }): never {
  throw new Error(`${what}: unexpected ${got.status} ${got.text.slice(0, 200)}`);
}

/**
 * One client owns its keys, so the model of each is exact: the client's
 * operations on them are sequential, and other clients never touch them.
 */
async function runClient(c: number, rng: Rng, model: Model, log: string[]): Promise<void> {
  const key = (): string => `wl/${c}/${rng.int(keysPerClient)}`;
  const via = (): Member => rng.pick(cluster.members);
  for (let op = 0; op < opsPerClient; op++) {
    const k = key();
    const m = via();
    const cur = model.get(k);
    const kind = rng.pick(["put", "put", "put", "delete", "cas", "create", "txn"] as const);
    const value = `${c}.${op}.${rng.int(1000)}`;
    log.push(`client ${c} op ${op}: ${kind} ${k} via ${m.name}`);
    let applied: PutResult | null = null;
    switch (kind) {
      case "put": {
        const r = await put(m, k, value);
        if (r.status !== (cur === undefined ? 201 : 200)) fail(`put ${k}`, r);
        applied = json<PutResult>(r);
        break;
      }
      case "delete": {
        const r = await del(m, k);
        if (cur === undefined) {
          if (r.status !== 404) fail(`delete of missing ${k}`, r);
        } else {
          if (r.status !== 200) fail(`delete ${k}`, r);
          model.delete(k);
        }
        break;
      }
      case "cas": {
        // Half the time with the right tag, half with a stale one.
        const right = cur !== undefined && rng.int(2) === 0;
        const tag = right ? cur.modRevision : (cur?.modRevision ?? 1) + 1_000_000;
        const r = await put(m, k, value, { "If-Match": `"${tag}"` });
        if (right) {
          if (r.status !== 200) fail(`cas ${k}`, r);
          applied = json<PutResult>(r);
        } else {
          if (r.status !== 412) fail(`stale cas ${k}`, r);
          const current = json<{ error: { currentModRevision: number } }>(r).error.currentModRevision;
          expect(current, `currentModRevision of ${k}`).toBe(cur?.modRevision ?? 0);
        }
        break;
      }
      case "create": {
        const r = await put(m, k, value, { "If-None-Match": "*" });
        if (cur === undefined) {
          if (r.status !== 201) fail(`create ${k}`, r);
          applied = json<PutResult>(r);
        } else if (r.status !== 412) fail(`create of existing ${k}`, r);
        break;
      }
      case "txn": {
        // If the key is at the version the model says, put it and delete another.
        const other = `wl/${c}/${(Number(k.split("/")[2]) + 1) % keysPerClient}`;
        const guess = rng.int(3) === 0 ? 99 : (cur?.version ?? 0);
        const r = await postJson(m, "/v1/txn", {
          compare: [{ key: k, target: "version", op: "==", value: guess }],
          success: [{ put: { key: k, value } }, { delete: { key: other } }],
          failure: [{ get: { key: k } }],
        });
        if (r.status !== 200) fail(`txn on ${k}`, r);
        const t = json<{ succeeded: boolean; revision: number }>(r);
        expect(t.succeeded, `txn on ${k} (guess ${guess})`).toBe(guess === (cur?.version ?? 0));
        if (t.succeeded) {
          model.set(k, {
            value,
            modRevision: t.revision,
            createRevision: cur?.createRevision ?? t.revision,
            version: (cur?.version ?? 0) + 1,
          });
          model.delete(other);
        }
        break;
      }
    }
    if (applied !== null) {
      model.set(k, { value, modRevision: applied.modRevision, createRevision: applied.createRevision, version: applied.version });
      expect(applied.version).toBe((cur?.version ?? 0) + 1);
    }
    // Linearizable: the effect is visible at once through another random member.
    const after = model.get(k);
    const r = await get(via(), k);
    if (after === undefined) {
      if (r.status !== 404) fail(`read of deleted ${k}`, r);
    } else {
      if (r.status !== 200 || r.text !== after.value) fail(`read of ${k} (want ${after.value})`, r);
      expect(r.headers.get("etag")).toBe(`"${after.modRevision}"`);
    }
  }
}

describe("seeded random workload", () => {
  test(`puts, deletes, CAS and txns across members match a model (seed ${seed})`, async () => {
    const model: Model = new Map();
    const log: string[] = [];
    try {
      const root = new Rng(seed);
      const rngs = Array.from({ length: clients }, () => new Rng(root.int(2 ** 32)));
      await Promise.all(rngs.map((rng, c) => runClient(c, rng, model, log)));

      const status = json<{ revision: number }>(await call(await cluster.waitLeader(), "/v1/cluster/status"));
      const want = [...model].sort(([a], [b]) => (a < b ? -1 : 1));
      for (const m of cluster.members) {
        const { kvs } = await listAll(m, "wl/", `&consistency=serializable&minRevision=${status.revision}`);
        const got = kvs.map((kv) => [kv.key, { value: kv.value ?? "", modRevision: kv.modRevision, createRevision: kv.createRevision, version: kv.version }]);
        expect(got, `state of ${m.name}`).toEqual(want);
      }
    } catch (e) {
      const recent = log.slice(-8).join("\n  ");
      throw new Error(`seeded workload failed; reproduce: CONCORD_TEST_SEED=${seed} npx vitest run node/server/workload.test.ts\n  ${recent}\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, { cause: e });
    }
  });
});
