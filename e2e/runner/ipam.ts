// Pod IPs from a network block's pod range 198.18.N.0/24 (e2e/harness/network.ts):
// 198.18.N.1 is the bridge (gateway, node, cluster DNS), pods get .2 to .254
// (.0 and .255 are the network and broadcast addresses of the bridge's /24).
// Like CNI's host-local IPAM, allocation continues after the last address
// handed out rather than reusing the lowest free one, so a recreated pod does
// not usually inherit its predecessor's address.

import type { NetworkBlock } from "../harness/network.ts";

const first = 2;
const last = 254;

export type ReserveResult = { readonly type: "Reserved" } | { readonly type: "Conflict"; readonly owner: string } | { readonly type: "OutOfBlock" };

export class Ipam {
  private readonly prefix: string;
  /** Invariant: byOwner and byIp are inverse maps. */
  private readonly byOwner = new Map<string, string>();
  private readonly byIp = new Map<string, string>();
  /** The last octet handed out last. */
  private cursor = first - 1;

  constructor(net: Pick<NetworkBlock, "gateway">) {
    this.prefix = net.gateway.slice(0, net.gateway.lastIndexOf(".") + 1);
  }

  /** The last octet of an allocatable address in the block, or null. */
  private octetOf(ip: string): number | null {
    if (!ip.startsWith(this.prefix)) return null;
    const rest = ip.slice(this.prefix.length);
    if (!/^\d{1,3}$/.test(rest)) return null;
    const o = Number(rest);
    return o >= first && o <= last ? o : null;
  }

  /** The owner's address, allocating the next free one; null when the block is full. Idempotent. */
  allocate(owner: string): string | null {
    const have = this.byOwner.get(owner);
    if (have !== undefined) return have;
    const size = last - first + 1;
    for (let i = 1; i <= size; i++) {
      const o = ((this.cursor - first + i) % size) + first;
      const ip = `${this.prefix}${o}`;
      if (this.byIp.has(ip)) continue;
      this.cursor = o;
      this.set(owner, ip);
      return ip;
    }
    return null;
  }

  /** Records an address handed out earlier (adoption after a restart). */
  reserve(owner: string, ip: string): ReserveResult {
    const o = this.octetOf(ip);
    if (o === null) return { type: "OutOfBlock" };
    const holder = this.byIp.get(ip);
    if (holder !== undefined && holder !== owner) return { type: "Conflict", owner: holder };
    const prev = this.byOwner.get(owner);
    if (prev !== undefined && prev !== ip) this.byIp.delete(prev);
    this.set(owner, ip);
    if (o > this.cursor) this.cursor = o;
    return { type: "Reserved" };
  }

  release(owner: string): void {
    const ip = this.byOwner.get(owner);
    if (ip === undefined) return;
    this.byOwner.delete(owner);
    this.byIp.delete(ip);
  }

  get(owner: string): string | undefined {
    return this.byOwner.get(owner);
  }

  contains(ip: string): boolean {
    return this.octetOf(ip) !== null;
  }

  get allocated(): number {
    return this.byOwner.size;
  }

  private set(owner: string, ip: string): void {
    this.byOwner.set(owner, ip);
    this.byIp.set(ip, owner);
  }
}
