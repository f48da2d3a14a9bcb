/**
 * The demo's issue 19 step: checkpoints that cost little.
 *
 * bench/c/rewriter.c holds the data set (repeated to 64 MiB) and rewrites 1 % of its pages per
 * second. `crimg capture --pre-copy` writes a first image (read while the process runs, stopped
 * only for the pages written meanwhile); a second later, the writer paused,
 * `crimg capture --pre-copy --parent` writes a child image that stores only the chunks that
 * changed. The library restores the child (copy mode, through its parent) and compares the
 * rewriter's memory with the process's own, read through /proc/PID/mem.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage, type KeyInput } from '../index.js';

const MIB = 64;

export interface ChildStepOptions {
  root: string;
  work: string;
  outDir: string;
  dataFile: string;
  key: KeyInput;
  keyArgs: string[];
  say: (text: string) => void;
  run: (argv: string[]) => Promise<number>;
}

/** Runs the step. @returns 0, or 1 when a command failed or the bytes differ. */
export async function childImageStep(o: ChildStepOptions): Promise<number> {
  const binary = join(o.work, 'rewriter');
  if (spawnSync('gcc', ['-O2', '-pthread', '-o', binary, join(o.root, 'bench', 'c', 'rewriter.c')], { stdio: 'inherit' }).status !== 0) {
    o.say('(the child-image step needs gcc: skipped)\n');
    return 0;
  }
  const pages = MIB * 256;
  const rate = Math.round(pages / 100);
  const child = spawn(binary, [String(MIB), String(rate), o.dataFile], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const lines = lineReader(child);
    const info = await lines();
    const pid = info['pid'] as number;
    const gen = BigInt(info['gen'] as string);
    o.say(`--- checkpoints that cost little (issue 19) ---\nrewriter pid ${pid}: ${MIB} MiB of the data set at 0x${gen.toString(16)}, ${rate} pages (1 %) rewritten per second\n`);
    const base = join(o.outDir, 'demo-base.img');
    const childImg = join(o.outDir, 'demo-child.img');
    const enc = ['--compress', 'deflate:1', '--encrypt', 'aes-256-gcm', ...o.keyArgs];
    let status = await o.run(['capture', '--pid', String(pid), base, '--pre-copy', ...enc]);
    if (status) return status;
    await new Promise((r) => setTimeout(r, 1000));
    // The writer pauses, so the process's memory can be compared with the restored child's.
    child.stdin!.write('p');
    await lines();
    status = await o.run(['capture', '--pid', String(pid), childImg, '--pre-copy', '--parent', base, ...enc]);
    if (status) return status;
    o.say(`parent ${(statSync(base).size / 2 ** 20).toFixed(1)} MiB, child ${(statSync(childImg).size / 2 ** 20).toFixed(1)} MiB (only the chunks that changed; the rest point into the parent)`);
    const mem = await open(`/proc/${pid}/mem`, 'r');
    const truth = Buffer.alloc(MIB * 2 ** 20);
    try {
      for (let done = 0; done < truth.length;) done += (await mem.read(truth, done, truth.length - done, Number(gen) + done)).bytesRead;
    } finally {
      await mem.close();
    }
    const image = await openImage(childImg, { key: o.key });
    try {
      const restored = await image.restore({ mode: 'copy' });
      try {
        const r = restored.regions.find((g) => g.memory && g.recordedAddress <= gen && gen < g.recordedAddress + g.length);
        if (!r) throw new Error(`no restored region holds 0x${gen.toString(16)}`);
        const same = Buffer.from(new Uint8Array(r.memory!, Number(gen - r.recordedAddress), truth.length)).equals(truth);
        o.say(same
          ? `restored the child image (copy mode, through its parent): the ${MIB} MiB at 0x${gen.toString(16)} match the process's memory byte for byte\n`
          : `MISMATCH: the restored child image differs from the process's memory at 0x${gen.toString(16)}\n`);
        return same ? 0 : 1;
      } finally {
        restored.release();
      }
    } finally {
      await image.close();
    }
  } finally {
    child.stdin?.destroy();
    child.kill('SIGKILL');
  }
}

/** Resolves, call by call, with the child's JSON lines. */
function lineReader(child: ChildProcess): () => Promise<Record<string, unknown>> {
  let buf = '';
  const ready: Record<string, unknown>[] = [];
  const waiting: ((v: Record<string, unknown>) => void)[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const v = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      buf = buf.slice(nl + 1);
      const w = waiting.shift();
      if (w) w(v);
      else ready.push(v);
    }
  });
  return () => {
    const v = ready.shift();
    return v ? Promise.resolve(v) : new Promise((r) => waiting.push(r));
  };
}
