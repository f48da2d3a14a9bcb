/**
 * What a command writes to: stdout for reports (text or JSON), stderr for progress, plus the
 * environment that decides colours and progress bars. Commands return their exit status.
 */
import { colorsFor, type Colors } from './colors.js';
import { createProgress, progressEnabled, type Progress } from './progress.js';

/** A writable stream as the CLI uses it (process.stdout, process.stderr, or a test double). */
export interface Output {
  write(chunk: string | Uint8Array): boolean;
  once(event: 'drain', listener: () => void): unknown;
  isTTY?: boolean;
  /** Terminal width, when a terminal. */
  columns?: number;
}

export interface Cli {
  readonly stdout: Output;
  readonly stderr: Output;
  readonly env: NodeJS.ProcessEnv;
  /** Colours for stdout's human output. */
  readonly colors: Colors;
  /** Writes lines to stdout. */
  print(...lines: string[]): void;
  /** Writes lines to stdout: {@link print} for an array of any length (a spread of 125,000 lines or more overflows the stack). */
  printLines(lines: readonly string[]): void;
  /** Writes a value as indented JSON to stdout; bigints become "0x..." hex strings. */
  printJson(value: unknown): void;
  /**
   * {@link printJson} made and written in parts of about 1 MiB, waiting for the pipe: the same
   * bytes, never one string (a report of 2^20 regions may be gigabytes).
   */
  printJsonStream(value: unknown): Promise<void>;
  /** Writes lines made one at a time, in parts of about 1 MiB, waiting for the pipe. */
  printLineStream(lines: Iterable<string>): Promise<void>;
  /** Writes bytes to stdout, waiting when the pipe is full. */
  writeBytes(bytes: Uint8Array): Promise<void>;
  /** Writes text to stdout, waiting when the pipe is full (for output streamed in parts). */
  writeText(text: string): Promise<void>;
  /** A progress bar on stderr (drawn only when enabled, see progress.ts). */
  progress(quiet: boolean | undefined, label: string, total: number, unit: 'bytes' | 'items'): Progress;
}

/** JSON replacer: bigints (addresses) as hex strings, byte arrays as hex. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return '0x' + value.toString(16);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  return value;
}

/** A value as JSON.stringify(value, jsonReplacer, 2) gives it, in parts (see Cli.printJsonStream). */
export function* jsonParts(value: unknown, key = '', indent = ''): Generator<string> {
  let v = value;
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON(k: string): unknown }).toJSON(key);
  v = jsonReplacer(key, v);
  if (v === null || typeof v !== 'object') {
    yield JSON.stringify(v) ?? 'null';
    return;
  }
  const inner = indent + '  ';
  if (Array.isArray(v)) {
    if (v.length === 0) { yield '[]'; return; }
    yield '[';
    for (let i = 0; i < v.length; i++) {
      yield `${i ? ',' : ''}\n${inner}`;
      const e: unknown = v[i];
      if (e === undefined || typeof e === 'function' || typeof e === 'symbol') yield 'null';
      else yield* jsonParts(e, String(i), inner);
    }
    yield `\n${indent}]`;
    return;
  }
  let first = true;
  for (const k of Object.keys(v)) {
    let e: unknown = (v as Record<string, unknown>)[k];
    if (e !== null && typeof e === 'object' && typeof (e as { toJSON?: unknown }).toJSON === 'function') e = (e as { toJSON(k: string): unknown }).toJSON(k);
    e = jsonReplacer(k, e);
    if (e === undefined || typeof e === 'function' || typeof e === 'symbol') continue;
    yield `${first ? '{' : ','}\n${inner}${JSON.stringify(k)}: `;
    first = false;
    yield* jsonParts(e, k, inner);
  }
  yield first ? '{}' : `\n${indent}}`;
}

/** Bytes of text gathered before a write of the streamed outputs. */
const STREAM_BATCH = 1 << 20;

export function createCli(stdout: Output, stderr: Output, env: NodeJS.ProcessEnv): Cli {
  const writeText = async (text: string): Promise<void> => {
    if (!stdout.write(text)) await new Promise<void>((resolve) => stdout.once('drain', resolve));
  };
  const printLines = (lines: readonly string[]): void => {
    // Written in parts of bounded size: one string of a million table rows is needless.
    for (let i = 0; i < lines.length; i += 4096) stdout.write(lines.slice(i, i + 4096).map((l) => l + '\n').join(''));
  };
  return {
    stdout,
    stderr,
    env,
    colors: colorsFor(stdout.isTTY, env),
    print(...lines: string[]): void {
      printLines(lines);
    },
    printLines,
    printJson(value: unknown): void {
      stdout.write(JSON.stringify(value, jsonReplacer, 2) + '\n');
    },
    async writeBytes(bytes: Uint8Array): Promise<void> {
      if (!stdout.write(bytes)) await new Promise<void>((resolve) => stdout.once('drain', resolve));
    },
    writeText,
    async printJsonStream(value: unknown): Promise<void> {
      let batch = '';
      for (const part of jsonParts(value)) {
        batch += part;
        if (batch.length >= STREAM_BATCH) { await writeText(batch); batch = ''; }
      }
      await writeText(batch + '\n');
    },
    async printLineStream(lines: Iterable<string>): Promise<void> {
      let batch = '';
      for (const line of lines) {
        batch += line + '\n';
        if (batch.length >= STREAM_BATCH) { await writeText(batch); batch = ''; }
      }
      if (batch) await writeText(batch);
    },
    progress(quiet, label, total, unit) {
      return createProgress(progressEnabled(stderr.isTTY, env, quiet === true), { stream: stderr, label, total, unit });
    },
  };
}
