import { describe, expect, it } from "vitest";
import { Ipam, dnsAddress } from "./ipam.ts";

describe("pod IPAM", () => {
  it("hands out 127.N.0.2 onward, never the DNS address, idempotently per owner", () => {
    const ipam = new Ipam(3);
    expect(dnsAddress(3)).toBe("127.3.0.1");
    expect(ipam.allocate("a")).toBe("127.3.0.2");
    expect(ipam.allocate("b")).toBe("127.3.0.3");
    expect(ipam.allocate("a")).toBe("127.3.0.2");
  });

  it("continues after the last address instead of reusing a released one", () => {
    const ipam = new Ipam(1);
    ipam.allocate("a");
    ipam.allocate("b");
    ipam.release("a");
    expect(ipam.allocate("c")).toBe("127.1.0.4");
  });

  it("skips .0 and .255 and crosses into the next /24", () => {
    const ipam = new Ipam(1);
    let last = "";
    for (let i = 0; i < 253; i++) last = ipam.allocate(`p${i}`) ?? "";
    expect(last).toBe("127.1.0.254");
    expect(ipam.allocate("next")).toBe("127.1.1.1");
  });

  it("wraps around to free addresses and reports exhaustion", () => {
    const ipam = new Ipam(1);
    const n = 256 * 254 - 1;
    for (let i = 0; i < n; i++) expect(ipam.allocate(`p${i}`)).not.toBeNull();
    expect(ipam.allocate("one-too-many")).toBeNull();
    ipam.release("p5");
    expect(ipam.allocate("again")).toBe("127.1.0.7");
  });

  it("reserves addresses recorded by an earlier runner", () => {
    const ipam = new Ipam(2);
    expect(ipam.reserve("a", "127.2.0.9")).toEqual({ type: "Reserved" });
    expect(ipam.reserve("b", "127.2.0.9")).toEqual({ type: "Conflict", owner: "a" });
    expect(ipam.reserve("b", "127.1.0.9")).toEqual({ type: "OutOfBlock" });
    expect(ipam.reserve("b", "127.2.0.1")).toEqual({ type: "OutOfBlock" });
    expect(ipam.allocate("c")).toBe("127.2.0.10");
  });

  it("refuses blocks outside 1..95", () => {
    expect(() => new Ipam(0)).toThrow();
    expect(() => new Ipam(96)).toThrow();
  });
});
