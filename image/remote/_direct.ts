/**
 * Range GETs over plain `http://` whose bodies the kernel copies straight into the caller's
 * memory: each keep-alive socket reads with `onread` into a buffer this module chooses per read,
 * the response head into a small buffer of the connection, the body into the target. Used for
 * the long reads a native decode window makes (RemoteSource.readInto); everything else, and
 * https, goes through node:http (image/remote/_http.ts).
 *
 * Why: node:http copies every body chunk out of a fresh 64 KiB read buffer into a new Buffer
 * (its parser's on_body), which the caller copies again; with the page faults of that fresh
 * memory, receiving 405 MiB took 0.6-1.3 s of CPU against 0.1-0.2 s read in place, CPU the two
 * decode threads of a copy restore then lack.
 *
 * What it accepts is what a range answer needs: HTTP/1.1 (or 1.0), a status line, header lines,
 * a Content-Length; an answer without one, or chunked, or with a folded or malformed header, is
 * {@link DirectUnsupported} before any byte of its body is kept, and the caller sends the request
 * again through node:http. Failures keep node:http's meaning for the caller: a body that ends
 * early (or stalls for `timeoutMs`) is ShortBody, no answer for `timeoutMs` RequestTimeout, a 200
 * or 206 body longer than its target BodyTooLarge, a connection closed before an answer
 * ECONNRESET, a 206 for other bytes than asked WrongRange (the connection is dropped).
 *
 * Other answers (412, 503, ...) are returned with their body when it is at most
 * {@link ERROR_BODY} bytes, else with an empty one and the connection closed unread; 204 and 304
 * have no body whatever their Content-Length (RFC 9112 6.3) and close the connection. A
 * connection goes back to the pool a turn after its answer, so bytes that follow an answer (a
 * server that answers twice) are seen as stray and close it, never read as the next answer;
 * a few line breaks between answers are ignored (RFC 9112 2.2).
 */
import net from 'node:net';
import type http from 'node:http';
import { BodyTooLarge, ERROR_BODY, RequestTimeout, ShortBody, WrongRange, coversRange, type HttpResponse } from './_http.js';

/**
 * An answer this client does not read (no Content-Length, chunked, an odd head): use node:http.
 * `status`: the answer's status, 0 when its status line was not read.
 */
export class DirectUnsupported extends Error {
  status = 0;
}

/** The largest response head read. */
const MAX_HEAD = 64 * 1024;
/** The head buffer a connection starts with. */
const HEAD = 16 * 1024;
/** Line breaks ignored between two answers (RFC 9112 2.2); one more is a stray byte. */
const MAX_BREAKS = 4;

export interface DirectRequest {
  /** Path and query. */
  path: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** Where a 200 or 206 body goes; it must not be longer. */
  into: Uint8Array;
  /** The bytes asked for ([start, end)): a 206 that does not hold them is WrongRange. */
  expect?: [number, number];
}

interface Active {
  req: DirectRequest;
  resolve: (r: HttpResponse) => void;
  reject: (e: unknown) => void;
  /** Head bytes so far (in `head`), then -1 once the body is being read. */
  headLength: number;
  /** Whether a byte other than a line break came (line breaks before it are skipped). */
  started: boolean;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Uint8Array | null;
  declared: number;
  got: number;
  keepAlive: boolean;
}

/** One keep-alive connection; one request at a time. */
class Connection {
  private head = Buffer.allocUnsafe(HEAD);
  private active: Active | null = null;
  /** Line breaks skipped since the last answer's head. */
  private breaks = 0;
  readonly socket: net.Socket;
  dead = false;

  constructor(host: string, port: number, private readonly onIdle: (c: Connection) => void, private readonly onDead: (c: Connection) => void) {
    this.socket = net.connect({
      host, port, noDelay: true,
      onread: { buffer: () => this.nextBuffer(), callback: (n: number) => { this.received(n); return true; } },
    });
    this.socket.on('timeout', () => this.fail(new RequestTimeout(this.active?.req.timeoutMs ?? 0)));
    this.socket.on('error', (e) => this.fail(e));
    this.socket.on('end', () => this.fail(null));
    this.socket.on('close', () => this.fail(null));
  }

