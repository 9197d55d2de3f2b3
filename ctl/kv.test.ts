// concordctl against a real 3-member cluster: keys, compare-and-swap,
// transactions, leases, watch (resuming when the watched member dies), and
// the errors and exit statuses a script relies on.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { LocalCluster, Member } from "../node/server/testing/cluster.ts";
import { eventually, freePort } from "../node/server/testing/cluster.ts";
import { get, keepLogs, putRetrying, startedCluster, waitLeaderOrExit } from "../node/server/testing/client.ts";
import type { CtlResult } from "./testing/run.ts";
import { CtlProcess, ctl, endpointsOf } from "./testing/run.ts";

let cluster: LocalCluster;
let all: Member[];

beforeAll(async () => {
  cluster = await startedCluster("k");
  all = endpointsOf(cluster);
});

afterAll(async () => {
  keepLogs(cluster, "ctl-kv");
  await cluster.destroy();
});

const run = (...args: string[]): Promise<CtlResult> => ctl(args, { endpoints: all });

/** Expects exit 0 and returns stdout. */
async function okOut(...args: string[]): Promise<string> {
  const r = await run(...args);
  expect(r.err, `concordctl ${args.join(" ")}`).toBe("");
  expect(r.code, `concordctl ${args.join(" ")}: ${r.err}`).toBe(0);
  return r.out;
}

/** An expected failure: one `Error: <code>: …` line (no stack trace) and nothing on stdout. */
function expectError(r: CtlResult, exit: number, code: string): void {
  expect(r.code, r.err).toBe(exit);
  expect(r.err).toMatch(new RegExp(`^Error: ${code}: `));
  expect(r.err).not.toMatch(/\n\s+at /);
  expect(r.out).toBe("");
}

