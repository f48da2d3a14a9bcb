/**
 * Remote reads against servers that misbehave on purpose, written byte by byte on loopback
 * (node:net): error pages longer than the range, answers sent twice or ahead of their request,
 * 204/304 with a Content-Length, a body that stalls, odd header names, line breaks between
 * answers, a chunked error. Each case runs on both paths where it applies: the in-place client
 * (image/remote/_direct.ts) and node:http (CRIMG_REMOTE_DIRECT=0). Issue 18.
 */
import net from 'node:net';
import { RemoteSource, type RemoteOptions } from '../image/index.js';
import { CrimgError } from '../format/errors.js';

const SIZE = 1 << 20;
const OBJ = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) OBJ[i] = (i * 7 + (i >> 8)) & 255;
const P = 64 * 1024;
const ETAG = '"v1"';
const LM = 'Wed, 01 Jan 2025 00:00:00 GMT';

interface Req {
  range: [number, number];
  headers: Record<string, string>;
  /** Sent by node:http (it adds Connection), not by the in-place client. */
  viaNode: boolean;
  n: number;
  conn: number;
}

/** A 206 for [start, end) of `obj` (OBJ), with the pinned validators; `extra` header lines. */
function partial(start: number, end: number, o: { obj?: Buffer; extra?: string[] } = {}): Buffer {
  const body = (o.obj ?? OBJ).subarray(start, end);
  const head = ['HTTP/1.1 206 Partial Content', `Content-Range: bytes ${start}-${end - 1}/${SIZE}`, `Content-Length: ${body.length}`, `ETag: ${ETAG}`, `Last-Modified: ${LM}`, ...(o.extra ?? [])];
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

function answer(status: string, body: string, extra: string[] = []): string {
  return [`HTTP/1.1 ${status}`, `Content-Length: ${body.length}`, ...extra].join('\r\n') + `\r\n\r\n${body}`;
}

interface Server {
  url: string;
  log: Req[];
  /** Sockets by connection number, and a promise per connection that settles when it closes. */
  closed: Promise<void>[];
  stop(): Promise<void>;
}

/** A server of OBJ whose every request goes to `handler` (which writes the raw answer). */
async function serve(handler: (req: Req, sock: net.Socket) => void): Promise<Server> {
  const log: Req[] = [];
  const closed: Promise<void>[] = [];
  const sockets = new Set<net.Socket>();
  let n = 0;
  const server = net.createServer((sock) => {
    const conn = closed.length;
    closed.push(new Promise((r) => sock.on('close', () => r())));
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let i: number;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        const lines = buf.subarray(0, i).toString('latin1').split('\r\n').slice(1);
        buf = buf.subarray(i + 4);
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        const m = /bytes=(\d*)-(\d*)/.exec(headers.range ?? '');
        const range: [number, number] = !m ? [0, SIZE] : m[1] === '' ? [SIZE - Number(m[2]), SIZE] : [Number(m[1]), Math.min(SIZE, Number(m[2]) + 1)];
        const req = { range, headers, viaNode: headers.connection !== undefined, n: n++, conn };
        log.push(req);
        handler(req, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/obj`,
    log,
    closed,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Runs `fn` with the in-place client on (`direct`) or off (CRIMG_REMOTE_DIRECT=0), read at open. */
async function withPath<T>(direct: boolean, fn: () => Promise<T>): Promise<T> {
  const before = process.env.CRIMG_REMOTE_DIRECT;
  process.env.CRIMG_REMOTE_DIRECT = direct ? '1' : '0';
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.CRIMG_REMOTE_DIRECT;
    else process.env.CRIMG_REMOTE_DIRECT = before;
  }
}

const BASE: RemoteOptions = { retries: 2, backoffMs: 1, pieceSize: P };

/** Opens the server's object (on the path chosen), reads `length` bytes at `offset` into a target: the target, or the error. */
async function readInto(s: Server, direct: boolean, offset: number, length: number, options: RemoteOptions = {}): Promise<{ target: Buffer; error: unknown; src: RemoteSource }> {
  const src = await withPath(direct, () => RemoteSource.open(s.url, { ...BASE, ...options }));
  const target = Buffer.alloc(length);
  let error: unknown = null;
  try {
    await src.readInto(target, offset);
  } catch (e) {
    error = e;
  } finally {
    await src.close();
  }
  return { target, error, src };
}

/** The requests after the two of the open, and whether they took the path asked for. */
function dataRequests(s: Server): Req[] {
  return s.log.slice(2);
}

function expectPath(s: Server, direct: boolean): void {
  const reqs = dataRequests(s);
  expect(reqs.length).toBeGreaterThan(0);
  expect(reqs.every((r) => r.viaNode === !direct)).toBe(true);
}

const PATHS: [string, boolean][] = [['in place', true], ['node:http', false]];

describe('issue 18.1: an error page longer than the range', () => {
  test.each(PATHS)('%s: the object replaced and a 173-byte 412 page for a 100-byte range is SOURCE_CHANGED; a 613-byte 503 for 200 bytes is retried, then exact', async (_name, direct) => {
    const page = '<html>\r\n<head><title>412 Precondition Failed</title></head>\r\n<body>\r\n<center><h1>412 Precondition Failed</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n';
    let replaced = false;
    const s = await serve((req, sock) => {
      if (replaced && req.headers['if-match']) sock.write(answer('412 Precondition Failed', page, ['Content-Type: text/html']));
      else sock.write(partial(...req.range));
    });
    try {
      const src = await withPath(direct, () => RemoteSource.open(s.url, BASE));
      replaced = true;
      const target = Buffer.alloc(100);
      await expect(src.readInto(target, 100_000)).rejects.toMatchObject({ code: 'SOURCE_CHANGED' });
      await src.close();
      expectPath(s, direct);
    } finally {
      await s.stop();
    }
    let refused = 0;
    const s2 = await serve((req, sock) => {
      if (req.n >= 2 && refused++ === 0) sock.write(answer('503 Service Unavailable', `<html>${'x'.repeat(600)}</html>`, ['Retry-After: 0']));
      else sock.write(partial(...req.range));
    });
    try {
      const r = await readInto(s2, direct, 100_000, 200);
      expect(r.error).toBeNull();
      expect(r.target.equals(OBJ.subarray(100_000, 100_200))).toBe(true);
      expect(r.src.stats.retries).toBe(1);
      expectPath(s2, direct);
    } finally {
      await s2.stop();
    }
  });

  test.each(PATHS)('%s: a 503 declaring a 200 000-byte page (over 64 KiB) is not read: its connection is closed, the range retried and exact', async (_name, direct) => {
    let refused = -1;
    const s = await serve((req, sock) => {
      if (req.n >= 2 && refused < 0) {
        // Only the head and a little of the page: a client waiting for the rest would wait for ever.
        refused = req.conn;
        sock.write(`HTTP/1.1 503 Service Unavailable\r\nContent-Length: 200000\r\n\r\n${'x'.repeat(1000)}`);
      } else {
        sock.write(partial(...req.range));
      }
    });
    try {
      const r = await readInto(s, direct, 5000, P, { timeoutMs: 600_000 });
      expect(r.error).toBeNull();
      expect(r.target.equals(OBJ.subarray(5000, 5000 + P))).toBe(true);
      expect(r.src.stats.retries).toBe(1);
      await s.closed[refused];
      expectPath(s, direct);
    } finally {
      await s.stop();
    }
  });
});

describe('issue 18.2: an answer that arrives before its request', () => {
  const forged = Buffer.alloc(SIZE, 0xaa);

  test.each(PATHS)('%s: each answer followed by a forged answer for the next range (one write, one connection allowed): exact bytes, nothing forged in any piece', async (_name, direct) => {
    const s = await serve((req, sock) => {
      const [a, b] = req.range;
      if (req.n < 2 || b >= SIZE) { sock.write(partial(a, b)); return; }
      sock.write(Buffer.concat([partial(a, b), partial(b, Math.min(SIZE, b + P), { obj: forged })]));
    });
    try {
      const r = await readInto(s, direct, 0, 4 * P, { connections: 1 });
      expect(r.error).toBeNull();
      expect(r.target.equals(OBJ.subarray(0, 4 * P))).toBe(true);
      expectPath(s, direct);
    } finally {
      await s.stop();
    }
  });

  test.each(PATHS)('%s: the first range answered twice (the second copy taken for nothing, not for the next range); a 206 for other bytes than asked is retried on a fresh connection: exact bytes', async (_name, direct) => {
    let doubled = false;
    let wrong = 0;
    const s = await serve((req, sock) => {
      const [a, b] = req.range;
      if (req.n < 2) { sock.write(partial(a, b)); return; }
      if (!doubled) { doubled = true; sock.write(Buffer.concat([partial(a, b), partial(a, b)])); return; }
      // The third range's first try: the answer of the first range (same length, other bytes).
      if (a === 2 * P && wrong++ === 0) { sock.write(partial(0, P)); return; }
      sock.write(partial(a, b));
    });
    try {
      const r = await readInto(s, direct, 0, 4 * P, { connections: 1 });
      expect(r.error).toBeNull();
      expect(r.target.equals(OBJ.subarray(0, 4 * P))).toBe(true);
      expect(wrong).toBe(2);
      expect(r.src.stats.retries).toBe(1);
      // The retry went on another connection than the wrong answer.
      const tries = dataRequests(s).filter((q) => q.range[0] === 2 * P);
      expect(tries.length).toBe(2);
      expect(tries[1]!.conn).not.toBe(tries[0]!.conn);
      expectPath(s, direct);
    } finally {
      await s.stop();
    }
  });
});

describe('issue 18.3: 204 and 304 have no body', () => {
  test.each(PATHS)('%s: a 304 and a 204 with a Content-Length and no body are answered at once (IO_ERROR naming the status), never waited on', async (_name, direct) => {
    for (const status of ['304 Not Modified', '204 No Content']) {
      const s = await serve((req, sock) => {
        if (req.n < 2) sock.write(partial(...req.range));
        else sock.write(`HTTP/1.1 ${status}\r\nContent-Length: 100\r\nETag: ${ETAG}\r\n\r\n`);
      });
      try {
        // A client waiting for 100 bytes of body would wait out this timeout (longer than the test's).
        const r = await readInto(s, direct, 1000, P, { timeoutMs: 600_000, retries: 0 });
        expect(r.error).toBeInstanceOf(CrimgError);
        expect(r.error).toMatchObject({ code: 'IO_ERROR', message: expect.stringContaining(`HTTP ${status.slice(0, 3)}`) });
        expectPath(s, direct);
      } finally {
        await s.stop();
      }
    }
  });
});

describe('issue 18.4: a body that stalls', () => {
  test.each(PATHS)('%s: head and 100 bytes, then nothing: TRUNCATED (a short body), the same on both paths', async (_name, direct) => {
    const s = await serve((req, sock) => {
      const r = partial(...req.range);
      if (req.n < 2) sock.write(r);
      else sock.write(r.subarray(0, r.length - P + 100));
    });
    try {
      const r = await readInto(s, direct, 0, P, { timeoutMs: 1000, retries: 0 });
      expect(r.error).toMatchObject({ code: 'TRUNCATED', message: expect.stringContaining('ended after 100 of 65536 bytes') });
      expectPath(s, direct);
    } finally {
      await s.stop();
    }
  });
});

describe('issue 18.5: odd but harmless answers', () => {
  test.each(PATHS)('%s: header lines named constructor, toString and __proto__, and a line break before and after every answer: exact bytes, every range on the path asked for', async (_name, direct) => {
    const s = await serve((req, sock) => {
      const [a, b] = req.range;
      if (req.n < 2) { sock.write(partial(a, b)); return; }
      // Small ranges arrive with their head in one read, the others after it: both kinds.
      sock.write(Buffer.concat([Buffer.from('\r\n'), partial(a, b, { extra: ['Constructor: x', 'toString: y', '__proto__: z'] }), Buffer.from('\r\n')]));
    });
    try {
      const src = await withPath(direct, () => RemoteSource.open(s.url, BASE));
      try {
        for (const [offset, length] of [[10, 300], [70_000, 4 * P + 7], [500_000, 1000]] as const) {
          const target = Buffer.alloc(length);
          await src.readInto(target, offset);
          expect(target.equals(OBJ.subarray(offset, offset + length))).toBe(true);
        }
        expect(src.stats.retries).toBe(0);
      } finally {
        await src.close();
      }
      expectPath(s, direct);
    } finally {
      await s.stop();
    }
  });

  test('in place: a chunked 503 (a proxy\'s error) is retried and the in-place client stays on; a chunked 206 turns it off', async () => {
    let chunked503 = 0;
    let chunked206 = false;
    const s = await serve((req, sock) => {
      const [a, b] = req.range;
      if (req.n >= 2 && !req.viaNode && a === P && chunked503++ === 0) {
        sock.write('HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nbusy.\r\n0\r\n\r\n');
        return;
      }
      if (chunked206 && !req.viaNode) {
        sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${a}-${b - 1}/${SIZE}\r\nTransfer-Encoding: chunked\r\nETag: ${ETAG}\r\nLast-Modified: ${LM}\r\n\r\n${(b - a).toString(16)}\r\n`);
        sock.write(OBJ.subarray(a, b));
        sock.write('\r\n0\r\n\r\n');
        return;
      }
      sock.write(partial(a, b));
    });
    try {
      const src = await withPath(true, () => RemoteSource.open(s.url, BASE));
      try {
        const target = Buffer.alloc(4 * P);
        await src.readInto(target, 0);
        expect(target.equals(OBJ.subarray(0, 4 * P))).toBe(true);
        // The 503 was asked again through node:http; every other range went in place.
        const first = dataRequests(s);
        expect(first.filter((q) => q.viaNode).map((q) => q.range[0])).toEqual([P]);
        expect(first.filter((q) => !q.viaNode).length).toBe(4);
        const more = s.log.length;
        await src.readInto(target, 4 * P);
        expect(target.equals(OBJ.subarray(4 * P, 8 * P))).toBe(true);
        expect(s.log.slice(more).every((q) => !q.viaNode)).toBe(true);
        // A chunked range answer: asked again through node:http, and so is everything after it.
        chunked206 = true;
        await src.readInto(target.subarray(0, P), 8 * P);
        expect(target.subarray(0, P).equals(OBJ.subarray(8 * P, 9 * P))).toBe(true);
        const at = s.log.length;
        await src.readInto(target, 10 * P);
        expect(target.equals(OBJ.subarray(10 * P, 14 * P))).toBe(true);
        expect(s.log.slice(at).every((q) => q.viaNode)).toBe(true);
      } finally {
        await src.close();
      }
    } finally {
      await s.stop();
    }
  });
});
