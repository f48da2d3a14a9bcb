/**
 * External baselines (cat, gzip, pigz, zstd, lz4, openssl): detection, installation from
 * Debian's packages when missing (as root only), and timed runs through `sh -c`.
 * A tool that is not installed is reported, never fatal.
 */
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { since } from './measure.js';

/** True when `name` is on PATH. */
export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' }).status === 0;
}

let aptUpdated: { ok: true } | { ok: false; why: string } | null = null;

/** The last non-empty line of a failed command's output, for a "skipped (...)" reason. */
const lastLine = (text: string): string => text.trim().split('\n').filter(Boolean).pop()?.slice(0, 120) ?? '';

/**
 * Makes sure `binary` is on PATH: when it is missing and this process runs as root, installs the
 * Debian package `pkg` quietly (`apt-get update` once per process, then `apt-get install -y`).
 * Fresh machines lack pigz; the bench installs what it compares against.
 * @returns null when the tool is there (or was installed), else why it is not.
 */
export function ensureTool(binary: string, pkg: string, log: (text: string) => void = () => {}): string | null {
  if (hasTool(binary)) return null;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not installed; not root, so not installing';
  if (!hasTool('apt-get')) return 'not installed; no apt-get';
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (aptUpdated === null) {
    log('apt-get update (once, to install missing baseline tools)');
    const u = spawnSync('apt-get', ['-qq', 'update'], { env, encoding: 'utf8' });
    aptUpdated = u.status === 0 ? { ok: true } : { ok: false, why: `apt-get update failed: ${lastLine(u.stderr || u.stdout || String(u.error ?? ''))}` };
  }
  if (!aptUpdated.ok) return aptUpdated.why;
  log(`apt-get install -y ${pkg}`);
  const i = spawnSync('apt-get', ['-qq', 'install', '-y', '--no-install-recommends', pkg], { env, encoding: 'utf8' });
  if (i.status !== 0) return `apt-get install ${pkg} failed: ${lastLine(i.stderr || i.stdout || String(i.error ?? ''))}`;
  return hasTool(binary) ? null : `apt-get installed ${pkg} but ${binary} is not on PATH`;
}

/**
 * Runs a shell command; `$1`, `$2`... are `args` (quoted by the shell, never interpolated).
 * The script's stdout must be redirected: the shell's `times` reports on it.
 * @returns its wall time in seconds, process start included, and the CPU seconds (user +
 *   system) of the processes it ran.
 * @throws Error when it exits non-zero.
 */
export async function timeShell(script: string, args: readonly string[]): Promise<{ seconds: number; cpuSeconds: number }> {
  const t0 = process.hrtime.bigint();
  const { code, out, err } = await collect('sh', ['-c', `( ${script} ) && times`, 'sh', ...args]);
  const seconds = since(t0);
  if (code !== 0) throw new Error(`sh -c '${script}' exited with ${code}: ${err.trim()}`);
  // `times`: the shell's user and system time, then its children's (the second line).
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s\s*$/.exec(out.trim());
  const cpuSeconds = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
  return { seconds, cpuSeconds };
}

/** Runs a command to its end and collects its exit code, stdout and stderr. */
export function collect(command: string, args: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** A compression tool baseline: the command lines for level 1, and the Debian package that has it. */
export interface CompressionTool {
  name: string;
  binary: string;
  /** Debian package to install when the binary is missing (see {@link ensureTool}). */
  pkg: string;
  compress: string;
  decompress: string;
}

/** Threads of the parallel tools: the machine's cores. */
export const TOOL_THREADS = availableParallelism();

/** `$1` is the input, `$2` the compressed output. */
export const COMPRESSION_TOOLS: readonly CompressionTool[] = [
  { name: 'gzip -1', binary: 'gzip', pkg: 'gzip', compress: 'gzip -1 -c "$1" > "$2"', decompress: 'gzip -d -c "$2" > /dev/null' },
  {
    name: `pigz -1 (${TOOL_THREADS} threads)`, binary: 'pigz', pkg: 'pigz',
    compress: `pigz -1 -p ${TOOL_THREADS} -c "$1" > "$2"`, decompress: 'pigz -d -c "$2" > /dev/null',
  },
  { name: 'zstd -1', binary: 'zstd', pkg: 'zstd', compress: 'zstd -q -1 -T1 -c "$1" > "$2"', decompress: 'zstd -q -d -c "$2" > /dev/null' },
  { name: 'lz4 -1', binary: 'lz4', pkg: 'lz4', compress: 'lz4 -q -1 -c "$1" > "$2"', decompress: 'lz4 -q -d -c "$2" > /dev/null' },
];