  send(req: DirectRequest): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      this.active = { req, resolve, reject, headLength: 0, started: false, status: 0, headers: {}, body: null, declared: -1, got: 0, keepAlive: true };
      let text = `GET ${req.path} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(req.headers)) {
        if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) {
          this.fail(new TypeError('a header name or value holds a line break'));
          return;
        }
        text += `${k}: ${v}\r\n`;
      }
      this.socket.setTimeout(req.timeoutMs);
      this.socket.ref();
      this.socket.write(`${text}\r\n`, 'latin1');
    });
  }

  /** The memory the next read goes into: the rest of the body's target, else the head buffer. */
  private nextBuffer(): Uint8Array {
    const a = this.active;
    if (a && a.headLength < 0 && a.got < a.declared) return a.body!.subarray(a.got, a.declared);
    const at = a && a.headLength > 0 ? a.headLength : 0;
    if (at < this.head.length) return this.head.subarray(at);
    // The head fills the buffer: a larger one, up to MAX_HEAD (received() refuses more).
    if (this.head.length < MAX_HEAD) {
      const grown = Buffer.allocUnsafe(Math.min(MAX_HEAD, this.head.length * 2));
      this.head.copy(grown);
      this.head = grown;
      return this.head.subarray(at);
    }
    return Buffer.allocUnsafe(HEAD);
  }

  private received(n: number): void {
    const a = this.active;
    if (a === null) {
      // A few line breaks between answers are ignored; other bytes nobody asked for (a server
      // that answers twice): the connection is not trusted again.
      let k = 0;
      while (k < n && this.breaks < MAX_BREAKS && isBreak(this.head[k]!)) { k++; this.breaks++; }
      if (k < n) this.fail(null);
      return;
    }
    try {
      if (a.headLength >= 0) this.headBytes(a, n);
      else a.got += n;
      if (a.headLength < 0 && a.got >= a.declared) this.complete(a);
    } catch (e) {
      if (e instanceof DirectUnsupported) e.status = a.status;
      this.fail(e);
    }
  }

  /** `n` more head bytes in `head`: once the head is whole, parsed and the body's start placed. */
  private headBytes(a: Active, n: number): void {
    let start = Math.max(0, a.headLength - 3);
    a.headLength += n;
    if (!a.started) {
      // Line breaks before the status line (after the last answer) are skipped, a few.
      let skip = 0;
      while (skip < a.headLength && this.breaks < MAX_BREAKS && isBreak(this.head[skip]!)) { skip++; this.breaks++; }
      if (skip > 0) {
        this.head.copyWithin(0, skip, a.headLength);
        a.headLength -= skip;
        start = 0;
      }
      a.started = a.headLength > 0;
    }
    if (a.headLength > this.head.length) throw new DirectUnsupported('head past its buffer');
    const end = this.head.subarray(0, a.headLength).indexOf('\r\n\r\n', start, 'latin1');
    if (end < 0) {
      if (a.headLength >= MAX_HEAD) throw new DirectUnsupported(`a response head over ${MAX_HEAD} bytes`);
      return;
    }
    this.parseHead(a, this.head.toString('latin1', 0, end));
    // Line breaks are counted from this answer's head on (up to the next answer's status line).
    this.breaks = 0;
    const extra = this.head.subarray(end + 4, a.headLength);
    const take = Math.min(extra.length, a.declared);
    // Bytes past the answer (other than a few line breaks): the answer stands, the connection
    // is not trusted again.
    if (extra.length > take) {
      let k = take;
      while (k < extra.length && this.breaks < MAX_BREAKS && isBreak(extra[k]!)) { k++; this.breaks++; }
      if (k < extra.length) a.keepAlive = false;
    }
    extra.copy(a.body!, 0, 0, take);
    a.got = take;
    a.headLength = -1;
  }

  private parseHead(a: Active, text: string): void {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/.exec(lines[0]!);
    if (!status || status[2]![0] === '1') throw new DirectUnsupported('not an HTTP/1.x final answer');
    a.status = Number(status[2]);
    a.keepAlive = status[1] === '1';
    // No prototype: a header named constructor or __proto__ is a header like any other.
    const headers: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const line of lines.slice(1)) {
      const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(line);
      if (!m) throw new DirectUnsupported('a header line that is not name: value');
      const name = m[1]!.toLowerCase();
      if (name in headers && name !== 'set-cookie') {
        // A field sent twice: Content-Length must agree; a validator twice is not an answer to trust.
        if (name === 'content-length' && headers[name] === m[2]) continue;
        throw new DirectUnsupported(`${name} sent twice`);
      }
      headers[name] = m[2]!;
    }
    a.headers = headers;
    if (a.status === 204 || a.status === 304) {
      // No body, whatever the head says (RFC 9112 6.3); the connection is not kept.
      a.declared = 0;
      a.keepAlive = false;
      a.body = new Uint8Array(0);
      return;
    }
    if (headers['transfer-encoding'] !== undefined) throw new DirectUnsupported('a transfer encoding');
    const length = headers['content-length'];
    if (length === undefined || !/^\d{1,15}$/.test(length)) throw new DirectUnsupported('no Content-Length');
    if (/\bclose\b/i.test(headers.connection ?? '')) a.keepAlive = false;
    else if (/\bkeep-alive\b/i.test(headers.connection ?? '')) a.keepAlive = true;
    a.declared = Number(length);
    if (a.status === 206 && a.req.expect && !coversRange(headers['content-range'], a.req.expect)) {
      // The answer to another request (a server out of step): none of it is read.
      throw new WrongRange(a.req.expect, headers['content-range']);
    }
    if (a.status === 200 || a.status === 206) {
      if (a.declared > a.req.into.length) throw new BodyTooLarge(a.declared);
      a.body = a.req.into;
      return;
    }
    if (a.declared > ERROR_BODY) {
      // An error page too long to keep: its status alone, the connection closed unread.
      a.declared = 0;
      a.keepAlive = false;
      a.body = new Uint8Array(0);
      return;
    }
    a.body = Buffer.allocUnsafe(a.declared);
  }

  private complete(a: Active): void {
    this.active = null;
    const body = a.body!;
    a.resolve({ status: a.status, headers: a.headers, body: Buffer.from(body.buffer, body.byteOffset, a.declared) });
    if (!a.keepAlive) {
      this.kill();
      return;
    }
    this.socket.setTimeout(0);
    // An idle connection does not keep the process alive (as node:http's agent does it).
    this.socket.unref();
    // Back to the pool a turn later: bytes already received after this answer reach the guard
    // in received() first (and close the connection) instead of being read as the answer to a
    // request sent on it meanwhile.
    setImmediate(() => {
      if (!this.dead) this.onIdle(this);
    });
  }

  /**
   * Ends the request in flight, if any, with `e` (null: the connection closed), as node:http
   * would: ShortBody once a body had begun (also when it stalled), else the error or
   * ECONNRESET. The connection dies.
   */
  private fail(e: unknown): void {
    const a = this.active;
    this.active = null;
    this.kill();
    if (a === null) return;
    if (a.headLength < 0) {
      a.reject(new ShortBody(a.got, a.declared));
      return;
    }
    a.reject(e ?? Object.assign(new Error('the connection closed before an answer'), { code: 'ECONNRESET' }));
  }

  kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.destroy();
    this.onDead(this);
  }
}

function isBreak(b: number): boolean {
  return b === 13 || b === 10;
}

/** Connections to one server, kept alive between requests (at most `maxIdle` idle). */
export class DirectPool {
  private readonly idle: Connection[] = [];
  private readonly open = new Set<Connection>();
  private closed = false;

  constructor(private readonly host: string, private readonly port: number, private readonly maxIdle: number) {}

  /** Sends one GET on an idle connection or a new one. */
  request(req: DirectRequest): Promise<HttpResponse> {
    if (this.closed) return Promise.reject(Object.assign(new Error('the pool is closed'), { code: 'ECONNABORTED' }));
    let c = this.idle.pop();
    while (c && c.dead) c = this.idle.pop();
    if (!c) {
      c = new Connection(this.host, this.port, (x) => this.toIdle(x), (x) => this.forget(x));
      this.open.add(c);
    }
    return c.send(req);
  }

  private toIdle(c: Connection): void {
    if (this.closed || this.idle.length >= this.maxIdle) c.kill();
    else this.idle.push(c);
  }

  private forget(c: Connection): void {
    this.open.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** Takes no more requests: idle connections close now, busy ones once their answer is in. */
  retire(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.kill();
  }

  /** Closes every connection (a request in flight fails). */
  destroy(): void {
    this.closed = true;
    for (const c of [...this.open]) c.kill();
  }
}
