/**
 * One HTTP(S) request over node:http, with what a remote image source needs and nothing more:
 * keep-alive agents sized to the connections allowed, a timeout per request, a cap on the
 * body (a server that answers a range with the whole object is cut off, not read), and a body
 * that ends before its Content-Length reported as short (`ShortBody`), never as bytes. Answers
 * other than 200 and 206 (error pages) are read up to {@link ERROR_BODY} bytes; a longer one is
 * returned with its status and an empty body, its connection closed unread. A 206 for other
 * bytes than asked (`expect`) is WrongRange, its connection dropped.
 * Headers are never put into errors: they may carry a signature.
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  url: URL;
  headers: Record<string, string>;
  body?: Uint8Array;
  /** Milliseconds without progress (connect, headers or body) before the request fails. */
  timeoutMs: number;
  /** Largest body read; a longer one (by Content-Length or as it comes) fails with BodyTooLarge. */
  maxBody: number;
  agent: http.Agent;
  /** Where a 200 or 206 body goes (its whole length is expected): no copy of chunks gathered. */
  into?: Uint8Array;
  /** The bytes asked for ([start, end)): a 206 that does not hold them is WrongRange. */
  expect?: [number, number];
}

/** The largest body read of an answer other than 200 and 206 (an error page); a longer one is not read. */
export const ERROR_BODY = 64 * 1024;

/** A body that ended before its Content-Length (a reset or a server that closed early). */
export class ShortBody extends Error {
  constructor(readonly got: number, readonly expected: number) {
    super(expected >= 0 ? `the response body ended after ${got} of ${expected} bytes` : `the response body ended early, after ${got} bytes`);
  }
}

/** A response whose body is longer than the request allows (e.g. a 200 with the whole object). */
export class BodyTooLarge extends Error {
  constructor(readonly length: number) {
    super(`the response body of ${length} bytes is larger than asked for`);
  }
}

/**
 * A 206 whose Content-Range does not hold the bytes asked for: the answer to another request (a
 * connection out of step with its server). Its connection is dropped and the request tried again.
 */
export class WrongRange extends Error {
  constructor(expect: [number, number], contentRange: string | undefined) {
    super(`a 206 with Content-Range "${String(contentRange ?? '').slice(0, 80)}" answered the request for bytes [${expect[0]}, ${expect[1]})`);
  }
}

/** Whether a Content-Range holds [start, end); one that is not `bytes a-b/n` is left to the caller (true). */
export function coversRange(contentRange: string | string[] | undefined, [start, end]: [number, number]): boolean {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(String(contentRange ?? ''));
  if (!m) return true;
  return Number(m[1]) <= start && Number(m[2]) + 1 >= end;
}

/** A request that made no progress for its timeout. */
export class RequestTimeout extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(ms: number) {
    super(`no progress for ${ms} ms`);
  }
}

/** An agent per protocol, keeping up to `connections` sockets alive; `ca` replaces the trusted roots of https. */
export function makeAgent(protocol: string, connections: number, ca?: string | Uint8Array): http.Agent {
  const options = { keepAlive: true, maxSockets: connections, maxFreeSockets: connections };
  return protocol === 'https:' ? new https.Agent({ ...options, ...(ca !== undefined ? { ca: typeof ca === 'string' ? ca : Buffer.from(ca) } : {}) }) : new http.Agent(options);
}

