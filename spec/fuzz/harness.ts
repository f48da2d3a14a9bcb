/**
 * The fuzz harness: runs one damaged image through what a user does with an image (open,
 * inspect, read every region, verify, restore in copy mode) and checks the robustness
 * properties of issue 6:
 *
 * - the library throws nothing but CrimgError (a TypeError or RangeError from it is a failure:
 *   the harness makes no documented misuse);
 * - no step hangs (each is bounded by a timer here; a synchronous loop is caught by the
 *   watchdog of spec/fuzz/run.ts, which runs cases in worker threads);
 * - no step allocates beyond a bound (process memory is sampled around each step; the worker
 *   threads of run.ts also have a heap limit);
 * - no wrong bytes silently: for an encrypted image, every read (and restored region) either
 *   fails or gives the original bytes, and verify fails whenever the file changed; for a plain
 *   image, a read that succeeds with bytes other than the original's is a failure unless
 *   verify reports an error. A key holder's re-sealed index (`resealed`) gets only the first
 *   three properties: with the key, any index is authentic; so does a case made from an
 *   invalid vector (its own damage may excuse any bytes).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openImage, type Image } from '../../restore/image.js';
import { CrimgError } from '../../format/errors.js';
import { describeHost, type HostDescription } from '../../image/host.js';
import type { KeyInput } from '../../image/keying.js';
import { deriveKeys, headerHash, resolveMasterKey } from '../../codec/keys.js';
import { open as openSealed, suiteForCipherId } from '../../codec/aead.js';
import { indexAad, indexNonce } from '../../codec/aad.js';
import type { FuzzCase, VectorInfo } from './mutator.js';
import { loadPortableEngine } from '../../codec/portable.js';

// The portable engine's primitives are called directly here: load its libraries first.
await loadPortableEngine();

/** What a valid vector holds, read once by the library (test/vectors.test.ts checks it). */
export interface Original {
  name: string;
  encrypted: boolean;
  key: KeyInput | undefined;
  /** By region number; `data` null for a gap. */
  regions: { address: bigint; length: number; data: Uint8Array | null }[];
  /** A child image's parent (spec section 8.3): the file its hint names in the vectors' directory; cases open with it. */
  parent?: string;
  /**
   * An invalid vector used as a seed (spec section 12: a rule already broken): its regions are
   * those of the vector it was made from, and the oracle holds its cases to the robustness
   * properties only (its own damage may excuse any bytes), as a re-sealed index's.
   */
  invalid?: boolean;
}

/** Which vectors {@link loadVectors} takes besides the valid ones. */
export interface LoadOptions {
  /** The accepted vectors (accepted/, spec section 12.3): valid images a reader must read. Default true. */
  accepted?: boolean;
  /**
   * The invalid vectors of stage read and verify (invalid/): whole images, each with one rule
   * broken, as seeds for mutations near the rules. Default false.
   */
  invalid?: boolean;
}

export interface HarnessOptions {
  /** Run `image.restore({ mode: 'copy' })` on every case that opens (off only with `npm run fuzz -- --no-restore`). */
  restore: boolean;
  /** Bound of each step's time, ms (async hangs; run.ts's watchdog catches sync ones). */
  stepTimeoutMs?: number;
  /** Bound of the memory a case may add (ArrayBuffers + JS heap), bytes. */
  maxGrowth?: number;
}

/** The outcome of one case. `outcome` starts with FAIL for a property violation. */
export interface CaseResult {
  index: number;
  vector: string;
  outcome: string;
  failure?: string;
  ms: number;
  steps: string[];
}

