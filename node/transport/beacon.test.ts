// PeerBeacon with real worker threads and real UDP sockets on loopback.

import { createSocket } from "node:dgram";
import { afterEach, describe, expect, test } from "vitest";
import { nodeId } from "../raft/types.ts";
import type { NodeId } from "../raft/types.ts";
import { decodeBeacon, encodeBeacon, isBadBeacon } from "./beacon-shared.ts";
import type { BeaconOptions, BeaconStartError } from "./beacon.ts";
import { PeerBeacon } from "./beacon.ts";
import { freeUdpPort, waitFor } from "./testing/fixtures.ts";

const started: PeerBeacon[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((b) => b.stop()));
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function isStartError(x: PeerBeacon | BeaconStartError): x is BeaconStartError {
  return "type" in x;
}

async function start(id: string, port: number, extra: Partial<BeaconOptions> = {}): Promise<PeerBeacon> {
  const b = await PeerBeacon.start({
    self: nodeId(id),
    clusterId: "c1",
    bind: { host: "127.0.0.1", port },
    intervalMs: 10,
    lateMs: 25,
    // Long, so that a test slowed by a loaded machine still sees beacons;
    // the test of the bridge itself shortens it.
    bridgeMs: 10_000,
    ...extra,
  });
  if (isStartError(b)) throw new Error(b.message);
  started.push(b);
  return b;
}

/**
 * Two members, a (leader of term 3) and b (its follower), that heard from
 * each other just now, and whose main threads then stop ticking (so that
 * their workers beacon).
 */
async function pair(extra: Partial<BeaconOptions> = {}): Promise<{ a: PeerBeacon; b: PeerBeacon; pa: number; pb: number }> {
  const pa = await freeUdpPort();
  const pb = await freeUdpPort();
  const a = await start("a", pa, extra);
  const b = await start("b", pb, extra);
  a.setPeers([[nodeId("b"), `http://127.0.0.1:${pb}`]]);
  b.setPeers([[nodeId("a"), `http://127.0.0.1:${pa}`]]);
  a.publish({ term: 3, role: "leader", lead: nodeId("a") }, [nodeId("b")]);
  b.publish({ term: 3, role: "follower", lead: nodeId("a") }, [nodeId("a")]);
  return { a, b, pa, pb };
}

async function eventuallyTake(b: PeerBeacon, peer: NodeId, timeoutMs = 5000): Promise<{ term: number; leads: boolean }> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const got = b.take(peer);
    if (got !== null) return got;
    await sleep(5);
  }
  throw new Error(`no beacon from ${peer} within ${timeoutMs} ms`);
}

describe("beacon datagrams", () => {
  test("round trip, and every malformed form is refused as a value", () => {
    const d = { kind: "follows", term: 2 ** 40, clusterId: "cluster-ü", from: "m1", to: "m2" } as const;
    expect(decodeBeacon(encodeBeacon(d))).toEqual(d);
    const good = encodeBeacon(d);
    const bad: Uint8Array[] = [
      good.subarray(0, 14),
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.from([0])]),
      Buffer.from(good).fill(0x58, 0, 2),
      Buffer.from(good).fill(9, 2, 3),
      Buffer.from(good).fill(3, 3, 4),
      encodeBeacon({ ...d, term: 0 }),
      encodeBeacon({ ...d, term: 1.5 }),
    ];
    for (const [k, buf] of bad.entries()) expect(isBadBeacon(decodeBeacon(buf)), `case ${k}`).toBe(true);
  });
});

