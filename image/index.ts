/**
 * The image floor (`crimg/image`): reading and writing whole images over random-access sources,
 * with the chunk pipelines, keying and host description. No restore (see `crimg/restore`).
 */
export { ImageReader, openReader, openWith } from './reader.js';
export type { ImageParts, OpenOptions, VerifyReport, VerifyError, VerifyOptions, CompatibilityReport } from './reader.js';
export { ImageWriter, parseCompress, defaultChunkSize } from './writer.js';
export type { WriterOptions, RegionOptions, GapOptions, RegionData, RegionBytes, FileRange, WriteSummary } from './writer.js';
export { BufferSource, FileSource, toSource } from './source.js';
export type { RandomAccessSource, SourceInput } from './source.js';
export { describeHost, hostPageSize, CPU_FEATURES, featureBitmap, featureName, readCpuFlags } from './host.js';
export type { HostDescription } from './host.js';
export type { KeyInput } from './keying.js';
export { parseKeyFile, keyFromHex, passphraseBytes } from '../codec/keys.js';
