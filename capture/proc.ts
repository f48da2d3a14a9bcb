/**
 * The target process as /proc and signals show it: existence, state, name, stopping and
 * resuming, and the errors that name what the kernel refused and why.
 */
import { readdir, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { CrimgError } from '../format/errors.js';
import { NO_SUCH_PROCESS, PERMISSION_DENIED, PROCESS_EXITED } from './_codes.js';

/** Fields of /proc/PID/stat (proc(5)) the capture uses. */
export interface ProcStat {
  pid: number;
  /** The command name (comm), at most 15 bytes, as the kernel keeps it. */
  comm: string;
  /** R running, S sleeping, D disk sleep, T stopped, t tracing stop, Z zombie, X dead... */
  state: string;
  ppid: number;
  /** Kernel flags (field 9): PF_KTHREAD marks a kernel thread. */
  flags: number;
  /** Start time after boot in clock ticks (field 22): with the pid, names one process for good. */
  startTime: string;
}

/** PF_KTHREAD of include/linux/sched.h: the task is a kernel thread (no user memory). */
const PF_KTHREAD = 0x00200000;

/**
 * Parses /proc/PID/stat text: "PID (COMM) STATE PPID ...". The name may hold spaces and
 * parentheses, so it ends at the last ")".
 * @throws RangeError when the text is not a stat line.
 */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new RangeError(`expected a /proc/PID/stat line, got ${JSON.stringify(text.slice(0, 80))}`);
  // Fields from 3 on (state), so field N is rest[N - 3].
  const rest = text.slice(close + 2).split(' ');
  return {
    pid: Number(text.slice(0, open).trim()), comm: text.slice(open + 1, close), state: rest[0] ?? '?', ppid: Number(rest[1]),
    flags: Number(rest[6] ?? 0), startTime: rest[19] ?? '',
  };
}

/** /proc/PID/stat, or null when the process is gone. */
export async function readStat(pid: number): Promise<ProcStat | null> {
  try {
    return parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ESRCH') return null;
    throw e;
  }
}

/** True while the process exists and is neither a zombie nor dead. */
export async function isAlive(pid: number): Promise<boolean> {
  const s = await readStat(pid).catch(() => null);
  return s !== null && s.state !== 'Z' && s.state !== 'X';
}

/** The value of /proc/sys/kernel/yama/ptrace_scope, or null without Yama. */
export function ptraceScope(): number | null {
  try {
    return Number(readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim());
  } catch {
    return null;
  }
}

const YAMA: Record<number, string> = {
  0: 'classic: any process of the same user id',
  1: 'restricted: only descendants of the reader, or processes that named it with prctl(PR_SET_PTRACER)',
  2: 'admin-only: only with CAP_SYS_PTRACE',
  3: 'no attach: nobody, until reboot',
};

/** The hint of a permission error: which setting decides, and its value on this host. */
export function ptraceHint(): string {
  const scope = ptraceScope();
  const yama = scope === null
    ? 'this kernel has no Yama module (/proc/sys/kernel/yama/ptrace_scope is absent), so the same user id suffices'
    : `/proc/sys/kernel/yama/ptrace_scope is ${scope} (${YAMA[scope] ?? 'unknown value'})`;
  return `reading another process's memory needs ptrace access: the same user id (and a process that is not set-user-id or non-dumpable), or CAP_SYS_PTRACE (run as root); ${yama}`;
}

export function noSuchProcess(pid: number, why = 'no such process'): CrimgError {
  return new CrimgError(NO_SUCH_PROCESS, `process ${pid}: ${why}`, { hint: 'check the pid (ps -p PID)' });
}

/** `what`: what was refused, naming the process ("signal (and so stop) process 12"). */
export function permissionDenied(what: string, errno: string, cause?: unknown): CrimgError {
  return new CrimgError(PERMISSION_DENIED, `permission denied: cannot ${what} (${errno})`, { hint: ptraceHint(), cause });
}

export function processExited(pid: number, during: string): CrimgError {
  return new CrimgError(PROCESS_EXITED, `process ${pid} exited during capture (${during})`, { hint: 'the image was not written; capture a process that keeps running' });
}

/**
 * Checks that `pid` names a live process this one may signal.
 * @throws CrimgError no such process / zombie / permission denied.
 */
export async function checkProcess(pid: number): Promise<ProcStat> {
  try {
    process.kill(pid, 0);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === 'ESRCH') throw noSuchProcess(pid);
    if (code === 'EPERM') throw permissionDenied(`signal (and so stop) process ${pid}`, code, e);
    throw e;
  }
  const stat = await readStat(pid);
  if (stat === null) throw noSuchProcess(pid);
  if ((stat.flags & PF_KTHREAD) !== 0) {
    // A kernel thread has no user memory and ignores SIGSTOP; /proc/PID/mem answers ESRCH.
    throw new CrimgError('INVALID_ARGUMENT', `process ${pid} (${stat.comm}) is a kernel thread: it has no user-space memory to capture`, { hint: 'capture a user-space process (ps -o pid,comm --ppid 2 lists the kernel threads)' });
  }
  if (stat.state === 'Z' || stat.state === 'X') throw noSuchProcess(pid, 'it is a zombie: it has exited and holds no memory any more');
  return stat;
}

/** States of all threads of `pid`, or null when the process is gone. */
export async function threadStates(pid: number): Promise<string[] | null> {
  let tids: string[];
  try {
    tids = await readdir(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const states: string[] = [];
  for (const tid of tids) {
    try {
      states.push(parseStat(await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8')).state);
    } catch {
      // the thread exited meanwhile
    }
  }
  return states.length === 0 ? null : states;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until every thread of `pid` is in a stop (T, t) after SIGSTOP: the signal is
 * asynchronous, and a thread in uninterruptible sleep (D) stops only when its system call ends.
 * @throws CrimgError when the process exits, or does not stop within `timeoutMs`.
 */
export async function waitStopped(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 0;
  for (;;) {
    const states = await threadStates(pid);
    if (states === null || states.every((s) => s === 'Z' || s === 'X')) throw processExited(pid, 'while stopping it');
    if (states.every((s) => s === 'T' || s === 't' || s === 'Z' || s === 'X')) return;
    if (Date.now() >= deadline) {
      throw new CrimgError('IO_ERROR', `process ${pid} did not stop within ${timeoutMs} ms after SIGSTOP (thread states: ${states.join(' ')})`, {
        hint: 'a thread in uninterruptible sleep (D) stops only when its system call returns; try again, or raise the timeout (crimg capture --stop-timeout MS, CaptureOptions.stopTimeoutMs)',
      });
    }
    await sleep(delay);
    delay = Math.min(10, delay + 1);
  }
}

/** Sends `signal`; false when the process is gone. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}
