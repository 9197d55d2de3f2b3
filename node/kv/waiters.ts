// Callbacks waiting for a counter (the store's revision or applied index) to
// reach a threshold. Synchronous and clock-free: the server wraps them in
// promises and adds its own timeouts.

interface Waiter {
  readonly threshold: number;
  /** Ties fire in registration order. */
  readonly seq: number;
  /** null once cancelled or fired. */
  fn: (() => void) | null;
}

const before = (a: Waiter, b: Waiter): boolean => a.threshold < b.threshold || (a.threshold === b.threshold && a.seq < b.seq);

/** A min-heap of waiters by threshold. Cancelled waiters are removed lazily. */
export class ThresholdWaiters {
  private heap: Waiter[] = [];
  private seq = 0;
  private pending = 0;

  /** Waiters registered and neither fired nor cancelled. */
  get size(): number {
    return this.pending;
  }

  /** Registers fn to run once fire(n) is called with n >= threshold. Returns a cancel function. */
  add(threshold: number, fn: () => void): () => void {
    const w: Waiter = { threshold, seq: this.seq++, fn };
    this.push(w);
    this.pending++;
    return () => {
      if (w.fn === null) return;
      w.fn = null;
      this.pending--;
      // Keep cancelled entries from outnumbering live ones (long polls that time out cancel a lot).
      if (this.heap.length > 64 && this.heap.length > 2 * this.pending) this.rebuild();
    };
  }

  /** Runs, in threshold order, every waiter whose threshold is <= reached. */
  fire(reached: number): void {
    const due: (() => void)[] = [];
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.threshold > reached) break;
      this.pop();
      if (top.fn !== null) {
        due.push(top.fn);
        top.fn = null;
        this.pending--;
      }
    }
    for (const fn of due) fn();
  }

  /** Removes every waiter without running it. */
  clear(): void {
    for (const w of this.heap) w.fn = null;
    this.heap = [];
    this.pending = 0;
  }

  private rebuild(): void {
    const live = this.heap.filter((w) => w.fn !== null);
    this.heap = [];
    for (const w of live) this.push(w);
  }

  private push(w: Waiter): void {
    const h = this.heap;
    h.push(w);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p];
      if (parent === undefined || !before(w, parent)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = w;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let best = last;
      const lw = h[l];
      if (lw !== undefined && before(lw, best)) {
        m = l;
        best = lw;
      }
      const rw = h[r];
      if (rw !== undefined && before(rw, best)) {
        m = r;
        best = rw;
      }
      if (m === i) break;
      h[i] = best;
      i = m;
    }
    h[i] = last;
  }
}
