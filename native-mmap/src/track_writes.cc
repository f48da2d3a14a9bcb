// Write tracking of another process without soft-dirty bits (capture/_precopy.ts, issue 19):
// userfaultfd's asynchronous write-protect mode (Linux 6.7+: UFFD_FEATURE_WP_ASYNC) and the
// PAGEMAP_SCAN ioctl of /proc/PID/pagemap, the pair the kernel added as soft-dirty's
// successor. A write to a protected page is resolved by the kernel itself (no handler, no
// thread of ours): it just clears the page's protection, and PAGEMAP_SCAN reports the page as
// written until it is protected again.
//
// A userfaultfd belongs to the memory of the process that created it, so the process must make
// it: trackWritesOpen stops one thread of the target with PTRACE_SEIZE + PTRACE_INTERRUPT
// (PTRACE_SEIZE sends no SIGSTOP), has it execute userfaultfd(2) from a `syscall` instruction
// already in its vdso (nothing of the target's memory is written: its other threads run on),
// takes the descriptor over with pidfd_getfd(2), has the thread close(2) its own copy, restores
// its registers (a system call the stop interrupted is restarted as the kernel would) and
// detaches. From then on every ioctl is ours; when our descriptor closes (at the end of the
// capture, or when this process dies) the kernel unregisters the memory and clears every
// protection.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <string>
#include <vector>

#include <napi.h>

#include "args.h"
#include "bindings.h"
#include "errors.h"

// Older C library headers than the kernel (Debian 12's are 6.1): the ABI is fixed, so spell it.
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef PAGEMAP_SCAN
struct page_region {
  uint64_t start, end, categories;
};
struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
      category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#endif

namespace crimg {
namespace {

#if defined(__x86_64__)

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
struct RseqConfiguration {
  uint64_t rseq_abi_pointer;
  uint32_t rseq_abi_size, signature, flags, pad;
};

struct Stage {
  const char* what = nullptr;
  int err = 0;
};

// The thread being traced, and whether its exit is left unreaped: only the leader of a child of
// this process (Node's child_process reaps it). Any other exit is reaped here, which hands a
// leader back to its real parent and lets a thread group whose thread we traced end.
struct Tracee {
  pid_t tid;
  bool leave_exit;
};

// Waits for the next ptrace stop of the traced thread: 0 and its status, or the errno (ESRCH when it exited).
int WaitStop(const Tracee& t, int* status) {
  for (;;) {
    siginfo_t si{};
    if (waitid(P_PID, t.tid, &si, WEXITED | WSTOPPED | __WALL | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (si.si_code != CLD_TRAPPED && si.si_code != CLD_STOPPED) {
      if (!t.leave_exit) waitpid(t.tid, status, __WALL);
      return ESRCH;
    }
    const pid_t r = waitpid(t.tid, status, __WALL);
    if (r == t.tid) return WIFSTOPPED(*status) ? 0 : ESRCH;
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? errno : ESRCH;
  }
}

// After a ptrace request failed with ESRCH (the traced thread was killed and is exiting): waits
// for its exit and reaps it as WaitStop does, so that its parent sees it (no-op once reaped).
void ReapGone(const Tracee& t) {
  for (;;) {
    siginfo_t si{};
    if (waitid(P_PID, t.tid, &si, WEXITED | __WALL | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      return;  // ECHILD: reaped already, or not ours to wait for
    }
    int status = 0;
    if (!t.leave_exit) waitpid(t.tid, &status, __WALL);
    return;
  }
}

// Waits for the PTRACE_EVENT_STOP a PTRACE_INTERRUPT asked for. A signal-delivery-stop on the
// way is let through unchanged (delivered as it would have been). 0, or the errno; EAGAIN for
// a group-stop (job control stopped the process meanwhile: it is left so).
int WaitInterrupt(const Tracee& t) {
  for (;;) {
    int status = 0;
    if (const int err = WaitStop(t, &status)) return err;
    if (status >> 16 == PTRACE_EVENT_STOP) {
      const int sig = WSTOPSIG(status);
      return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU ? EAGAIN : 0;
    }
    if (status >> 16 != 0 || ptrace(PTRACE_CONT, t.tid, nullptr, WSTOPSIG(status)) != 0) return EINTR;
  }
}

// The state letter of /proc/PID/task/TID/stat, or 0.
char ThreadState(pid_t pid, pid_t tid) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
  FILE* f = fopen(path, "re");
  if (!f) return 0;
  char buf[512];
  const size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char* close_paren = strrchr(buf, ')');
  return close_paren && close_paren[1] == ' ' ? close_paren[2] : 0;
}

// Whether thread `tid` sits in a system call that a ptrace stop makes return EINTR instead of
// restarting it (signal(7): epoll_wait, epoll_pwait(2), sigtimedwait, semop, semtimedop).
bool InNonRestartingCall(pid_t pid, pid_t tid) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", pid, tid);
  FILE* f = fopen(path, "re");
  if (!f) return false;
  long nr = -1;
  const int got = fscanf(f, "%ld", &nr);
  fclose(f);
  if (got != 1) return false;  // "running"
  return nr == SYS_epoll_wait || nr == SYS_epoll_pwait || nr == 441 /* epoll_pwait2 */ ||
         nr == SYS_rt_sigtimedwait || nr == SYS_semop || nr == SYS_semtimedop;
}

// A thread of `pid` that PTRACE_INTERRUPT stops at once: running, or in an interruptible sleep
// (not D: a thread in an uninterruptible wait, vfork's parent included, stops only when it
// ends); one not in a call a stop would fail with EINTR when there is one; the leader first.
// 0 when none is.
pid_t ChooseThread(pid_t pid) {
  std::vector<pid_t> tids{pid};
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  if (DIR* d = opendir(path)) {
    for (dirent* e; (e = readdir(d)) != nullptr;) {
      const long tid = strtol(e->d_name, nullptr, 10);
      if (tid > 0 && tid != pid) tids.push_back(static_cast<pid_t>(tid));
    }
    closedir(d);
  }
  pid_t fallback = 0;
  for (const pid_t tid : tids) {
    const char st = ThreadState(pid, tid);
    if (st != 'R' && st != 'S') continue;
    if (!InNonRestartingCall(pid, tid)) return tid;
    if (fallback == 0) fallback = tid;
  }
  return fallback;
}

// The number after `field` (say "PPid:") in the status file `path`, or -1.
long StatusField(const char* path, const char* field) {
  FILE* f = fopen(path, "re");
  if (!f) return -1;
  char line[256];
  long value = -1;
  const size_t n = strlen(field);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, n) == 0) {
      value = atol(line + n);
      break;
    }
  }
  fclose(f);
  return value;
}

