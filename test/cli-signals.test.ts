/**
 * Signals to the commands that write files (issue 14 item 11): `crimg create`, `convert`,
 * `export-core` and `extract` are sent SIGINT, SIGTERM or SIGHUP while their temporary output
 * file exists (mid-write: 128 MiB of memory-like bytes, deflated). Each command dies of that
 * signal (image/_interrupt.ts re-raises it) and its directory holds no temporary file and no
 * final file afterwards. Children run the built command line.
 */
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ImageWriter } from '../index.js';
import { describeHost } from '../image/index.js';
import { writeMemoryLikeFile } from '../bench/memory-like.js';
import { ROOT, ensureBuilt } from './cli-helpers.js';
import { tempDir } from './helpers.js';

jest.setTimeout(180000);

const MiB = 1024 * 1024;
const t = tempDir();
const data = t.path('data.bin');
const src = t.path('src.img');

beforeAll(async () => {
  ensureBuilt();
  await writeMemoryLikeFile(data, 128 * MiB, 21);
  // The architecture: export-core needs it for the core's e_machine.
  const w = await ImageWriter.create(src, { fsync: false, compress: 'deflate:1', validation: { architecture: describeHost().architecture } });
  await w.addRegion({ address: 0x7f0000000000n, data: { path: data } });
  await w.finish();
});
afterAll(() => t.cleanup());

/** Each command's arguments writing `out`. */
const COMMANDS: Record<string, (out: string) => string[]> = {
  create: (out) => ['create', out, '--region', `0x7f0000000000:${data}`, '--compress', 'deflate:6'],
  convert: (out) => ['convert', src, out, '--compress', 'deflate:6'],
  'export-core': (out) => ['export-core', src, out],
  extract: (out) => ['extract', src, '--region', '0', '-o', out],
};

let n = 0;

describe.each(Object.keys(COMMANDS))('crimg %s', (command) => {
  test.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('%s mid-write: dies of it, leaves no temporary and no final file', async (signal) => {
    const dir = t.path(`run${n++}`);
    mkdirSync(dir);
    const out = join(dir, 'out.bin');
    const env = { ...process.env };
    delete env['NODE_OPTIONS']; // jest's flags are not for the child
    const p = spawn(process.execPath, [join(ROOT, 'bin', 'crimg.js'), ...COMMANDS[command]!(out), '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    p.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => p.once('exit', (c, s) => r([c, s])));
    // Mid-write: the temporary file of out.bin exists.
    let temp: string | undefined;
    while (temp === undefined && p.exitCode === null) {
      temp = readdirSync(dir).find((f) => /^\.out\.bin\.[0-9a-f]{16}\.crimg-tmp$/.test(f));
      if (temp === undefined) await new Promise((r) => setImmediate(r));
    }
    expect({ temp: temp !== undefined, stderr }).toEqual({ temp: true, stderr: '' });
    p.kill(signal);
    expect(await exited).toEqual([null, signal]);
    expect(readdirSync(dir)).toEqual([]);
  });
});
