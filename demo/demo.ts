/**
 * `npm start`: captures a live process and gets its memory back.
 *
 * 1. Starts a child process holding a known data set: 64 MiB of memory-like bytes (seed 42),
 *    read into an anonymous mapping by bench/c/memfill.c (compiled into the temp dir when gcc
 *    is installed), or else held in a Buffer by a node child.
 * 2. `crimg capture` stops it, writes its memory compressed (deflate:1) and encrypted
 *    (AES-256-GCM, a random key in demo-out/demo.key, mode 0600) and resumes it.
 * 3. `crimg inspect` and `crimg verify` show and check the image.
 * 4. The library restores the image (copy mode) and compares the data set's bytes at the
 *    address the child printed with the data set, byte for byte; then `crimg export-core`
 *    writes an ELF core and gdb (when installed) reads the same bytes from it.
 * 5. Checkpoints that cost little (demo/child-image.ts): a process rewriting 1 % of its pages
 *    per second is captured with --pre-copy, then again a second later as a child image of the
 *    first (--parent); the restored child matches the process's memory byte for byte.
 * The child is killed at the end, whatever happens. The image stays in demo-out/.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openImage, parseKeyFile, type Image } from '../index.js';
import { memoryLikePieces, writeMemoryLikeFile } from '../bench/memory-like.js';
import { main } from '../inspect-cli/main.js';
import { childImageStep } from './child-image.js';

const MiB = 1024 * 1024;
const DATA_MIB = 64;
const SEED = 42;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = resolve(process.env.CRIMG_DEMO_DIR ?? 'demo-out');
mkdirSync(outDir, { recursive: true });
const image = join(outDir, 'demo.img');
const keyFile = join(outDir, 'demo.key');
const core = join(outDir, 'demo.core');
const work = mkdtempSync(join(tmpdir(), 'crimg-demo-'));
const started = performance.now();

const hasTool = (name: string): boolean => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' }).status === 0;
const say = (text: string): void => { console.log(text); };

interface Holder {
  child: ChildProcess;
  pid: number;
  /** Address of the data set in the child, when it says (the C child does). */
  data?: bigint;
  how: string;
}

/** Starts the child and waits for its first line of JSON. */
function startHolder(dataFile: string): Promise<Holder> {
  let cmd: string;
  let args: string[];
  let how: string;
  const source = join(ROOT, 'bench', 'c', 'memfill.c');
  const binary = join(work, 'memfill');
  if (hasTool('gcc') && spawnSync('gcc', ['-O2', '-o', binary, source], { stdio: 'inherit' }).status === 0) {
    cmd = binary;
    args = ['file', dataFile];
    how = 'a C process (bench/c/memfill.c) holding it in an anonymous mapping';
  } else {
    // No compiler: a node process holding the bytes in a Buffer; its address is found later.
    cmd = process.execPath;
    args = ['--input-type=module', '-e', `import { readFileSync } from 'node:fs';
      globalThis.kept = readFileSync(${JSON.stringify(dataFile)});
      process.stdout.write(JSON.stringify({ pid: process.pid }) + '\\n');
      process.stdin.on('data', () => {}).on('end', () => process.exit(0));`];
    how = 'a node process holding it in a Buffer (gcc is not installed)';
  }
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.on('error', reject);
    child.on('exit', (code) => { if (!out.includes('\n')) reject(new Error(`the child exited with ${code} before it was ready`)); });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (!out.includes('\n')) return;
      const j = JSON.parse(out.slice(0, out.indexOf('\n'))) as { pid: number; data?: string };
      resolvePromise({ child, pid: j.pid, how, ...(j.data ? { data: BigInt(j.data) } : {}) });
    });
  });
}

/** Finds the data set in an image by its first non-zero page (the node child does not say where it is). */
async function findData(img: Image, firstPage: Buffer, pageOffset: number): Promise<bigint | undefined> {
  for (const r of img.regions) {
    if (r.isGap || r.kind !== 'anonymous' || r.length < BigInt(DATA_MIB * MiB)) continue;
    for (let at = 0n; at < r.length; at += 8n * BigInt(MiB)) {
      const n = Number(r.length - at < 8n * BigInt(MiB) + 4096n ? r.length - at : 8n * BigInt(MiB) + 4096n);
      const i = (await img.read(r.address + at, n)).indexOf(firstPage);
      if (i >= 0) return r.address + at + BigInt(i) - BigInt(pageOffset);
    }
  }
  return undefined;
}

/** Compares the memory at `address` of a restored region (or of the image) with the data set. */
async function compare(bytesAt: (offset: number, length: number) => Promise<Uint8Array>): Promise<number> {
  let offset = 0;
  let mismatches = 0;
  for (const piece of memoryLikePieces(DATA_MIB * MiB, { seed: SEED, pieceSize: 4 * MiB })) {
    const got = await bytesAt(offset, piece.length);
    if (!Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(piece)) mismatches++;
    offset += piece.length;
  }
  return mismatches;
}

