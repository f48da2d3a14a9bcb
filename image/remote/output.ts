/**
 * Writing an image to `s3://bucket/key` as a multipart upload (CreateMultipartUpload,
 * UploadPart, CompleteMultipartUpload), streamed: bytes come in file order, are copied into
 * parts of `partSize` bytes (default 8 MiB; S3 wants at least 5 MiB but for the last), and at
 * most `connections` parts are uploading at once while the writer waits for room, so memory
 * stays within (connections + 1) parts. A write past the end written so far fills the gap with
 * zeros (a hole of the sparse layout). Nothing is stored locally.
 *
 * The object appears under the key only at complete; a failure or abort sends
 * AbortMultipartUpload, so no partial object is ever visible. A process killed mid-upload
 * cannot send it (signal cleanups are synchronous): its parts stay invisible until the
 * bucket's AbortIncompleteMultipartUpload lifecycle rule removes them.
 */
import type http from 'node:http';
import { CrimgError } from '../../format/errors.js';
import { describeFailure, httpRequest, isTransient, makeAgent, type HttpResponse } from './_http.js';
import { s3Target, xmlText, type S3Options, type S3Target } from './_s3.js';

export interface RemoteOutputOptions {
  /** Bytes per uploaded part; default CRIMG_S3_PART_SIZE (e.g. 16M), else 8 MiB; at least 5 MiB. */
  partSize?: number;
  /** Parts uploading at once; default CRIMG_S3_CONNECTIONS, else 4. */
  connections?: number;
  /** Further tries of a request after a transient failure; default 4. */
  retries?: number;
  /** Milliseconds without progress before a request fails (and is retried); default 60000. */
  timeoutMs?: number;
  s3?: S3Options;
}

/** The smallest part S3 accepts (all parts but the last). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;

/** Parts put in flight before the writer waits; the sink of image/_write-queue.ts. */
export class S3Upload {
  /** Next byte offset expected. */
  private pos = 0;
  private part: Buffer;
  private partFill = 0;
  private partNumber = 0;
  private readonly etags: string[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown = null;
  private state: 'open' | 'completed' | 'aborted' = 'open';
  /** No file descriptor: the write queue starts no write-back. */
  readonly fd = null;

  private constructor(
    private readonly target: S3Target,
    private readonly uploadId: string,
    private readonly agent: http.Agent,
    private readonly partSize: number,
    private readonly connections: number,
    private readonly retries: number,
    private readonly timeoutMs: number,
  ) {
    this.part = Buffer.allocUnsafe(partSize);
  }

  /** The key as `s3://bucket/key` (stands for the temporary file's name in messages). */
  get tmpPath(): string {
    return `${this.target.name} (multipart upload)`;
  }

  /** This object is its own handle (write, writev, fd). */
  get fh(): S3Upload {
    return this;
  }

  /**
   * Starts the multipart upload of `url` (`s3://bucket/key`).
   * @throws CrimgError INVALID_ARGUMENT (bad URL or part size), IO_ERROR (refused)
   */
  static async create(url: string, options: RemoteOutputOptions = {}): Promise<S3Upload> {
    const partSize = options.partSize ?? envSize('CRIMG_S3_PART_SIZE') ?? 8 * 1024 * 1024;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > 5 * 1024 * 1024 * 1024) {
      throw new RangeError(`expected a part size of 5 MiB to 5 GiB, got ${partSize}`);
    }
    const connections = options.connections ?? envSize('CRIMG_S3_CONNECTIONS') ?? 4;
    if (!Number.isSafeInteger(connections) || connections < 1) throw new RangeError(`expected connections >= 1, got ${connections}`);
    const target = s3Target(url, options.s3);
    const agent = makeAgent(target.objectUrl.protocol, connections);
    const retries = options.retries ?? 4;
    const timeoutMs = options.timeoutMs ?? 60_000;
    const u = new URL(target.objectUrl.href);
    u.search = 'uploads=';
    let res: HttpResponse;
    try {
      res = await send(target, agent, 'POST', u, {}, undefined, retries, timeoutMs);
    } catch (e) {
      agent.destroy();
      throw e;
    }
    const uploadId = xmlText(res.body.toString('utf8'), 'UploadId');
    if (!uploadId) {
      agent.destroy();
      throw new CrimgError('IO_ERROR', `${target.name}: CreateMultipartUpload returned no UploadId`);
    }
    return new S3Upload(target, uploadId, agent, partSize, connections, retries, timeoutMs);
  }

  /** Appends `bytes[offset, offset + length)` at `position` (file order; a gap is zeros). */
  async write(bytes: Uint8Array, offset = 0, length = bytes.length - offset, position = this.pos): Promise<{ bytesWritten: number }> {
    await this.append([bytes.subarray(offset, offset + length)], position);
    return { bytesWritten: length };
  }

  /** Appends the buffers at `position`, in order. */
  async writev(bufs: readonly Uint8Array[], position = this.pos): Promise<{ bytesWritten: number }> {
    let n = 0;
    for (const b of bufs) n += b.length;
    await this.append(bufs, position);
    return { bytesWritten: n };
  }

