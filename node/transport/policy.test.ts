// The small policies behind the transport: backoff, RTT smoothing, rate
// limiting and peer URL parsing.
import { describe, expect, test } from "vitest";
import { Backoff } from "./backoff.ts";
import { parsePeerUrl } from "./peer-url.ts";
import { RttEstimator } from "./rtt.ts";
import { Throttle } from "./throttle.ts";

describe("Backoff", () => {
  test("doubles from the initial delay up to the maximum, jittered within [nominal/2, nominal)", () => {
    const draws = [0, 0.999, 0.5, 0, 0, 0, 0, 0, 0.5];
    let k = 0;
    const b = new Backoff(20, 1000, () => draws[k++ % draws.length] ?? 0);
    const delays = Array.from({ length: 9 }, () => b.next());
    expect(delays.slice(0, 7)).toEqual([10, expect.closeTo(40 - 0.02, 1), 60, 80, 160, 320, 500]);
    expect(delays[8]).toBe(750);
    b.reset();
    expect(b.next()).toBe(20 / 2 + 10 * (draws[0] ?? 0));
  });

  test("never exceeds the maximum, however many failures", () => {
    const b = new Backoff(20, 1000, () => 0.999999);
    for (let k = 0; k < 100; k++) expect(b.next()).toBeLessThan(1000);
  });

  test("a random source outside [0, 1) is a bug", () => {
    expect(() => new Backoff(20, 1000, () => 1).next()).toThrow(/random/);
  });
});

describe("RttEstimator", () => {
  test("the first sample sets the estimate; later ones move it by 1/8", () => {
    const r = new RttEstimator();
    expect(r.seconds).toBeUndefined();
    r.observe(0.008);
    expect(r.seconds).toBe(0.008);
    r.observe(0.016);
    expect(r.seconds).toBeCloseTo(0.009, 12);
    r.reset();
    expect(r.seconds).toBeUndefined();
  });
});

describe("Throttle", () => {
  test("allows once per interval", () => {
    const t = new Throttle(100);
    expect([0, 50, 99, 100, 150, 250].map((now) => t.allow(now))).toEqual([true, false, false, true, false, true]);
  });
});

describe("parsePeerUrl", () => {
  test("accepts http and tcp URLs with a port", () => {
    expect(parsePeerUrl("http://10.0.0.1:2380")).toEqual({ host: "10.0.0.1", port: 2380 });
    expect(parsePeerUrl("tcp://node-1.concord.svc:2380/")).toEqual({ host: "node-1.concord.svc", port: 2380 });
    expect(parsePeerUrl("http://[::1]:2380")).toEqual({ host: "::1", port: 2380 });
  });

  test("refuses what it cannot dial, as a value", () => {
    for (const [url, reason] of [
      ["10.0.0.1:2380", /scheme|not a URL/],
      ["https://a:2380", /https: is not supported/],
      ["http://a", /no port/],
      ["http://a:2380/raft", /no path/],
      ["nonsense", /not a URL/],
    ] as const) {
      const r = parsePeerUrl(url);
      expect(r).toMatchObject({ type: "InvalidPeerUrl", url });
      expect("reason" in r && r.reason).toMatch(reason);
    }
  });
});