describe("get, put, del", () => {
  test("put and get a value, one key and a prefix", async () => {
    expect(await okOut("put", "app/db/url", "postgres://db:5432")).toMatch(/^created app\/db\/url at revision \d+\n$/);
    expect(await okOut("put", "app/db/url", "postgres://db2:5432")).toMatch(/^updated app\/db\/url at revision \d+ \(version 2, was mod revision \d+\)\n$/);
    await okOut("put", "app/db/user", "admin");
    await okOut("put", "app/name", "line 1\nline 2");

    // The value exactly, nothing added (stdout is not a terminal).
    expect(await okOut("get", "app/db/url")).toBe("postgres://db2:5432");
    const j = JSON.parse(await okOut("get", "app/db/url", "-o", "json")) as Record<string, unknown>;
    expect(j).toMatchObject({ key: "app/db/url", value: "postgres://db2:5432", version: 2, lease: 0 });
    expect(j["modRevision"]).toBeGreaterThan(j["createRevision"] as number);

    const t = await okOut("get", "app/", "--prefix");
    expect(t.split("\n")[0]).toMatch(/^KEY\s+VALUE\s+MOD REV\s+VERSION\s+LEASE$/);
    expect(t).toMatch(/app\/db\/url\s+postgres:\/\/db2:5432\s+\d+\s+2\s+-/);
    expect(t).toContain('"line 1\\nline 2"'); // one line per key
    expect(await okOut("get", "app/", "--prefix", "--keys-only")).toBe("app/db/url\napp/db/user\napp/name\n");
    // A listing cut short by --limit says so on stderr.
    const limited = await run("get", "app/", "--prefix", "--keys-only", "--limit", "2");
    expect(limited.code).toBe(0);
    expect(limited.out).toBe("app/db/url\napp/db/user\n");
    expect(limited.err).toMatch(/^\(more keys under "app\/" than --limit 2; revision \d+\)\n$/);
    const page = JSON.parse(await okOut("get", "app/db/", "--prefix", "-o", "json", "--serializable")) as { count: number; kvs: { key: string }[] };
    expect(page.count).toBe(2);
    expect(page.kvs.map((kv) => kv.key)).toEqual(["app/db/url", "app/db/user"]);

    // History: the first version, by revision.
    expect(await okOut("get", "app/db/url", "--rev", String(j["createRevision"]))).toBe("postgres://db:5432");
  });

  test("put - and get are binary-safe through stdin and stdout", async () => {
    const bytes = new Uint8Array(512);
    for (let k = 0; k < bytes.length; k++) bytes[k] = (k * 7) % 256;
    const w = await ctl(["put", "bin/blob", "-"], { endpoints: all, stdin: bytes });
    expect(w.code, w.err).toBe(0);
    const r = await run("get", "bin/blob");
    expect(r.code).toBe(0);
    expect(new Uint8Array(r.stdout)).toEqual(bytes);
    // As the server stores it, byte for byte.
    const direct = await fetch(`${cluster.running()[0]?.url ?? ""}/v1/kv/bin%2Fblob`);
    expect(new Uint8Array(await direct.arrayBuffer())).toEqual(bytes);
    // JSON carries it in base64; the table says it is binary.
    const j = JSON.parse(await okOut("get", "bin/blob", "-o", "json")) as { value?: string; valueBase64: string };
    expect(j.value).toBeUndefined();
    expect(new Uint8Array(Buffer.from(j.valueBase64, "base64"))).toEqual(bytes);
    expect(await okOut("get", "bin/", "--prefix")).toContain("<binary, 512 bytes>");
    // A value that starts with a dash goes after --.
    await okOut("put", "bin/neg", "--", "-5");
    expect(await okOut("get", "bin/neg")).toBe("-5");
  });

  test("put --if-match is compare-and-swap; a conflict exits 1 and names the current revision", async () => {
    const created = JSON.parse(await okOut("put", "cas/k", "v1", "-o", "json")) as { modRevision: number };
    const swapped = JSON.parse(await okOut("put", "cas/k", "v2", "--if-match", String(created.modRevision), "-o", "json")) as { modRevision: number };
    expect(await okOut("get", "cas/k")).toBe("v2");

    const stale = await run("put", "cas/k", "v3", "--if-match", String(created.modRevision));
    expectError(stale, 1, "PreconditionFailed");
    expect(stale.err).toContain(`at mod revision ${swapped.modRevision}`);
    expect(await okOut("get", "cas/k")).toBe("v2");

    expectError(await run("put", "cas/k", "v4", "--create-only"), 1, "PreconditionFailed");
    await okOut("put", "cas/new", "v", "--create-only");
    expectError(await run("del", "cas/k", "--if-match", String(created.modRevision)), 1, "PreconditionFailed");
    expect(await okOut("del", "cas/k", "--if-match", String(swapped.modRevision))).toMatch(/^deleted cas\/k at revision \d+\n$/);
  });

  test("an unknown key exits 1 with KeyNotFound, for get and del", async () => {
    const r = await run("get", "no/such/key");
    expectError(r, 1, "KeyNotFound");
    expect(r.err).toBe("Error: KeyNotFound: no/such/key does not exist\n");
    expectError(await run("del", "no/such/key"), 1, "KeyNotFound");
    // An empty prefix listing is not an error.
    expect(await okOut("get", "no/such/", "--prefix")).toBe("");
  });

  test("del --prefix deletes every key under it", async () => {
    for (const k of ["a", "b", "c"]) await okOut("put", `gone/${k}`, k);
    expect(await okOut("del", "gone/", "--prefix")).toMatch(/^deleted 3 keys under gone\/ at revision \d+\n$/);
    expect(await okOut("get", "gone/", "--prefix", "--keys-only")).toBe("");
  });
});