/** Bytes read per read() call and per region: reads of hostile lengths stay bounded by the request. */
/** A file to open map-mode cases from (map mode needs a file descriptor), made on first use. */
let mapFile: string | null = null;
function mapCasePath(): string {
  if (mapFile === null) {
    const dir = mkdtempSync(join(tmpdir(), 'crimg-fuzz-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    mapFile = join(dir, 'case.img');
  }
  return mapFile;
}

const PIECE = 1 << 20;
const MAX_READ_PER_REGION = 4 << 20;
const MAX_REGIONS_READ = 64;
/** scrypt work a hostile header may ask for, here (the default cap is 256 MiB per open). */
const SCRYPT_CAPS = { maxMemory: 32 << 20, maxP: 4 };

/** `f()`, or 'timeout' after `ms`; the timer is cleared either way. */
async function bounded<T>(f: () => Promise<T> | T, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), ms); });
  try {
    return await Promise.race([Promise.resolve().then(f), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The valid vectors of `dir` (spec/vectors/v1), and the accepted ones (`accepted/NAME`), for
 * the mutator and the oracle; with `invalid`, also the invalid vectors of stage read and verify
 * (`invalid/NAME`), after them.
 */
export async function loadVectors(dir: string, load: LoadOptions = {}): Promise<{ infos: VectorInfo[]; originals: Map<string, Original> }> {
  const imgs = (sub: string): string[] => readdirSync(join(dir, sub)).filter((f) => f.endsWith('.img')).map((f) => (sub ? `${sub}/` : '') + f.slice(0, -4)).sort();
  const names = [...imgs(''), ...(load.accepted ?? true ? imgs('accepted') : [])];
  const infos: VectorInfo[] = [];
  const originals = new Map<string, Original>();
  for (const name of names) {
    const bytes = readFileSync(join(dir, `${name}.img`));
    const exp = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as { key?: string; passphrase?: string };
    const key: KeyInput | undefined = exp.key ? Buffer.from(exp.key, 'hex') : exp.passphrase ? { passphrase: exp.passphrase } : undefined;
    let img = await openImage(bytes, { key, workers: 0 });
    // A child's hint is relative to its directory; a case is opened from bytes, so given its parent.
    const parent = img.validation.parent ? join(dir, img.validation.parent.hint) : undefined;
    if (parent !== undefined) {
      await img.close();
      img = await openImage(bytes, { key, workers: 0, parent });
    }
    const regions: Original['regions'] = [];
    for (const r of img.regions) {
      regions.push({ address: r.address, length: Number(r.length), data: r.isGap ? null : await img.read(r.address, Number(r.length)) });
    }
    const encrypted = img.header.cipher !== 0;
    const info: VectorInfo = { name, bytes };
    if (encrypted) {
      const h = img.header;
      const master = resolveMasterKey(key instanceof Uint8Array ? { key } : (key as { passphrase: string }), { kdf: h.kdf, salt: h.salt, log2N: h.scryptLog2N, r: h.scryptR, p: h.scryptP }, { engine: 'portable' });
      const k = deriveKeys(master, h.salt, h.imageId, 'portable');
      info.crypto = { suite: suiteForCipherId(h.cipher), indexKey: k.indexKey, imageId: h.imageId, headerHash: headerHash(img.headerBytes, img.validationBytes, 'portable') };
    }
    await img.close();
    infos.push(info);
    originals.set(name, { name, encrypted, key, regions, ...(parent !== undefined ? { parent } : {}) });
  }
  if (load.invalid) {
    for (const name of imgs('invalid')) {
      const exp = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as { stage: string; from: string; key?: string | null };
      if (exp.stage === 'open' || exp.key !== undefined) continue;
      // Header and validation block are the `from` vector's (the damage of read and verify
      // vectors is in the index or the data): so are its index key and header hash.
      const from = originals.get(exp.from)!;
      const fromInfo = infos.find((v) => v.name === exp.from)!;
      const bytes = readFileSync(join(dir, `${name}.img`));
      // The mutator opens a sealed chunk table to re-seal it: not a seed whose table's tag fails.
      if (fromInfo.crypto && !chunkTableOpens(bytes, fromInfo.crypto)) continue;
      infos.push({ name, bytes, ...(fromInfo.crypto ? { crypto: fromInfo.crypto } : {}) });
      originals.set(name, { ...from, name, invalid: true });
    }
  }
  return { infos, originals };
}

/** Whether the sealed chunk table of `b` opens with `c` (spec section 7.4). */
function chunkTableOpens(b: Buffer, c: NonNullable<VectorInfo['crypto']>): boolean {
  const f = b.length - 96;
  const at = Number(b.readBigUInt64LE(f + 16));
  const length = Number(b.readBigUInt64LE(f + 32));
  try {
    openSealed(c.suite, c.indexKey, indexNonce(1), indexAad({ imageId: c.imageId, headerHash: c.headerHash, domain: 1, count: b.readBigUInt64LE(f + 24), plainLength: length - 16 }), b.subarray(at, at + length), 'portable');
    return true;
  } catch {
    return false;
  }
}

let host: HostDescription | undefined;

/** Thrown inside a case to stop it as a property failure. */
class Failure extends Error {
  constructor(readonly kind: string, message: string) { super(message); }
}

/** Runs one case. Never throws: every problem is in the result. */
export async function runCase(c: FuzzCase, original: Original, options: HarnessOptions): Promise<CaseResult> {
  const t0 = performance.now();
  const timeout = options.stepTimeoutMs ?? 2000;
  const maxGrowth = options.maxGrowth ?? 256 << 20;
  const base = memory();
  let peak = 0;
  const checkMemory = (step: string): void => {
    const grew = memory() - base;
    peak = Math.max(peak, grew);
    if (grew > maxGrowth) throw new Failure('alloc', `${step}: memory grew by ${grew} bytes (bound ${maxGrowth})`);
  };
  /** A library call: CrimgError is returned as its code, anything else is a failure. */
  const call = async <T>(step: string, f: () => Promise<T> | T): Promise<T | CrimgError> => {
    let v: T | 'timeout';
    try {
      v = await bounded(f, timeout);
    } catch (e) {
      if (e instanceof CrimgError) { checkMemory(step); return e; }
      if (e instanceof Failure) throw e;
      const err = e as Error;
      throw new Failure('exception', `${step}: ${err?.name ?? typeof e}: ${err?.message ?? String(e)}\n${(err?.stack ?? '').split('\n').slice(1, 6).join('\n')}`);
    }
    if (v === 'timeout') throw new Failure('hang', `${step}: no answer within ${timeout} ms`);
    checkMemory(step);
    return v;
  };

  let firstError: string | null = null;
  const note = (stage: string, e: CrimgError): void => { firstError ??= `${stage}:${e.code}`; };
  let differs: string | null = null;
  let extended = false;
  const compare = (regionIndex: number, rel: number, got: Uint8Array, what: string): void => {
    const o = original.regions[regionIndex];
    const want = o?.data?.subarray(rel, rel + got.length);
    if (!want) {
      differs ??= `${what}: region ${regionIndex} holds no data in the original, yet [${rel}, +${got.length}) was read`;
      return;
    }
    // A plain image's region grown by a consistent rewrite of its (checksummed, not
    // authenticated) region record reads past the original's end: compare what overlaps.
    if (want.length < got.length) {
      if (original.encrypted) differs ??= `${what}: region ${regionIndex} reads ${got.length} bytes at ${rel}, the original has ${want.length}`;
      extended = true;
    }
    if (!Buffer.from(want.buffer, want.byteOffset, want.length).equals(Buffer.from(got.buffer, got.byteOffset, want.length))) {
      differs ??= `${what}: region ${regionIndex} bytes [${rel}, +${want.length}) differ from the original's`;
    }
  };

  let img: Image | undefined;
  let verifyOk = false;
  try {
    // Both engines (node:zlib/node:crypto and fflate/@noble), alternately.
    const engine = c.index % 2 === 0 ? 'node' : 'portable';
    const opened = await call('open', () => openImage(c.bytes, { key: original.key, workers: 0, engine, scryptCaps: SCRYPT_CAPS, ...(original.parent !== undefined ? { parent: original.parent } : {}) }));
    if (opened instanceof CrimgError) {
      note('open', opened);
    } else {
      img = opened;
      const image = img;
      // inspect: what `crimg inspect` and `crimg stats` show.
      const inspected = await call('inspect', async () => {
        void [image.version, image.imageId, image.pageSize, image.chunkSize, image.compression, image.encryption, image.mappable, image.fileSize, image.indexLocked, image.chunkCount];
        host ??= describeHost();
        image.checkCompatibility(host);
        return image.regions.map((r) => ({ ...r }));
      });
      if (inspected instanceof CrimgError) note('inspect', inspected);
      const regions = inspected instanceof CrimgError ? [] : inspected;
      // Lookups in place (issue 14): regionCount, region(i) and regionAt (a binary search over
      // the region section's bytes) agree with the array and a linear search over it.
      if (!(inspected instanceof CrimgError)) {
        const lookup = await call('region lookup', () => {
          if (image.regionCount !== regions.length) return `regionCount ${image.regionCount}, regions ${regions.length}`;
          const probes: bigint[] = [0n, (1n << 64n) - 1n];
          for (const r of regions.slice(0, MAX_REGIONS_READ)) probes.push(r.address, r.address + r.length - 1n, r.address + r.length, r.address === 0n ? 0n : r.address - 1n);
          for (const a of probes) {
            if (a >= 1n << 64n) continue;
            const linear = regions.find((r) => a >= r.address && a < r.address + r.length);
            const got = image.regionAt(a);
            if (got?.index !== linear?.index) return `regionAt(${a}) is region ${got?.index}, a linear search says ${linear?.index}`;
          }
          const i = regions.length - 1;
          if (i >= 0 && JSON.stringify({ ...image.region(i) }, big) !== JSON.stringify(regions[i], big)) return `region(${i}) differs from regions[${i}]`;
          return null;
        });
        if (typeof lookup === 'string') throw new Failure('region-lookup', lookup);
      }
      const table = await call('chunk table', () => image.chunkTable());
      if (table instanceof CrimgError) note('read', table);
      else {
        for (const r of regions) {
          for (let j = 0; j < Math.min(r.chunkCount, 4096); j++) {
            const rec = await call('chunk record', () => table.get(r.firstChunk + j, image.plainLength(r, j)));
            if (rec instanceof CrimgError) { note('read', rec); break; }
          }
        }
      }
      // read every region, in bounded pieces
      for (const r of regions.slice(0, MAX_REGIONS_READ)) {
        if (r.isGap) {
          const g = await call('read gap', () => image.read(r.address, 1));
          if (!(g instanceof CrimgError)) differs ??= `read: gap ${r.index} returned bytes`;
          continue;
        }
        const len = Number(r.length);
        const starts: number[] = [];
        for (let s = 0; s < len && s < MAX_READ_PER_REGION; s += PIECE) starts.push(s);
        if (len > MAX_READ_PER_REGION) starts.push(Math.max(0, len - PIECE));
        for (const s of starts) {
          const n = Math.min(PIECE, len - s);
          const got = await call('read', () => image.read(r.address + BigInt(s), n));
          if (got instanceof CrimgError) { note('read', got); break; }
          compare(r.index, s, got, 'read');
        }
      }
      const report = await call('verify', () => image.verify({ maxErrors: 10 }));
      if (report instanceof CrimgError) note('verify', report);
      else if (!report.ok) firstError ??= `verify:${report.errors[0]!.code}`;
      else verifyOk = true;
      // Restores `from` in `mode` and holds what the regions hold to the oracle.
      const checkRestore = async (from: Image, mode: 'copy' | 'map', what: string): Promise<void> => {
        const restored = await call('restore', () => from.restore({ mode }));
        if (restored instanceof CrimgError) {
          note('restore', restored);
          return;
        }
        try {
          for (const r of restored.regions) {
            if (!r.memory) continue;
            const n = Math.min(r.memory.byteLength, MAX_READ_PER_REGION);
            compare(r.index, 0, new Uint8Array(r.memory, 0, n), what);
          }
        } finally {
          restored.release();
        }
      };
      if (options.restore) {
        await checkRestore(image, 'copy', 'restore');
        // Map mode, for raw images when the addon is there: pages come straight from the file
        // (a SPARSE image's whole span with one mmap), so the mapped bytes (up to 4 MiB of each
        // region, all of every vector's) are read here: a range past the end of the file would
        // be a SIGBUS, a wrong span wrong bytes. The file is unlinked once open (the fd keeps
        // it), so a worker killed mid-case leaves nothing behind but its empty directory.
        if (image.mappable) {
          const { nativeStatus } = await import('../../native-mmap/index.js');
          if (nativeStatus().available) {
            const path = mapCasePath();
            writeFileSync(path, c.bytes);
            const fileImage = await call('open', () => openImage(path, { workers: 0 }));
            unlinkSync(path);
            if (!(fileImage instanceof CrimgError)) {
              try {
                await checkRestore(fileImage, 'map', 'map restore');
              } finally {
                await fileImage.close().catch(() => {});
              }
            }
          }
        }
      }
    }
    // The oracle.
    if (!c.resealed && !original.invalid) {
      if (original.encrypted && differs) throw new Failure('wrong-bytes', `encrypted image gave other bytes than the original's: ${differs}`);
      if (!original.encrypted && differs && verifyOk && !c.dataRewritten) throw new Failure('wrong-bytes', `verify ok, yet ${differs}`);
      if (original.encrypted && c.changed && img && verifyOk && firstError === null) {
        throw new Failure('undetected', 'the encrypted image changed, yet open, reads and verify all succeeded');
      }
    }
    const outcome = firstError ?? (!c.changed ? 'clean' : c.dataRewritten ? 'undetected (data rewritten)' : extended ? 'undetected (region extended)' : 'undetected');
    return { index: c.index, vector: c.vector, outcome, ms: performance.now() - t0, steps: c.steps };
  } catch (e) {
    const f = e instanceof Failure ? e : new Failure('harness', String((e as Error)?.stack ?? e));
    return { index: c.index, vector: c.vector, outcome: `FAIL:${f.kind}`, failure: f.message, ms: performance.now() - t0, steps: c.steps };
  } finally {
    await img?.close().catch(() => {});
  }
}

/** JSON.stringify replacer for bigints. */
function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v;
}

function memory(): number {
  const m = process.memoryUsage();
  return m.arrayBuffers + m.heapUsed;
}

/** Re-exported for run.ts and the tests. */
export { CrimgError };
