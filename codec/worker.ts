/**
 * Worker thread body of the chunk pool (`pool.ts`): runs {@link runJob} for each request and
 * replies with the result, transferring result buffers. Loaded as built JavaScript
 * (`build/codec/worker.js`).
 */
import { parentPort } from 'node:worker_threads';
import { runJob, serializeError, transferable, type ChunkJob, type JobReply, type JobRequest } from './_jobs.js';
import { loadPortableEngine, portableEngineLoaded } from './portable.js';

if (!parentPort) throw new Error('codec/worker.js must be started as a worker thread by codec/pool.js');
const port = parentPort;

/** Whether a job runs the portable engine (its libraries load on the first such job). */
function wantsPortable(job: ChunkJob): boolean {
  if (job.op === 'decodeMany') return job.parts.some((p) => p.params.engine === 'portable');
  return job.params.engine === 'portable';
}

port.on('message', (req: JobRequest) => {
  if (!portableEngineLoaded() && wantsPortable(req.job)) {
    // The pool matches replies by id, so later jobs answered before this one are fine.
    loadPortableEngine().then(() => handle(req), (e: unknown) => port.postMessage({ id: req.id, ok: false, error: serializeError(e) } satisfies JobReply));
    return;
  }
  handle(req);
});

function handle(req: JobRequest): void {
  let reply: JobReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const result = runJob(req.job);
    if (result instanceof Uint8Array) {
      const t = transferable(result, true);
      transfer = t.transfer;
      reply = { id: req.id, ok: true, result: t.view };
    } else {
      const t = transferable(result.stored, true);
      transfer = t.transfer;
      reply = { id: req.id, ok: true, result: { ...result, stored: t.view } };
    }
  } catch (e) {
    reply = { id: req.id, ok: false, error: serializeError(e) };
  }
  port.postMessage(reply, transfer);
}
