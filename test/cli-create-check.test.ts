/**
 * `crimg create`, `crimg check`, key options, progress bars, and (once the library supports
 * them) compressed and encrypted images. Runs the built binary: `npm test` builds first; run
 * alone, ensureBuilt() rebuilds if stale.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { describeHost, featureBitmap, openImage } from '../index.js';
import { isTempOf } from '../image/_output-file.js';
import { tempDir, memoryLike } from './helpers.js';
import { crimg, crimgInProcess, demoImage, ensureBuilt, json } from './cli-helpers.js';

const t = tempDir();
const img = t.path('demo.img');

const KEY = Buffer.alloc(32, 7);

beforeAll(async () => {
  ensureBuilt();
  await demoImage(img);
});
afterAll(() => t.cleanup());

describe('crimg create', () => {
  test('regions from raw files (any order), a gap, labels, bitmaps, metrics', async () => {
    const heap = memoryLike(20, 5);
    const code = memoryLike(3, 6);
    writeFileSync(t.path('heap.bin'), heap);
    writeFileSync(t.path('code.bin'), code);
    const out = t.path('created.img');
    const avx = Buffer.from(featureBitmap(['avx2'])).toString('hex');
    const r = await crimg(['create', out,
      '--region', `0x7f0000000000:${t.path('heap.bin')}:rw-:heap:java heap: old gen`,
      '--region', `0x400000:${t.path('code.bin')}:r-x:code`,
      '--gap', '0x7effffff0000:64K:guard',
      '--label', 'engine=jvm-21', '--label', 'gc=g1', '--bitmap', `cpu.features=${avx}`, '--metric', 'heap.used=0x10',
      '--metric', 'threads=12', '--producer', 'openjdk-crac:21.0.2', '--chunk-size', '0x8000']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^created ${out}: 3 regions, 4 chunks \\(\\d+ zero\\), 92 KiB mapped`));
    const image = await openImage(out);
    expect(image.chunkSize).toBe(0x8000);
    expect(image.pageSize).toBe(describeHost().pageSize);
    expect(image.regions.map((x) => [x.address, x.length, x.prot, x.kind, x.name])).toEqual([
      [0x400000n, BigInt(code.length), 'r-x', 'code', ''],
      [0x7effffff0000n, 0x10000n, '---', 'gap', 'guard'],
      [0x7f0000000000n, BigInt(heap.length), 'rw-', 'heap', 'java heap: old gen'],
    ]);
    expect((await image.read(0x7f0000000000n, heap.length)).equals(heap)).toBe(true);
    expect((await image.read(0x400000n, code.length)).equals(code)).toBe(true);
    expect(image.validation).toMatchObject({
      producerName: 'openjdk-crac', producerVersion: '21.0.2', architecture: describeHost().architecture,
      labels: { engine: 'jvm-21', gc: 'g1' }, bitmaps: { 'cpu.features': featureBitmap(['avx2']) }, metrics: { 'heap.used': 16, threads: 12 },
    });
    await image.close();
  });

  test('bad input: exit 2, and no image or temporary file is left (in process)', async () => {
    writeFileSync(t.path('one.bin'), Buffer.alloc(4096, 1));
    const before = readdirSync(t.dir).length;
    const cases = [
      ['create', t.path('bad1.img'), '--region', `0x1000:${t.path('missing.bin')}`],
      ['create', t.path('bad2.img'), '--region', `0x1001:${t.path('one.bin')}`],
      ['create', t.path('bad3.img'), '--region', `0x1000:${t.path('one.bin')}`, '--region', `0x1000:${t.path('one.bin')}`],
      ['create', t.path('bad4.img'), '--region', `0x1000:${t.path('one.bin')}:rwz`],
      ['create', t.path('bad5.img'), '--region', `0x1000:${t.path('one.bin')}`, '--bitmap', 'x=0x12'],
      ['create', t.path('bad6.img'), '--region', `0x1000:${t.path('one.bin')}`, '--compress', 'lz4'],
      ['create', t.path('bad7.img'), '--region', `0x1000:${t.path('one.bin')}`, '--encrypt', 'aes-256-gcm'],
      ['create', t.path('bad8.img')],
    ];
    const results = await Promise.all(cases.map((c) => crimgInProcess(c)));
    results.forEach((r, i) => expect({ i, status: r.status, line: /^crimg: (IO_ERROR|INVALID_ARGUMENT): .+\n$/.test(r.stderr) }).toEqual({ i, status: 2, line: true }));
    expect(results[0]!.stderr).toMatch(/^crimg: IO_ERROR: cannot read region file .*missing\.bin: ENOENT/);
    expect(results[1]!.stderr).toMatch(/^crimg: INVALID_ARGUMENT: expected a page-aligned address/);
    expect(readdirSync(t.dir).length).toBe(before);
  });

  test('a file whose stat size is 0 (/proc) is read to its end: one region of its bytes', async () => {
    const out = t.path('proc.img');
    const r = await crimg(['create', out, '--region', '0x10000:/proc/self/status']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^created ${out}: 1 region, 1 chunk \\(0 zero\\), `));
    const image = await openImage(out);
    expect(image.regions).toHaveLength(1);
    const length = Number(image.regions[0]!.length);
    expect(length).toBeGreaterThan(0);
    const text = (await image.read(0x10000n, length)).toString('latin1');
    expect(text.startsWith('Name:')).toBe(true);
    expect(text).toMatch(/\nPid:\t\d+\n/);
    await image.close();
  });

  test('an empty regular file is still refused as no region data', async () => {
    writeFileSync(t.path('empty.bin'), '');
    const before = readdirSync(t.dir).length;
    const r = await crimgInProcess(['create', t.path('empty.img'), '--region', `0x10000:${t.path('empty.bin')}`]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('crimg: INVALID_ARGUMENT: expected region data at 0x10000, got 0 bytes\n');
    expect(readdirSync(t.dir).length).toBe(before);
  });
});

describe('crimg check', () => {
  const lacking = Buffer.from(featureBitmap(['sse2'])).toString('hex');

  test('a constraints file: label mismatch and a missing CPU feature exit 1, named', async () => {
    writeFileSync(t.path('target.host'), `# a host without avx512f\narchitecture=x86_64\npage.size=4096\nengine=jvm-17\nbitmap:cpu.features=${lacking}\n`);
    const [r, j] = await Promise.all([
      crimg(['check', img, '--constraints', t.path('target.host')]),
      crimg(['check', img, '--constraints', t.path('target.host'), '--json']),
    ]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe([
      `${img} on ${t.path('target.host')}: incompatible`,
      '  label engine: image "jvm-21", host "jvm-17"',
      '  bitmap cpu.features: host lacks avx512f', '',
    ].join('\n'));
    expect(j.status).toBe(1);
    expect(json(j)).toEqual({
      file: img, compatible: false,
      labels: [{ key: 'engine', image: 'jvm-21', host: 'jvm-17' }],
      bitmaps: [{ key: 'cpu.features', count: 1, missing: [66], names: ['avx512f'] }],
      host: { source: t.path('target.host'), architecture: 'x86_64', pageSize: 4096, labels: { engine: 'jvm-17' }, bitmaps: { 'cpu.features': lacking } },
    });
  });

  test('a matching host exits 0; architecture and page size are compared', async () => {
    const all = Buffer.from(featureBitmap(['sse2', 'avx512f', 'avx2'])).toString('hex');
    writeFileSync(t.path('good.host'), `architecture=x86_64\npage.size=4096\nengine=jvm-21\nbitmap:cpu.features=${all}\n`);
    writeFileSync(t.path('arm.host'), `architecture=aarch64\npage.size=16384\nengine=jvm-21\nbitmap:cpu.features=${all}\n`);
    const [good, arm, bad] = await Promise.all([
      crimg(['check', img, '--constraints', t.path('good.host')]),
      crimg(['check', img, '--constraints', t.path('arm.host')]),
      crimg(['check', img, '--constraints', t.path('missing.host')]),
    ]);
    expect(good.status).toBe(0);
    expect(good.stdout).toBe(`${img} on ${t.path('good.host')}: compatible\n`);
    expect(arm.status).toBe(1);
    expect(arm.stdout).toContain('  architecture: image x86_64, host aarch64\n  page size: image 4096, host 16384\n');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^crimg: IO_ERROR: cannot read constraints file .*missing\.host: ENOENT\n$/);
  });

  test('--print-host prints this machine in the constraints format, which reads back', async () => {
    const host = describeHost();
    const printed = await crimg(['check', '--print-host']);
    expect(printed.status).toBe(0);
    expect(printed.stdout).toBe([
      '# crimg host description: use with `crimg check IMG --constraints FILE`',
      `architecture=${host.architecture}`, `page.size=${host.pageSize}`,
      `bitmap:cpu.features=${Buffer.from(host.bitmaps['cpu.features']!).toString('hex')}`, '',
    ].join('\n'));
    writeFileSync(t.path('this.host'), printed.stdout);
    const [viaFile, viaHost] = await Promise.all([
      crimg(['check', img, '--constraints', t.path('this.host'), '--label', 'engine=jvm-21', '--json']),
      crimg(['check', img, '--host', '--label', 'engine=jvm-21', '--json']),
    ]);
    const a = json<Record<string, unknown>>(viaFile);
    const b = json<Record<string, unknown>>(viaHost);
    expect({ ...a, host: null }).toEqual({ ...b, host: null });
    expect(viaFile.status).toBe(viaHost.status);
  });
});

describe('keys, progress, colours', () => {
  test('a malformed key file is a usage error that shows no key material', async () => {
    writeFileSync(t.path('short.key'), 'secret-material');
    writeFileSync(t.path('one.bin'), Buffer.alloc(4096, 1));
    const [r, env] = await Promise.all([
      crimg(['inspect', img, '--key-file', t.path('short.key')]),
      crimg(['inspect', img, '--key-env', 'CRIMG_TEST_KEY'], { CRIMG_TEST_KEY: 'secret-material' }),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^crimg: INVALID_ARGUMENT: \/.*short\.key: key file of 15 bytes is not a crimg key; .+\n$/);
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/^crimg: INVALID_ARGUMENT: environment variable CRIMG_TEST_KEY: key is not 64 hexadecimal characters/);
    expect(r.stderr + env.stderr).not.toContain('secret');
  });

  test('progress bars only with CRIMG_PROGRESS=1 (stderr is a pipe here), never with --quiet', async () => {
    const [on, off, quiet, extract] = await Promise.all([
      crimg(['verify', img], { CRIMG_PROGRESS: '1' }),
      crimg(['verify', img]),
      crimg(['verify', img, '--quiet'], { CRIMG_PROGRESS: '1' }),
      crimg(['extract', img, '--region', '0', '-o', t.path('p.bin')], { CRIMG_PROGRESS: '1' }),
    ]);
    expect(on.stderr).toMatch(/\rverify \[#{24}\] 100% 11\/11\n$/);
    expect(on.stdout).toBe(off.stdout);
    expect(off.stderr).toBe('');
    expect(quiet.stderr).toBe('');
    expect(extract.stderr).toMatch(/\rextract \[#{24}\] 100% 160 KiB\/160 KiB\n$/);
  });

  test('no colour escapes when stdout is not a terminal', async () => {
    const r = await crimg(['inspect', img]);
    expect(r.stdout).not.toContain('\x1b[');
  });
});

describe('encrypted images', () => {
  const enc = t.path('enc.img');
  beforeAll(async () => {
    writeFileSync(t.path('hex.key'), KEY.toString('hex') + '\n');
    writeFileSync(t.path('raw.key'), KEY);
    writeFileSync(t.path('wrong.key'), Buffer.alloc(32, 8));
    writeFileSync(t.path('heap.bin'), memoryLike(20, 5));
    const r = await crimg(['create', enc, '--region', `0x7f0000000000:${t.path('heap.bin')}:rw-:heap:heap`, '--encrypt', 'aes-256-gcm', '--key-file', t.path('hex.key')]);
    expect(r.stderr).toBe('');
  });

  test('inspect without a key shows header and validation block and says the index is encrypted', async () => {
    const [text, j, keyed] = await Promise.all([
      crimg(['inspect', enc]),
      crimg(['inspect', enc, '--json']),
      crimg(['inspect', enc, '--json', '--key-file', t.path('raw.key')]),
    ]);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^encryption\s+aes-256-gcm$/m);
    expect(text.stdout).toContain('index: encrypted');
    expect(json(j)).toMatchObject({ encryption: 'aes-256-gcm', indexEncrypted: true, indexLocked: true, regions: null, totals: null });
    expect(json(keyed)).toMatchObject({ indexEncrypted: true, indexLocked: false, regions: [expect.objectContaining({ name: 'heap' })] });
  });

  test('a key or constraints file that is not small (/dev/zero) is refused, not read forever', async () => {
    const k = await crimg(['verify', enc, '--key-file', '/dev/zero']);
    expect(k.status).toBe(2);
    expect(k.stderr).toMatch(/^crimg: INVALID_ARGUMENT: key file \/dev\/zero is larger than 65536 bytes/);
    const c = await crimg(['check', enc, '--constraints', '/dev/zero']);
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/constraints file \/dev\/zero is larger/);
  });

  test('verify needs the right key: KEY_REQUIRED and WRONG_KEY exit 1', async () => {
    const [none, wrong, good, viaEnv] = await Promise.all([
      crimg(['verify', enc]),
      crimg(['verify', enc, '--key-file', t.path('wrong.key')]),
      crimg(['verify', enc, '--key-file', t.path('hex.key')]),
      crimg(['verify', enc, '--key-env', 'K'], { K: KEY.toString('hex') }),
    ]);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/^crimg: KEY_REQUIRED: /);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/^crimg: WRONG_KEY: /);
    expect(good.status).toBe(0);
    expect(viaEnv.status).toBe(0);
  });

  test('convert decrypts with --encrypt none and re-encrypts with --out-passphrase-file', async () => {
    writeFileSync(t.path('pass.txt'), 'correct horse\n');
    const plain = t.path('dec.img');
    const again = t.path('reenc.img');
    expect((await crimg(['convert', enc, plain, '--key-file', t.path('hex.key'), '--encrypt', 'none'])).status).toBe(0);
    expect((await crimg(['convert', plain, again, '--encrypt', 'chacha20-poly1305', '--out-passphrase-file', t.path('pass.txt')])).status).toBe(0);
    const a = await openImage(plain);
    const b = await openImage(again, { key: { passphrase: 'correct horse' } });
    expect(b.encryption).toBe('chacha20-poly1305');
    expect((await b.read(0x7f0000000000n, 20 * 4096)).equals(readFileSync(t.path('heap.bin')))).toBe(true);
    await a.close();
    await b.close();
  });
});

test('import-core --mode: the image is 0600 by default, --mode widens it, a bad mode is refused before anything is written', async () => {
  writeFileSync(t.path('core-heap.bin'), memoryLike(4, 9));
  const img = t.path('for-core.img');
  const core = t.path('for-core.core');
  expect((await crimg(['create', img, '--region', `0x7f0000000000:${t.path('core-heap.bin')}`])).status).toBe(0);
  expect((await crimg(['export-core', img, core])).status).toBe(0);
  const plain = t.path('from-core.img');
  const wide = t.path('from-core-wide.img');
  for (const r of await Promise.all([crimg(['import-core', core, plain]), crimg(['import-core', core, wide, '--mode', '640'])])) {
    expect([r.status, r.stderr]).toEqual([0, '']);
  }
  expect(statSync(plain).mode & 0o777).toBe(0o600);
  expect(statSync(wide).mode & 0o777).toBe(0o640);
  const back = await openImage(wide);
  expect((await back.read(0x7f0000000000n, 4 * 4096)).equals(readFileSync(t.path('core-heap.bin')))).toBe(true);
  await back.close();
  const bad = await crimg(['import-core', core, t.path('bad-mode.img'), '--mode', '999']);
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/^crimg: INVALID_ARGUMENT: expected --mode as octal/);
  expect(readdirSync(t.dir).filter((n) => n.includes('bad-mode.img'))).toEqual([]);
});

test('create --compress deflate:6 stores encoded chunks', async () => {
  writeFileSync(t.path('heap.bin'), memoryLike(20, 5));
  const out = t.path('deflate.img');
  expect((await crimg(['create', out, '--region', `0x7f0000000000:${t.path('heap.bin')}`, '--compress', 'deflate:6'])).status).toBe(0);
  const s = json<{ compression: string; totals: { chunks: { encoded: number } } }>(await crimg(['stats', out, '--json']));
  expect(s.compression).toBe('deflate:6');
  expect(s.totals.chunks.encoded).toBeGreaterThan(0);
  expect(readdirSync(t.dir).filter((n) => isTempOf(n, 'deflate.img'))).toEqual([]); // no temporary file (.deflate.img.<hex>.crimg-tmp) left
});
