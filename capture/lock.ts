/**
 * One capture of a process at a time (issue 13, item 4): two overlapping captures would each
 * send SIGSTOP and SIGCONT, and the first one's SIGCONT would resume the process while the
 * second still reads it, so the second image would be torn while claiming to be consistent.
 *
 * The lock is a listening Unix socket in Linux's abstract namespace named after the process id
 * and its start time (/proc/PID/stat field 22), `crimg-capture:PID:STARTTIME`: binding it is
 * atomic, a second bind fails with EADDRINUSE, a reused pid has another start time (no
 * collision), and the kernel releases the name when its holder exits however it exits (SIGKILL
 * included), so a dead holder's lock is taken over at once and there is no file to leave
 * behind. It is seen by every process of the same network namespace (a capture from another
 * container of the host with its own network namespace does not see it). Anyone there may bind
 * the name too, so another user can delay a capture, not alter it.
 */
import { createServer, type Server } from 'node:net';
import { CrimgError } from '../format/errors.js';
import { PROCESS_BUSY } from './_codes.js';

/** A held capture lock. */
export interface CaptureLock {
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

/** The abstract socket name of the lock of process `pid` started at `startTime` (clock ticks). */
export function lockName(pid: number, startTime: string): string {
  return `\0crimg-capture:${pid}:${startTime}`;
}

function tryBind(name: string): Promise<Server | null> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    const onError = (e: NodeJS.ErrnoException): void => {
      server.close();
      if (e.code === 'EADDRINUSE') resolve(null);
      else reject(e);
    };
    server.once('error', onError);
    server.listen(name, () => {
      server.off('error', onError);
      server.on('error', () => {});
      // The lock must not keep a caller's event loop alive.
      server.unref();
      resolve(server);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Takes the capture lock of process `pid` (started at `startTime`), waiting up to `waitMs`
 * for another capture to finish.
 * @throws CrimgError PROCESS_BUSY when another capture holds it after `waitMs`; IO_ERROR when
 *   the socket cannot be created at all.
 */
export async function lockProcess(pid: number, startTime: string, waitMs: number): Promise<CaptureLock> {
  const name = lockName(pid, startTime);
  const deadline = Date.now() + waitMs;
  let delay = 5;
  for (;;) {
    let server: Server | null;
    try {
      server = await tryBind(name);
    } catch (e) {
      throw new CrimgError('IO_ERROR', `cannot create the capture lock of process ${pid} (an abstract Unix socket): ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
    }
    if (server !== null) {
      const held = server;
      let released = false;
      return {
        release: () => {
          if (released) return Promise.resolve();
          released = true;
          return new Promise((r) => { held.close(() => r()); });
        },
      };
    }
    if (Date.now() >= deadline) {
      throw new CrimgError(PROCESS_BUSY, `process ${pid} is being captured by another capture${waitMs > 0 ? ` that did not finish within ${waitMs} ms` : ''}`, {
        hint: 'wait for it to finish, or let this one wait (crimg capture --lock-wait MS, CaptureOptions.lockWaitMs)',
      });
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(50, delay * 2);
  }
}
