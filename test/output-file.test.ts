/**
 * Safe output files (image/_output-file.ts; issue 14 items 9, 10, 12): the temporary file is
 * unpredictable, created exclusively without following symlinks, owner-only unless widened
 * (whatever the umask), renamed over the final name (a symlink there replaced, never
 * followed), and only ever the writer's own file is removed. Stale temporary files are
 * reported, never reused. Modes are checked in child processes (the umask is per process).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { pathToFileURL } from 'node:url';
import { ImageWriter, openImage } from '../index.js';
import { OutputFile, createExclusive } from '../image/index.js';
import { isTempOf } from '../image/_output-file.js';
import { crimg, ensureBuilt } from './cli-helpers.js';
import { memoryLike, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const TEMP = /^\.(.+)\.[0-9a-f]{16}\.crimg-tmp$/;

/** A fresh directory per test. */
let n = 0;
function dir(): string {
  const d = t.path(`d${n++}`);
  mkdirSync(d);
  return d;
}

async function writeImage(path: string, options: Parameters<typeof ImageWriter.create>[1] = {}): Promise<void> {
  const w = await ImageWriter.create(path, { fsync: false, ...options });
  await w.addRegion({ address: 0x10000, data: memoryLike(4, 1) });
  await w.finish();
}

/** The CRIMG_STALE_TEMP warnings emitted while `fn` runs. */
async function staleWarnings(fn: () => Promise<void>): Promise<string[]> {
  const spy = jest.spyOn(process, 'emitWarning').mockImplementation(() => {});
  try {
    await fn();
    return spy.mock.calls
      .filter(([, opts]) => typeof opts === 'object' && (opts as { code?: string }).code === 'CRIMG_STALE_TEMP')
      .map(([message]) => String(message));
  } finally {
    spy.mockRestore();
  }
}

