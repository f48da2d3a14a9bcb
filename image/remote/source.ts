/**
 * Remote images: a {@link RandomAccessSource} over HTTP(S) range requests, for `https://`,
 * `http://` and `s3://` (any S3-compatible endpoint, image/remote/_s3.ts).
 *
 * - Pinned: the object's ETag, Last-Modified and size are taken from the first response.
 *   Every later request is conditional (If-Match on a strong ETag; If-Unmodified-Since on
 *   Last-Modified when the ETag is weak or absent: RFC 9110 forbids If-Match with a weak one),
 *   and every response must carry the same ETag and Last-Modified as the first (a validator
 *   missing or different) and the same complete length in Content-Range, else SOURCE_CHANGED:
 *   never bytes of two versions, also from servers that ignore the conditions. A server with
 *   no strong validator (neither a strong ETag nor Last-Modified) is refused at open (IO_ERROR)
 *   unless {@link RemoteOptions.allowUnpinned} or CRIMG_REMOTE_UNPINNED=1 accepts it; then only
 *   the size (and a weak ETag, if any) is checked, and a warning says the source is unpinned.
 *   What no validator catches: a rewrite that keeps both (nginx's ETag is mtime and size, its
 *   Last-Modified has one-second granularity: a same-size rewrite within the same second).
 * - Opening reads the footer and index in at most two requests: the first asks for the last
 *   {@link RemoteOptions.tail} bytes (HTTP; S3 asks for the first `head` bytes and then the
 *   tail, as some S3 servers mishandle suffix ranges), the footer in it says where the index
 *   starts, and the second asks for the header and whatever of the index the first missed,
 *   as one multi-range request over HTTP. An inspect then needs no further request.
 * - Reads that arrive together are sorted and neighbours (at most `gap` bytes apart) are
 *   served by one range request; a long read is cut in `pieceSize` pieces; up to
 *   `connections` requests run at once (keep-alive sockets).
 * - Resets, timeouts, 5xx and 429 answers, short bodies and 206s for other bytes than asked
 *   (a connection out of step with its server: dropped) are retried `retries` times with
 *   exponential backoff and jitter; a body still short after that is TRUNCATED, anything
 *   else IO_ERROR naming the URL (without credentials or query) and the range.
 * - A bounded cache (`cacheBytes`, least recently used out) serves repeated reads.
 */
import type http from 'node:http';
import { CrimgError } from '../../format/errors.js';
import { FOOTER_SIZE } from '../../format/constants.js';
import { decodeFooter } from '../../format/footer.js';
import { xxh64 } from '../../codec/checksum.js';
import type { RandomAccessSource } from '../source.js';
import { BodyTooLarge, ShortBody, describeFailure, httpRequest, isTransient, makeAgent, parseByteRanges, safeUrl, type HttpResponse } from './_http.js';
import { isS3Url, s3Target, type S3Options, type Signer } from './_s3.js';
import { Limiter, SpanCache } from './_cache.js';
import { DirectPool, DirectUnsupported } from './_direct.js';
import { envSize } from './output.js';

export interface RemoteOptions {
  /** Requests in flight at once (sockets kept alive); default CRIMG_REMOTE_CONNECTIONS, else 8. */
  connections?: number;
  /** Bytes the block cache holds; default CRIMG_REMOTE_CACHE (e.g. 256M), else 64 MiB. */
  cacheBytes?: number;
  /** Further tries after a transient failure; default 4. */
  retries?: number;
  /** First backoff in ms, doubled per try, with jitter; default 100. */
  backoffMs?: number;
  /** Milliseconds without progress before a request fails (and is retried); default 30000. */
  timeoutMs?: number;
  /** Reads at most this many bytes apart share one request; default 4096. */
  gap?: number;
  /** A read or coalesced span longer than this is fetched in pieces of this size in parallel; default 4 MiB. */
  pieceSize?: number;
  /** Bytes asked for at the end at open (footer and typical index); default 48 KiB. */
  tail?: number;
  /** Bytes asked for at the start at open (header and validation block); default 16 KiB. */
  head?: number;
  /** S3 settings for `s3://` (else from the environment). */
  s3?: S3Options;
  /** PEM certificates trusted for `https://` instead of Node's roots (a private CA, a test server). */
  ca?: string | Uint8Array;
  /**
   * Accept a server with no strong validator (neither a strong ETag nor Last-Modified): a
   * replacement of the same size is then not detected. Default CRIMG_REMOTE_UNPINNED=1, else false.
   */
  allowUnpinned?: boolean;
}

