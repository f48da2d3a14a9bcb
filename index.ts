/**
 * crimg: persisted memory images of checkpointed processes.
 * The package's main export (spec/FORMAT.md is the normative format).
 */
export { openImage, Image } from './format/reader.js';
export type { OpenOptions, VerifyReport, VerifyError, VerifyOptions, CompatibilityReport } from './format/reader.js';
export { ImageWriter } from './format/writer.js';
export type { WriterOptions, RegionOptions, GapOptions, RegionData, WriteSummary } from './format/writer.js';
export { CrimgError, ERROR_CODES, isCrimgError } from './format/errors.js';
export type { CrimgErrorCode } from './format/errors.js';
export { describeHost, CPU_FEATURES, featureBitmap } from './format/host.js';
export type { HostDescription } from './format/host.js';
export { BufferSource, FileSource } from './format/source.js';
export type { RandomAccessSource, SourceInput } from './format/source.js';
export type { Region } from './format/index-table.js';
export type { Validation, ValidationInput } from './format/validation.js';
export type { KeyInput } from './format/keying.js';
export {
  DEFAULT_CHUNK_SIZE, REGION_KINDS, CHUNK_ZERO, CHUNK_RAW, CHUNK_ENCODED, CHUNK_ENCRYPTED,
  parseProt, protToString, parseKind, kindName,
} from './format/constants.js';
export { featureName } from './format/host.js';
export { parseBigNumber, toBigAddress } from './format/address.js';
export { parseCompress } from './format/writer.js';
export { parseKeyFile, keyFromHex } from './codec/keys.js';
export * from './capture/index.js';
