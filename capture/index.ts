/**
 * The capture layer (issue 7): live processes and ELF core files to and from images. Above the
 * format layer (it uses ImageWriter and openImage), below the CLI.
 */
export { captureProcess } from './process.js';
export type { CaptureOptions, CaptureResult } from './process.js';
export { WriteTracking } from './_since.js';
export { importCore } from './elf-import.js';
export type { ImportCoreOptions, ImportCoreResult } from './elf-import.js';
export { exportCore } from './elf-export.js';
export type { ExportCoreOptions, ExportCoreResult } from './elf-export.js';
export { fileGapName, markThreadStacks, parseFileGapName, parseMaps, parseSmapsWritten, planMapping } from './proc-maps.js';
export type { MapsEntry, MappingPlan } from './proc-maps.js';
