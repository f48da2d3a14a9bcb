/**
 * Remote images in an S3-API server (s3rver's CLI, a child process started here on loopback, signed requests):
 * ImageWriter.create('s3://...') as a multipart upload in several parts, read back exactly;
 * an aborted or failed upload leaves no object; a replaced object is SOURCE_CHANGED (s3rver
 * ignores If-Match: the ETag check catches it); wrong credentials are a coded error that
 * never shows the secret; the CLI's convert, capture, inspect and verify on s3:// URLs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { ImageWriter, openImage } from '../index.js';
import { RemoteSource } from '../image/index.js';
import { CrimgError } from '../format/errors.js';
import { memoryLike, tempDir } from './helpers.js';
import { startFaultProxy, startS3, type S3Server } from './remote-servers.js';
import { crimg } from './cli-helpers.js';

const BASE = 0x7f3400000000n;
const t = tempDir();
let s3: S3Server;
const saved: Record<string, string | undefined> = {};
const ENV = ['AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'CRIMG_S3_PART_SIZE'];
/** 20 MiB memory-like, about 12.5 MiB stored raw: three 5 MiB parts. */
const data = memoryLike(20 * 256, 34);

function s3Env(): Record<string, string> {
  return { AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: 'us-east-1', CRIMG_S3_PART_SIZE: '5M' };
}

beforeAll(async () => {
  s3 = await startS3();
  for (const k of ENV) saved[k] = process.env[k];
  Object.assign(process.env, s3Env());
});

afterAll(async () => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  await s3?.stop();
  t.cleanup();
});

async function upload(key: string, bytes: Buffer, compress = 'none'): Promise<void> {
  const w = await ImageWriter.create(`s3://${s3.bucket}/${key}`, { compress, validation: { architecture: 'x86_64' } });
  await w.addRegion({ address: BASE, data: bytes, name: 'heap' });
  await w.finish();
}

