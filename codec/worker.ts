/**
 * Worker thread body of the chunk pool (`pool.ts`): runs {@link runJob} for each request and
 * replies with the result, transferring result buffers. Loaded as built JavaScript
 * (`build/codec/worker.js`).
 */
import { parentPort } from 'node:worker_threads';
import { runJob, serializeError, transferable, type JobReply, type JobRequest } from './_jobs.js';

if (!parentPort) throw new Error('codec/worker.js must be started as a worker thread by codec/pool.js');
const port = parentPort;

port.on('message', (req: JobRequest) => {
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
});
