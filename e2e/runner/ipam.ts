// Pod IPs from a loopback block. Block N is 127.N.0.0/16: 127.N.0.1 is the
// runner's DNS server, pods get 127.N.0.2 onward. Addresses whose last octet
// is 0 or 255 are skipped, so no pod IP looks like a network or broadcast
// address. Like CNI's host-local IPAM, allocation continues after the last
// address handed out rather than reusing the lowest free one, so a recreated
// pod does not usually inherit its predecessor's address.

/** Blocks 127.1 to 127.95; 127.0 holds 127.0.0.1 and 127.96/16 is the Service CIDR. */
export const minBlock = 1;
export const maxBlock = 95;

export function validBlock(n: number): boolean {
  return Number.isInteger(n) && n >= minBlock && n <= maxBlock;
}

export function dnsAddress(block: number): string {
  return `127.${block}.0.1`;
}

/** The ordinal of an address in the block's allocatable range, or null if outside it. */
function ordinalOf(block: number, ip: string): number | null {
  const m = /^127\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (m === null || Number(m[1]) !== block) return null;
  const hi = Number(m[2]);
  const lo = Number(m[3]);
  if (hi > 255 || lo < 1 || lo > 254) return null;
  const ord = hi * 254 + (lo - 1);
  return ord >= 1 ? ord : null;
}

function ipOf(block: number, ordinal: number): string {
  return `127.${block}.${Math.floor(ordinal / 254)}.${(ordinal % 254) + 1}`;
}

/** 256 × 254 addresses, less 127.N.0.1. */
const size = 256 * 254;

export type ReserveResult = { readonly type: "Reserved" } | { readonly type: "Conflict"; readonly owner: string } | { readonly type: "OutOfBlock" };

export class Ipam {
  readonly block: number;
  /** Invariant: byOwner and byIp are inverse maps. */
  private readonly byOwner = new Map<string, string>();
  private readonly byIp = new Map<string, string>();
  private cursor = 0;

  constructor(block: number) {
    if (!validBlock(block)) throw new Error(`IP block ${block} is outside ${minBlock}..${maxBlock}`);
    this.block = block;
  }

  /** The owner's address, allocating the next free one; null when the block is full. Idempotent. */
  allocate(owner: string): string | null {
    const have = this.byOwner.get(owner);
    if (have !== undefined) return have;
    for (let i = 1; i < size; i++) {
      const ord = ((this.cursor + i - 1) % (size - 1)) + 1;
      const ip = ipOf(this.block, ord);
      if (this.byIp.has(ip)) continue;
      this.cursor = ord;
      this.set(owner, ip);
      return ip;
    }
    return null;
  }

  /** Records an address handed out earlier (adoption after a restart). */
  reserve(owner: string, ip: string): ReserveResult {
    const ord = ordinalOf(this.block, ip);
    if (ord === null) return { type: "OutOfBlock" };
    const holder = this.byIp.get(ip);
    if (holder !== undefined && holder !== owner) return { type: "Conflict", owner: holder };
    const prev = this.byOwner.get(owner);
    if (prev !== undefined && prev !== ip) this.byIp.delete(prev);
    this.set(owner, ip);
    if (ord > this.cursor) this.cursor = ord;
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
    return ordinalOf(this.block, ip) !== null;
  }

  get allocated(): number {
    return this.byOwner.size;
  }

  private set(owner: string, ip: string): void {
    this.byOwner.set(owner, ip);
    this.byIp.set(ip, owner);
  }
}
