/**
 * `npm run bench:remote`: remote images over loopback (issue 18), same run, real servers
 * (bench/remote-servers.ts): nginx, and the fault-injecting proxy in front of it.
 *
 * - `crimg inspect` of the 1 GiB deflate:1 image over HTTP: requests and bytes counted at the
 *   server (nginx's `$bytes_sent`, headers included): at most 2 requests and at most the
 *   footer and index plus 64 KiB.
 * - Copy-mode restore from nginx against `curl` of the same file to /dev/null plus the copy
 *   restore of the local file (the decode cost): at least 0.8x that throughput.
 * - A 10 % random working set (chunk-sized reads at random addresses, 64 in flight): bytes
 *   sent by the server at most 1.5x the stored bytes the reader asked for.
 * - Fault injection: seeded runs of resets, 503s, short bodies and replacements through the
 *   proxy; each ends in the exact bytes or a coded error (never other bytes).
 * Size: CRIMG_BENCH_REMOTE_MIB (default 1024).
 */
import { copyFileSync, readFileSync, renameSync, statSync, utimesSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { openImage, type Image } from '../index.js';
import { RemoteSource, type RandomAccessSource } from '../image/index.js';
import { CrimgError, FOOTER_SIZE, decodeFooter } from '../format/index.js';
import { xxh64 } from '../codec/checksum.js';
import { MiB, envMiB, median, since } from './measure.js';
import { isMain, runStandalone, writeImage, type RestoreBenchContext } from './restore-setup.js';
import { mib, mibps, times, verdict, type Row } from './table.js';
import { collect, hasTool } from './tools.js';
import { startFaultProxy, startNginx, type Nginx } from './remote-servers.js';
import { nativeStatus } from '../native-mmap/index.js';

/** Runs of each restore and of curl (medians compared). */
const RUNS = 5;

export const REMOTE_TARGETS = { inspectRequests: 2, inspectSlack: 64 * 1024, restoreVsCurl: 0.8, workingSet: 1.5 } as const;

/** The CLI of this build (beside this module), as `node -e` runs it (argv[1] is a placeholder): bin/crimg.js always takes build/'s. */
const CLI_MAIN = new URL('../inspect-cli/main.js', import.meta.url).href;
const CLI = ['--input-type=module', '-e', `await (await import(${JSON.stringify(CLI_MAIN)})).run();`];

/** nginx's log entries from `mark` on, once it has stopped growing (a line is written after the answer). */
async function settledLog(nginx: Nginx, mark: number): Promise<ReturnType<Nginx['log']>> {
  let n = -1;
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const now = nginx.log().length;
    if (now === n) break;
    n = now;
  }
  return nginx.log().slice(mark);
}

/** A source that counts the bytes the reader asks for (the stored chunks it needs). */
function counting(inner: RandomAccessSource): RandomAccessSource & { asked: number } {
  const c = {
    asked: 0,
    get size() { return inner.size; },
    name: inner.name,
    read: (offset: number, length: number) => { c.asked += length; return inner.read(offset, length); },
    close: () => inner.close(),
  };
  return c;
}

async function restoreDigest(image: Image): Promise<{ seconds: number; digest: bigint[] }> {
  const t0 = process.hrtime.bigint();
  const result = await image.restore({ mode: 'copy' });
  const seconds = since(t0);
  const digest = result.regions.map((r) => (r.memory ? xxh64(new Uint8Array(r.memory)) : 0n));
  result.release();
  return { seconds, digest };
}