describe('the temporary file', () => {
  test('is .NAME.<16 random hex>.crimg-tmp beside NAME, 0600, and gone after finish', async () => {
    const d = dir();
    const out = join(d, 'app.img');
    const names = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const w = await ImageWriter.create(out, { fsync: false });
      const during = readdirSync(d);
      expect(during).toHaveLength(1 + (i > 0 ? 1 : 0));
      const tmp = during.find((x) => x !== 'app.img')!;
      expect(tmp).toMatch(TEMP);
      expect(TEMP.exec(tmp)![1]).toBe('app.img');
      expect(isTempOf(tmp, 'app.img')).toBe(true);
      expect(statSync(join(d, tmp)).mode & 0o777).toBe(0o600);
      names.add(tmp);
      await w.addRegion({ address: 0x10000, data: memoryLike(2, i) });
      const summary = await w.finish();
      expect(summary.path).toBe(out);
      expect(readdirSync(d)).toEqual(['app.img']);
      expect(statSync(out).mode & 0o777).toBe(0o600);
    }
    expect(names.size).toBe(3); // a new name every time
  });

  test('symlinks planted at NAME.tmp and at temporary names are never followed; the victim is unchanged', async () => {
    const d = dir();
    const victim = join(d, 'victim');
    writeFileSync(victim, 'secret owned by someone else', { mode: 0o640 });
    const out = join(d, 'out.img');
    symlinkSync(victim, `${out}.tmp`);
    // Guesses at the temporary name: they are reported as stale, never opened.
    const planted = Array.from({ length: 20 }, (_, i) => `.out.img.${i.toString(16).padStart(16, '0')}.crimg-tmp`);
    for (const p of planted) symlinkSync(victim, join(d, p));
    // And the final name itself a symlink to the victim: the rename replaces the link.
    symlinkSync(victim, out);
    const warnings = await staleWarnings(() => writeImage(out));
    expect(readFileSync(victim, 'utf8')).toBe('secret owned by someone else');
    expect(statSync(victim).mode & 0o777).toBe(0o640 & ~process.umask()); // not chmodded either
    expect(lstatSync(out).isSymbolicLink()).toBe(false);
    expect(lstatSync(out).isFile()).toBe(true);
    expect(lstatSync(`${out}.tmp`).isSymbolicLink()).toBe(true);
    for (const p of planted) expect(lstatSync(join(d, p)).isSymbolicLink()).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^20 temporary file\(s\) of .*out\.img found: .*\.out\.img\.0000000000000000\.crimg-tmp, .* and 15 more\. They are left by a writer that was killed \(SIGKILL, power loss\) and are never reused; remove them if no other crimg process is writing that file\.$/);
    const img = await openImage(out);
    expect((await img.verify()).ok).toBe(true);
    await img.close();
  });

  test('createExclusive refuses any existing name: file, symlink, dangling symlink (EEXIST), leaving it as it was', async () => {
    const d = dir();
    writeFileSync(join(d, 'victim'), 'v');
    writeFileSync(join(d, 'file'), 'keep');
    symlinkSync(join(d, 'victim'), join(d, 'link'));
    symlinkSync(join(d, 'nowhere'), join(d, 'dangling'));
    for (const name of ['file', 'link', 'dangling']) {
      await expect(createExclusive(join(d, name), 0o600)).rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringMatching(/: EEXIST$/) });
    }
    expect(readFileSync(join(d, 'file'), 'utf8')).toBe('keep');
    expect(readFileSync(join(d, 'victim'), 'utf8')).toBe('v');
    expect(existsSync(join(d, 'nowhere'))).toBe(false);
  });

  test('a failed write removes only its own temporary file: an existing image stays as it was', async () => {
    const d = dir();
    const out = join(d, 'keep.img');
    writeFileSync(out, 'the previous image');
    const w = await ImageWriter.create(out, { fsync: false });
    await w.addRegion({ address: 0x20000, data: memoryLike(1, 1) });
    await expect(w.addRegion({ address: 0x10000, data: memoryLike(1, 2) })).rejects.toThrow(/ascending address order/);
    expect(readdirSync(d)).toEqual(['keep.img']);
    expect(readFileSync(out, 'utf8')).toBe('the previous image');
    // abort() after a failure, and twice, changes nothing.
    await w.abort();
    await w.abort();
    expect(readFileSync(out, 'utf8')).toBe('the previous image');
  });

  test('a stale temporary file is reported, not reused, and left in place', async () => {
    const d = dir();
    const out = join(d, 'stale.img');
    const stale = join(d, '.stale.img.0123456789abcdef.crimg-tmp');
    writeFileSync(stale, 'left by SIGKILL');
    // Not a temporary name of stale.img: never reported.
    writeFileSync(join(d, '.stale.img.0123456789abcdeg.crimg-tmp'), 'x');
    writeFileSync(join(d, '.other.img.0123456789abcdef.crimg-tmp'), 'x');
    const warnings = await staleWarnings(() => writeImage(out));
    expect(warnings).toEqual([expect.stringMatching(/^1 temporary file\(s\) of .*stale\.img found: .*\.stale\.img\.0123456789abcdef\.crimg-tmp\. They are left by a writer that was killed/)]);
    expect(readFileSync(stale, 'utf8')).toBe('left by SIGKILL');
    expect(readdirSync(d).sort()).toEqual(['.other.img.0123456789abcdef.crimg-tmp', '.stale.img.0123456789abcdeg.crimg-tmp', '.stale.img.0123456789abcdef.crimg-tmp', 'stale.img'].sort());
  });

  test('OutputFile: commit renames and fsyncs, abort removes only the temporary file, a bad mode is refused', async () => {
    const d = dir();
    const path = join(d, 'core');
    const f = await OutputFile.create(path);
    expect(f.path).toBe(path);
    expect(isTempOf(f.tmpPath.slice(d.length + 1), 'core')).toBe(true);
    await f.fh.write(Buffer.from('hello'), 0, 5, 0);
    await f.fh.truncate(4096);
    await f.commit();
    expect(readFileSync(path).subarray(0, 5).toString()).toBe('hello');
    expect(statSync(path).size).toBe(4096);
    await expect(f.commit()).rejects.toThrow(/expected an open output file, got one that is committed/);
    const g = await OutputFile.create(path);
    await g.fh.write(Buffer.from('other'), 0, 5, 0);
    await g.abort();
    await g.abort();
    expect(readFileSync(path).subarray(0, 5).toString()).toBe('hello');
    expect(readdirSync(d)).toEqual(['core']);
    for (const mode of [-1, 0o1000, 1.5, Number.NaN]) await expect(OutputFile.create(path, { mode })).rejects.toThrow(/expected a file mode 0 to 0o777/);
    await expect(ImageWriter.create(join(d, 'x.img'), { mode: 0o4755 })).rejects.toThrow(/expected a file mode 0 to 0o777, got 2541/);
    expect(readdirSync(d)).toEqual(['core']);
    // A target in a missing directory fails to create, naming the temporary file.
    await expect(OutputFile.create(join(d, 'missing', 'x'))).rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringMatching(/^cannot create .*missing\/\.x\.[0-9a-f]{16}\.crimg-tmp: ENOENT$/) });
  });
});