/** Whether `input` names a remote image (`http://`, `https://`, `s3://`). */
export function isRemoteUrl(input: string): boolean {
  return /^(https?|s3):\/\//i.test(input);
}

/** Requests and body bytes a source has received (the bench and tests count them). */
export interface RemoteStats {
  requests: number;
  bytes: number;
  retries: number;
}

interface Pending {
  offset: number;
  end: number;
  resolve: (b: Uint8Array) => void;
  reject: (e: unknown) => void;
}

/** A remote object read by range requests. Open with {@link RemoteSource.open}. */
export class RemoteSource implements RandomAccessSource {
  readonly stats: RemoteStats = { requests: 0, bytes: 0, retries: 0 };
  private readonly cache: SpanCache;
  private readonly limiter: Limiter;
  private pending: Pending[] = [];
  private scheduled = false;
  private closed = false;
  private changedError: CrimgError | null = null;
  size = 0;
  /** The ETag pinned at open (strong, or weak `W/"..."`), or null. */
  etag: string | null = null;
  /** The Last-Modified pinned at open, or null. */
  lastModified: string | null = null;
  /** What pins the version: a strong ETag, Last-Modified, or nothing (only the size; accepted by `allowUnpinned`). */
  pinnedBy: 'etag' | 'last-modified' | 'none' = 'none';
  private readonly o: Required<Omit<RemoteOptions, 's3' | 'ca'>>;
  /**
   * Plain http: long reads into a target received in place (image/remote/_direct.ts); null for
   * https. Off (`directOff`) once the server answered a range in a way that client does not read
   * (e.g. chunked), or after {@link ODD_ANSWERS} other such answers (a proxy's chunked 503).
   */
  private direct: DirectPool | null = null;
  private directOff = false;
  private oddAnswers = 0;

  private constructor(
    private readonly url: URL,
    readonly name: string,
    private readonly sign: Signer,
    private readonly s3: boolean,
    private readonly agent: http.Agent,
    options: RemoteOptions,
  ) {
    this.o = {
      connections: positive(options.connections, 8, 'connections'),
      cacheBytes: nonNegative(options.cacheBytes, 64 << 20, 'cacheBytes'),
      retries: nonNegative(options.retries, 4, 'retries'),
      backoffMs: nonNegative(options.backoffMs, 100, 'backoffMs'),
      timeoutMs: positive(options.timeoutMs, 30_000, 'timeoutMs'),
      gap: nonNegative(options.gap, 4096, 'gap'),
      pieceSize: positive(options.pieceSize, 4 << 20, 'pieceSize'),
      tail: positive(options.tail, 48 << 10, 'tail'),
      head: positive(options.head, 16 << 10, 'head'),
      allowUnpinned: options.allowUnpinned ?? false,
    };
    this.cache = new SpanCache(this.o.cacheBytes);
    this.limiter = new Limiter(this.o.connections);
    if (url.protocol === 'http:' && process.env.CRIMG_REMOTE_DIRECT !== '0') {
      this.direct = new DirectPool(url.hostname.replace(/^\[(.*)\]$/, '$1'), Number(url.port || 80), this.o.connections);
    }
  }

  /** Bytes per range request of a long read (a native decode window is four of them, image/remote/_batch.ts). */
  get pieceSize(): number {
    return this.o.pieceSize;
  }