export async function remoteBench(ctx: RestoreBenchContext): Promise<{ rows: Row[] }> {
  const rows: Row[] = [];
  // Each row as it is measured, so a later failure does not lose the earlier figures.
  const push = rows.push.bind(rows);
  rows.push = (...r: Row[]): number => {
    for (const x of r) ctx.log(`${x.section}: ${x.measure}: ${x.figure}${x.baseline ? ` vs ${x.baseline}` : ''}${x.ratio ? ` (${x.ratio})` : ''} ${x.result}`);
    return push(...r);
  };
  // Loaded now (not at the first restore, when another build may have the file half written);
  // without it both restores take the JavaScript decoder and the figures are others.
  const native = nativeStatus();
  ctx.log(native.available ? 'native addon loaded' : `native addon UNAVAILABLE (${native.reason}): restores decode on the JavaScript thread`);
  const total = ctx.total;
  const imgPath = join(ctx.dir, 'remote.img');
  ctx.log(`writing the ${total / MiB} MiB deflate:1 image`);
  await writeImage(ctx.input, imgPath, total, 'deflate:1');
  const size = statSync(imgPath).size;
  const tail = readFileSync(imgPath).subarray(size - FOOTER_SIZE);
  const footer = decodeFooter(tail, size - FOOTER_SIZE, xxh64);
  const indexBytes = size - Math.min(Number(footer.chunkTableOffset), Number(footer.regionSectionOffset));
  const nginx = await startNginx(ctx.dir);
  const url = `${nginx.base}/remote.img`;
  try {
    // 1. inspect over HTTP, counted at the server.
    const S1 = 'inspect over HTTP (counted at nginx)';
    let mark = nginx.log().length;
    const ins = await collect(process.execPath, [...CLI, 'crimg', 'inspect', url]);
    if (ins.code !== 0) throw new Error(`crimg inspect ${url} failed: ${ins.err}`);
    const log = await settledLog(nginx, mark);
    const sent = log.reduce((n, e) => n + e.bytesSent, 0);
    const allowed = indexBytes + REMOTE_TARGETS.inspectSlack;
    rows.push({ section: S1, measure: 'requests', figure: String(log.length), baseline: '', ratio: '', target: `<= ${REMOTE_TARGETS.inspectRequests}`, result: verdict(log.length <= REMOTE_TARGETS.inspectRequests), value: log.length });
    rows.push({ section: S1, measure: `bytes sent (image ${mib(size)}, footer + index ${mib(indexBytes)})`, figure: `${sent} B`, baseline: `${allowed} B`, ratio: times(sent / allowed), target: '<= footer + index + 64 KiB', result: verdict(sent <= allowed), value: sent, baselineValue: allowed });

    // 2. copy restore from nginx vs curl to /dev/null + local copy restore.
    const S2 = 'copy restore from nginx (deflate:1)';
    const local = await openImage(imgPath);
    const remote = await openImage(url);
    try {
      const want = (await restoreDigest(local)).digest;
      const got = (await restoreDigest(remote)).digest;
      if (want.some((d, i) => d !== got[i])) throw new Error('the restore from nginx differs from the local one');
      const tRemote: number[] = [];
      const tLocal: number[] = [];
      const tCurl: number[] = [];
      const curl = hasTool('curl');
      let retries = 0;
      // Interleaved, five of each: the machine is shared, single runs vary up to 2x.
      for (let i = 0; i < RUNS; i++) {
        const src = await RemoteSource.open(url);
        const again = await openImage(src);
        const t0 = process.hrtime.bigint();
        try { await again.restore({ mode: 'copy' }).then((r) => r.release()); } finally { await again.close(); await src.close(); }
        tRemote.push(since(t0));
        retries += src.stats.retries;
        tLocal.push((await restoreDigest(local)).seconds);
        if (curl) {
          const t1 = process.hrtime.bigint();
          const c = await collect('curl', ['-s', '-o', '/dev/null', url]);
          if (c.code !== 0) throw new Error(`curl failed: ${c.err}`);
          tCurl.push(since(t1));
        }
      }
      // The JavaScript decoder's path (a buffer source: no fd, not remote), for comparison.
      const tMem: number[] = [];
      const inMemory = await openImage(readFileSync(imgPath));
      try {
        for (let i = 0; i < 3; i++) tMem.push((await restoreDigest(inMemory)).seconds);
      } finally {
        await inMemory.close();
      }
      const r = median(tRemote);
      const l = median(tLocal);
      const m = median(tMem);
      rows.push({ section: S2, measure: 'restore from local file (decode cost)', figure: mibps(total, l), baseline: '', ratio: '', target: '', result: 'info', value: l });
      rows.push({ section: S2, measure: 'restore from a buffer source (the JavaScript decoder; remote sources decode natively)', figure: mibps(total, m), baseline: '', ratio: '', target: '', result: 'info', value: m, note: `restore from nginx is ${times(m / r)} of it` });
      if (curl) {
        const c = median(tCurl);
        const base = c + l;
        rows.push({ section: S2, measure: 'curl of the image to /dev/null', figure: mibps(size, c), baseline: '', ratio: '', target: '', result: 'info', value: c });
        const each = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join('/');
        rows.push({ section: S2, measure: 'restore from nginx', figure: mibps(total, r), baseline: `${mibps(total, base)} (curl + local decode)`, ratio: times(base / r), target: `>= ${REMOTE_TARGETS.restoreVsCurl}x`, result: verdict(base / r >= REMOTE_TARGETS.restoreVsCurl), value: r, baselineValue: base, ratioValue: base / r,
          note: `runs (s): nginx ${each(tRemote)}, local ${each(tLocal)}, curl ${each(tCurl)}; ${retries} retries; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}` });
      } else {
        rows.push({ section: S2, measure: 'restore from nginx', figure: mibps(total, r), baseline: 'curl not installed', ratio: '', target: '', result: 'skipped', value: r });
      }
    } finally {
      await local.close();
      await remote.close();
    }

    // 3. 10 % random working set.
    const S3 = '10 % random working set over HTTP';
    const src = await RemoteSource.open(url);
    const counted = counting(src);
    const image = await openImage(counted);
    try {
      mark = nginx.log().length;
      const before = src.stats.bytes;
      counted.asked = 0;
      const cs = image.chunkSize;
      const pieces: { address: bigint; length: number }[] = [];
      for (const reg of image.regions) {
        if (reg.kind === 'gap') continue;
        for (let off = 0n; off < reg.length; off += BigInt(cs)) pieces.push({ address: reg.address + off, length: Number(reg.length - off < BigInt(cs) ? reg.length - off : BigInt(cs)) });
      }
      let seed = 7;
      const rnd = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
      const chosen = pieces.filter(() => rnd() < 0.1);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < chosen.length; i += 64) await Promise.all(chosen.slice(i, i + 64).map((p) => image.read(p.address, p.length)));
      const seconds = since(t0);
      const served = (await settledLog(nginx, mark)).reduce((n, e) => n + e.bytesSent, 0);
      const ratio = served / counted.asked;
      rows.push({ section: S3, measure: `${chosen.length} chunk reads (${mib(chosen.length * cs)} plain) in ${seconds.toFixed(2)} s`, figure: `${mib(served)} sent`, baseline: `${mib(counted.asked)} stored asked`, ratio: times(ratio), target: `<= ${REMOTE_TARGETS.workingSet}x`, result: verdict(ratio <= REMOTE_TARGETS.workingSet), value: served, baselineValue: counted.asked, ratioValue: ratio, note: `client body bytes ${src.stats.bytes - before}` });
    } finally {
      await image.close();
      await src.close();
    }

    // 4. Fault injection.
    rows.push(await faultRuns(ctx, nginx));
  } finally {
    await nginx.stop();
  }
  return { rows };
}

