/**
 * Converting an image: the same memory re-encoded with another chunk size, compression, cipher
 * or layout, in one streaming pass. What the image says about the memory is carried as it is:
 * regions and gaps with their addresses, names, protections and kind bytes (an unknown kind
 * too, spec/FORMAT.md section 8.1), the validation block with the records this version does
 * not know (section 4), and the creation time. The image id is new (section 3: ids are unique).
 */
import { LIMITS, type CipherName } from '../format/constants.js';
import { xxh64 } from '../codec/checksum.js';
import { CrimgError } from '../format/errors.js';
import { toValidationInput, type ValidationInput } from '../format/validation.js';
import type { Region } from '../format/index-table.js';
import type { KeyInput } from './keying.js';
import { ImageReader, openReader } from './reader.js';
import { isZeroRun, readSegments } from './segments.js';
import type { SourceInput } from './source.js';
import { ImageWriter, type WriteSummary, type WriterOptions } from './writer.js';
import { HOT_LIST_RECORD, encodeHotList } from './optimize-hot-list.js';

export interface ConvertOptions {
  /** Key or passphrase to open an encrypted input given as a path or bytes; also the default {@link outKey}. */
  key?: KeyInput;
  /** Chunk size of the output; default the input's. */
  chunkSize?: number;
  /** "none", "deflate" or "deflate:LEVEL"; default the input's codec and level. */
  compress?: string;
  /** Cipher of the output; default the input's (an encrypted input stays encrypted unless "none"). */
  encrypt?: CipherName;
  /** Key or passphrase to encrypt the output; default {@link key}. */
  outKey?: KeyInput;
  /**
   * 'compact' or 'sparse' (no codec or cipher only). Default: sparse when the input is sparse
   * and the output has neither codec nor cipher, else compact.
   */
  layout?: 'compact' | 'sparse';
  /**
   * Called with (bytes done, total bytes of all data regions): once with 0 when the output
   * file is created, then after each piece the writer has taken.
   */
  onProgress?: (done: number, total: number) => void;
  /** Writer settings passed as they are (see {@link WriterOptions}). */
  engine?: WriterOptions['engine'];
  workers?: WriterOptions['workers'];
  fsync?: WriterOptions['fsync'];
  scrypt?: WriterOptions['scrypt'];
  /** Permission bits of the output (default 0o600, the writer's). */
  mode?: WriterOptions['mode'];
  /**
   * The output's hot list (spec/FORMAT.md section 4.1): chunk numbers, distinct, below the
   * chunk count; null for none. Default: the input's, dropped when the chunk size changes (its
   * numbers name the input's chunks). image/optimize.ts sets it from an access profile.
   */
  hotList?: readonly number[] | null;
}

/**
 * Writes `output`, an image of the same memory as `input` with the settings of `options`
 * (unset ones keep the input's). Each region is read in pieces of at most 8 MiB. On failure
 * the output is aborted: no file is left at `output` (an existing one stays as it was).
 * @param input an open image (left open), or a path, fd or bytes to open (closed afterwards).
 * @param output path of the image to write.
 * @returns what the writer reports.
 * @throws CrimgError as reading the input does (KEY_REQUIRED for a locked index, CORRUPT_CHUNK,
 *   AUTH_FAILED...) and IO_ERROR from writing; TypeError when the output is to be encrypted
 *   and neither `outKey` nor `key` is given; RangeError for settings the writer refuses.
 * @example
 * await convertImage('app.img', 'small.img', { compress: 'deflate:6' });
 * await convertImage('plain.img', 'secret.img', { encrypt: 'aes-256-gcm', outKey: key });
 */
export async function convertImage(input: ImageReader | SourceInput, output: string, options: ConvertOptions = {}): Promise<WriteSummary> {
  if (typeof output !== 'string' || output.length === 0) throw new TypeError(`expected an output path, got ${typeof output}`);
  const owned = !(input instanceof ImageReader);
  const image = input instanceof ImageReader ? input : await openReader(input, {
    ...(options.key !== undefined ? { key: options.key } : {}),
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
  });
  try {
    return await transcode(image, output, options);
  } finally {
    if (owned) await image.close();
  }
}

/**
 * The region names to write, checked before a byte is written against section 9's string
 * table: the writer stores each region's name while they fit, and past that each distinct
 * name once (format/index-table.ts), so 2^20 gaps naming one 4 KiB string convert. Returns
 * a function giving region `i`'s name: as read while they fit; past that, one string per
 * distinct name (the writer keeps every record's name until the end: one 4 KiB string per
 * region would be 4 GiB).
 * @throws CrimgError LIMIT_EXCEEDED when the distinct names come to more than a string table
 *   may hold (2^20 different 4 KiB names): refused before the output is created.
 */
function regionNames(image: ImageReader, output: string): (r: Region) => string {
  let bytes = 0;
  // Region by region (one Region alive at a time): the sum stops at the limit.
  for (let i = 0; i < image.regionCount && bytes <= LIMITS.maxStringTable; i++) bytes += Buffer.byteLength(image.region(i).name);
  if (bytes <= LIMITS.maxStringTable) return (r) => r.name;
  const names = new NameSet();
  let distinct = 0;
  for (let i = 0; i < image.regionCount; i++) {
    const name = image.region(i).name;
    if (names.canonical(name) !== undefined) continue;
    names.add(name);
    distinct += Buffer.byteLength(name);
    if (distinct > LIMITS.maxStringTable) {
      throw new CrimgError('LIMIT_EXCEEDED', `the distinct region names come to more than ${LIMITS.maxStringTable} bytes (by region ${i}), more than the string table of ${output} may hold`, {
        region: i, hint: 'an image holds each distinct region name once, at most 64 MiB of them: this image cannot be converted',
      });
    }
  }
  return (r) => names.canonical(r.name) ?? r.name;
}