describe('what the final name may be', () => {
  test('a FIFO, a directory or a character device at the final name is refused before anything is written, and stays', async () => {
    const d = dir();
    const fifo = join(d, 'pipe.img');
    spawnSync('mkfifo', [fifo]);
    mkdirSync(join(d, 'sub.img'));
    for (const [path, what] of [[fifo, 'a FIFO'], [join(d, 'sub.img'), 'a directory'], ['/dev/null', 'a character device']] as const) {
      await expect(OutputFile.create(path)).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringContaining(`${path} is ${what}, not a regular file; crimg writes files by rename: give a file path, or use \`-o -\` for stdout`),
      });
      await expect(ImageWriter.create(path, { fsync: false })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(lstatSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(readdirSync(d).sort()).toEqual(['pipe.img', 'sub.img']);
  });

  test('a FIFO put at the final name after create is refused at commit: the temporary file goes, the FIFO stays', async () => {
    const d = dir();
    const path = join(d, 'late.img');
    const f = await OutputFile.create(path);
    await f.fh.write(Buffer.from('x'), 0, 1, 0);
    spawnSync('mkfifo', [path]);
    await expect(f.commit()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('is a FIFO') });
    expect(lstatSync(path).isFIFO()).toBe(true);
    expect(readdirSync(d)).toEqual(['late.img']);
  });

  test('a 250-byte file name: the temporary name keeps 100 bytes of it (255 at most), stale ones are still reported', async () => {
    const d = dir();
    const long = `${'é'.repeat(60)}${'n'.repeat(126)}.img`; // 120 + 126 + 4 = 250 bytes
    expect(Buffer.byteLength(long)).toBe(250);
    const out = join(d, long);
    const w = await ImageWriter.create(out, { fsync: false });
    const [tmp] = readdirSync(d);
    expect(Buffer.byteLength(tmp!)).toBe(1 + 100 + 1 + 16 + 10);
    expect(tmp!.startsWith(`.${'é'.repeat(50)}.`)).toBe(true); // 100 bytes, never half a character
    expect(isTempOf(tmp!, long)).toBe(true);
    await w.addRegion({ address: 0x10000, data: memoryLike(2, 3) });
    await w.finish();
    expect(readdirSync(d)).toEqual([long]);
    const stale = join(d, tmp!);
    writeFileSync(stale, 'left by SIGKILL');
    const warnings = await staleWarnings(() => writeImage(out));
    expect(warnings).toEqual([expect.stringContaining(`1 temporary file(s) of ${out} found: ${stale}.`)]);
    // A stage's writer's temporary name (a temporary name of a temporary name) is one of it too.
    expect(isTempOf(`.${tmp!.slice(0, 100)}.0123456789abcdef.crimg-tmp`, long)).toBe(true);
    expect(isTempOf('..short.img.0123456789abcdef.crimg-tmp.fedcba9876543210.crimg-tmp', 'short.img')).toBe(true);
    expect(isTempOf('..short.img.0123456789abcdef.crimg-tmp.fedcba9876543210.crimg-tmp', 'short.im')).toBe(false);
    expect(isTempOf('..s.0123456789abcdef.crimg-tmp', 'short.img')).toBe(false);
  });

  test('crimg extract -o writes into an existing FIFO (streamed to its reader) and character device; a directory is refused', async () => {
    ensureBuilt();
    const d = dir();
    const img = join(d, 'src.img');
    const bytes = memoryLike(40, 7);
    const w = await ImageWriter.create(img, { fsync: false });
    await w.addRegion({ address: 0x10000, data: bytes });
    await w.addRegion({ address: 0x100000, data: new Uint8Array(8 * 4096) }); // zeros: written as zeros into a stream
    await w.finish();
    const fifo = join(d, 'pipe');
    spawnSync('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    const got: Buffer[] = [];
    reader.stdout.on('data', (b: Buffer) => got.push(b));
    const closed = new Promise((r) => reader.on('close', r));
    const r = await crimg(['extract', img, '--region', '0', '-o', fifo, '--quiet']);
    await closed;
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(Buffer.concat(got).equals(Buffer.from(bytes))).toBe(true);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    const zeroReader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    const zeros: Buffer[] = [];
    zeroReader.stdout.on('data', (b: Buffer) => zeros.push(b));
    const zclosed = new Promise((res) => zeroReader.on('close', res));
    expect((await crimg(['extract', img, '--region', '1', '-o', fifo, '--quiet'])).status).toBe(0);
    await zclosed;
    expect(Buffer.concat(zeros).equals(Buffer.alloc(8 * 4096))).toBe(true);
    const dev = await crimg(['extract', img, '--region', '0', '-o', '/dev/null']);
    expect({ status: dev.status, stderr: dev.stderr }).toEqual({ status: 0, stderr: '' });
    expect(dev.stdout).toMatch(/to \/dev\/null/);
    expect(lstatSync('/dev/null').isCharacterDevice()).toBe(true);
    mkdirSync(join(d, 'out.bin'));
    const bad = await crimg(['extract', img, '--region', '0', '-o', join(d, 'out.bin')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT: .*out\.bin is a directory, not a regular file; crimg writes files by rename/);
    expect(readdirSync(d).sort()).toEqual(['out.bin', 'pipe', 'src.img']);
  });
});

describe('file modes whatever the umask (child processes)', () => {
  beforeAll(() => ensureBuilt());

  const CHILD = `
import { statSync } from 'node:fs';
import { ImageWriter, OutputFile } from ${JSON.stringify(pathToFileURL(join(process.cwd(), 'build', 'image', 'index.js')).href)};
const [out, umask, modeText] = process.argv.slice(2);
process.umask(parseInt(umask, 8));
const mode = modeText === 'default' ? undefined : parseInt(modeText, 8);
const w = await ImageWriter.create(out, { fsync: false, mode });
const during = (statSync(w['out'].tmpPath).mode & 0o777).toString(8);
await w.addRegion({ address: 0x10000, data: new Uint8Array(4096).fill(1) });
await w.finish();
const f = await OutputFile.create(out + '.core', { mode });
await f.commit({ fsync: false });
console.log(JSON.stringify({ during, image: (statSync(out).mode & 0o777).toString(8), core: (statSync(out + '.core').mode & 0o777).toString(8) }));
`;

  test.each([
    ['000', 'default', '600'],
    ['022', 'default', '600'],
    ['077', 'default', '600'],
    ['000', '644', '644'],
    ['022', '644', '644'],
    ['077', '644', '644'],
    ['022', '640', '640'],
    ['000', '400', '400'],
  ])('umask %s, mode %s: created %s', (umask, mode, want) => {
    const d = dir();
    writeFileSync(join(d, 'child.mjs'), CHILD);
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    const r = spawnSync(process.execPath, [join(d, 'child.mjs'), join(d, 'out.img'), umask, mode], { encoding: 'utf8', env });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ during: want, image: want, core: want });
  });
});
