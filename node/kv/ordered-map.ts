// A map with both O(1) point lookups and ordered iteration: a hash Map for
// get/has, and a B-tree over the same entries for seek, rank and in-order
// scans. Writes and deletes pay for both; the store's hottest paths (a put
// to an existing key, a get) touch only the Map.
//
// Determinism: the Map's iteration order (insertion order) is never
// exposed; everything ordered comes from the B-tree.

import { BTree } from "./btree.ts";
import type { Cursor } from "./btree.ts";

export class OrderedMap<V> {
  private readonly map = new Map<string, V>();
  private readonly tree = new BTree<V>();

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  /** Inserts or replaces. Returns true if the key was new. */
  set(key: string, val: V): boolean {
    this.map.set(key, val);
    return this.tree.set(key, val);
  }

  delete(key: string): boolean {
    if (!this.map.delete(key)) return false;
    if (!this.tree.delete(key)) throw new Error(`ordered map: ${key} in the map but not the tree`);
    return true;
  }

  /** A cursor at the first key >= `key` (or > `key` when `exclusive`). Invalidated by writes. */
  seek(key: string, exclusive = false): Cursor<V> {
    return this.tree.seek(key, exclusive);
  }

  first(): Cursor<V> {
    return this.tree.first();
  }

  /** How many keys k satisfy lo <= k < hi (hi null: no upper bound). O(log n). */
  countRange(lo: string, hi: string | null): number {
    return this.tree.countRange(lo, hi);
  }
}