/**
 * One string per distinct name. Names are read afresh per region (region(i) decodes them), and
 * a Map keyed by a fresh 4 KiB string hashes all of it in V8 each time: 9 us a lookup, 19 s for
 * 2^20 regions here. Keyed by the xxh64 of its bytes instead (about 4 times faster), the same
 * name as the one before by one comparison; a different name with the same hash goes to a Map
 * of strings, so a collision costs time, never a wrong name.
 */
class NameSet {
  private readonly byHash = new Map<bigint, string>();
  private readonly collided = new Map<string, string>();
  private readonly bytes = Buffer.allocUnsafe(4 * LIMITS.maxNameLength);
  private last: string | undefined;

  canonical(name: string): string | undefined {
    if (name === this.last) return this.last; // gaps of one reservation: no hash
    const got = this.byHash.get(this.hash(name));
    const found = got === undefined ? undefined : got === name ? got : this.collided.get(name);
    if (found !== undefined) this.last = found;
    return found;
  }

  /** Adds a name {@link canonical} did not find. */
  add(name: string): void {
    const h = this.hash(name);
    if (this.byHash.has(h)) this.collided.set(name, name);
    else this.byHash.set(h, name);
    this.last = name;
  }

  private hash(name: string): bigint {
    return xxh64(this.bytes.subarray(0, this.bytes.write(name, 'utf8')));
  }
}

/**
 * The input's validation block as writer input, record for record: a block with no page size
 * record gets none (`pageSize: undefined` overrides the one the writer adds by default), so a
 * block of exactly the maximum size (section 9) stays within it.
 */
function carriedValidation(image: ImageReader, o: ConvertOptions): ValidationInput {
  const v = toValidationInput(image.validation);
  const sameChunks = (o.chunkSize ?? image.chunkSize) === image.chunkSize;
  if (o.hotList !== undefined || !sameChunks) {
    const skipped = (v.skipped ?? []).filter((r) => r.type !== HOT_LIST_RECORD);
    if (o.hotList) skipped.push({ type: HOT_LIST_RECORD, flags: 0, payload: encodeHotList(o.hotList) });
    v.skipped = skipped;
  }
  return image.validation.pageSize === undefined ? { ...v, pageSize: undefined } : v;
}

async function transcode(image: ImageReader, output: string, o: ConvertOptions): Promise<WriteSummary> {
  const nameOf = regionNames(image, output); // KEY_REQUIRED or LIMIT_EXCEEDED before any file is created
  const count = image.regionCount;
  const compress = o.compress ?? image.compression;
  const encrypt = o.encrypt ?? (image.encryption as CipherName);
  const key = o.outKey ?? o.key;
  if (encrypt !== 'none' && key === undefined) throw new TypeError(`expected outKey or key to encrypt ${output} with ${encrypt}, got neither`);
  const layout = o.layout ?? (image.sparse && compress === 'none' && encrypt === 'none' ? 'sparse' : 'compact');
  let total = 0;
  for (let i = 0; i < count; i++) { const r = image.region(i); if (!r.isGap) total += Number(r.length); }
  const writer = await ImageWriter.create(output, {
    pageSize: image.pageSize,
    chunkSize: o.chunkSize ?? image.chunkSize,
    compress,
    layout,
    ...(encrypt !== 'none' ? { encrypt, key } : {}),
    validation: carriedValidation(image, o),
    created: image.header.created,
    ...(o.engine !== undefined ? { engine: o.engine } : {}),
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
    ...(o.fsync !== undefined ? { fsync: o.fsync } : {}),
    ...(o.scrypt !== undefined ? { scrypt: o.scrypt } : {}),
    ...(o.mode !== undefined ? { mode: o.mode } : {}),
  });
  let done = 0;
  o.onProgress?.(0, total);
  try {
    // One region at a time from the region section in place (image.regions would keep 2^20
    // Region objects, about 250 MiB).
    for (let i = 0; i < count; i++) {
      const r = image.region(i);
      if (r.isGap) {
        await writer.addGap({ address: r.address, length: r.length, name: nameOf(r), shared: r.shared, fileOffset: r.fileOffset });
        continue;
      }
      const data = (async function* () {
        // Fresh 8 MiB pieces (the writer keeps views of them until they are stored), one read
        // ahead; a run of zero chunks is carried as a run ({ zeros }), never made into bytes.
        for await (const piece of readSegments(image, r.address, r.length)) {
          yield piece;
          done += isZeroRun(piece) ? piece.zeros : piece.length;
          o.onProgress?.(done, total);
        }
      })();
      // The kind byte, not its name: a kind this version does not know is kept (section 8.1).
      await writer.addRegion({ address: r.address, data, prot: r.prot, kind: r.kindId, name: nameOf(r), shared: r.shared, fileOffset: r.fileOffset });
    }
    return await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}
