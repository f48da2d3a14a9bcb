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

// The kernel's restart codes (include/linux/errno.h: not exported to user space).
constexpr long kErestartSys = 512, kErestartNoIntr = 513, kErestartNoHand = 514,
               kErestartRestartBlock = 516;

struct Stage {
  const char* what = nullptr;
  int err = 0;
};

// Waits for the next stop of a traced thread. 0 and the stop's status, or the errno.
int WaitStop(pid_t tid, int* status) {
  for (;;) {
    const pid_t r = waitpid(tid, status, __WALL);
    if (r == tid) return WIFSTOPPED(*status) ? 0 : ESRCH;  // exited or killed
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? errno : ESRCH;
  }
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

// Runs one system call in the stopped thread `tid` from the instruction at `at`: its result
// (a -errno on failure) in *result. Signals that arrive meanwhile are kept in *pending for the
// detach. Returns 0 or the errno of the tracing itself.
int Inject(pid_t tid, const user_regs_struct& saved, uintptr_t at, long nr, long a1, long a2,
           long* result, int* pending) {
  user_regs_struct r = saved;
  r.rip = at;
  r.rax = nr;
  r.orig_rax = -1;  // not in a system call: no restart of the interrupted one here
  r.rdi = a1;
  r.rsi = a2;
  r.rdx = r.r10 = r.r8 = r.r9 = 0;
  if (ptrace(PTRACE_SETREGS, tid, nullptr, &r) != 0) return errno;
  for (int stops = 0; stops < 2;) {  // system call entry, then exit
    if (ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr) != 0) return errno;
    int status = 0;
    if (const int err = WaitStop(tid, &status)) return err;
    const int sig = WSTOPSIG(status);
    if (sig == (SIGTRAP | 0x80)) {
      stops++;
    } else if (status >> 16 == 0 && sig != SIGTRAP) {
      *pending = sig;  // a signal on its way in: delivered at the detach
    } else if (status >> 16 != PTRACE_EVENT_STOP) {
      return EINTR;  // something else traces events in this thread: give up
    }
  }
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &r) != 0) return errno;
  *result = static_cast<long>(r.rax);
  return 0;
}

// The whole of trackWritesOpen. Returns our descriptor, or -1 with *stage set.
int OpenTracker(pid_t pid, Stage* stage) {
  int err = 0;
  const uintptr_t at = FindSyscall(pid, &err);
  if (at == 0) {
    *stage = {"finding a syscall instruction in the process's vdso", err};
    return -1;
  }
  if (ptrace(PTRACE_SEIZE, pid, nullptr, PTRACE_O_TRACESYSGOOD) != 0) {
    *stage = {"PTRACE_SEIZE", errno};
    return -1;
  }
  int status = 0;
  int pending = 0;
  if (ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) {
    *stage = {"PTRACE_INTERRUPT", errno};
    ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
    return -1;
  }
  for (;;) {
    if (const int err = WaitStop(pid, &status)) {
      *stage = {"waiting for the thread to stop", err};
      return -1;  // gone: nothing to detach from
    }
    if (status >> 16 == PTRACE_EVENT_STOP) break;
    // A signal arrived first: keep it for the detach, and let the interrupt come.
    pending = WSTOPSIG(status);
    if (ptrace(PTRACE_CONT, pid, nullptr, nullptr) != 0) {
      *stage = {"PTRACE_CONT", errno};
      return -1;
    }
  }
  user_regs_struct saved;
  if (ptrace(PTRACE_GETREGS, pid, nullptr, &saved) != 0) {
    *stage = {"PTRACE_GETREGS", errno};
    ptrace(PTRACE_DETACH, pid, nullptr, pending);
    return -1;
  }
  long theirs = 0;
  err = Inject(pid, saved, at, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, &theirs, &pending);
  // Without CAP_SYS_PTRACE (vm.unprivileged_userfaultfd=0): user-mode faults only. Write
  // protection in asynchronous mode is resolved by the kernel either way, kernel-mode writes
  // (read(2) into a protected page) included.
  if (err == 0 && theirs == -EPERM) {
    err = Inject(pid, saved, at, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0,
                 &theirs, &pending);
  }
  int ours = -1;
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
    const int cerr = Inject(pid, saved, at, SYS_close, theirs, 0, &closed, &pending);
    if (cerr != 0 && ours >= 0) {
      // The process may keep a descriptor it did not open: say so rather than track.
      close(ours);
      ours = -1;
      *stage = {"closing the process's copy of the userfaultfd", cerr};
    }
  }
  // Put the thread back as it was. Stopped inside an interruptible system call it would have
  // been restarted on the way out of this stop; the injected calls took that way, so restart
  // it the way the kernel does (arch/x86/kernel/signal.c, no handler run).
  user_regs_struct back = saved;
  const long rax = static_cast<long>(saved.rax);
  if (static_cast<long>(saved.orig_rax) >= 0) {
    if (rax == -kErestartSys || rax == -kErestartNoIntr || rax == -kErestartNoHand) {
      back.rax = saved.orig_rax;
      back.rip -= 2;
    } else if (rax == -kErestartRestartBlock) {
      back.rax = SYS_restart_syscall;
      back.rip -= 2;
    }
  }
  if (ptrace(PTRACE_SETREGS, pid, nullptr, &back) != 0 && ours >= 0) {
    close(ours);
    ours = -1;
    *stage = {"PTRACE_SETREGS", errno};
  }
  ptrace(PTRACE_DETACH, pid, nullptr, pending);
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

// trackWritesOpen(pid) -> fd: a userfaultfd of process pid's memory, asynchronous
// write-protect mode on. Throws an Error with code (the errno's name), syscall (the stage).
Napi::Value TrackWritesOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const pid_t pid = static_cast<pid_t>(Integer(env, info[0], "pid", 1, INT32_MAX));
#if defined(__x86_64__)
  Stage stage;
  const int fd = OpenTracker(pid, &stage);
  if (fd >= 0) return Napi::Number::New(env, fd);
  ThrowFailure(env, Failure::Errno(stage.err, stage.what, false, 0));
#else
  (void)pid;
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
