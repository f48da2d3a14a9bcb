/**
 * The format floor (`crimg/format`): the byte layout of spec/FORMAT.md as pure encode/decode,
 * with no I/O, no engines and no native code. The checksum is injected by the caller.
 */
export * from './constants.js';
export * from './errors.js';
export type { Checksum } from './checksum.js';
export { toBigAddress, parseBigNumber } from './address.js';
export { hex, toHex } from './bytes.js';
export { encodeHeader, decodeHeader, peekHeaderSize } from './header.js';
export type { Header, HeaderFields } from './header.js';
export { encodeValidation, decodeValidation, toValidationInput } from './validation.js';
export type { Validation, ValidationInput, ParentRecord } from './validation.js';
export { PARENT_RECORD_FIXED, PARENT_HASH_LENGTH } from './validation.js';
export type { SkippedRecord } from './validation.js';
export { encodeFooter, decodeFooter, checkFooter } from './footer.js';
export type { Footer } from './footer.js';
export { encodeRegionSection, decodeRegionSection, writeChunkRecord, ChunkTable } from './index-table.js';
export type { Region, RegionRecord, ChunkRecord, ChunkBounds, RegionSectionContext } from './index-table.js';
export { HEADER, CHUNK_RECORD, CHUNK_RECORD_WORDS, REGION_RECORD, FOOTER, offsetOf, sizeOf, decodeFields, encodeFields } from './fields.js';
export type { Field, FieldName, FieldTable, FieldType, FieldValues } from './fields.js';
export { FORM, chunkFormViolation, chunkFormProblem } from './chunk-form.js';
export type { ChunkForm, FormViolation } from './chunk-form.js';