// The PPid: of /proc/PID/status, or -1.
pid_t ParentOf(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  return static_cast<pid_t>(StatusField(path, "PPid:"));
}

// The Seccomp: field of /proc/PID/task/TID/status (0: none), or -1.
int SeccompMode(pid_t pid, pid_t tid) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task/%d/status", pid, tid);
  return static_cast<int>(StatusField(path, "Seccomp:"));
}

// The address of a `syscall` instruction (0f 05) in the target's vdso, or 0 with *err set.
uintptr_t FindSyscall(pid_t pid, int* err) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  FILE* f = fopen(path, "re");
  *err = ENOENT;  // no vdso, or none there
  if (!f) {
    *err = errno;
    return 0;
  }
  char line[512];
  unsigned long start = 0, end = 0;
  bool found = false;
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "[vdso]") && sscanf(line, "%lx-%lx", &start, &end) == 2) {
      found = true;
      break;
    }
  }
  fclose(f);
  if (!found || end <= start || end - start > (1u << 20)) return 0;
  snprintf(path, sizeof path, "/proc/%d/mem", pid);
  const int mem = open(path, O_RDONLY | O_CLOEXEC);
  if (mem < 0) {
    *err = errno;
    return 0;
  }
  std::vector<uint8_t> code(end - start);
  const ssize_t n = pread(mem, code.data(), code.size(), static_cast<off_t>(start));
  close(mem);
  for (ssize_t i = 0; i + 1 < n; i++) {
    if (code[i] == 0x0f && code[i + 1] == 0x05) return start + i;
  }
  return 0;
}

