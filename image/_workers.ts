/**
 * How many worker threads the chunk pipelines start when the caller does not say
 * (`workers` of WriterOptions with the portable engine, and of OpenOptions).
 */
import { availableParallelism } from 'node:os';

/**
 * Worker threads by default: one per core beyond the calling thread's, at most 8; none on 2
 * cores or fewer. The calling thread stays busy with reads, checksums, writes and the workers'
 * messages (a structured clone or a copy into shared memory, and a round trip, each batch), so
 * a worker only pays for itself with a core of its own. Measured on a 2-vCPU machine (256 MiB
 * deflate:1 image, 16 KiB chunks): a full read ran at 490-530 MiB/s inline against 400-490
 * with 2 workers. Encoding (the portable engine; the node engine uses libuv's pool instead)
 * follows the same rule: its workers compete with the same calling thread for the same cores.
 */
export function defaultWorkers(): number {
  const cores = availableParallelism();
  return cores <= 2 ? 0 : Math.min(cores - 1, 8);
}
