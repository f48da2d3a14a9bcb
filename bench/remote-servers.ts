/**
 * Real servers on loopback for the remote-image tests and bench (test/remote-servers.ts
 * re-exports these): nginx serving a directory with byte ranges (its own prefix, config and
 * logs in a temporary directory, `daemon off`, an access log of `$bytes_sent` per request), an
 * S3-API server (s3rver's own CLI, a child node process), and a fault-injecting proxy
 * (node:http) in front of either. The servers are child processes under a shell that stops them
 * when this process's pipe to it closes (at stop(), or when this process dies), so nothing
 * outlives the test or bench that started it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A free TCP port on 127.0.0.1 (nginx cannot listen on port 0: bind, read, release). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on `port`. */
async function waitForPort(port: number, child: ChildProcess, what: string, errors: () => string): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${errors()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what} did not listen on ${port}: ${errors()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One line of nginx's access log. */
export interface AccessEntry {
  method: string;
  uri: string;
  status: number;
  /** $bytes_sent: headers and body as sent. */
  bytesSent: number;
  range: string;
}

export interface Nginx {
  /** `http://127.0.0.1:PORT` */
  base: string;
  /** `https://127.0.0.1:PORT` when started with `tls`, else null. */
  tlsBase: string | null;
  /** Requests served so far (the log is unbuffered). */
  log(): AccessEntry[];
  stop(): Promise<void>;
}

/** The nginx binary: on PATH, else Debian's place. */
function nginxBinary(): string {
  const r = spawnSync('sh', ['-c', 'command -v nginx || true'], { encoding: 'utf8' });
  const onPath = r.stdout.trim();
  if (onPath) return onPath;
  if (existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx';
  throw new Error('nginx is not installed: apt-get install -y nginx (the README set-up and .ci/run do)');
}

/**
 * A self-signed certificate for 127.0.0.1 (openssl), PEM files in `dir`: the certificate is
 * also its own CA (`ca` of RemoteOptions).
 */
export function selfSignedCert(dir: string): { cert: string; key: string; pem: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.error?.message ?? r.stderr}`);
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}

/** A server under a watching shell: the shell, and the server's own process id once the shell has said it. */
interface Watched {
  shell: ChildProcess;
  server: Promise<number | null>;
}

/**
 * Runs `argv` under a shell that sends it `signal` when its stdin (a pipe from this process)
 * closes: at stop() (`child.stdin.end()`), and also when this process dies without stopping it
 * (a killed test worker), so no server outlives the test. (An asynchronous list reads /dev/null
 * unless told otherwise: the watcher reads fd 3, the pipe.) The shell prints the server's
 * process id (`$!`) on its stdout, so that a stop that times out can SIGKILL the server itself:
 * killing the shell alone would leave the server running.
 */
function watched(signal: 'QUIT' | 'TERM', argv: string[]): Watched {
  const script = `exec 3<&0; "$@" </dev/null >/dev/null & n=$!; echo $n; (read _ <&3 || true; kill -${signal} $n 2>/dev/null) & wait $n`;
  const shell = spawn('sh', ['-c', script, 'sh', ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
  const server = new Promise<number | null>((resolve) => {
    let out = '';
    shell.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const line = /^(\d+)\n/.exec(out);
      if (line) resolve(Number(line[1]));
    });
    shell.once('exit', () => resolve(null));
  });
  return { shell, server };
}

/**
 * Stops a watched server: closes the pipe (the shell sends the server its signal), and after
 * `graceMs` SIGKILLs the server and the shell if the shell has not exited.
 */
function stopWatched(w: Watched, graceMs: number, done: () => void): void {
  if (w.shell.exitCode !== null || w.shell.signalCode !== null) { done(); return; }
  w.shell.once('exit', done);
  w.shell.stdin!.end();
  setTimeout(() => {
    void w.server.then((pid) => {
      for (const p of [pid, w.shell.pid]) {
        if (p) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
      }
    });
  }, graceMs).unref();
}

/** Starts nginx serving `root` on loopback, as a child of this process (and over TLS on a second port with `tls`). */
export async function startNginx(root: string, options: { tls?: { cert: string; key: string } } = {}): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'crimg-nginx-'));
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : 0;
  const tls = options.tls ? `
    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate ${options.tls.cert};
    ssl_certificate_key ${options.tls.key};` : '';
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  log_format counted '$request_method $uri $status $bytes_sent "$http_range"';
  access_log ${dir}/access.log counted;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { application/octet-stream img; }
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${port};${tls}
    root ${root};
    location / { }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  writeFileSync(join(dir, 'access.log'), '');
  const w = watched('QUIT', [nginxBinary(), '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  const child = w.shell;
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const errors = (): string => stderr + (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '');
  try {
    await waitForPort(port, child, 'nginx', errors);
  } catch (e) {
    child.stdin!.end();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    base: `http://127.0.0.1:${port}`,
    tlsBase: options.tls ? `https://127.0.0.1:${tlsPort}` : null,
    log: () => readFileSync(join(dir, 'access.log'), 'utf8').split('\n').filter(Boolean).map((line) => {
      const m = /^(\S+) (\S+) (\d+) (\d+) "(.*)"$/.exec(line)!;
      return { method: m[1]!, uri: m[2]!, status: Number(m[3]), bytesSent: Number(m[4]), range: m[5] === '-' ? '' : m[5]! };
    }),
    // The shell sends SIGQUIT (graceful: finishes the requests in flight); SIGKILL after 3 s.
    stop: () => new Promise<void>((resolve) => {
      stopWatched(w, 3000, () => { rmSync(dir, { recursive: true, force: true }); resolve(); });
    }),
  };
}