describe("txn", () => {
  test("compare-and-swap succeeds, then conflicts (exit 3) and runs the else branch", async () => {
    const p = JSON.parse(await okOut("put", "txn/cfg", "v1", "-o", "json")) as { modRevision: number };
    const args = (rev: number): string[] => ["txn", "--if", `mod(txn/cfg) = ${rev}`, "--then", 'put txn/cfg "v 2"', "--then", "put txn/audit swapped", "--else", "get txn/cfg"];

    const first = await run(...args(p.modRevision));
    expect(first.code, first.err).toBe(0);
    expect(first.out).toMatch(/^SUCCEEDED at revision (\d+)\nput txn\/cfg: mod revision \1, version 2\nput txn\/audit: mod revision \1, version 1\n$/);
    expect(await okOut("get", "txn/cfg")).toBe("v 2");

    const again = await run(...args(p.modRevision));
    expect(again.code).toBe(3);
    expect(again.err).toBe("");
    expect(again.out).toMatch(/^FAILED at revision \d+ \(the --else branch ran\)\nget txn\/cfg: v 2 \(mod revision \d+\)\n$/);
    expect(await okOut("get", "txn/audit")).toBe("swapped");

    // The shorthands, and a missing key reads as "not found".
    expect((await run("txn", "--if", "missing(txn/lock)", "--then", "put txn/lock me", "--else", "get txn/none")).code).toBe(0);
    const locked = await run("txn", "--if", "missing(txn/lock)", "--then", "put txn/lock you", "--else", "get txn/none");
    expect(locked.code).toBe(3);
    expect(locked.out).toContain("get txn/none: not found");
    expect(await okOut("get", "txn/lock")).toBe("me");
  });

  test("a JSON body on stdin, binary values included; -o json prints the server's answer", async () => {
    const body = {
      compare: [{ key: "txn/json", target: "version", op: "==", value: 0 }],
      success: [{ put: { key: "txn/json", valueBase64: Buffer.from([0, 255, 1]).toString("base64") } }, { get: { key: "txn/json" } }],
      failure: [],
    };
    const r = await ctl(["txn", "-o", "json"], { endpoints: all, stdin: JSON.stringify(body) });
    expect(r.code, r.err).toBe(0);
    const t = JSON.parse(r.out) as { succeeded: boolean; results: { get?: { valueBase64: string } }[] };
    expect(t.succeeded).toBe(true);
    expect(t.results[1]?.get?.valueBase64).toBe("AP8B");
    expect(new Uint8Array((await run("get", "txn/json")).stdout)).toEqual(new Uint8Array([0, 255, 1]));
  });

  test("a malformed expression or body is a usage error", async () => {
    const r = await run("txn", "--if", "mod(txn/cfg) >= 3", "--then", "put txn/cfg x");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^Error: UsageError: operator >= is not supported .*\nRun 'concordctl txn --help' for usage\.\n$/);
    expect((await run("txn", "--if", "size(k) = 1")).err).toContain('unknown target "size"');
    expect((await run("txn", "--then", "frob k")).err).toContain('unknown operation "frob"');
    const notJson = await ctl(["txn"], { endpoints: all, stdin: "{nope" });
    expect(notJson.code).toBe(2);
    expect(notJson.err).toContain("the transaction body is not JSON");
    // Well-formed but refused by the server: an API error.
    const refused = await ctl(["txn"], { endpoints: all, stdin: JSON.stringify({ success: [{ frob: {} }] }) });
    expectError(refused, 1, "InvalidRequest");
  });
});

describe("leases", () => {
  test("keepalive keeps a lease's keys; when it stops they expire; revoke deletes them at once", async () => {
    // The output of each command first, on a lease that cannot expire while
    // a loaded machine starts one concordctl after another.
    const long = JSON.parse(await okOut("lease", "grant", "60", "-o", "json")) as { id: number; ttl: number };
    expect(long.ttl).toBe(60);
    const lid = String(long.id);
    await okOut("put", "lease/b", "x", "--lease", lid);
    await okOut("put", "lease/c", "y", "--lease", lid);
    const info = await okOut("lease", "info", lid);
    expect(info).toMatch(new RegExp(`^ID\\s+${lid}\\nTTL\\s+60s\\nREMAINING\\s+[\\d.]+s\\nKEYS\\s+lease/b, lease/c\\n$`));
    expect(await okOut("lease", "list")).toMatch(new RegExp(`\\n${lid}\\s+60s\\s+[\\d.]+s\\s+2\\n`));
    expect(await okOut("lease", "keepalive", lid, "--once")).toBe(`lease ${lid} kept alive; TTL 60s\n`);
    expect(await okOut("lease", "revoke", lid)).toMatch(new RegExp(`^lease ${lid} revoked; 2 keys deleted at revision \\d+\\n$`));
    expectError(await run("get", "lease/b"), 1, "KeyNotFound");
    expectError(await run("lease", "revoke", lid), 1, "LeaseNotFound");

    // A short lease, kept alive from just after its key is written.
    const grant = await okOut("lease", "grant", "5");
    const id = /^lease (\d+) granted with TTL 5s\n$/.exec(grant)?.[1];
    if (id === undefined) throw new Error(`unexpected output: ${grant}`);
    await okOut("put", "lease/a", "alive", "--lease", id);
    const keeper = new CtlProcess(["lease", "keepalive", id], { endpoints: all });
    // Five renewals, a third of the TTL apart at the least: the last comes
    // more than a TTL after the first, and the key is still there.
    const renewed = await keeper.waitLines(5, 60_000);
    expect(renewed.every((l) => l === `lease ${id} kept alive; TTL 5s`)).toBe(true);
    expect(await okOut("get", "lease/a")).toBe("alive");
    keeper.interrupt();
    expect((await keeper.exit).code).toBe(0);
    expect(keeper.err).toBe("");

    // Stopped: the leader expires it within about the TTL.
    await eventually("the lease to expire", async () => ((await run("get", "lease/a")).code === 1 ? true : undefined), 15_000, 200);
    expectError(await run("get", "lease/a"), 1, "KeyNotFound");
    expectError(await run("lease", "keepalive", id), 1, "LeaseNotFound");
    expectError(await run("lease", "info", id), 1, "LeaseNotFound");
  });
});

