// An in-memory B-tree from string keys to values, ordered by JavaScript's
// string comparison. Each internal node also counts the keys below it, so
// rank() (how many keys are less than k) is O(log n) and a range's size
// costs two ranks instead of a scan.
//
// Why a B-tree: inserts and deletes stay O(log n) at any size (a sorted
// array pays O(n) memmove per insert: 100k keys would move ~50k pointers per
// put), nodes are small arrays that JavaScript engines handle well, and the
// structure is a pure function of the operation sequence, so every node of
// the cluster builds the same tree.

/** Most keys in a node. A node that reaches maxKeys + 1 splits in two halves. */
const maxKeys = 64;
/** Fewest keys in a node other than the root. */
const minKeys = maxKeys / 2;

class Node<V> {
  keys: string[];
  vals: V[];
  /** null for a leaf; otherwise keys.length + 1 children. */
  children: Node<V>[] | null;
  /** Keys in this subtree. Invariant: keys.length + the children's sizes. */
  size: number;

  constructor(keys: string[], vals: V[], children: Node<V>[] | null, size: number) {
    this.keys = keys;
    this.vals = vals;
    this.children = children;
    this.size = size;
  }
}

/** Inserts x at position i (faster than splice, which allocates its result). */
function insertAt<T>(xs: T[], i: number, x: T): void {
  let j = xs.length;
  xs.push(x);
  for (; j > i; j--) xs[j] = xs[j - 1] as T;
  xs[i] = x;
}

/** Removes position i. */
function removeAt(xs: unknown[], i: number): void {
  const n = xs.length - 1;
  for (let j = i; j < n; j++) xs[j] = xs[j + 1];
  xs.pop();
}

function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new Error(`btree: index ${i} out of bounds (${xs.length})`);
  return x;
}

