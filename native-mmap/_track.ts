/**
 * The addon's bindings for tracking another process's writes without soft-dirty bits
 * (native-mmap/src/track_writes.cc; capture/_precopy.ts uses them): userfaultfd's asynchronous
 * write-protect mode and /proc/PID/pagemap's PAGEMAP_SCAN (Linux 6.7+, x86-64).
 */
export interface TrackBindings {
  /**
   * A userfaultfd of process `pid`'s memory, asynchronous write-protect mode on: one thread of
   * the process is stopped for well under a millisecond (PTRACE_SEIZE, no SIGSTOP) and runs
   * userfaultfd(2) from its vdso; the descriptor is taken over (pidfd_getfd) and the process's
   * copy closed. Needs ptrace access to the process. Close it with {@link closeFd}: the kernel
   * then unregisters the memory and clears every protection.
   * `holdMs` (tests only, at most 10000): the thread is kept stopped that long mid-injection.
   * @throws Error with `code` (the errno's name) and `syscall` (the step that failed).
   */
  trackWritesOpen(pid: number, holdMs?: number): number;
  /**
   * Registers the mapping [start, end) for write protection and protects its present and
   * swapped pages (untouched pages stay as they are: a write there shows as written).
   * @returns 0, or the errno (EBUSY: the process tracks it itself; EINVAL: not a whole mapping).
   */
  trackWritesProtect(uffd: number, pagemapFd: number, start: bigint, end: bigint): number;
  /**
   * The pages of [start, end) written since protected that hold memory (present or swapped),
   * as ascending, merged [start, end) pairs; `reprotect` protects them again in the same walk.
   * @throws Error (syscall 'PAGEMAP_SCAN'; EPERM when a mapping there is not tracked).
   */
  trackWritesScan(pagemapFd: number, start: bigint, end: bigint, reprotect: boolean): BigUint64Array;
  /** Closes a descriptor the addon handed out. */
  closeFd(fd: number): void;
}
