/**
 * The image floor (`crimg/image`): reading and writing whole images over random-access sources,
 * with the chunk pipelines, keying and host description. No restore (see `crimg/restore`).
 */
export { ImageReader, openReader, openWith } from './reader.js';
export type { ImageParts, OpenOptions, VerifyReport, VerifyError, VerifyOptions, CompatibilityReport } from './reader.js';
export { DEFAULT_PIECE_SIZE } from './reader.js';
export type { ReadStreamOptions } from './reader.js';
export { chunkStats } from './stats.js';
export type { ChunkStats, ChunkStatsOptions, ChunkUsage, ChunkForms, RegionChunkStats, KindChunkStats } from './stats.js';
export { readSegments, isZeroRun } from './segments.js';
export type { Segment, SegmentOptions, SegmentedImage } from './segments.js';
export { diffImages } from './diff.js';
export type { ImageDiff, DiffOptions, RegionChange, RegionField, MemoryDifference, AddressRange } from './diff.js';
export { ImageWriter, parseCompress, defaultChunkSize } from './writer.js';
export type { WriterOptions, RegionOptions, GapOptions, RegionData, RegionBytes, RegionPiece, ZeroRun, ParentRun, FileRange, PresentRange, WriteSummary } from './writer.js';
export { OutputFile, createExclusive, DEFAULT_OUTPUT_MODE } from './_output-file.js';
export type { OutputFileOptions } from './_output-file.js';
export { onInterrupt, INTERRUPT_SIGNALS } from './_interrupt.js';
export type { InterruptSignal } from './_interrupt.js';
export { convertImage } from './convert.js';
export type { ConvertOptions } from './convert.js';
export { optimizeImage } from './optimize.js';
export { HOT_LIST_RECORD, hotListChunks } from './optimize-hot-list.js';
export type { OptimizeOptions, OptimizeSummary } from './optimize.js';
export { flattenImage } from './flatten.js';
export type { FlattenOptions } from './flatten.js';
export { parentIndexHash } from './_parent.js';
export type { ParentInput, ParentSpec } from './_parent.js';
export { BufferSource, FileSource, toSource } from './source.js';
export type { RandomAccessSource, SourceInput } from './source.js';
export { RemoteSource, isRemoteUrl } from './remote/source.js';
export type { RemoteOptions, RemoteStats } from './remote/source.js';
export { S3Upload } from './remote/output.js';
export type { RemoteOutputOptions } from './remote/output.js';
export type { S3Options } from './remote/_s3.js';
export { describeHost, hostPageSize, CPU_FEATURES, featureBitmap, featureName, readCpuFlags } from './host.js';
export type { HostDescription } from './host.js';
export type { KeyInput } from './keying.js';
export { parseKeyFile, keyFromHex, passphraseBytes } from '../codec/keys.js';
