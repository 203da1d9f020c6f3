/**
 * Keeps the `capacity` items that come first in an order, out of any number offered, in
 * O(capacity) memory: a binary heap whose root is the last item kept, replaced whenever an offered
 * item comes before it. The top and bottom images of a run of millions are found this way.
 */
export class BoundedHeap<T> {
  private readonly items: T[] = [];
  private readonly capacity: number;
  /** True when `a` should come before `b` (is better kept). */
  private readonly before: (a: T, b: T) => boolean;

  constructor(capacity: number, before: (a: T, b: T) => boolean) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`bad capacity ${capacity}`);
    this.capacity = capacity;
    this.before = before;
  }

  get size(): number {
    return this.items.length;
  }

  offer(item: T): void {
    if (this.capacity === 0) return;
    const items = this.items;
    if (items.length < this.capacity) {
      items.push(item);
      this.siftUp(items.length - 1);
    } else if (this.before(item, items[0] as T)) {
      items[0] = item;
      this.siftDown(0);
    }
  }

  /** The kept items, first first. */
  sorted(): T[] {
    return [...this.items].sort((a, b) => (this.before(a, b) ? -1 : this.before(b, a) ? 1 : 0));
  }

  // The root is the item that comes last: a parent never comes before its children.
  private siftUp(i: number): void {
    const items = this.items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[parent] as T, items[i] as T)) return;
      [items[parent], items[i]] = [items[i] as T, items[parent] as T];
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const items = this.items;
    for (;;) {
      let last = i;
      for (const child of [2 * i + 1, 2 * i + 2]) {
        if (child < items.length && this.before(items[last] as T, items[child] as T)) last = child;
      }
      if (last === i) return;
      [items[last], items[i]] = [items[i] as T, items[last] as T];
      i = last;
    }
  }
}