describe("PeerBeacon", () => {
  test("a leader and its follower each receive the other's beacon", async () => {
    const { a, b } = await pair();
    expect(await eventuallyTake(b, nodeId("a"))).toEqual({ term: 3, leads: true });
    expect(await eventuallyTake(a, nodeId("b"))).toEqual({ term: 3, leads: false });
    // The worker counts a datagram as sent in the send callback, which under
    // load can come after the peer has read it: wait for the count.
    await waitFor("the sender to count its datagrams", () => a.counters().sent > 0, 5000);
    expect(a.counters().sent).toBeGreaterThan(0);
    expect(b.counters().received).toBeGreaterThan(0);
  });

  test("the worker keeps beaconing while the main thread is blocked", async () => {
    const { b } = await pair();
    await eventuallyTake(b, nodeId("a"));
    const before = b.counters().received;
    // Both members' main thread is this one: block it, as a long pause would.
    const end = performance.now() + 1000;
    while (performance.now() < end) {
      // busy
    }
    // Everything counted here was received (by b's worker) while the main
    // thread could not run: about 100 at one per 10 ms, and at least 10
    // even when the workers get a tenth of a core.
    const during = b.counters().received - before;
    expect(during).toBeGreaterThanOrEqual(10);
  });

  test("a member whose main thread ticks on time sends no beacons; one that stops ticking does", async () => {
    // Late means 1 s here: a loaded machine delays a 10 ms interval by tens
    // of milliseconds, which is not a stall.
    const { a, b } = await pair({ lateMs: 1000 });
    const tick = (): void => {
      a.publish({ term: 3, role: "leader", lead: nodeId("a") }, [nodeId("b")]);
      b.publish({ term: 3, role: "follower", lead: nodeId("a") }, [nodeId("a")]);
    };
    tick();
    const ticker = setInterval(tick, 10);
    try {
      await sleep(300);
      expect(a.counters().sent).toBe(0);
      expect(b.counters().sent).toBe(0);
    } finally {
      clearInterval(ticker);
    }
    expect(await eventuallyTake(b, nodeId("a"))).toEqual({ term: 3, leads: true });
    expect(await eventuallyTake(a, nodeId("b"))).toEqual({ term: 3, leads: false });
  });

  test("beacons to a peer stop once no Raft message came from it for bridgeMs", async () => {
    const { a, b } = await pair({ bridgeMs: 150 });
    await eventuallyTake(b, nodeId("a"));
    // a's main thread stays stalled, so no further contact with b is recorded.
    await sleep(400);
    b.take(nodeId("a"));
    const settled = b.counters().received;
    await sleep(200);
    expect(b.counters().received).toBe(settled);
    expect(b.take(nodeId("a"))).toBeNull();
    // One tick with contact again: the beacons resume while the stall goes on.
    a.publish({ term: 3, role: "leader", lead: nodeId("a") }, [nodeId("b")]);
    await waitFor("beacons to resume", () => b.counters().received > settled, 5000);
    expect(b.counters().received).toBeGreaterThan(settled);
  });

  test("a follower beacons only to its leader; a member that is neither beacons to nobody", async () => {
    const pa = await freeUdpPort();
    const pb = await freeUdpPort();
    const pc = await freeUdpPort();
    const a = await start("a", pa);
    const b = await start("b", pb);
    const c = await start("c", pc);
    const dir = (self: string): [NodeId, string][] =>
      (
        [
          ["a", pa],
          ["b", pb],
          ["c", pc],
        ] as const
      )
        .filter(([id]) => id !== self)
        .map(([id, p]) => [nodeId(id), `http://127.0.0.1:${p}`]);
    a.setPeers(dir("a"));
    b.setPeers(dir("b"));
    c.setPeers(dir("c"));
    const all = [nodeId("a"), nodeId("b"), nodeId("c")];
    b.publish({ term: 4, role: "follower", lead: nodeId("a") }, all);
    c.publish({ term: 4, role: "other", lead: null }, all);
    expect(await eventuallyTake(a, nodeId("b"))).toEqual({ term: 4, leads: false });
    await sleep(100);
    expect(c.take(nodeId("b"))).toBeNull();
    expect(a.take(nodeId("c"))).toBeNull();
    expect(b.take(nodeId("c"))).toBeNull();
    expect(c.counters().sent).toBe(0);
  });

  test("datagrams that are malformed, for another cluster or member, or from an unknown sender are counted and ignored", async () => {
    const { a, b, pb } = await pair();
    await eventuallyTake(b, nodeId("a"));
    const sock = createSocket("udp4");
    const send = (buf: Uint8Array): Promise<void> =>
      new Promise((r) => {
        sock.send(buf, pb, "127.0.0.1", () => {
          r();
        });
      });
    try {
      await send(Buffer.from("not a beacon at all"));
      await send(encodeBeacon({ kind: "leads", term: 99, clusterId: "other", from: "a", to: "b" }));
      await send(encodeBeacon({ kind: "leads", term: 99, clusterId: "c1", from: "a", to: "x" }));
      await send(encodeBeacon({ kind: "leads", term: 99, clusterId: "c1", from: "z", to: "b" }));
      await waitFor("the receiver to count the four bad datagrams", () => b.counters().invalid >= 4, 5000);
      expect(b.counters().invalid).toBe(4);
      // What b takes from a is still a's own beacon.
      expect(await eventuallyTake(b, nodeId("a"))).toEqual({ term: 3, leads: true });
      expect(a.counters().invalid).toBe(0);
    } finally {
      sock.close();
    }
  });

  test("a removed peer's slot, given to a new peer, does not pass on the old peer's beacon", async () => {
    const { b, pa } = await pair();
    await eventuallyTake(b, nodeId("a"));
    b.setPeers([[nodeId("n"), `http://127.0.0.1:${pa}`]]);
    await sleep(50);
    expect(b.take(nodeId("n"))).toBeNull();
    expect(b.take(nodeId("a"))).toBeNull();
  });

  test("a port that is taken is a start error, not a crash", async () => {
    const port = await freeUdpPort();
    const sock = createSocket("udp4");
    await new Promise<void>((r) => sock.bind(port, "127.0.0.1", r));
    try {
      const res = await PeerBeacon.start({ self: nodeId("a"), clusterId: "c1", bind: { host: "127.0.0.1", port }, intervalMs: 10, lateMs: 25, bridgeMs: 100 });
      expect(isStartError(res)).toBe(true);
      if (!isStartError(res)) started.push(res);
    } finally {
      sock.close();
    }
  });
});