let holder: Holder | undefined;
let status = 0;
try {
  const dataFile = join(work, 'data.bin');
  await writeMemoryLikeFile(dataFile, DATA_MIB * MiB, SEED);
  holder = await startHolder(dataFile);
  say(`data set: ${DATA_MIB} MiB of memory-like bytes (seed ${SEED}) in ${holder.how}, pid ${holder.pid}${holder.data ? ` at 0x${holder.data.toString(16)}` : ''}\n`);

  writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  const run = async (argv: string[]): Promise<number> => {
    say(`$ crimg ${argv.map((a) => (a.startsWith(outDir) ? a.replace(resolve('.') + '/', '') : a)).join(' ')}`);
    const code = await main(argv);
    say('');
    return code;
  };
  const keyArgs = ['--key-file', keyFile];
  status ||= await run(['capture', '--pid', String(holder.pid), image, '--compress', 'deflate:1', '--encrypt', 'aes-256-gcm', ...keyArgs]);
  status ||= await run(['inspect', image, ...keyArgs]);
  status ||= await run(['verify', image, ...keyArgs]);

  const img = await openImage(image, { key: parseKeyFile(readFileSync(keyFile)) });
  try {
    let address = holder.data;
    if (address === undefined) {
      const firstPieces = memoryLikePieces(1 * MiB, { seed: SEED }).next().value as Uint8Array;
      let k = 0;
      while (k < firstPieces.length && firstPieces.subarray(k, k + 4096).every((x) => x === 0)) k += 4096;
      address = await findData(img, Buffer.from(firstPieces.subarray(k, k + 4096)), k);
      if (address === undefined) throw new Error('the data set was not found in the image');
    }
    let how: string;
    let mismatches: number;
    try {
      const restored = await img.restore({ mode: 'copy' });
      try {
        const r = restored.regions.find((g) => g.memory && g.recordedAddress <= address! && address! < g.recordedAddress + g.length);
        if (!r) throw new Error(`no restored region holds 0x${address.toString(16)}`);
        const base = Number(address - r.recordedAddress);
        const mem = new Uint8Array(r.memory!);
        mismatches = await compare(async (o, n) => mem.subarray(base + o, base + o + n));
        how = `restored ${restored.regions.length} regions (${restored.mode} mode${restored.degraded ? `, degraded: ${restored.reason}` : ''}); the region recorded at 0x${r.recordedAddress.toString(16)} now lives at 0x${r.address.toString(16)}`;
      } finally {
        restored.release();
      }
    } catch (e) {
      if (!(e instanceof TypeError) || typeof img.restore === 'function') throw e;
      mismatches = await compare((o, n) => img.read(address! + BigInt(o), n));
      how = 'read back with image.read (restore is not available)';
    }
    say(`${how}:`);
    say(mismatches === 0
      ? `  the ${DATA_MIB} MiB at 0x${address.toString(16)} match the data set byte for byte`
      : `  MISMATCH: ${mismatches} of ${DATA_MIB / 4} pieces of 4 MiB differ from the data set`);
    if (mismatches) status = 1;
    say('');
    status ||= await run(['export-core', image, core, ...keyArgs]);
    if (hasTool('gdb')) {
      const g = spawnSync('gdb', ['-batch', '-nx', '-c', core, '-ex', `x/4gx 0x${address.toString(16)}`], { encoding: 'utf8' });
      say(`$ gdb -batch -c ${core.replace(resolve('.') + '/', '')} -ex 'x/4gx 0x${address.toString(16)}'`);
      say(g.stdout.split('\n').filter((l) => l.startsWith('0x')).join('\n'));
      const first = Buffer.from(memoryLikePieces(1 * MiB, { seed: SEED }).next().value as Uint8Array).subarray(0, 32);
      say(`  (the data set starts with ${[0, 8, 16, 24].map((o) => '0x' + first.readBigUInt64LE(o).toString(16).padStart(16, '0')).join(' ')})\n`);
    }
  } finally {
    await img.close();
  }
  if (status === 0) status = await childImageStep({ root: ROOT, work, outDir, dataFile, key: parseKeyFile(readFileSync(keyFile)), keyArgs, say, run });
  say(`demo ${status === 0 ? 'done' : 'FAILED'} in ${((performance.now() - started) / 1000).toFixed(1)} s; the image, its key and the core are in ${outDir}`);
} catch (e) {
  console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
  status = 1;
} finally {
  if (holder && holder.child.exitCode === null) {
    holder.child.stdin?.destroy();
    holder.child.kill('SIGKILL');
  }
  rmSync(work, { recursive: true, force: true });
}
process.exitCode = status;
