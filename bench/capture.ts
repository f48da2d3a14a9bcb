/**
 * `node build/bench/capture.js`: capturing a live process, against gcore on the same process
 * in the same run. The process is bench/c/memfill.c holding 256 MiB of memory-like bytes
 * (bench/memory-like.ts, seed 1: runs of zero, structured and random pages) in an anonymous
 * mapping; CRIMG_BENCH_CAPTURE_MIB sets the size.
 *
 * Contenders, interleaved run by run (medians of 3 after 1 warm-up): crimg's captureProcess
 * in this process (raw without and with fsync, raw with fsync over the previous image, raw
 * with 16 KiB chunks, deflate:1, raw and deflate:1 with fileMappings 'gap', which leaves out
 * what gcore leaves out), the
 * `crimg capture` command line (node start-up included, as gdb's start-up is in gcore; it
 * fsyncs), `crimg --version` (the start-up alone), `gcore -o PREFIX PID`, and gcore followed
 * by `sync FILE` (as durable as an fsynced image).
 * Targets (issue 7): faster than gcore; image at most 60 % of gcore's file raw, 40 % with
 * deflate:1.
 *
 * Issue 13 section, same run: bench/c/capture_target.c holding the same data plus an untouched
 * 2 GiB MAP_NORESERVE mapping: the target's RSS growth from its first capture (target < 16 MiB),
 * the stop with deflate:1 + aes-256-gcm (encoded after SIGCONT, the default) against the raw
 * stop (target <= 1.3x, medians of 5 after 1 warm-up; the stop with encodeWhileStopped for
 * information); and a JVM (java
 * -Xmx512m holding ~256 MiB of arrays): crimg's stop against gcore's whole run, during which
 * gdb holds every thread stopped (target <= 0.5x). Medians of 3 after 1 warm-up, interleaved.
 * Issue 19 section (bench/capture-precopy.ts): pre-copy's stop against a full stop, a child
 * image's size and time against a full image's, and a restored child against the process.
 * Writes bench/out/results-capture.json. CRIMG_BENCH_CAPTURE_SECTION=issue13 (or issue19) runs
 * that section alone.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { captureProcess, type CaptureOptions, type CaptureResult } from '../capture/process.js';
import { openImage } from '../index.js';
import { memoryLikePieces, writeMemoryLikeFile } from './memory-like.js';
import { MiB, envMiB, since, syncAll, timeInterleaved } from './measure.js';
import { formatTable, mib, ms, pct, times, verdict, type Row } from './table.js';
import { hasTool } from './tools.js';
import { issue19Rows } from './capture-precopy.js';
import { nativeStatus } from '../native-mmap/index.js';

const SEED = 1;
const dataMiB = envMiB('CRIMG_BENCH_CAPTURE_MIB', 256, 8);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
for (const tool of ['gcc', 'gcore']) {
  if (!hasTool(tool)) {
    console.log(`bench/capture: skipped: ${tool} is not installed`);
    process.exit(0);
  }
}

const dir = await mkdtemp(join(tmpdir(), 'crimg-bench-capture-'));
const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
const log = (text: string): void => { process.stderr.write(`  ... ${text}\n`); };
let child: ReturnType<typeof spawn> | undefined;
/** Children of the issue 13 section, killed at the end whatever happens. */
const others: ReturnType<typeof spawn>[] = [];
process.once('SIGINT', () => { child?.kill('SIGKILL'); cleanup(); process.exit(130); });

/** Starts memfill holding the data file; resolves with its pid and the data's address. */
function startHolder(binary: string, data: string): Promise<{ pid: number; data: bigint }> {
  return new Promise((resolve, reject) => {
    child = spawn(binary, ['file', data], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.on('error', reject);
    child.on('exit', (code) => { if (!out.includes('\n')) reject(new Error(`memfill exited with ${code}`)); });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (!out.includes('\n')) return;
      const j = JSON.parse(out.slice(0, out.indexOf('\n'))) as { pid: number; data: string };
      resolve({ pid: j.pid, data: BigInt(j.data) });
    });
  });
}

