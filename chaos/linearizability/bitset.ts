// The set of linearized operations, as part of the checker's cache key.

import { mix32 } from "./model.ts";

/** How a cached set relates to the current one. */
export type Relation = "equal" | "subsetByLoose" | "other";

export class Bitset {
  private readonly words: Uint32Array;

  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
  }

  set(i: number): void {
    const w = i >>> 5;
    this.words[w] = (this.words[w] ?? 0) | (1 << (i & 31));
  }

  clear(i: number): void {
    const w = i >>> 5;
    this.words[w] = (this.words[w] ?? 0) & ~(1 << (i & 31));
  }

  /** A frozen copy of the words, for the cache. */
  snapshot(): Uint32Array {
    return this.words.slice();
  }

  /**
   * "equal" if `other` has the same members; "subsetByLoose" if it is a
   * proper subset and every member it lacks is in `loose`; else "other".
   */
  relation(other: Uint32Array, loose: Uint32Array): Relation {
    const mine = this.words;
    let equal = true;
    for (let w = 0; w < mine.length; w++) {
      const m = mine[w] ?? 0;
      const o = other[w] ?? 0;
      if (m === o) continue;
      equal = false;
      if ((o & ~m) !== 0 || (m & ~o & ~(loose[w] ?? 0)) !== 0) return "other";
    }
    return equal ? "equal" : "subsetByLoose";
  }
}

/** A word per member for Zobrist hashing: the hash of a set is the XOR of its members' words. */
export function memberHash(i: number): number {
  return mix32(Math.imul(i + 1, 0x9e3779b1));
}

/** The words of a set, from a membership predicate. */
export function wordsOf(size: number, member: (i: number) => boolean): Uint32Array {
  const b = new Bitset(size);
  for (let i = 0; i < size; i++) if (member(i)) b.set(i);
  return b.snapshot();
}