describe("watch", () => {
  test("prints events as they happen, and resumes without gaps or repeats when the watched member dies", async () => {
    const leader = await cluster.waitLeader();
    const watched = cluster.running().find((m) => m !== leader);
    if (watched === undefined) throw new Error("no follower");
    const others = cluster.running().filter((m) => m !== watched);
    const start = (await putRetrying(others, "watch/start", "s")).revision + 1;

    // The watched member first: the CLI reconnects to the others in order.
    const w = new CtlProcess(["watch", "watch/", "--prefix", "--prev-kv", "--rev", String(start)], { endpoints: endpointsOf(cluster, watched) });
    const wj = new CtlProcess(["watch", "watch/a", "--rev", String(start), "-o", "json"], { endpoints: endpointsOf(cluster, watched) });
    await putRetrying(others, "watch/a", "1");
    await putRetrying(others, "watch/a", "2");
    await okOut("del", "watch/a");
    // Two events at one revision.
    await okOut("txn", "--then", "put watch/x x", "--then", "put watch/y y");
    const before = await w.waitLines(5);
    expect(before.map((l) => l.replace(/^\d+ /, ""))).toEqual([
      "PUT watch/a 1 (was: none)",
      "PUT watch/a 2 (was: 1)",
      "DELETE watch/a (was: 2)",
      "PUT watch/x x (was: none)",
      "PUT watch/y y (was: none)",
    ]);
    const revs = before.map((l) => Number(l.split(" ")[0]));
    expect(revs[0]).toBe(start);
    expect(revs[3]).toBe(revs[4]);

    const events = (await wj.waitLines(3)).map((l) => JSON.parse(l) as { type: string; key: string; value: string; revision: number });
    expect(events.map((e) => [e.type, e.key, e.value])).toEqual([["put", "watch/a", "1"], ["put", "watch/a", "2"], ["delete", "watch/a", ""]]);

    await watched.kill("SIGKILL");
    for (let k = 0; k < 5; k++) await putRetrying(others, `watch/after/${k}`, String(k));
    const after = await w.waitLines(10);
    expect(after.slice(5).map((l) => l.replace(/^\d+ /, ""))).toEqual([0, 1, 2, 3, 4].map((k) => `PUT watch/after/${k} ${k} (was: none)`));
    const allRevs = after.map((l) => Number(l.split(" ")[0]));
    expect([...allRevs].sort((a, b) => a - b)).toEqual(allRevs);
    expect(w.err).toMatch(/watch: the stream from http:\/\/127\.0\.0\.1:\d+ broke .*; reconnecting\n/);
    expect(w.err).toMatch(/watch: resumed on http:\/\/127\.0\.0\.1:\d+ after revision \d+\n/);

    w.interrupt();
    wj.interrupt();
    expect((await w.exit).code).toBe(0);
    expect((await wj.exit).code).toBe(0);
    // Nothing was printed twice.
    expect(new Set(w.lines()).size).toBe(w.lines().length);

    cluster.restart(watched);
    await waitLeaderOrExit(cluster);
    all = endpointsOf(cluster);
  });

  test("watch without --rev starts after the current revision", async () => {
    await okOut("put", "watch2/old", "o");
    const w = new CtlProcess(["watch", "watch2/", "--prefix"], { endpoints: all });
    // It prints nothing until it is connected; keep writing until a line shows.
    const line = await eventually("the watch to see a write", async () => {
      await okOut("put", "watch2/new", "n");
      await new Promise((r) => setTimeout(r, 200));
      return w.lines()[0];
    });
    expect(line).toMatch(/^\d+ PUT watch2\/new n$/);
    w.interrupt();
    expect((await w.exit).code).toBe(0);
  });
});