/** Sends one request and reads its whole body (up to `maxBody`). */
export function httpRequest(r: HttpRequest): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const lib = r.url.protocol === 'https:' ? https : http;
    let settled = false;
    /** Body bytes so far and the Content-Length (-1: none, or no response yet). */
    let got = 0;
    let declared = -1;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      // A reset after the headers is a short body, whichever stream reports it first.
      reject(declared >= 0 && got < declared && !(e instanceof BodyTooLarge) ? new ShortBody(got, declared) : e);
    };
    const headers: Record<string, string> = { ...r.headers };
    if (r.body) headers['content-length'] = String(r.body.length);
    const req = lib.request(r.url, { method: r.method, headers, agent: r.agent }, (res) => {
      const status = res.statusCode ?? 0;
      const ranged = status === 200 || status === 206;
      // No body for HEAD, 204 and 304, whatever their Content-Length (RFC 9112 6.3).
      const bodiless = r.method === 'HEAD' || status === 204 || status === 304;
      declared = res.headers['content-length'] === undefined || bodiless ? -1 : Number(res.headers['content-length']);
      if (status === 206 && r.expect && !coversRange(res.headers['content-range'], r.expect)) {
        // The answer to another request: none of it is read, the socket is not used again.
        res.destroy();
        fail(new WrongRange(r.expect, res.headers['content-range']));
        return;
      }
      const cap = ranged ? r.maxBody : ERROR_BODY;
      /** An error page longer than kept: its status alone; the socket closes unread. */
      const unread = (): void => {
        settled = true;
        res.destroy();
        req.destroy();
        resolve({ status, headers: res.headers, body: Buffer.alloc(0) });
      };
      if (declared > cap) {
        if (!ranged) { unread(); return; }
        res.destroy();
        fail(new BodyTooLarge(declared));
        return;
      }
      // The body is copied once, as it comes, into a buffer of its declared length (or `into`).
      const into = ranged ? r.into : undefined;
      const size = into ? into.length : declared;
      const dest = into ?? (size >= 0 ? Buffer.allocUnsafe(size) : null);
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => {
        // Nothing more is written once settled: a failed try's target may be refilled or unmapped.
        if (settled) return;
        if (got + b.length > cap || (dest && got + b.length > dest.length)) {
          if (!ranged) { unread(); return; }
          res.destroy();
          fail(new BodyTooLarge(got + b.length));
          return;
        }
        if (dest) dest.set(b, got);
        else parts.push(b);
        got += b.length;
      });
      res.on('end', () => {
        if (settled) return;
        if (declared >= 0 && got !== declared) {
          fail(new ShortBody(got, declared));
          return;
        }
        settled = true;
        const body = dest ? Buffer.from(dest.buffer, dest.byteOffset, got) : parts.length === 1 ? parts[0]! : Buffer.concat(parts, got);
        resolve({ status, headers: res.headers, body });
      });
      res.on('aborted', () => fail(new ShortBody(got, declared)));
      res.on('error', (e) => fail(declared >= 0 && got < declared ? new ShortBody(got, declared) : e));
      res.on('close', () => {
        if (!settled && !res.complete) fail(new ShortBody(got, declared));
      });
    });
    req.setTimeout(r.timeoutMs, () => fail(new RequestTimeout(r.timeoutMs)));
    req.on('error', fail);
    req.end(r.body);
  });
}

/** Whether a failure of {@link httpRequest} is worth another try (resets, timeouts, short bodies). */
export function isTransient(e: unknown): boolean {
  if (e instanceof ShortBody || e instanceof RequestTimeout || e instanceof WrongRange) return true;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'HPE_INVALID_CONSTANT', 'ERR_STREAM_PREMATURE_CLOSE']);

/** What an error was, in words safe for a message: a code or a class, never headers. */
export function describeFailure(e: unknown): string {
  if (e instanceof ShortBody || e instanceof BodyTooLarge || e instanceof RequestTimeout || e instanceof WrongRange) return e.message;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : (e instanceof Error ? e.name : 'failure');
}

/**
 * A URL as it may appear in messages: no user name or password, no query (a presigned URL
 * carries its signature there), no fragment.
 */
export function safeUrl(url: URL): string {
  const u = new URL(url.href);
  u.username = '';
  u.password = '';
  const q = u.search ? '?<query>' : '';
  u.search = '';
  u.hash = '';
  return u.href + q;
}

/**
 * The parts of a `multipart/byteranges` body (RFC 9110 section 14.6): each part's first byte
 * offset and bytes. Null when the body is not one, or a part's numbers are impossible (end before
 * start, past the object's length, not exact integers), or it has more than `maxParts` parts.
 */
export function parseByteRanges(contentType: string, body: Buffer, maxParts = 1024): { start: number; end: number; total: number; bytes: Buffer }[] | null {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!m) return null;
  const delimiter = Buffer.from(`--${m[1] ?? m[2]}`);
  const out: { start: number; end: number; total: number; bytes: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const after = at + delimiter.length;
    if (body[after] === 0x2d && body[after + 1] === 0x2d) return out; // closing delimiter
    const headEnd = body.indexOf('\r\n\r\n', after);
    if (headEnd < 0) return null;
    const head = body.subarray(after, headEnd).toString('latin1');
    const cr = /content-range:\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)/i.exec(head);
    if (!cr) return null;
    const start = Number(cr[1]);
    const end = Number(cr[2]);
    const total = cr[3] === '*' ? -1 : Number(cr[3]);
    // A server's numbers are checked before they steer the walk: a part that ends before it
    // starts, or past the object, or numbers beyond 2^53, make the body invalid (never a
    // negative offset, which would find the same delimiter again, for ever).
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return null;
    if (total !== -1 && (!Number.isSafeInteger(total) || end >= total)) return null;
    if (out.length >= maxParts) return null;
    const dataStart = headEnd + 4;
    const dataEnd = dataStart + (end - start + 1);
    if (dataEnd > body.length) return null;
    out.push({ start, end, total, bytes: body.subarray(dataStart, dataEnd) });
    at = body.indexOf(delimiter, dataEnd);
  }
  return null;
}
