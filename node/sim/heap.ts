// A binary min-heap of timed events, ordered by (time, sequence) so that
// events at the same time run in the order they were scheduled.

export interface Timed {
  readonly at: number;
  readonly seq: number;
}

export class EventHeap<T extends Timed> {
  private items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  private static less(a: Timed, b: Timed): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  push(item: T): void {
    const xs = this.items;
    xs.push(item);
    let i = xs.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = xs[p];
      if (parent === undefined || !EventHeap.less(item, parent)) break;
      xs[i] = parent;
      i = p;
    }
    xs[i] = item;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  pop(): T | undefined {
    const xs = this.items;
    const top = xs[0];
    const last = xs.pop();
    if (top === undefined || last === undefined || xs.length === 0) return top;
    let i = 0;
    const n = xs.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const left = xs[l];
      const right = xs[r];
      if (left === undefined) break;
      let child = l;
      let c = left;
      if (right !== undefined && r < n && EventHeap.less(right, left)) {
        child = r;
        c = right;
      }
      if (!EventHeap.less(c, last)) break;
      xs[i] = c;
      i = child;
    }
    xs[i] = last;
    return top;
  }
}
