/**
 * Cleanup on interruption: one process-wide registry of synchronous cleanups (remove a
 * temporary file, resume a stopped process) run when the process is told to stop.
 *
 * While at least one cleanup is registered, the registry listens to SIGINT, SIGTERM and SIGHUP
 * (and to `exit`). On one of those signals it takes every registered cleanup, runs them
 * (newest first, each once, a throw ignored) while its listeners stay in place, so that a
 * second signal arriving during the cleanups is caught and ignored instead of killing the
 * process before SIGCONT or the unlink; then it removes its listeners and re-raises the same
 * signal with `process.kill(process.pid, signal)` only when no other listener for that signal
 * remains. So:
 * - a program that does not handle the signal dies of it as it would have without crimg (exit
 *   status 128 + signal number in a shell, `signal` set for a parent), with nothing left behind;
 * - a host application that listens to the signal itself keeps control: its listener runs as
 *   usual and the process goes on; crimg's cleanups have run, so a writer interrupted this way
 *   has lost its temporary file and its next call fails (its image is abandoned).
 * On `exit` (process.exit, the end of the event loop) the cleanups run too, with no re-raise:
 * an unfinished writer's temporary file never outlives the process.
 *
 * Cleanups must be synchronous (a signal listener cannot wait): unlinkSync, process.kill.
 * Nothing survives SIGKILL; a temporary file it leaves is reported by the next writer of the
 * same target (image/_output-file.ts).
 *
 * @example
 * const dispose = onInterrupt(() => process.kill(pid, 'SIGCONT'));
 * try { await readWhileStopped(); } finally { dispose(); }
 */

/** The signals that run the cleanups: what terminals, service managers and hangups send. */
export const INTERRUPT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type InterruptSignal = (typeof INTERRUPT_SIGNALS)[number];

/** Registered cleanups, oldest first; an entry object per registration, so one function may be registered twice. */
const cleanups = new Set<{ run: () => void }>();
let listening = false;
/** True while the cleanups run: a signal then is ignored (the first one is re-raised after). */
let running = false;

const onSignal = (signal: NodeJS.Signals): void => {
  if (running) return;
  runAll();
  // Another listener (the host's) decides what the signal means; with none, die of it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
};
const onExit = (): void => {
  runAll();
};

/**
 * Registers `cleanup` to run synchronously on SIGINT, SIGTERM, SIGHUP or process exit.
 * @returns its disposer: call it when the cleanup is no longer needed (the work completed or
 *   was undone); calling it again does nothing.
 * @throws TypeError when `cleanup` is not a function
 */
export function onInterrupt(cleanup: () => void): () => void {
  if (typeof cleanup !== 'function') throw new TypeError(`expected a cleanup function, got ${typeof cleanup}`);
  const entry = { run: cleanup };
  cleanups.add(entry);
  listen();
  return () => {
    if (!cleanups.delete(entry)) return;
    if (cleanups.size === 0) unlisten();
  };
}

/** The number of cleanups registered now (for tests and diagnostics). */
export function pendingInterruptCleanups(): number {
  return cleanups.size;
}

/**
 * Runs and forgets every cleanup, newest first, then stops listening. The listeners stay
 * until the cleanups are done: a signal in between finds `running` set and is ignored
 * (removing them first would let it take the default action, death, mid-cleanup).
 */
function runAll(): void {
  const list = [...cleanups].reverse();
  cleanups.clear();
  running = true;
  try {
    for (const c of list) {
      try {
        c.run();
      } catch {
        // A cleanup that fails must not stop the others (nor the re-raise).
      }
    }
  } finally {
    running = false;
    unlisten();
  }
}

function listen(): void {
  if (listening) return;
  listening = true;
  for (const s of INTERRUPT_SIGNALS) process.on(s, onSignal);
  process.on('exit', onExit);
}

function unlisten(): void {
  if (!listening) return;
  listening = false;
  for (const s of INTERRUPT_SIGNALS) process.removeListener(s, onSignal);
  process.removeListener('exit', onExit);
}