describe('S3 (s3rver on loopback)', () => {
  test('a multipart upload of three parts reads back exactly; open takes three requests (head, tail) and verify passes', async () => {
    await upload('dir/a.img', data);
    expect(await s3.keys()).toContain('dir/a.img');
    const src = await RemoteSource.open(`s3://${s3.bucket}/dir/a.img`);
    const image = await openImage(src);
    try {
      expect(src.stats.requests).toBeLessThanOrEqual(3);
      expect(src.size).toBeGreaterThan(10 * 1024 * 1024); // three parts of 5 MiB
      expect(Buffer.from(await image.read(BASE, data.length)).equals(data)).toBe(true);
      expect((await image.verify()).ok).toBe(true);
    } finally {
      await image.close();
      await src.close();
    }
  });

  test('an aborted writer and a failed upload leave no object under the key (AbortMultipartUpload is sent)', async () => {
    const w = await ImageWriter.create(`s3://${s3.bucket}/aborted.img`, {});
    await w.addRegion({ address: BASE, data, name: 'heap' });
    await w.abort();
    expect(await s3.keys()).not.toContain('aborted.img');
    // Through a proxy that resets every part upload after the first: the writer fails, aborts.
    const proxy = await startFaultProxy(s3.endpoint);
    const methods: string[] = [];
    let puts = 0;
    proxy.plan = (_n, req) => {
      methods.push(req.method!);
      if (req.method === 'PUT' && ++puts > 1) return 'reset';
      return 'pass';
    };
    process.env.AWS_ENDPOINT_URL = proxy.base;
    try {
      const err = await (async () => {
        const f = await ImageWriter.create(`s3://${s3.bucket}/failed.img`, {});
        await f.addRegion({ address: BASE, data, name: 'heap' });
        await f.finish();
      })().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(CrimgError);
      expect((err as CrimgError).code).toBe('IO_ERROR');
      expect(methods).toContain('DELETE');
    } finally {
      process.env.AWS_ENDPOINT_URL = s3.endpoint;
      await proxy.stop();
    }
    expect(await s3.keys()).not.toContain('failed.img');
  });

  test('the object replaced after open: SOURCE_CHANGED, not bytes of the new one', async () => {
    const small = data.subarray(0, 1 << 20);
    await upload('moving.img', small);
    const image = await openImage(`s3://${s3.bucket}/moving.img`);
    try {
      await upload('moving.img', memoryLike(256, 35));
      const err = await image.read(BASE, small.length).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'SOURCE_CHANGED' });
    } finally {
      await image.close();
    }
  });

  // s3rver checks the access key id, not version 4 signatures: an unknown key id is its 403.
  test('wrong credentials are IO_ERROR (403) naming the object, never the secret, in messages or --debug output', async () => {
    await upload('private.img', data.subarray(0, 1 << 20));
    const secret = 'wrong-secret-0123456789abcdef';
    process.env.AWS_SECRET_ACCESS_KEY = secret;
    process.env.AWS_ACCESS_KEY_ID = 'NOSUCHKEY';
    try {
      const err = await openImage(`s3://${s3.bucket}/private.img`).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'IO_ERROR' });
      expect((err as Error).message).toContain(`s3://${s3.bucket}/private.img`);
      expect((err as Error).message).toContain('403');
      expect(`${(err as Error).message} ${(err as Error).stack} ${JSON.stringify(err)}`).not.toContain(secret);
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
      process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
    }
    const r = await crimg(['inspect', `s3://${s3.bucket}/private.img`, '--debug'], { ...s3Env(), AWS_ACCESS_KEY_ID: 'NOSUCHKEY', AWS_SECRET_ACCESS_KEY: secret });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('IO_ERROR');
    expect(r.stderr + r.stdout).not.toContain(secret);
    const secretOk = 'a-secret-that-works-0123';
    const ok = await crimg(['inspect', `s3://${s3.bucket}/private.img`, '--debug'], { ...s3Env(), AWS_SECRET_ACCESS_KEY: secretOk });
    expect(ok.status).toBe(0);
    expect(ok.stderr + ok.stdout).not.toContain(secretOk);
  });

  test('keys, region and endpoint from a profile in the shared credentials and config files (AWS_PROFILE), none in the environment; a wrong key there is IO_ERROR without the secret', async () => {
    await upload('profiled.img', data.subarray(0, 1 << 20));
    const creds = t.path('credentials');
    const config = t.path('config');
    writeFileSync(creds, `[default]\naws_access_key_id = NOSUCHKEY\naws_secret_access_key = not-this-one\n\n[ci]\naws_access_key_id = ${s3.accessKeyId}\naws_secret_access_key = ${s3.secretAccessKey}\n`);
    writeFileSync(config, `[default]\nregion = eu-west-1\n\n[profile ci]\nregion = us-east-1\nendpoint_url = ${s3.endpoint}\ns3 =\n  addressing_style = path\n`);
    const env = { AWS_ENDPOINT_URL: '', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_REGION: '', AWS_SHARED_CREDENTIALS_FILE: creds, AWS_CONFIG_FILE: config, AWS_PROFILE: 'ci' };
    const v = await crimg(['verify', `s3://${s3.bucket}/profiled.img`], env);
    expect([v.status, v.stderr]).toEqual([0, '']);
    const secret = 'profile-secret-0123456789';
    writeFileSync(creds, `[ci]\naws_access_key_id = NOSUCHKEY\naws_secret_access_key = ${secret}\n`);
    const bad = await crimg(['inspect', `s3://${s3.bucket}/profiled.img`, '--debug'], env);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('IO_ERROR');
    expect(bad.stderr).toContain('403');
    expect(bad.stderr + bad.stdout).not.toContain(secret);
  });

  test('crimg convert local -> s3:// and crimg capture --pid P s3:// write nothing locally; inspect and verify read them', async () => {
    const local = t.path('local.img');
    const w = await ImageWriter.create(local, { fsync: false, validation: { architecture: 'x86_64' } });
    await w.addRegion({ address: BASE, data: data.subarray(0, 2 << 20), name: 'heap' });
    await w.finish();
    const before = readdirSync(t.dir).sort();
    const env = s3Env();
    const conv = await crimg(['convert', local, `s3://${s3.bucket}/converted.img`, '--compress', 'deflate:1'], env);
    expect([conv.status, conv.stderr]).toEqual([0, '']);
    let child: ChildProcess | null = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const cap = await crimg(['capture', '--pid', String(child.pid), `s3://${s3.bucket}/captured.img`, '--compress', 'deflate:1'], env);
      expect([cap.status, cap.stderr]).toEqual([0, '']);
    } finally {
      child.kill('SIGKILL');
      child = null;
    }
    expect(readdirSync(t.dir).sort()).toEqual(before);
    const ins = await crimg(['inspect', `s3://${s3.bucket}/converted.img`, '--json'], env);
    expect(ins.status).toBe(0);
    expect((JSON.parse(ins.stdout) as { compression: string }).compression).toMatch(/deflate/);
    for (const key of ['converted.img', 'captured.img']) {
      const v = await crimg(['verify', `s3://${s3.bucket}/${key}`], env);
      expect([key, v.status, v.stderr]).toEqual([key, 0, '']);
    }
    const image = await openImage(`s3://${s3.bucket}/converted.img`);
    try {
      expect(Buffer.from(await image.read(BASE, 2 << 20)).equals(data.subarray(0, 2 << 20))).toBe(true);
    } finally {
      await image.close();
    }
  });

  test('stop() of a server that does not answer SIGTERM (stopped by SIGSTOP) kills s3rver itself, not only its shell', async () => {
    const other = await startS3('spare');
    const pid = await other.serverPid;
    expect(pid).not.toBeNull();
    expect(pid).not.toBe(other.pid);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('s3rver');
    process.kill(pid!, 'SIGSTOP');
    await other.stop(); // SIGTERM stays pending; after 3 s SIGKILL to s3rver and the shell
    const alive = (p: number): boolean => {
      try {
        return !/^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'));
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && alive(pid!); i++) await new Promise((r) => setTimeout(r, 20));
    expect([alive(pid!), alive(other.pid)]).toEqual([false, false]);
  });
});