  /** Copies synchronously (the caller's order is the file's), then waits for room. */
  private async append(bufs: readonly Uint8Array[], position: number): Promise<void> {
    if (this.state !== 'open') throw new CrimgError('IO_ERROR', `${this.target.name}: write after the upload was ${this.state}`);
    if (this.failure) throw this.failure;
    if (position < this.pos) {
      throw new CrimgError('INVALID_ARGUMENT', `${this.target.name}: a multipart upload is written in order; a write at ${position} comes after ${this.pos}`);
    }
    const full: Buffer[] = [];
    if (position > this.pos) this.copy(new Uint8Array(position - this.pos), full);
    for (const b of bufs) this.copy(b, full);
    for (const p of full) this.startPart(p);
    while (this.inFlight.size >= this.connections) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  private copy(src: Uint8Array, full: Buffer[]): void {
    let at = 0;
    while (at < src.length) {
      const n = Math.min(src.length - at, this.partSize - this.partFill);
      this.part.set(src.subarray(at, at + n), this.partFill);
      this.partFill += n;
      at += n;
      this.pos += n;
      if (this.partFill === this.partSize) {
        full.push(this.part);
        this.part = Buffer.allocUnsafe(this.partSize);
        this.partFill = 0;
      }
    }
  }

  private startPart(bytes: Buffer): void {
    const number = ++this.partNumber;
    const u = new URL(this.target.objectUrl.href);
    u.search = `partNumber=${number}&uploadId=${encodeURIComponent(this.uploadId)}`;
    const p = send(this.target, this.agent, 'PUT', u, {}, bytes, this.retries, this.timeoutMs).then((res) => {
      const etag = res.headers.etag;
      if (typeof etag !== 'string') throw new CrimgError('IO_ERROR', `${this.target.name}: part ${number} was stored without an ETag`);
      this.etags[number - 1] = etag;
    }).catch((e) => { this.failure ??= e; }).finally(() => { this.inFlight.delete(p); });
    this.inFlight.add(p);
  }

  /**
   * Uploads the last part and completes the upload: the object appears under its key.
   * @throws CrimgError IO_ERROR (the upload is then aborted)
   */
  async commit(_options: { fsync?: boolean } = {}): Promise<void> {
    if (this.state !== 'open') throw new TypeError(`expected an open upload, got one that is ${this.state}`);
    try {
      if (this.partFill > 0 || this.partNumber === 0) {
        this.startPart(this.part.subarray(0, this.partFill));
      }
      while (this.inFlight.size > 0) await Promise.race(this.inFlight);
      if (this.failure) throw this.failure;
      const xml = '<CompleteMultipartUpload>'
        + this.etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}</ETag></Part>`).join('')
        + '</CompleteMultipartUpload>';
      const u = new URL(this.target.objectUrl.href);
      u.search = `uploadId=${encodeURIComponent(this.uploadId)}`;
      const res = await send(this.target, this.agent, 'POST', u, { 'content-type': 'application/xml' }, Buffer.from(xml), this.retries, this.timeoutMs);
      // S3 may answer 200 with an error in the body.
      const code = xmlText(res.body.toString('utf8'), 'Code');
      if (code !== null) throw new CrimgError('IO_ERROR', `${this.target.name}: CompleteMultipartUpload failed: ${code}`);
    } catch (e) {
      await this.abort();
      throw e instanceof CrimgError ? e : new CrimgError('IO_ERROR', `${this.target.name}: the upload failed: ${describeFailure(e)}`);
    }
    this.state = 'completed';
    this.agent.destroy();
  }

  /** Aborts the upload (AbortMultipartUpload): nothing appears under the key. Never throws. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await Promise.allSettled([...this.inFlight]);
    const u = new URL(this.target.objectUrl.href);
    u.search = `uploadId=${encodeURIComponent(this.uploadId)}`;
    await send(this.target, this.agent, 'DELETE', u, {}, undefined, this.retries, this.timeoutMs).catch(() => {});
    this.agent.destroy();
  }
}

/** One signed request with retries; a non-2xx answer is IO_ERROR naming the S3 error code only. */
async function send(target: S3Target, agent: http.Agent, method: 'POST' | 'PUT' | 'DELETE', url: URL, headers: Record<string, string>, body: Uint8Array | undefined, retries: number, timeoutMs: number): Promise<HttpResponse> {
  let last: unknown = null;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2)));
    let res: HttpResponse;
    try {
      res = await httpRequest({ method, url, headers: await target.sign(method, url, headers), body, timeoutMs, maxBody: 1 << 20, agent });
    } catch (e) {
      if (isTransient(e)) { last = e; continue; }
      throw new CrimgError('IO_ERROR', `${target.name}: ${method} failed: ${describeFailure(e)}`);
    }
    if (res.status >= 200 && res.status < 300) return res;
    if (res.status >= 500 || res.status === 429) { last = Object.assign(new Error(`HTTP ${res.status}`), { code: `HTTP ${res.status}` }); continue; }
    const code = xmlText(res.body.toString('utf8'), 'Code');
    throw new CrimgError('IO_ERROR', `${target.name}: ${method} refused: HTTP ${res.status}${code ? ` ${code}` : ''}`, {
      hint: res.status === 403 ? 'check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket' : 'check the bucket and key',
    });
  }
  throw new CrimgError('IO_ERROR', `${target.name}: ${method} failed after ${retries + 1} tries: ${describeFailure(last)}`);
}

/** A size from the environment: digits with an optional K, M or G (binary); undefined when unset. */
export function envSize(name: string, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const m = /^(\d+)([KMG]?)$/i.exec(v.trim());
  if (!m) throw new CrimgError('INVALID_ARGUMENT', `expected ${name} as a number with an optional K, M or G, got ${JSON.stringify(v)}`);
  return Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
}