// Runs one system call in the stopped traced thread from the instruction at `at` (its signals
// blocked: only SIGSTOP and SIGKILL get through). Its result (a -errno on failure) in
// *result. A SIGSTOP (or job control's group-stop) on the way is kept in *pending, to be
// raised again once the thread is let go. Returns 0 or the errno of the tracing itself.
int Inject(const Tracee& t, const user_regs_struct& saved, uintptr_t at, long nr, long a1, long a2, long* result,
           int* pending) {
  user_regs_struct r = saved;
  r.rip = at;
  r.rax = nr;
  r.orig_rax = -1;  // not in a system call: no restart of the interrupted one on the way
  r.rdi = a1;
  r.rsi = a2;
  r.rdx = r.r10 = r.r8 = r.r9 = 0;
  if (ptrace(PTRACE_SETREGS, t.tid, nullptr, &r) != 0) return errno;
  for (int stop = 0; stop < 2;) {  // system call entry, then exit
    if (ptrace(PTRACE_SYSCALL, t.tid, nullptr, nullptr) != 0) return errno;
    int status = 0;
    if (const int err = WaitStop(t, &status)) return err;
    const int sig = WSTOPSIG(status);
    if (sig == (SIGTRAP | 0x80)) {
      stop++;
    } else if ((status >> 16 == 0 && sig == SIGSTOP) ||
               (status >> 16 == PTRACE_EVENT_STOP && (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU))) {
      *pending = sig;  // a stop on its way: suppressed now (the call goes on), raised at the end
    } else {
      return EINTR;  // a fault of the injected call: give up
    }
  }
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &r) != 0) return errno;
  *result = static_cast<long>(r.rax);
  return 0;
}

// The whole of trackWritesOpen. Returns our descriptor, or -1 with *stage set.
int OpenTracker(pid_t pid, Stage* stage, unsigned hold_ms) {
  const pid_t tid = ChooseThread(pid);
  if (tid == 0) {
    *stage = {"choosing a thread that is running or in an interruptible sleep", ThreadState(pid, pid) == 0 ? ESRCH : EAGAIN};
    return -1;
  }
  const int seccomp = SeccompMode(pid, tid);
  if (seccomp != 0) {
    // A filter may kill the process (or raise SIGSYS in it) for a userfaultfd(2) of ours.
    *stage = {seccomp > 0 ? "checking /proc/PID/status: the process runs under seccomp, which may kill it for a system call made for it"
                          : "reading /proc/PID/status", seccomp > 0 ? EPERM : ESRCH};
    return -1;
  }
  const Tracee traced{tid, tid == pid && ParentOf(pid) == getpid()};
  int err = 0;
  const uintptr_t at = FindSyscall(pid, &err);
  if (at == 0) {
    *stage = {"finding a syscall instruction in the process's vdso", err};
    return -1;
  }
  if (ptrace(PTRACE_SEIZE, tid, nullptr, PTRACE_O_TRACESYSGOOD) != 0) {
    *stage = {"PTRACE_SEIZE", errno};
    return -1;
  }
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
    *stage = {"PTRACE_INTERRUPT", errno};
    ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    return -1;
  }
  if ((err = WaitInterrupt(traced)) != 0) {
    *stage = {"waiting for the thread to stop", err};
    if (err != ESRCH) ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    return -1;
  }
  // Stopped where a signal would be delivered, registers as they are. From here on it goes
  // back through the same point: the kernel then restarts (or, for a signal with a handler,
  // interrupts) the system call it sat in, and delivers what arrived meanwhile, itself.
  user_regs_struct saved;
  uint64_t mask = 0;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &saved) != 0 ||
      ptrace(PTRACE_GETSIGMASK, tid, sizeof mask, &mask) != 0) {
    *stage = {"PTRACE_GETREGS", errno};
    ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    return -1;
  }
  if (saved.cs != 0x33) {  // a 32-bit (compat) process: its vdso's instruction is another call
    *stage = {"checking the thread runs 64-bit code", ENOEXEC};
    ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    return -1;
  }
  // A restartable sequence the thread is in: the injected returns to user space clear its
  // rseq_cs (the kernel's fixup sees an address outside it); put it back so that the final
  // return aborts the sequence as a preemption would.
  RseqConfiguration rseq{};
  uint64_t rseq_cs = 0;
  const bool has_rseq = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, sizeof rseq, &rseq) > 0 && rseq.rseq_abi_pointer != 0;
  if (has_rseq) {
    errno = 0;
    rseq_cs = static_cast<uint64_t>(ptrace(PTRACE_PEEKDATA, tid, rseq.rseq_abi_pointer + 8, nullptr));
    if (errno != 0) rseq_cs = 0;
  }
  const uint64_t all = ~0ull;
  long theirs = 0;
  int ours = -1;
  int pending = 0;  // a stop signal that arrived meanwhile
  err = ptrace(PTRACE_SETSIGMASK, tid, sizeof all, &all) != 0 ? errno : 0;
  if (err == 0) err = Inject(traced, saved, at, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, &theirs, &pending);
  // Without CAP_SYS_PTRACE (vm.unprivileged_userfaultfd=0): user-mode faults only. Write
  // protection in asynchronous mode is resolved by the kernel either way, kernel-mode writes
  // (read(2) into a protected page) included.
  if (err == 0 && theirs == -EPERM) {
    err = Inject(traced, saved, at, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0, &theirs, &pending);
  }
  // Tests: the thread held in its stop, so that a sibling can act while it is traced.
  if (err == 0 && hold_ms > 0) usleep(hold_ms * 1000u);
  if (err != 0) {
    *stage = {"running userfaultfd(2) in the process", err};
  } else if (theirs < 0) {
    *stage = {"userfaultfd(2) in the process", static_cast<int>(-theirs)};
  } else {
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
      *stage = {"pidfd_open", errno};
    } else {
      ours = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, static_cast<int>(theirs), 0));
      if (ours < 0) *stage = {"pidfd_getfd", errno};
      close(pidfd);
    }
    long closed = 0;
    const int cerr = Inject(traced, saved, at, SYS_close, theirs, 0, &closed, &pending);
    if (cerr != 0 && ours >= 0) {
      // The process may keep a descriptor it did not open: say so rather than track.
      close(ours);
      ours = -1;
      *stage = {"closing the process's copy of the userfaultfd", cerr};
    }
  }
  // Back as it was: registers, signal mask, rseq_cs; then through a stop where signals are
  // delivered (PTRACE_INTERRUPT), so that the kernel restarts the interrupted call or delivers
  // a signal with the usual rules, and let go there (always, unless it is gone).
  int back_err = 0;
  if (err != ESRCH) {
    if (ptrace(PTRACE_SETREGS, tid, nullptr, &saved) != 0 || ptrace(PTRACE_SETSIGMASK, tid, sizeof mask, &mask) != 0) back_err = errno;
    if (has_rseq && rseq_cs != 0) ptrace(PTRACE_POKEDATA, tid, rseq.rseq_abi_pointer + 8, rseq_cs);
    if (back_err == 0) {
      if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 || ptrace(PTRACE_CONT, tid, nullptr, nullptr) != 0) back_err = errno;
      else if (const int w = WaitInterrupt(traced); w == ESRCH) back_err = ESRCH;
    }
    if (back_err != ESRCH) ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    else ReapGone(traced);
    // A stop that arrived while its calls ran: raised again, now that it can take it.
    if (pending != 0 && back_err != ESRCH) syscall(SYS_tgkill, pid, tid, pending);
  } else {
    ReapGone(traced);
  }
  if (back_err != 0 && ours >= 0) {
    close(ours);
    ours = -1;
    *stage = {"putting the thread back", back_err};
  }
  if (ours < 0) return -1;
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC;
  if (ioctl(ours, UFFDIO_API, &api) != 0) {
    *stage = {"UFFDIO_API with UFFD_FEATURE_WP_ASYNC (Linux 6.7 or later)", errno};
    close(ours);
    return -1;
  }
  return ours;
}