  /**
   * Opens `input` (`http(s)://...` or `s3://bucket/key`): pins its version and size and
   * reads its header, footer and index (see the module comment).
   * @throws CrimgError INVALID_ARGUMENT (a bad URL), IO_ERROR (not found, refused, no range
   *   support), TRUNCATED, SOURCE_CHANGED
   */
  static async open(input: string, options: RemoteOptions = {}): Promise<RemoteSource> {
    let url: URL;
    let name: string;
    let sign: Signer = async (_m, _u, h) => h;
    const s3 = isS3Url(input);
    if (s3) {
      const t = s3Target(input, options.s3);
      url = t.objectUrl;
      name = t.name;
      sign = t.sign;
    } else {
      try {
        url = new URL(input);
      } catch {
        throw new CrimgError('INVALID_ARGUMENT', 'the image URL is not a valid URL', { hint: 'write http(s)://host/path or s3://bucket/key' });
      }
      if (url.username || url.password) {
        // Basic credentials in the URL: sent as a header, never part of the name.
        const auth = Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64');
        url.username = '';
        url.password = '';
        sign = async (_m, _u, h) => ({ ...h, authorization: `Basic ${auth}` });
      }
      name = safeUrl(url);
    }
    const unpinnedByEnv = options.allowUnpinned === undefined && process.env.CRIMG_REMOTE_UNPINNED === '1';
    options = { connections: envSize('CRIMG_REMOTE_CONNECTIONS'), cacheBytes: envSize('CRIMG_REMOTE_CACHE'), ...(unpinnedByEnv ? { allowUnpinned: true } : {}), ...stripUndefined(options) };
    const src = new RemoteSource(url, name, sign, s3, makeAgent(url.protocol, positive(options.connections, 8, 'connections'), options.ca), options);
    try {
      await src.start();
    } catch (e) {
      await src.close();
      throw e;
    }
    if (src.pinnedBy === 'none' && src.size > 0 && unpinnedByEnv) {
      // Set far from the call (the CLI, a service's environment): say so on stderr.
      process.emitWarning(`${name} is read unpinned (CRIMG_REMOTE_UNPINNED=1): the server sends neither a strong ETag nor Last-Modified, so a replacement of the same size is not detected`, { code: 'CRIMG_REMOTE_UNPINNED' });
    }
    return src;
  }

  /** The first requests: version, size, footer, index, header. */
  private async start(): Promise<void> {
    const { head, tail } = this.o;
    // S3: the head first (some S3 servers read a suffix range as a prefix), then the tail.
    const first = this.s3 ? `bytes=0-${head - 1}` : `bytes=-${tail}`;
    const res = await this.request(first, null, Math.max(head, tail), true);
    if (res.status === 416) {
      // An empty object (a range of nothing): the reader says TRUNCATED.
      this.size = 0;
      this.pin(res);
      return;
    }
    this.pin(res);
    if (this.pinnedBy === 'none' && !this.o.allowUnpinned) {
      throw this.ioError(`the server sends ${this.etag !== null ? 'only a weak ETag' : 'no ETag'} and no Last-Modified, so a change of the object while it is read could not be detected`,
        'serve it from a server with ETag or Last-Modified (nginx, S3), or accept the risk with allowUnpinned: true (CRIMG_REMOTE_UNPINNED=1)');
    }
    const got = this.rangeOf(res, -1, -1, true);
    this.size = got.total;
    this.cache.put(got.start, res.body, true);
    const size = this.size;
    let tailStart = got.start;
    if (this.s3 && size > got.end) {
      tailStart = Math.max(got.end, size - tail);
      await this.fetchInto([[tailStart, size]]);
    }
    // The footer (if there is one: the reader checks it again and says what is wrong).
    let indexStart = tailStart;
    if (size >= FOOTER_SIZE && size - FOOTER_SIZE >= tailStart) {
      try {
        const bytes = this.cache.get(size - FOOTER_SIZE, FOOTER_SIZE)!;
        const f = decodeFooter(bytes, size - FOOTER_SIZE, xxh64);
        const starts = [Number(f.chunkTableOffset), Number(f.regionSectionOffset)].filter((n) => n > 0 && n < size);
        if (starts.length > 0) indexStart = Math.min(...starts);
      } catch {
        // Not a footer: no prefetch; opening will fail with the reader's own error.
      }
    }
    const wanted: [number, number][] = [];
    const headEnd = Math.min(head, size);
    if (!this.s3 && headEnd > 0 && tailStart > 0) wanted.push([0, Math.min(headEnd, tailStart)]);
    if (indexStart < tailStart && tailStart - indexStart <= this.o.cacheBytes / 2) {
      const from = Math.max(indexStart, wanted.length > 0 ? wanted[0]![1] : 0);
      if (from < tailStart) wanted.push([from, tailStart]);
    }
    if (wanted.length === 0) return;
    const spans = this.s3 || wanted.length === 1
      ? (await Promise.all(wanted.map((w) => this.fetchRanges([w])))).map((b) => b[0]!)
      : await this.fetchRanges(wanted);
    spans.forEach((b, i) => this.cache.put(wanted[i]![0], b, true));
    // The index and the tail as one span: the reader reads the chunk table across both.
    const last = wanted[wanted.length - 1]!;
    const tailBytes = this.cache.get(tailStart, size - tailStart);
    if (last[1] === tailStart && tailBytes) this.cache.put(last[0], Buffer.concat([spans[spans.length - 1]!, tailBytes]), true);
  }

