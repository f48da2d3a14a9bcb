/**
 * crimg: persisted memory images of checkpointed processes.
 * The package's main export (spec/FORMAT.md is the normative format). Each floor also has its
 * own entry point: `crimg/format`, `crimg/image`, `crimg/restore`, `crimg/capture`.
 */
export { openImage, Image } from './restore/image.js';
export { restoreImage } from './restore/restore.js';
export type { RestoreOptions, RestoreResult, RestoredRegion, RestoreAdvice } from './restore/restore.js';
export { ImageReader, openReader } from './image/reader.js';
export type { OpenOptions, VerifyReport, VerifyError, VerifyOptions, CompatibilityReport } from './image/reader.js';
export type { ReadStreamOptions } from './image/reader.js';
export { chunkStats } from './image/stats.js';
export type { ChunkStats, ChunkUsage, ChunkForms, RegionChunkStats, KindChunkStats } from './image/stats.js';
export { diffImages } from './image/diff.js';
export type { ImageDiff, DiffOptions, RegionChange, RegionField, MemoryDifference, AddressRange } from './image/diff.js';
export { ImageWriter, parseCompress } from './image/writer.js';
export type { WriterOptions, RegionOptions, GapOptions, RegionData, FileRange, WriteSummary } from './image/writer.js';
export { convertImage } from './image/convert.js';
export type { ConvertOptions } from './image/convert.js';
export { optimizeImage } from './image/optimize.js';
export type { OptimizeOptions, OptimizeSummary } from './image/optimize.js';
export { flattenImage } from './image/flatten.js';
export type { FlattenOptions } from './image/flatten.js';
export type { ParentInput, ParentSpec } from './image/_parent.js';
export { CrimgError, ERROR_CODES, isCrimgError } from './format/errors.js';
export type { CrimgErrorCode } from './format/errors.js';
export { ERROR_CATEGORY, errorCategory } from './format/errors.js';
export type { CrimgErrorCategory } from './format/errors.js';
export { describeHost, CPU_FEATURES, featureBitmap, featureName } from './image/host.js';
export type { HostDescription } from './image/host.js';
export { BufferSource, FileSource } from './image/source.js';
export type { RandomAccessSource, SourceInput } from './image/source.js';
export type { Region } from './format/index-table.js';
export type { Validation, ValidationInput, ParentRecord } from './format/validation.js';
export type { KeyInput } from './image/keying.js';
export {
  DEFAULT_CHUNK_SIZE, REGION_KINDS, CHUNK_ZERO, CHUNK_RAW, CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_IN_PARENT,
  parseProt, protToString, parseKind, kindName,
} from './format/constants.js';
export { parseBigNumber, toBigAddress } from './format/address.js';
export { parseKeyFile, keyFromHex } from './codec/keys.js';
export * from './capture/index.js';
