import { describe, expect, it } from "vitest";
import { networkBlock } from "../harness/network.ts";
import { Ipam } from "./ipam.ts";

describe("pod IPAM", () => {
  it("hands out 198.18.N.2 onward, never the bridge's address, idempotently per owner", () => {
    const ipam = new Ipam(networkBlock(3));
    expect(networkBlock(3).gateway).toBe("198.18.3.1");
    expect(ipam.allocate("a")).toBe("198.18.3.2");
    expect(ipam.allocate("b")).toBe("198.18.3.3");
    expect(ipam.allocate("a")).toBe("198.18.3.2");
  });

  it("continues after the last address instead of reusing a released one", () => {
    const ipam = new Ipam(networkBlock(1));
    ipam.allocate("a");
    ipam.allocate("b");
    ipam.release("a");
    expect(ipam.allocate("c")).toBe("198.18.1.4");
  });

  it("wraps around to free addresses, never .255, and reports exhaustion", () => {
    const ipam = new Ipam(networkBlock(1));
    let lastIp = "";
    for (let i = 0; i < 253; i++) lastIp = ipam.allocate(`p${i}`) ?? "";
    expect(lastIp).toBe("198.18.1.254");
    expect(ipam.allocate("one-too-many")).toBeNull();
    ipam.release("p5");
    expect(ipam.allocate("again")).toBe("198.18.1.7");
  });

  it("reserves addresses recorded by an earlier runner", () => {
    const ipam = new Ipam(networkBlock(2));
    expect(ipam.reserve("a", "198.18.2.9")).toEqual({ type: "Reserved" });
    expect(ipam.reserve("b", "198.18.2.9")).toEqual({ type: "Conflict", owner: "a" });
    expect(ipam.reserve("b", "198.18.1.9")).toEqual({ type: "OutOfBlock" });
    expect(ipam.reserve("b", "198.18.2.1")).toEqual({ type: "OutOfBlock" });
    expect(ipam.reserve("b", "198.18.2.255")).toEqual({ type: "OutOfBlock" });
    expect(ipam.reserve("b", "198.18.21.9")).toEqual({ type: "OutOfBlock" });
    expect(ipam.allocate("c")).toBe("198.18.2.10");
  });
});