export interface S3Server {
  /** The endpoint (`http://127.0.0.1:PORT`), for AWS_ENDPOINT_URL. */
  endpoint: string;
  bucket: string;
  /** s3rver's fixed credentials. */
  accessKeyId: string;
  secretAccessKey: string;
  /** The process id of the shell that runs s3rver (it stops s3rver when this process's pipe closes). */
  pid: number;
  /** The process id of s3rver itself (null if the shell exited before saying it). */
  serverPid: Promise<number | null>;
  /** Keys (names) stored in the bucket now. */
  keys(): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * Starts s3rver (an S3-API server) with one bucket, data in a temporary directory: its CLI in a
 * child node process on a free loopback port, stopped (SIGTERM, then SIGKILL) by stop() or
 * when this process's pipe to it closes.
 */
export async function startS3(bucket = 'images'): Promise<S3Server> {
  const cli = join(dirname(createRequire(import.meta.url).resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const dir = mkdtempSync(join(tmpdir(), 'crimg-s3-'));
  const port = await freePort();
  const w = watched('TERM', [process.execPath, cli, '-d', join(dir, 'data'), '-a', '127.0.0.1', '-p', String(port), '-s', '--configure-bucket', bucket]);
  const child = w.shell;
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  try {
    await waitForPort(port, child, 's3rver', () => stderr);
  } catch (e) {
    child.stdin!.end();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint, bucket, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', pid: child.pid!, serverPid: w.server,
    keys: async () => {
      const body = await new Promise<string>((resolve, reject) => {
        http.get(`${endpoint}/${bucket}`, (res) => {
          let s = '';
          res.on('data', (b: Buffer) => { s += b.toString(); });
          res.on('end', () => resolve(s));
        }).on('error', reject);
      });
      return [...body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!);
    },
    // The shell sends SIGTERM; SIGKILL to s3rver and the shell after 3 s.
    stop: () => new Promise<void>((resolve) => {
      stopWatched(w, 3000, () => { rmSync(dir, { recursive: true, force: true }); resolve(); });
    }),
  };
}

/** What the proxy does with one request. */
export type Fault = 'pass' | 'reset' | '503' | 'short' | 'stall';

export interface FaultProxy {
  base: string;
  /** Requests seen so far. */
  requests: number;
  /** Body bytes passed to clients. */
  bytes: number;
  /** Decides per request (numbered from 0); set it at any time. */
  plan: (n: number, req: http.IncomingMessage) => Fault;
  /** Runs before request `n` is forwarded (e.g. replaces the object, or holds the request). */
  before: (n: number, req: http.IncomingMessage) => void | Promise<void>;
  /** Edits the upstream's response headers of request `n` before they are sent (e.g. drops the ETag). */
  headers: (n: number, headers: http.IncomingHttpHeaders) => void;
  stop(): Promise<void>;
}

/**
 * A proxy on loopback in front of `upstream` (`http://127.0.0.1:PORT`) that injects faults:
 * `reset` destroys the connection before any answer, `503` answers Service Unavailable,
 * `short` sends the headers and half the body and then cuts the connection, `stall` never
 * answers (the client's timeout must fire); `headers` may rewrite the answer's headers (a server
 * without validators, a dropped ETag).
 */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const sockets = new Set<net.Socket>();
  const proxy: FaultProxy = {
    base: '', requests: 0, bytes: 0,
    plan: () => 'pass',
    before: () => {},
    headers: () => {},
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  const server = http.createServer((req, res) => {
    const n = proxy.requests++;
    void (async () => {
      await proxy.before(n, req);
      const fault = proxy.plan(n, req);
      if (fault === 'reset') { req.socket.destroy(); return; }
      if (fault === 'stall') return;
      if (fault === '503') { res.writeHead(503, { 'content-length': '0' }); res.end(); return; }
      const body: Buffer[] = [];
      for await (const b of req) body.push(b as Buffer);
      const headers = { ...req.headers };
      const out = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers }, (ures) => {
        const headers = { ...ures.headers };
        proxy.headers(n, headers);
        res.writeHead(ures.statusCode ?? 502, headers);
        if (fault === 'short') {
          // Headers and half the body reach the client, then the connection is cut.
          const half = Math.floor(Number(ures.headers['content-length'] ?? 0) / 2);
          let sent = 0;
          let cut = false;
          const cutNow = (): void => { cut = true; ures.destroy(); res.write('', () => req.socket.destroy()); };
          if (half === 0) { res.flushHeaders(); cutNow(); return; }
          ures.on('data', (b: Buffer) => {
            if (cut) return;
            const n = Math.min(half - sent, b.length);
            res.write(b.subarray(0, n));
            sent += n;
            proxy.bytes += n;
            if (sent >= half) cutNow();
          });
          ures.on('end', () => { if (!cut) cutNow(); });
          return;
        }
        ures.on('data', (b: Buffer) => { proxy.bytes += b.length; });
        ures.pipe(res);
      });
      out.on('error', () => req.socket.destroy());
      out.end(Buffer.concat(body));
    })();
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return proxy;
}
