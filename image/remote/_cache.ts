/**
 * A bounded cache of byte spans fetched from a remote object: least recently used first out,
 * at most `maxBytes` held, spans over a quarter of it are not kept (a bulk scan would only
 * push out what repeated reads need). A read is served when one span covers it.
 */
export class SpanCache {
  /** Span start -> bytes, in least-recently-used-first order. */
  private readonly spans = new Map<number, Uint8Array>();
  private held = 0;

  constructor(readonly maxBytes: number, private readonly maxSpans = 4096) {}

  /** Bytes held now. */
  get bytes(): number {
    return this.held;
  }

  /** `[offset, offset + length)` from one cached span, or null. */
  get(offset: number, length: number): Uint8Array | null {
    for (const [start, bytes] of this.spans) {
      if (start <= offset && offset + length <= start + bytes.length) {
        this.spans.delete(start);
        this.spans.set(start, bytes);
        return bytes.subarray(offset - start, offset - start + length);
      }
    }
    return null;
  }

  /** Keeps `bytes` fetched at `start` (not when over a quarter of the cache, unless `force`). */
  put(start: number, bytes: Uint8Array, force = false): void {
    if (bytes.length === 0 || bytes.length > this.maxBytes || (!force && bytes.length > this.maxBytes / 4)) return;
    const old = this.spans.get(start);
    if (old) {
      if (old.length >= bytes.length) return;
      this.spans.delete(start);
      this.held -= old.length;
    }
    this.spans.set(start, bytes);
    this.held += bytes.length;
    for (const [s, b] of this.spans) {
      if (this.held <= this.maxBytes && this.spans.size <= this.maxSpans) break;
      if (s === start) continue;
      this.spans.delete(s);
      this.held -= b.length;
    }
  }

  clear(): void {
    this.spans.clear();
    this.held = 0;
  }
}

/** At most `n` tasks at once, the others in arrival order. */
export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly n: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.n) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}