/** Runs a command, resolving with its wall time in seconds. @throws when it fails */
function timed(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(since(t0)) : reject(new Error(`${cmd} exited with ${code}: ${err.trim()}`))));
  });
}

interface Sample { seconds: number; size: number; stoppedMs?: number }

// Loaded first (and kept): the capture's sealing and checksums use it, and the figures without it are others.
const native = nativeStatus();
log(native.available ? 'native addon loaded' : `native addon UNAVAILABLE (${native.reason}): sealing and checksums take their slow paths`);

try {
  const started = process.hrtime.bigint();
  const data = join(dir, 'data.bin');
  log(`generating ${dataMiB} MiB of memory-like bytes (seed ${SEED})`);
  const stats = await writeMemoryLikeFile(data, dataMiB * MiB, SEED);
  const binary = join(dir, 'memfill');
  const cc = spawnSync('gcc', ['-O2', '-o', binary, join(root, 'bench', 'c', 'memfill.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc failed: ${cc.stderr}`);
  const only = process.env['CRIMG_BENCH_CAPTURE_SECTION'];
  if (only === 'issue13' || only === 'issue19') {
    // Only one issue's section (a quicker run while working on it).
    const rows = only === 'issue13' ? await issue13Rows(data, (name) => join(dir, name)) : await issue19Rows(root, dir, data, log, others);
    console.log(formatTable(rows));
    process.exitCode = rows.some((r) => r.result === 'FAIL') ? 1 : 0;
  } else {
    const holder = await startHolder(binary, data);
    log(`memfill pid ${holder.pid} holds the data at 0x${holder.data.toString(16)}`);

    const out = (name: string): string => join(dir, name);
    const lib = (compress: string, name: string, chunkSize?: number, fsync = false, fileMappings: 'copy' | 'gap' = 'copy') => async (): Promise<Sample> => {
      const t0 = process.hrtime.bigint();
      const r: CaptureResult = await captureProcess(holder.pid, out(name), { compress, fsync, fileMappings, ...(chunkSize ? { chunkSize } : {}) });
      return { seconds: since(t0), size: r.summary.fileSize, stoppedMs: r.stoppedMs };
    };
    const runs = await timeInterleaved<Sample>({
      'crimg raw': lib('none', 'raw.img'),
      'crimg deflate:1': lib('deflate:1', 'deflate.img'),
      'crimg raw fsync': lib('none', 'rawsync.img', undefined, true),
      // Checkpoints overwrite the previous one: the old image (kept between runs) is replaced.
      'crimg raw fsync, replacing': lib('none', 'replaced.img', undefined, true),
      'crimg raw 16K': lib('none', 'raw16k.img', 16384),
      // As gcore: clean read-only file mappings (libraries' code) left to their files.
      'crimg raw gap': lib('none', 'rawgap.img', undefined, false, 'gap'),
      'crimg deflate:1 gap': lib('deflate:1', 'deflategap.img', undefined, false, 'gap'),
      // What the command line pays before it captures anything: node and the CLI's modules.
      'crimg start-up': async () => ({ seconds: await timed(process.execPath, [join(root, 'bin', 'crimg.js'), '--version']), size: 0 }),
      'crimg CLI raw': async () => {
        const s = await timed(process.execPath, [join(root, 'bin', 'crimg.js'), 'capture', '--pid', String(holder.pid), out('cli.img'), '--quiet']);
        return { seconds: s, size: (await stat(out('cli.img'))).size };
      },
      gcore: async () => {
        const s = await timed('gcore', ['-o', out('gcore'), String(holder.pid)]);
        return { seconds: s, size: (await stat(out(`gcore.${holder.pid}`))).size };
      },
      // The command line fsyncs its image before renaming it into place: compare it with a gcore
      // whose file is made as durable.
      'gcore + sync': async () => {
        const s = await timed('sh', ['-c', 'gcore -o "$1" "$2" > /dev/null && sync "$1.$2"', 'sh', out('gsync'), String(holder.pid)]);
        return { seconds: s, size: (await stat(out(`gsync.${holder.pid}`))).size };
      },
    }, {
      prepare: async (name) => {
        const file = {
          'crimg raw': 'raw.img', 'crimg deflate:1': 'deflate.img', 'crimg raw fsync': 'rawsync.img', 'crimg raw 16K': 'raw16k.img', 'crimg start-up': 'none',
          'crimg raw gap': 'rawgap.img', 'crimg deflate:1 gap': 'deflategap.img',
          'crimg CLI raw': 'cli.img', gcore: `gcore.${holder.pid}`, 'gcore + sync': `gsync.${holder.pid}`,
        }[name]; // undefined: 'crimg raw fsync, replacing', whose previous image stays
        if (file !== undefined) await rm(out(file), { force: true });
        syncAll(); // the previous contender's dirty pages are not this one's to write back
      },
    });

    // Every image must hold the data set at the address memfill printed (so no size below comes
    // from dropped data).
    for (const file of ['raw.img', 'rawgap.img', 'deflate.img', 'deflategap.img']) {
      log(`checking ${file} against the data set`);
      const image = await openImage(out(file));
      let offset = 0;
      let same = true;
      for (const piece of memoryLikePieces(dataMiB * MiB, { seed: SEED, pieceSize: 8 * MiB })) {
        if (!(await image.read(holder.data + BigInt(offset), piece.length)).equals(piece)) same = false;
        offset += piece.length;
      }
      await image.close();
      if (!same) throw new Error(`${file} does not hold the data set at its address`);
    }

    const g = runs['gcore']!;
    const gSize = g.result.size;
    const rows: Row[] = [];
    const speed = (name: string, measure: string, target: boolean, base = 'gcore', note?: string): void => {
      const r = runs[name]!;
      const b = runs[base]!.seconds;
      rows.push({
        section: 'capture time', measure, figure: ms(r.seconds), baseline: `${base} ${ms(b)}`, ratio: times(b / r.seconds),
        target: target ? '> 1x (faster)' : 'info', result: target ? verdict(r.seconds < b) : 'info',
        value: r.seconds, unit: 's', baselineValue: b, ratioValue: b / r.seconds, ...(note ? { note } : {}),
      });
    };
    const stopped = (name: string): string => `the process was stopped ${median(runs[name]!.results.map((x) => x.stoppedMs!))} ms of it`;
    speed('crimg raw', 'captureProcess, raw (library, no fsync)', true, 'gcore', stopped('crimg raw'));
    speed('crimg raw fsync', 'captureProcess, raw (library, fsync)', true, 'gcore + sync', stopped('crimg raw fsync'));
    // Replacing: only what happens outside the stopped phase (opening, then index, fsync and
    // rename after SIGCONT) is compared. The stopped phase of this contender is no guide on this
    // VM: every other contender deletes its previous file just before it runs, so its writes get
    // the page-cache pages just freed, while this one's come from pages freed seconds earlier,
    // which the guest has reported free to the hypervisor (virtio-balloon REPORTING is on here),
    // so they fault in again on the host: 400-600 ms stopped in the full bench, ~120 ms in every
    // smaller mix of contenders tried, and with the old image deleted first.
    const outside = (name: string): number => median(runs[name]!.results.map((x) => x.seconds * 1000 - x.stoppedMs!)) / 1000;
    const rOut = outside('crimg raw fsync, replacing');
    const fOut = outside('crimg raw fsync');
    rows.push({
      section: 'capture time', measure: 'captureProcess, raw, fsync: time outside the stop, over the previous image', figure: ms(rOut),
      baseline: `to a new path ${ms(fOut)}`, ratio: times(fOut / rOut), target: 'info', result: 'info',
      value: rOut, unit: 's', baselineValue: fOut, ratioValue: fOut / rOut,
      note: 'the old file is held open across the rename and closed after captureProcess returns, so freeing it (~40 ms per 160 MiB on ext4) is not the caller\'s wait',
    });
    speed('crimg CLI raw', 'crimg capture, raw (node start-up, fsync)', true, 'gcore + sync',
      `of it, node and the CLI's modules starting (crimg --version): ${ms(runs['crimg start-up']!.seconds)}; gcore's time includes gdb's start-up`);
    speed('crimg deflate:1', 'captureProcess, deflate:1 (library)', false, 'gcore', stopped('crimg deflate:1'));
    const size = (name: string, measure: string, limit: number): void => {
      const s = runs[name]!.result.size;
      rows.push({
        section: 'image size', measure, figure: mib(s), baseline: `gcore ${mib(gSize)}`, ratio: pct(s / gSize),
        target: `<= ${pct(limit)}`, result: verdict(s / gSize <= limit), value: s, unit: 'B', baselineValue: gSize, ratioValue: s / gSize,
      });
    };
    size('crimg raw', 'image, raw', 0.6);
    size('crimg deflate:1', 'image, deflate:1', 0.4);
    for (const [name, measure] of [['crimg raw gap', 'image, raw, file mappings as gaps (as gcore)'], ['crimg deflate:1 gap', 'image, deflate:1, file mappings as gaps (as gcore)']] as const) {
      const s = runs[name]!.result.size;
      rows.push({
        section: 'image size', measure, figure: mib(s), baseline: `gcore ${mib(gSize)}`, ratio: pct(s / gSize),
        target: 'info', result: 'info', value: s, unit: 'B', baselineValue: gSize, ratioValue: s / gSize,
        note: `fileMappings: 'gap': unwritten read-only mappings of files (the libraries' code and constants) are gaps, as gcore leaves them out; ${mib(runs[name === 'crimg raw gap' ? 'crimg raw' : 'crimg deflate:1']!.result.size - s)} smaller than the default, which copies them so the image is self-contained`,
      });
    }
    const s16 = runs['crimg raw 16K']!.result.size;
    rows.push({
      section: 'image size', measure: 'image, raw, 16 KiB chunks', figure: mib(s16), baseline: `gcore ${mib(gSize)}`, ratio: pct(s16 / gSize),
      target: 'info', result: 'info', value: s16, unit: 'B', baselineValue: gSize, ratioValue: s16 / gSize,
      note: "the default raw chunk is the page (4 KiB): every zero page elided, the floor of a raw image of this input plus the index; 16 KiB chunks were the default before",
    });

    child?.stdin?.destroy();
    child?.kill('SIGKILL');
    rows.push(...await issue13Rows(data, out));
    rows.push(...await issue19Rows(root, dir, data, log, others));

    console.log(`crimg bench/capture: a process holding ${dataMiB} MiB of memory-like bytes (seed ${SEED}) in one anonymous mapping`);
    console.log(`pages: ${pct(stats.zeroPages / stats.pages)} zero, ${pct(stats.structuredPages / stats.pages)} structured, ${pct(stats.randomPages / stats.pages)} random (zero pages are the floor of a raw image: ${pct(1 - stats.zeroPages / stats.pages)} of the data)`);
    console.log(`node ${process.version}, ${cpus().length} cores; medians of 3 runs after 1 warm-up, interleaved; fsync only where a row says so; ratio > 1 (time) or < 100 % (size) is better than gcore\n`);
    console.log(formatTable(rows));
    const failed = rows.filter((r) => r.result === 'FAIL');
    console.log(`\n${rows.filter((r) => r.result === 'PASS').length} PASS, ${failed.length} FAIL${failed.length ? `: ${failed.map((r) => r.measure).join('; ')}` : ''}; total ${since(started).toFixed(0)} s`);
    const outDir = join(root, 'bench', 'out');
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'results-capture.json'), JSON.stringify({
      date: new Date().toISOString(), node: process.version, cores: cpus().length, dataMiB, seed: SEED, input: stats, rows,
      samples: Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, v.results])),
    }, null, 2) + '\n');
    console.log(`results: ${join(outDir, 'results-capture.json')}`);
  }
} finally {
  child?.stdin?.destroy();
  child?.kill('SIGKILL');
  for (const o of others) { o.stdin?.destroy(); o.kill('SIGKILL'); }
  cleanup();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Starts `command args`, which prints one JSON line with its pid; resolves with that line. */
function startJson<T extends { pid: number }>(command: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    others.push(p);
    let text = '';
    p.on('error', reject);
    p.on('exit', (code) => { if (!text.includes('\n')) reject(new Error(`${command} exited with ${code} before printing its pid`)); });
    p.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) resolve(JSON.parse(text.slice(0, text.indexOf('\n'))) as T);
    });
  });
}