#endif  // __x86_64__

// One PAGEMAP_SCAN walk over [start, end), every region it reports put in `out` as ascending,
// disjoint, merged [start, end) pairs. Returns 0 or the errno.
int Scan(int pagemap, uint64_t start, uint64_t end, uint64_t flags, uint64_t mask, uint64_t anyof,
         std::vector<uint64_t>* out) {
  constexpr size_t kRegions = 1024;
  page_region regions[kRegions];
  std::vector<std::pair<uint64_t, uint64_t>> found;
  for (uint64_t at = start; at < end;) {
    pm_scan_arg a{};
    a.size = sizeof a;
    a.flags = flags;
    a.start = at;
    a.end = end;
    a.vec = out ? reinterpret_cast<uint64_t>(regions) : 0;
    a.vec_len = out ? kRegions : 0;
    a.category_mask = mask;
    a.category_anyof_mask = anyof;
    a.return_mask = mask | anyof;
    const long n = ioctl(pagemap, PAGEMAP_SCAN, &a);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    uint64_t last = at;
    for (long i = 0; out && i < n; i++) {
      found.emplace_back(regions[i].start, regions[i].end);
      if (regions[i].end > last) last = regions[i].end;
    }
    // A walk that did not fill the vector went to `end`. Linux 6.18 then reports a walk_end
    // below the last 512 regions of a call that returned more than 512: going on from there
    // listed them twice (and, protecting, any page written meanwhile below the last region out
    // of order). A full vector: on from where the walk stopped, never back.
    if (!out || static_cast<uint64_t>(n) < a.vec_len) break;
    const uint64_t next = a.walk_end > last ? a.walk_end : last;
    if (next <= at || next > end) return EIO;  // no progress: never loop
    at = next;
  }
  if (!out) return 0;
  std::sort(found.begin(), found.end());
  for (const auto& [from, to] : found) {
    if (to <= from) continue;
    if (!out->empty() && from <= out->back()) {
      if (to > out->back()) out->back() = to;  // adjacent or overlapping: one run
    } else {
      out->push_back(from);
      out->push_back(to);
    }
  }
  return 0;
}