describe("endpoints, failover and usage", () => {
  test("a dead endpoint first is skipped; all dead is Unavailable, exit 1, at once", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const r = await ctl(["put", "fo/k", "v"], { endpoints: [dead, ...all] });
    expect(r.code, r.err).toBe(0);
    expect((await ctl(["get", "fo/k"], { endpoints: [dead, ...all] })).out).toBe("v");

    // A long --timeout: "at once" means it did not retry until the timeout.
    const t0 = Date.now();
    const down = await ctl(["get", "fo/k", "--timeout", "60s"], { endpoints: [dead, `http://127.0.0.1:${await freePort()}`] });
    expectError(down, 1, "Unavailable");
    expect(down.err).toMatch(/no endpoint could serve the request: http:\/\/127\.0\.0\.1:\d+ \(connection refused\); http:\/\/127\.0\.0\.1:\d+ \(connection refused\)/);
    expect(Date.now() - t0).toBeLessThan(30_000);

    // The leader dies: a read retries (next endpoint; no leader for a moment) until a new one answers.
    const leader = await cluster.waitLeader();
    await leader.kill("SIGKILL");
    const t1 = Date.now();
    const during = await ctl(["get", "fo/k", "--timeout", "20s"], { endpoints: endpointsOf(cluster, leader) });
    expect(during.code, during.err).toBe(0);
    expect(during.out).toBe("v");
    console.log(`a linearizable read right after the leader was killed took ${Date.now() - t1} ms`);
    cluster.restart(leader);
    await waitLeaderOrExit(cluster);

    // The --endpoints flag wins over CONCORD_ENDPOINTS.
    const flag = await ctl(["get", "fo/k", "--endpoints", all.map((m) => m.url).join(",")], { endpoints: [dead] });
    expect(flag.out).toBe("v");
  });

  test("usage errors exit 2 with a message and where to find help; --help exits 0", async () => {
    const cases: [string[], RegExp][] = [
      [[], /no command given\nRun 'concordctl --help'/],
      [["frob"], /unknown command "frob"/],
      [["put", "k"], /put needs KEY VALUE\nRun 'concordctl put --help'/],
      [["get", "a", "b"], /get takes KEY; unexpected "b"/],
      [["get", "k", "--bogus"], /get has no flag --bogus/],
      [["get", "k", "--limit", "2"], /--limit needs --prefix/],
      [["get", "k", "--prefix", "--limit", "x"], /--limit must be an integer >= 1, not "x"/],
      [["get", "k", "--rev"], /--rev needs a value/],
      [["get", "k", "-o", "yaml"], /-o must be table or json, not "yaml"/],
      [["get", "k", "--timeout", "soon"], /--timeout must be a duration/],
      [["get", "k", "--endpoints", "ftp://x"], /is not an http or https URL/],
      [["put", "k", "v", "--if-match", "3", "--create-only"], /--if-match and --create-only exclude each other/],
      [["lease"], /lease needs a subcommand: grant, revoke, keepalive, list, info/],
      [["lease", "grant", "soon"], /TTL \(seconds\) must be an integer >= 1/],
      [["member", "frob"], /unknown subcommand "frob"; member takes list, add, promote, remove/],
      [["member", "add", "m9"], /member add needs --peer-urls/],
      [["endpoint", "status", "extra"], /endpoint status takes no arguments/],
    ];
    for (const [args, message] of cases) {
      const r = await run(...args);
      expect(r.code, `concordctl ${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err, `concordctl ${args.join(" ")}`).toMatch(/^Error: UsageError: /);
      expect(r.err, `concordctl ${args.join(" ")}`).toMatch(message);
      expect(r.out).toBe("");
    }
    const help = await run("get", "--help");
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: concordctl get KEY \[flags\]\n/);
    expect(help.out).toContain("--keys-only");
    expect(help.out).toContain("--endpoints URLS");
    const top = await run("--help");
    expect(top.code).toBe(0);
    for (const c of ["get KEY", "put KEY VALUE", "txn", "lease keepalive ID", "member add NAME", "endpoint status", "leader transfer", "snapshot save FILE"]) {
      expect(top.out).toContain(c);
    }
    expect((await run("lease", "--help")).out).toMatch(/^Usage: concordctl lease SUBCOMMAND/);
  });

  test("the HTTP API agrees with what the CLI wrote", async () => {
    await okOut("put", "api/k", "from-ctl");
    const m = all[0];
    if (m === undefined) throw new Error("no member");
    expect((await get(m, "api/k")).text).toBe("from-ctl");
  });
});
