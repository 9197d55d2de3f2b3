// A map with both O(1) point lookups and ordered iteration: a hash Map from
// key to value, and a B-tree of the same keys for seek, rank and in-order
// scans. Inserting or deleting a key pays for both; replacing the value of
// a key already present (the store's hottest write: a put to an existing
// key) and every get touch only the Map. A cursor reads each value from the
// Map, one hash lookup per key it visits.
//
// Determinism: the Map's iteration order (insertion order) is never
// exposed; everything ordered comes from the B-tree.

import { BTree } from "./btree.ts";
import type { Cursor } from "./btree.ts";

export class OrderedMap<V> {
  private readonly map = new Map<string, V>();
  /** The keys; the values are in `map` only, so replacing one never touches the tree. */
  private readonly tree = new BTree<null>();

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  /** Inserts or replaces. Returns true if the key was new. */
  set(key: string, val: V): boolean {
    const before = this.map.size;
    this.map.set(key, val);
    if (this.map.size === before) return false;
    if (!this.tree.set(key, null)) throw new Error(`ordered map: ${key} in the tree but not the map`);
    return true;
  }

  delete(key: string): boolean {
    if (!this.map.delete(key)) return false;
    if (!this.tree.delete(key)) throw new Error(`ordered map: ${key} in the map but not the tree`);
    return true;
  }

  /** A cursor at the first key >= `key` (or > `key` when `exclusive`). Invalidated by inserts and deletes. */
  seek(key: string, exclusive = false): Cursor<V> {
    return new MapCursor(this.tree.seek(key, exclusive), this.map);
  }

  first(): Cursor<V> {
    return new MapCursor(this.tree.first(), this.map);
  }

  /** How many keys k satisfy lo <= k < hi (hi null: no upper bound). O(log n). */
  countRange(lo: string, hi: string | null): number {
    return this.tree.countRange(lo, hi);
  }
}

/** A cursor over the tree's keys that reads each value from the map. */
class MapCursor<V> implements Cursor<V> {
  private readonly keys: Cursor<null>;
  private readonly map: ReadonlyMap<string, V>;

  constructor(keys: Cursor<null>, map: ReadonlyMap<string, V>) {
    this.keys = keys;
    this.map = map;
  }

  get valid(): boolean {
    return this.keys.valid;
  }

  get key(): string {
    return this.keys.key;
  }

  get value(): V {
    const v = this.map.get(this.keys.key);
    if (v === undefined) throw new Error(`ordered map: ${this.keys.key} in the tree but not the map`);
    return v;
  }

  next(): boolean {
    return this.keys.next();
  }
}
