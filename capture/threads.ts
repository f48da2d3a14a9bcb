/**
 * The stack pointer of every thread of a stopped process, so that the mappings holding the
 * thread stacks can be named (kernels since 4.5 print `[stack]` for the main thread only).
 *
 * /proc/PID/task/TID/syscall (fs/proc/base.c, proc_pid_syscall) prints, for a task that is
 * not running, "NR ARG1 ... ARG6 SP PC" when it is in a system call, "-1 SP PC" when it is
 * not (stopped by a signal in user mode), and "running" for a running task: the stack pointer
 * is the second-to-last field. Reading it needs the same ptrace access as /proc/PID/mem.
 * /proc/PID/task/TID/stat's kstkesp (field 29) is the fallback; kernels print 0 there unless
 * the task is being dumped, so a 0 means "unknown".
 */
import { readdir, readFile } from 'node:fs/promises';

/**
 * The stack pointer in a /proc/PID/task/TID/syscall text, or null ("running", or not such a
 * line). Pure.
 */
export function parseSyscallSp(text: string): bigint | null {
  const f = text.trim().split(/\s+/);
  // "-1 SP PC" outside a system call, "NR ARG1..ARG6 SP PC" (NR >= 0) inside one.
  if (!(f.length === 3 && f[0] === '-1') && !(f.length === 9 && /^\d+$/.test(f[0]!))) return null;
  const sp = f[f.length - 2]!;
  if (!/^0x[0-9a-f]{1,16}$/.test(sp)) return null;
  const v = BigInt(sp);
  return v === 0n ? null : v;
}

/** kstkesp (field 29) of a /proc/PID/task/TID/stat text, or null when 0 or absent. Pure. */
export function parseStatSp(text: string): bigint | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // Fields from 3 on: field 29 is index 26.
  const f = text.slice(close + 2).split(' ')[26];
  if (f === undefined || !/^\d{1,20}$/.test(f)) return null;
  const v = BigInt(f);
  return v === 0n || v >= 1n << 64n ? null : v;
}

/**
 * Stack pointers of the threads of `pid` by thread id (call while it is stopped). Threads whose
 * pointer cannot be read (exited meanwhile, running, refused) are left out: a mapping then keeps
 * the kind it has. Never throws for a thread; an unreadable task directory gives an empty map.
 */
export async function threadStackPointers(pid: number): Promise<Map<number, bigint>> {
  const out = new Map<number, bigint>();
  let tids: string[];
  try {
    tids = await readdir(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    if (!/^\d+$/.test(tid)) continue;
    const sp = parseSyscallSp(await readFile(`/proc/${pid}/task/${tid}/syscall`, 'utf8').catch(() => ''))
      ?? parseStatSp(await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => ''));
    if (sp !== null) out.set(Number(tid), sp);
  }
  return out;
}