/** The first i with keys[i] >= key. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (at(keys, mid) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first i with keys[i] > key. */
function upperBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (at(keys, mid) <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class BTree<V> {
  private root: Node<V> = new Node<V>([], [], null, 0);
  // Out-parameters of the recursive helpers, to avoid allocating a tuple per call.
  private added = false;
  private carryKey = "";
  private carryVal: V | undefined = undefined;

  get size(): number {
    return this.root.size;
  }

  get(key: string): V | undefined {
    let n = this.root;
    for (;;) {
      const i = lowerBound(n.keys, key);
      if (i < n.keys.length && n.keys[i] === key) return n.vals[i];
      if (n.children === null) return undefined;
      n = at(n.children, i);
    }
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Inserts or replaces. Returns true if the key was new. */
  set(key: string, val: V): boolean {
    this.added = false;
    const right = this.insert(this.root, key, val);
    if (right !== null) {
      const left = this.root;
      this.root = new Node<V>([this.carryKey], [this.takeCarry()], [left, right], left.size + right.size + 1);
    }
    return this.added;
  }

  /** Removes the key. Returns true if it was present. */
  delete(key: string): boolean {
    const found = this.remove(this.root, key);
    const r = this.root;
    if (r.keys.length === 0 && r.children !== null) this.root = at(r.children, 0);
    return found;
  }

  /** How many keys are less than `key`. */
  rank(key: string): number {
    let r = 0;
    let n = this.root;
    for (;;) {
      const i = lowerBound(n.keys, key);
      if (n.children === null) return r + i;
      for (let j = 0; j < i; j++) r += at(n.children, j).size;
      r += i;
      if (i < n.keys.length && n.keys[i] === key) return r + at(n.children, i).size;
      n = at(n.children, i);
    }
  }

  /** How many keys k satisfy lo <= k < hi (hi null: no upper bound). */
  countRange(lo: string, hi: string | null): number {
    const upper = hi === null ? this.size : this.rank(hi);
    return Math.max(0, upper - this.rank(lo));
  }

  /** A cursor at the first key >= `key` (or > `key` when `exclusive`). */
  seek(key: string, exclusive = false): Cursor<V> {
    const c = new TreeCursor<V>();
    c.seek(this.root, key, exclusive);
    return c;
  }

  /** A cursor at the smallest key. */
  first(): Cursor<V> {
    const c = new TreeCursor<V>();
    c.seek(this.root, "", false);
    return c;
  }

  /** Checks every structural invariant; for tests. Throws on a violation. */
  check(): void {
    const depth = (n: Node<V>): number => (n.children === null ? 0 : 1 + depth(at(n.children, 0)));
    const leafDepth = depth(this.root);
    const walk = (n: Node<V>, lo: string | null, hi: string | null, d: number, isRoot: boolean): number => {
      if (n.keys.length !== n.vals.length) throw new Error("btree: keys and vals differ in length");
      if (n.keys.length > maxKeys) throw new Error("btree: node overfull");
      if (!isRoot && n.keys.length < minKeys) throw new Error("btree: node underfull");
      for (let i = 0; i < n.keys.length; i++) {
        const k = at(n.keys, i);
        if (i > 0 && !(at(n.keys, i - 1) < k)) throw new Error("btree: keys out of order");
        if ((lo !== null && !(lo < k)) || (hi !== null && !(k < hi))) throw new Error("btree: key outside its bounds");
      }
      let size = n.keys.length;
      if (n.children === null) {
        if (d !== leafDepth) throw new Error("btree: leaves at different depths");
      } else {
        if (n.children.length !== n.keys.length + 1) throw new Error("btree: wrong child count");
        for (let i = 0; i < n.children.length; i++) {
          const clo = i === 0 ? lo : at(n.keys, i - 1);
          const chi = i === n.keys.length ? hi : at(n.keys, i);
          size += walk(at(n.children, i), clo, chi, d + 1, false);
        }
      }
      if (size !== n.size) throw new Error("btree: wrong subtree size");
      return size;
    };
    walk(this.root, null, null, 0, true);
  }

  private takeCarry(): V {
    const v = this.carryVal as V;
    this.carryVal = undefined;
    return v;
  }

  /** Inserts below n. Returns a new right sibling if n split (its separator in carryKey/carryVal). */
  private insert(n: Node<V>, key: string, val: V): Node<V> | null {
    const i = lowerBound(n.keys, key);
    if (i < n.keys.length && n.keys[i] === key) {
      n.vals[i] = val;
      return null;
    }
    if (n.children === null) {
      insertAt(n.keys, i, key);
      insertAt(n.vals, i, val);
      n.size++;
      this.added = true;
    } else {
      const right = this.insert(at(n.children, i), key, val);
      if (this.added) n.size++;
      if (right !== null) {
        insertAt(n.keys, i, this.carryKey);
        insertAt(n.vals, i, this.takeCarry());
        insertAt(n.children, i + 1, right);
      }
    }
    return n.keys.length > maxKeys ? this.split(n) : null;
  }

  private split(n: Node<V>): Node<V> {
    const mid = n.keys.length >>> 1;
    const rkeys = n.keys.slice(mid + 1);
    const rvals = n.vals.slice(mid + 1);
    this.carryKey = at(n.keys, mid);
    this.carryVal = at(n.vals, mid);
    n.keys.length = mid;
    n.vals.length = mid;
    let rsize = rkeys.length;
    let rchildren: Node<V>[] | null = null;
    if (n.children !== null) {
      rchildren = n.children.slice(mid + 1);
      n.children.length = mid + 1;
      for (const c of rchildren) rsize += c.size;
    }
    n.size -= rsize + 1;
    return new Node<V>(rkeys, rvals, rchildren, rsize);
  }

  private remove(n: Node<V>, key: string): boolean {
    const i = lowerBound(n.keys, key);
    const here = i < n.keys.length && n.keys[i] === key;
    if (n.children === null) {
      if (!here) return false;
      removeAt(n.keys, i);
      removeAt(n.vals, i);
      n.size--;
      return true;
    }
    if (here) {
      // Replace with the predecessor, the largest key of the left subtree.
      this.removeMax(at(n.children, i));
      n.keys[i] = this.carryKey;
      n.vals[i] = this.takeCarry();
    } else if (!this.remove(at(n.children, i), key)) {
      return false;
    }
    n.size--;
    this.fixChild(n, i);
    return true;
  }

  /** Removes the largest key below n into carryKey/carryVal. */
  private removeMax(n: Node<V>): void {
    if (n.children === null) {
      this.carryKey = at(n.keys, n.keys.length - 1);
      this.carryVal = at(n.vals, n.vals.length - 1);
      n.keys.pop();
      n.vals.pop();
      n.size--;
      return;
    }
    const last = n.children.length - 1;
    this.removeMax(at(n.children, last));
    n.size--;
    this.fixChild(n, last);
  }

  /** Restores minKeys in n.children[i] by borrowing from a sibling or merging with one. */
  private fixChild(n: Node<V>, i: number): void {
    const children = n.children;
    if (children === null) throw new Error("btree: fixChild on a leaf");
    const c = at(children, i);
    if (c.keys.length >= minKeys) return;
    const left = i > 0 ? at(children, i - 1) : null;
    const right = i + 1 < children.length ? at(children, i + 1) : null;
    if (left !== null && left.keys.length > minKeys) {
      // Rotate right: the separator comes down into c, left's last key goes up.
      c.keys.unshift(at(n.keys, i - 1));
      c.vals.unshift(at(n.vals, i - 1));
      n.keys[i - 1] = at(left.keys, left.keys.length - 1);
      n.vals[i - 1] = at(left.vals, left.vals.length - 1);
      left.keys.pop();
      left.vals.pop();
      let moved = 1;
      if (left.children !== null && c.children !== null) {
        const child = at(left.children, left.children.length - 1);
        left.children.pop();
        c.children.unshift(child);
        moved += child.size;
      }
      left.size -= moved;
      c.size += moved;
    } else if (right !== null && right.keys.length > minKeys) {
      // Rotate left.
      c.keys.push(at(n.keys, i));
      c.vals.push(at(n.vals, i));
      n.keys[i] = at(right.keys, 0);
      n.vals[i] = at(right.vals, 0);
      right.keys.shift();
      right.vals.shift();
      let moved = 1;
      if (right.children !== null && c.children !== null) {
        const child = at(right.children, 0);
        right.children.shift();
        c.children.push(child);
        moved += child.size;
      }
      right.size -= moved;
      c.size += moved;
    } else if (left !== null) {
      this.merge(n, i - 1);
    } else if (right !== null) {
      this.merge(n, i);
    }
  }

  /** Merges children[i], the separator keys[i] and children[i + 1] into children[i]. */
  private merge(n: Node<V>, i: number): void {
    const children = n.children;
    if (children === null) throw new Error("btree: merge on a leaf");
    const a = at(children, i);
    const b = at(children, i + 1);
    a.keys.push(at(n.keys, i), ...b.keys);
    a.vals.push(at(n.vals, i), ...b.vals);
    if (a.children !== null && b.children !== null) a.children.push(...b.children);
    a.size += 1 + b.size;
    removeAt(n.keys, i);
    removeAt(n.vals, i);
    removeAt(children, i + 1);
  }
}

/**
 * A position in the tree, moving forward in key order. A cursor is only
 * valid while the tree is not modified; collect keys first, then write.
 */
export interface Cursor<V> {
  /** Whether the cursor is at a key. */
  readonly valid: boolean;
  readonly key: string;
  readonly value: V;
  /** Moves to the next key. Returns false (and the cursor becomes invalid) past the last one. */
  next(): boolean;
}

class TreeCursor<V> implements Cursor<V> {
  // The current position is keys[i] of `node`. The path holds its
  // ancestors and, for each, the child index we descended into: once that
  // child is exhausted, the ancestor's key at that index comes next.
  private node: Node<V> | null = null;
  private i = 0;
  private readonly path: Node<V>[] = [];
  private readonly pathIdx: number[] = [];

  get valid(): boolean {
    return this.node !== null;
  }

  get key(): string {
    return at(this.current().keys, this.i);
  }

  get value(): V {
    return at(this.current().vals, this.i);
  }

  next(): boolean {
    const n = this.node;
    if (n === null) return false;
    if (n.children === null) {
      // The common case: the next key in the same leaf.
      if (++this.i < n.keys.length) return true;
      return this.ascend();
    }
    // After an internal node's key comes the leftmost key of the subtree to its right.
    this.path.push(n);
    this.pathIdx.push(this.i + 1);
    let c = at(n.children, this.i + 1);
    while (c.children !== null) {
      this.path.push(c);
      this.pathIdx.push(0);
      c = at(c.children, 0);
    }
    this.node = c; // non-root leaves are never empty
    this.i = 0;
    return true;
  }

  seek(root: Node<V>, key: string, exclusive: boolean): void {
    let n = root;
    for (;;) {
      const i = exclusive ? upperBound(n.keys, key) : lowerBound(n.keys, key);
      if (n.children === null || (!exclusive && i < n.keys.length && n.keys[i] === key)) {
        this.node = n;
        this.i = i;
        if (i >= n.keys.length) this.ascend();
        return;
      }
      this.path.push(n);
      this.pathIdx.push(i);
      n = at(n.children, i);
    }
  }

  /** Moves to the nearest ancestor key not yet visited; invalid if there is none. */
  private ascend(): boolean {
    for (;;) {
      const p = this.path.pop();
      const j = this.pathIdx.pop();
      if (p === undefined || j === undefined) {
        this.node = null;
        return false;
      }
      if (j < p.keys.length) {
        this.node = p;
        this.i = j;
        return true;
      }
    }
  }

  private current(): Node<V> {
    if (this.node === null) throw new Error("btree: cursor is not at a key");
    return this.node;
  }
}