/** RssAnon and RssFile of /proc/PID/status, in bytes. */
function rssParts(pid: number): { anon: number; file: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text)![1]) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile') };
}

function residentBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** A Java program holding ~256 MiB of long arrays (64 KiB each: 1 MiB ones are humongous in G1 and overflow -Xmx512m). */
function holdJava(): string {
  return `import java.util.*;
public class Hold {
  public static void main(String[] args) throws Exception {
    List<long[]> keep = new ArrayList<>();
    Random r = new Random(1);
    for (int i = 0; i < 4096; i++) {
      long[] b = new long[8192];
      for (int j = 0; j < b.length; j += 1 + (j & 7)) b[j] = (j % 3 == 0) ? r.nextLong() : j;
      keep.add(b);
    }
    System.out.println("{\\"pid\\":" + ProcessHandle.current().pid() + "}");
    System.out.flush();
    while (System.in.read() >= 0) {}
    System.out.println(keep.size());
  }
}
`;
}

/**
 * Issue 13: untouched memory left alone, codecs outside the stop, and the stop against gcore's
 * on a JVM.
 */
async function issue13Rows(data: string, out: (name: string) => string): Promise<Row[]> {
  const rows: Row[] = [];
  const binary = join(dir, 'capture_target');
  const cc = spawnSync('gcc', ['-O2', '-pthread', '-o', binary, join(root, 'bench', 'c', 'capture_target.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc failed: ${cc.stderr}`);
  const target = await startJson<{ pid: number; sparseLen: number }>(binary, ['2', '2048', data]);
  log(`issue 13: capture_target pid ${target.pid} holds ${dataMiB} MiB plus an untouched ${target.sparseLen / MiB} MiB NORESERVE mapping`);
  const before = residentBytes(target.pid);
  const first = await captureProcess(target.pid, out('i13-first.img'), { fsync: false });
  const growth = residentBytes(target.pid) - before;
  rows.push({
    section: 'issue 13', measure: 'target RSS growth from its first capture (256 MiB data + untouched 2 GiB NORESERVE)', figure: mib(growth),
    baseline: 'before 0.0 MiB', ratio: '-', target: '< 16 MiB', result: verdict(growth < 16 * MiB), value: growth, unit: 'B',
    note: `VmRSS ${mib(before)} before, ${mib(before + growth)} after; ${mib(first.bytesRead)} read from /proc/PID/mem, the rest recorded as zero chunks from /proc/PID/pagemap; stopped ${first.stoppedMs} ms`,
  });
  const key = randomBytes(32);
  const lib = (name: string, o: CaptureOptions) => async (): Promise<Sample> => {
    const t0 = process.hrtime.bigint();
    const r = await captureProcess(target.pid, out(name), { fsync: false, ...o });
    return { seconds: since(t0), size: r.summary.fileSize, stoppedMs: r.stoppedMs };
  };
  const runs = await timeInterleaved<Sample>({
    raw: lib('i13-raw.img', {}),
    'deflate:1 + aes-256-gcm': lib('i13-enc.img', { compress: 'deflate:1', encrypt: 'aes-256-gcm', key }),
    'deflate:1 + aes-256-gcm, encodeWhileStopped': lib('i13-encstop.img', { compress: 'deflate:1', encrypt: 'aes-256-gcm', key, encodeWhileStopped: true }),
  }, { runs: 5, prepare: async () => { syncAll(); } });
  const stop = (name: string): number => median(runs[name]!.results.map((x) => x.stoppedMs!));
  const rawStop = stop('raw');
  for (const [name, limit] of [['deflate:1 + aes-256-gcm', 1.3], ['deflate:1 + aes-256-gcm, encodeWhileStopped', 0]] as const) {
    const st = stop(name);
    rows.push({
      section: 'issue 13', measure: `stop time, ${name}`, figure: `${st} ms`, baseline: `raw ${rawStop} ms`, ratio: times(st / rawStop),
      target: limit ? `<= ${limit}x raw` : 'info', result: limit ? verdict(st <= limit * rawStop) : 'info', value: st / 1000, unit: 's',
      baselineValue: rawStop / 1000, ratioValue: st / rawStop,
      note: `whole capture ${ms(runs[name]!.seconds)} (raw ${ms(runs['raw']!.seconds)})${limit ? ': pages logged beside the output while stopped (sealed piece by piece under a one-time key), encoded after SIGCONT' : ': the old path, encoding while stopped'}`,
    });
  }
  // The JVM.
  const javaDir = join(dir, 'java');
  await mkdir(javaDir);
  writeFileSync(join(javaDir, 'Hold.java'), holdJava());
  const jc = spawnSync('javac', ['-d', javaDir, join(javaDir, 'Hold.java')], { encoding: 'utf8' });
  if (jc.status !== 0) throw new Error(`javac failed: ${jc.stderr}`);
  const jvm = await startJson<{ pid: number }>('java', ['-Xmx512m', '-cp', javaDir, 'Hold']);
  log(`issue 13: JVM pid ${jvm.pid} holds ~256 MiB of arrays (-Xmx512m)`);
  await new Promise((r) => setTimeout(r, 2000)); // let its start-up compilation settle
  const jBefore = rssParts(jvm.pid);
  const jFirst = await captureProcess(jvm.pid, out('jvm-first.img'), { fsync: false });
  const jAfter = rssParts(jvm.pid);
  rows.push({
    section: 'issue 13', measure: 'JVM anonymous RSS growth from its first capture (RssAnon)', figure: mib(jAfter.anon - jBefore.anon),
    baseline: `before ${mib(jBefore.anon)}`, ratio: '-', target: 'info', result: 'info', value: jAfter.anon - jBefore.anon, unit: 'B',
    note: `RssFile ${mib(jBefore.file)} -> ${mib(jAfter.file)}: file mappings (lib/modules, 123 MiB r--s) are read whole through /proc/PID/mem, which maps their page-cache pages into the JVM; --file-mappings gap leaves them out; stopped ${jFirst.stoppedMs} ms`,
  });
  // Not interleaved: gcore reads every page of every mapping, reservations included, which
  // makes them resident in the JVM, so a crimg run after a gcore run would read them too.
  const jRuns = {
    ...await timeInterleaved<Sample>({
      crimg: async () => {
        const t0 = process.hrtime.bigint();
        const r = await captureProcess(jvm.pid, out('jvm.img'), { fsync: false });
        return { seconds: since(t0), size: r.summary.fileSize, stoppedMs: r.stoppedMs };
      },
    }, { prepare: async () => { syncAll(); } }),
    ...await timeInterleaved<Sample>({
      gcore: async () => {
        await rm(out(`jvm-gcore.${jvm.pid}`), { force: true });
        const s = await timed('gcore', ['-o', out('jvm-gcore'), String(jvm.pid)]);
        return { seconds: s, size: (await stat(out(`jvm-gcore.${jvm.pid}`))).size };
      },
    }, { prepare: async () => { syncAll(); } }),
  };
  const crimgStop = median(jRuns['crimg']!.results.map((x) => x.stoppedMs!)) / 1000;
  const gcoreTime = jRuns['gcore']!.seconds;
  rows.push({
    section: 'issue 13', measure: 'JVM (-Xmx512m, ~256 MiB of arrays): crimg stop time vs gcore', figure: ms(crimgStop), baseline: `gcore ${ms(gcoreTime)}`,
    ratio: times(crimgStop / gcoreTime), target: '<= 0.5x gcore', result: verdict(crimgStop <= 0.5 * gcoreTime), value: crimgStop, unit: 's',
    baselineValue: gcoreTime, ratioValue: crimgStop / gcoreTime,
    note: `gcore's figure is its whole run: gdb attaches every thread first and detaches them last; crimg's whole capture ${ms(jRuns['crimg']!.seconds)}, image ${mib(jRuns['crimg']!.result.size)} (gcore ${mib(jRuns['gcore']!.result.size)}); gcore runs after every crimg run (it makes the JVM's reservations resident)`,
  });
  return rows;
}