  /** Fetches the ranges (one request: multi-range when more than one) into the cache. */
  private async fetchInto(ranges: [number, number][]): Promise<void> {
    const spans = await this.fetchRanges(ranges);
    spans.forEach((b, i) => this.cache.put(ranges[i]![0], b, true));
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.checkRead(offset, length);
    if (length === 0) return new Uint8Array(0);
    const hit = this.cache.get(offset, length);
    if (hit) return hit;
    return new Promise((resolve, reject) => {
      this.pending.push({ offset, end: offset + length, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.dispatch());
      }
    });
  }

  /**
   * Fills `target` with the bytes at `offset`: from the cache, else received straight into it
   * (no buffer of its own, no copy: the native decoder's windows are filled this way),
   * `pieceSize` bytes per request, in parallel. Settles only once no request writes into
   * `target` any more (a caller may unmap it then), with the first failure if any.
   */
  async readInto(target: Uint8Array, offset: number): Promise<void> {
    const length = target.byteLength;
    this.checkRead(offset, length);
    if (length === 0) return;
    const hit = this.cache.get(offset, length);
    if (hit) {
      target.set(hit);
      return;
    }
    const jobs: Promise<unknown>[] = [];
    for (let at = 0; at < length; at += this.o.pieceSize) {
      const to = Math.min(length, at + this.o.pieceSize);
      jobs.push(this.fetchRanges([[offset + at, offset + to]], target.subarray(at, to)));
    }
    const failed = (await Promise.allSettled(jobs)).find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /** A read's arguments and state checked (closed, bounds, a change seen). */
  private checkRead(offset: number, length: number): void {
    if (this.closed) throw new CrimgError('INVALID_ARGUMENT', `${this.name}: read after the source was closed`, { hint: 'open the image again; finish reads before closing' });
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`expected a non-negative integer offset, got ${offset}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`expected a non-negative integer length, got ${length}`);
    if (offset + length > this.size) {
      throw new CrimgError('TRUNCATED', `${this.name}: needs bytes [${offset}, ${offset + length}) but the object ends at ${this.size}`, { offset, hint: 'the image is incomplete; upload it again' });
    }
    if (this.changedError) throw this.changedError;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    this.agent.destroy();
    this.direct?.destroy();
  }

  /** Serves the reads gathered since the last turn: sorted, neighbours coalesced, spans in parallel. */
  private dispatch(): void {
    this.scheduled = false;
    const reads = this.pending.sort((a, b) => a.offset - b.offset);
    this.pending = [];
    const maxSpan = Math.max(this.o.pieceSize, 1);
    let i = 0;
    while (i < reads.length) {
      const members = [reads[i]!];
      const start = reads[i]!.offset;
      let end = reads[i]!.end;
      i++;
      while (i < reads.length && reads[i]!.offset <= end + this.o.gap && Math.max(end, reads[i]!.end) - start <= maxSpan) {
        end = Math.max(end, reads[i]!.end);
        members.push(reads[i]!);
        i++;
      }
      void this.serveSpan(start, end, members);
    }
  }

  private async serveSpan(start: number, end: number, members: Pending[]): Promise<void> {
    try {
      let bytes: Uint8Array;
      if (end - start <= this.o.pieceSize) {
        bytes = (await this.fetchRanges([[start, end]]))[0]!;
        this.cache.put(start, bytes);
      } else {
        const out = Buffer.allocUnsafe(end - start);
        const jobs: Promise<void>[] = [];
        for (let at = start; at < end; at += this.o.pieceSize) {
          const to = Math.min(end, at + this.o.pieceSize);
          jobs.push(this.fetchRanges([[at, to]], out.subarray(at - start, to - start)).then(() => {}));
        }
        await Promise.all(jobs);
        bytes = out;
      }
      for (const m of members) m.resolve(bytes.subarray(m.offset - start, m.end - start));
    } catch (e) {
      for (const m of members) m.reject(e);
    }
  }

  /**
   * One request for `ranges` ([start, end) each, ascending, apart), retried when transient;
   * the bytes of each range. More than one range is a multi-range request.
   */
  private fetchRanges(ranges: [number, number][], into?: Uint8Array): Promise<Uint8Array[]> {
    const header = `bytes=${ranges.map(([s, e]) => `${s}-${e - 1}`).join(',')}`;
    const total = ranges.reduce((n, [s, e]) => n + e - s, 0);
    // A multipart body adds part headers: room for them, not for a whole object.
    const maxBody = ranges.length === 1 ? total : total + 1024 * ranges.length + 1024;
    return this.limiter.run(async () => {
      const res = await this.request(header, ranges, maxBody, false, ranges.length === 1 ? into : undefined);
      if (ranges.length === 1) {
        const [s, e] = ranges[0]!;
        this.rangeOf(res, s, e, false);
        return [res.body];
      }
      const type = String(res.headers['content-type'] ?? '');
      const parts = /^multipart\/byteranges/i.test(type) ? parseByteRanges(type, res.body, ranges.length * 4 + 16) : null;
      if (parts === null) {
        // One range for all (a server may merge them): slice it.
        const got = this.rangeOf(res, -1, -1, false);
        return ranges.map(([s, e]) => {
          if (s < got.start || e > got.end) throw this.ioError(`answered ${header} with bytes [${got.start}, ${got.end})`);
          return res.body.subarray(s - got.start, e - got.start);
        });
      }
      return ranges.map(([s, e]) => {
        const p = parts.find((q) => q.start <= s && e - 1 <= q.end);
        if (!p) throw this.ioError(`left out bytes [${s}, ${e}) of a multi-range answer`);
        if (p.total < 0) throw this.ioError(`answered bytes [${p.start}, ${p.end + 1}) of a multi-range request without the object's size`);
        if (p.total !== this.size) throw this.changed(`its size is now ${p.total}, not ${this.size}`);
        return p.bytes.subarray(s - p.start, e - p.start);
      });
    });
  }

  /**
   * Sends a GET for `range` with the pinned condition, retrying transient failures.
   * `first`: the opening request (nothing pinned yet; a 416 is an empty object).
   */
  private async request(range: string, ranges: [number, number][] | null, maxBody: number, first: boolean, into?: Uint8Array): Promise<HttpResponse> {
    let last: unknown = null;
    for (let attempt = 0; attempt <= this.o.retries; attempt++) {
      if (attempt > 0) {
        this.stats.retries++;
        const ms = Math.min(5000, this.o.backoffMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        await new Promise((r) => setTimeout(r, ms));
      }
      if (this.closed) throw new CrimgError('INVALID_ARGUMENT', `${this.name}: read after the source was closed`);
      if (this.changedError) throw this.changedError;
      const headers: Record<string, string> = { range };
      if (!first) {
        if (this.pinnedBy === 'etag') headers['if-match'] = this.etag!;
        else if (this.lastModified !== null) headers['if-unmodified-since'] = this.lastModified;
      }
      let res: HttpResponse;
      try {
        this.stats.requests++;
        const signed = await this.sign('GET', this.url, headers);
        res = await this.send(signed, maxBody, into, ranges?.length === 1 ? ranges[0] : undefined);
      } catch (e) {
        if (e instanceof BodyTooLarge) {
          throw this.ioError(`answered a range request with ${e.length} bytes: the server does not serve byte ranges`, 'serve the image from a server with range requests (nginx, S3)');
        }
        if (isTransient(e)) { last = e; continue; }
        throw this.ioError(`request failed: ${describeFailure(e)}`, undefined, e);
      }
      this.stats.bytes += res.body.length;
      const s = res.status;
      if (s === 206 || s === 200) {
        if (!first) this.checkVersion(res);
        return res;
      }
      if (s === 416 && first) return res;
      if (s === 412) throw this.changed('a conditional request failed (412)');
      if (s >= 500 || s === 429 || s === 408) { last = Object.assign(new Error(`HTTP ${s}`), { code: `HTTP ${s}` }); continue; }
      if (s === 416) throw new CrimgError('TRUNCATED', `${this.name}: the object ends before ${ranges ? ranges[ranges.length - 1]![1] : 'the range asked for'} (HTTP 416)`, { hint: 'the image is incomplete; upload it again' });
      if (s === 404) throw this.ioError('not found (HTTP 404)', 'check the URL, bucket and key');
      if (s === 401 || s === 403) throw this.ioError(`access denied (HTTP ${s})`, 'check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the URL');
      throw this.ioError(`unexpected HTTP ${s}`);
    }
    if (last instanceof ShortBody) {
      throw new CrimgError('TRUNCATED', `${this.name}: ${range.replace('bytes=', 'bytes ')}: ${last.message}, ${this.o.retries + 1} times`, { hint: 'the server or network cut the transfer short; try again' });
    }
    throw this.ioError(`${range.replace('bytes=', 'bytes ')}: ${describeFailure(last)} after ${this.o.retries + 1} tries`, 'the server or network failed; try again later', last);
  }

  /**
   * One GET: a body with a target over plain http received in place (DirectPool), else through
   * node:http; an answer DirectPool does not read is asked again through node:http, which then
   * serves every later request too if it was a range's answer (200, 206) or the
   * {@link ODD_ANSWERS}th other one. `expect`: the bytes asked for (a 206 for others is WrongRange).
   */
  private async send(headers: Record<string, string>, maxBody: number, into?: Uint8Array, expect?: [number, number]): Promise<HttpResponse> {
    const expected = expect ? { expect } : {};
    if (into && this.direct && !this.directOff) {
      try {
        return await this.direct.request({ path: this.url.pathname + this.url.search, headers: { host: this.url.host, ...headers }, timeoutMs: this.o.timeoutMs, into, ...expected });
      } catch (e) {
        if (!(e instanceof DirectUnsupported)) throw e;
        if (e.status === 200 || e.status === 206 || ++this.oddAnswers >= ODD_ANSWERS) {
          // Requests in flight on other connections finish (or are asked again the same way).
          this.directOff = true;
          this.direct.retire();
        }
      }
    }
    return httpRequest({ method: 'GET', url: this.url, headers, timeoutMs: this.o.timeoutMs, maxBody, agent: this.agent, ...(into ? { into } : {}), ...expected });
  }

  /** Pins the version of the first response. */
  private pin(res: HttpResponse): void {
    const etag = res.headers.etag;
    this.etag = typeof etag === 'string' && etag.length > 0 ? etag : null;
    const lm = res.headers['last-modified'];
    this.lastModified = typeof lm === 'string' && lm.length > 0 ? lm : null;
    this.pinnedBy = this.etag !== null && !this.etag.startsWith('W/') ? 'etag' : this.lastModified !== null ? 'last-modified' : 'none';
  }

  /**
   * A response of another version than the pinned one is SOURCE_CHANGED: each validator
   * pinned at open (a weak ETag too) must come back, unchanged; one missing counts as changed
   * (an object replaced behind a server or proxy that stopped sending it).
   */
  private checkVersion(res: HttpResponse): void {
    const etag = res.headers.etag;
    if (this.etag !== null && etag !== this.etag) throw this.changed(typeof etag === 'string' && etag.length > 0 ? 'its ETag changed' : 'the answer has no ETag, the first had one');
    const lm = res.headers['last-modified'];
    if (this.lastModified !== null && lm !== this.lastModified) throw this.changed(typeof lm === 'string' && lm.length > 0 ? 'its Last-Modified changed' : 'the answer has no Last-Modified, the first had one');
  }

  /**
   * The byte range a response holds ([start, end), total): checked against the request
   * (`want*`, -1 for any) and the pinned size.
   */
  private rangeOf(res: HttpResponse, wantStart: number, wantEnd: number, first: boolean): { start: number; end: number; total: number } {
    let start: number;
    let end: number;
    let total: number;
    if (res.status === 200) {
      start = 0;
      end = res.body.length;
      total = res.body.length;
    } else {
      const cr = /^bytes\s+(\d+)-(\d+)\/(\d+)$/i.exec(String(res.headers['content-range'] ?? ''));
      if (!cr) throw this.ioError('answered a range request without a Content-Range');
      start = Number(cr[1]);
      end = Number(cr[2]) + 1;
      total = Number(cr[3]);
      // The server's numbers, checked before they size anything: a range that ends before it
      // starts or past the object, or numbers beyond 2^53, are a broken answer.
      if (!Number.isSafeInteger(total) || !Number.isSafeInteger(end) || start >= end || end > total) {
        throw this.ioError(`answered with an impossible Content-Range "${String(res.headers['content-range']).slice(0, 100)}" for [${wantStart}, ${wantEnd})`);
      }
    }
    if (!first && total !== this.size) throw this.changed(`its size is now ${total}, not ${this.size}`);
    if (end - start !== res.body.length) throw new CrimgError('TRUNCATED', `${this.name}: a body of ${res.body.length} bytes for the range [${start}, ${end})`, { hint: 'the server cut the transfer short; try again' });
    if (wantStart >= 0 && (start > wantStart || end < wantEnd)) throw this.ioError(`answered [${wantStart}, ${wantEnd}) with bytes [${start}, ${end})`);
    if (wantStart >= 0 && (start !== wantStart || end !== wantEnd)) {
      res.body = res.body.subarray(wantStart - start, wantEnd - start);
    }
    return { start, end, total };
  }

  /** The object changed: this and every later read fail with the same error. */
  private changed(what: string): CrimgError {
    return this.changedError ??= new CrimgError('SOURCE_CHANGED', `${this.name} changed while it was read: ${what}; no bytes of the new version were used`, {
      hint: 'open the image again (the object was replaced or rewritten since it was opened)',
    });
  }

  private ioError(what: string, hint?: string, cause?: unknown): CrimgError {
    return new CrimgError('IO_ERROR', `${this.name}: ${what}`, { ...(hint ? { hint } : {}), ...(cause instanceof Error ? { cause: new Error(describeFailure(cause)) } : {}) });
  }
}

/** Answers other than a range's (200, 206) the in-place client does not read before it is turned off. */
const ODD_ANSWERS = 3;

function positive(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`expected ${what} to be a positive integer, got ${v}`);
  return v;
}

function nonNegative(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`expected ${what} to be a non-negative integer, got ${v}`);
  return v;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