/** Seeded runs through the fault proxy over a 64 MiB image; a replacement in every fourth. */
async function faultRuns(ctx: RestoreBenchContext, nginx: Nginx): Promise<Row> {
  const a = join(ctx.dir, 'fault-a.img');
  const b = join(ctx.dir, 'fault-b.img');
  const served = join(ctx.dir, 'fault.img');
  await writeImage(ctx.input, a, 64 * MiB, 'deflate:1');
  await writeImage(ctx.input, b, 48 * MiB, 'deflate:1');
  const digestOf = async (path: string): Promise<string> => {
    const img = await openImage(path);
    try { return (await restoreDigest(img)).digest.join(','); } finally { await img.close(); }
  };
  const wantA = await digestOf(a);
  const wantB = await digestOf(b);
  const proxy = await startFaultProxy(nginx.base);
  const outcomes: Record<string, number> = {};
  const runs = 40;
  try {
    for (let seed = 1; seed <= runs; seed++) {
      let s = seed * 7919;
      const rnd = (): number => { s = (s * 1103515245 + 12345) >>> 0; return s / 2 ** 32; };
      copyFileSync(a, served);
      utimesSync(served, 3_000_000 + seed, 3_000_000 + seed);
      const p = 0.05 + rnd() * 0.2;
      const swapAt = seed % 4 === 0 ? Math.floor(rnd() * 20) : -1;
      const start = proxy.requests;
      proxy.plan = () => { const x = rnd(); return x < p / 3 ? 'reset' : x < (2 * p) / 3 ? '503' : x < p ? 'short' : 'pass'; };
      proxy.before = (n) => { if (n - start === swapAt) { copyFileSync(b, `${served}.next`); renameSync(`${served}.next`, served); } };
      let outcome: string;
      try {
        const src = await RemoteSource.open(`${proxy.base}/fault.img`, { retries: 2, backoffMs: 5 });
        try {
          const img = await openImage(src);
          try {
            const d = (await restoreDigest(img)).digest.join(',');
            outcome = d === wantA ? 'exact bytes (A)' : d === wantB ? 'exact bytes (B)' : 'WRONG BYTES';
          } finally { await img.close(); }
        } finally { await src.close(); }
      } catch (e) {
        outcome = e instanceof CrimgError ? e.code : `uncoded ${String(e)}`;
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
  } finally {
    await proxy.stop();
  }
  const bad = Object.entries(outcomes).filter(([k]) => !/^(exact bytes|IO_ERROR|TRUNCATED|SOURCE_CHANGED)/.test(k));
  const figure = Object.entries(outcomes).map(([k, n]) => `${k}: ${n}`).join(', ');
  return { section: 'fault injection (proxy before nginx)', measure: `${runs} seeded runs, 64 MiB image`, figure, baseline: '', ratio: '', target: 'exact bytes or a coded error', result: verdict(bad.length === 0) };
}

if (isMain(import.meta.url)) {
  process.env.CRIMG_BENCH_RESTORE_MIB ??= String(envMiB('CRIMG_BENCH_REMOTE_MIB', 1024, 64));
  await runStandalone('remote', (ctx) => `\nRemote images over loopback (nginx ${ctx.total / MiB} MiB memory-like input)`, remoteBench);
}