void Range(Napi::Env env, const Napi::CallbackInfo& info, size_t first, uint64_t* start,
           uint64_t* end) {
  *start = Address(env, info[first], "start");
  *end = Address(env, info[first + 1], "end");
  if (*end <= *start) ThrowRange(env, "expected end to be above start");
}

}  // namespace

// trackWritesOpen(pid, holdMs?) -> fd: a userfaultfd of process pid's memory, asynchronous
// write-protect mode on. holdMs (tests): keep the thread stopped that long mid-injection. Throws an Error with code (the errno's name), syscall (the stage).
Napi::Value TrackWritesOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const pid_t pid = static_cast<pid_t>(Integer(env, info[0], "pid", 1, INT32_MAX));
  const unsigned hold_ms = info[1].IsUndefined() ? 0 : static_cast<unsigned>(Integer(env, info[1], "holdMs", 0, 10000));
#if defined(__x86_64__)
  Stage stage;
  const int fd = OpenTracker(pid, &stage, hold_ms);
  if (fd >= 0) return Napi::Number::New(env, fd);
  ThrowFailure(env, Failure::Errno(stage.err, stage.what, false, 0));
#else
  (void)pid;
  (void)hold_ms;
  ThrowFailure(env, Failure::Errno(ENOSYS, "injecting userfaultfd(2) (x86-64 only)", false, 0));
#endif
}

// trackWritesProtect(uffd, pagemapFd, start, end) -> 0 or errno: registers the mapping
// [start, end) of the tracked process for write protection and protects its present (and
// swapped) pages. Untouched pages are left alone (no page tables are built for a reservation):
// a write there makes a present page that was never protected, reported as written.
Napi::Value TrackWritesProtect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int uffd = static_cast<int>(Integer(env, info[0], "uffd", 0, INT32_MAX));
  const int pagemap = static_cast<int>(Integer(env, info[1], "pagemapFd", 0, INT32_MAX));
  uint64_t start, end;
  Range(env, info, 2, &start, &end);
  uffdio_register reg{};
  reg.range.start = start;
  reg.range.len = end - start;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) return Napi::Number::New(env, errno);
  const int err = Scan(pagemap, start, end, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0,
                       PAGE_IS_PRESENT | PAGE_IS_SWAPPED, nullptr);
  return Napi::Number::New(env, err);
}

// trackWritesScan(pagemapFd, start, end, reprotect) -> BigUint64Array of [start, end) pairs:
// the pages of [start, end) written since they were protected that hold memory (present or
// swapped), ascending and merged. With reprotect, they are protected again in the same walk
// (what is written after it shows in the next scan). Throws (code, syscall 'PAGEMAP_SCAN')
// when a mapping there is not tracked (EPERM: it was replaced since) or the kernel refuses.
Napi::Value TrackWritesScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int pagemap = static_cast<int>(Integer(env, info[0], "pagemapFd", 0, INT32_MAX));
  uint64_t start, end;
  Range(env, info, 1, &start, &end);
  if (!info[3].IsBoolean()) ThrowType(env, "expected reprotect to be a boolean, got " + TypeName(info[3]));
  const bool reprotect = info[3].As<Napi::Boolean>().Value();
  std::vector<uint64_t> runs;
  const int err = Scan(pagemap, start, end, PM_SCAN_CHECK_WPASYNC | (reprotect ? PM_SCAN_WP_MATCHING : 0),
                       PAGE_IS_WRITTEN, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, &runs);
  if (err != 0) ThrowFailure(env, Failure::Errno(err, "PAGEMAP_SCAN", true, start));
  auto out = Napi::BigUint64Array::New(env, runs.size());
  if (!runs.empty()) memcpy(out.Data(), runs.data(), runs.size() * sizeof(uint64_t));
  return out;
}

// closeFd(fd): closes a descriptor the addon handed out (trackWritesOpen's).
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = static_cast<int>(Integer(env, info[0], "fd", 0, INT32_MAX));
  close(fd);
  return env.Undefined();
}

}  // namespace crimg
