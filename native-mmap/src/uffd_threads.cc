// The lazy session's helper threads and what they share with the handler
// (uffd.h): following the faulting thread's CPU (kFollowFaulter), the warm
// thread (kWarm), the prefetch threads; apart from uffd.cc for room.
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>

namespace crimg {

void LazySession::Follow(uint32_t tid) {
  if (tid == 0) return;
  if (tid != follow_.tid || follow_.stat_fd < 0) {
    if (follow_.stat_fd >= 0) close(follow_.stat_fd);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%u/stat", tid);
    follow_.stat_fd = open(path, O_RDONLY | O_CLOEXEC);
    follow_.tid = tid;
    if (follow_.stat_fd < 0) {
      // No /proc (or not this process's): not tried again. A thread gone: the next one is.
      if (errno != ESRCH) follow_.on = false;
      return;
    }
  }
  // Field 39 ("processor"), counted after the ")" that ends the command
  // name (which may hold spaces and parentheses).
  char buf[1024];
  const ssize_t n = pread(follow_.stat_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) {
    close(follow_.stat_fd);
    follow_.stat_fd = -1;
    return;
  }
  buf[n] = 0;
  const char* at = strrchr(buf, ')');
  if (at == nullptr) return;
  int field = 2;
  long cpu = -1;
  for (; *at != 0; at++) {
    if (*at == ' ' && ++field == 39) {
      char* end = nullptr;
      cpu = strtol(at + 1, &end, 10);
      if (end == at + 1) cpu = -1;
      break;
    }
  }
  if (cpu < 0 || cpu >= CPU_SETSIZE || cpu == follow_.pinned || !CPU_ISSET(cpu, &follow_.allowed)) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (sched_setaffinity(0, sizeof one, &one) == 0) {
    follow_.pinned = static_cast<int>(cpu);
    handler_moves_.fetch_add(1, std::memory_order_relaxed);
  } else if (errno == EPERM) {
    follow_.on = false;  // refused (a seccomp profile, say): not tried again
  }
}

void LazySession::StartWarm() {
  if (!kWarm || !config_.warm) return;
  // Under warm_mu_: Stop() (JoinWarm) takes warmer_ from another thread. The
  // warm thread holds no reference, so it never runs the destructor.
  std::lock_guard<std::mutex> lock(warm_mu_);
  if (warm_stop_.load() || stop_.load()) return;
  try {
    warmer_ = std::thread([this] { WarmLoop(); });
    warm_on_.store(true);
  } catch (const std::system_error&) {
    // No warm thread: a faulting thread reads its chunk's pages first itself.
  }
}

void LazySession::JoinWarm() {
  std::thread warmer;
  {
    std::lock_guard<std::mutex> lock(warm_mu_);
    warm_stop_.store(true);
    warmer = std::move(warmer_);
  }
  warm_cv_.notify_all();
  if (warmer.joinable() && warmer.get_id() != std::this_thread::get_id()) warmer.join();
}

void LazySession::StartPrefetch() {
  if (stop_.load()) return;
  const unsigned threads = std::max(1u, config_.prefetch_threads);
  try {
    for (unsigned i = 0; i < threads; i++) prefetchers_.emplace_back([this] { PrefetchLoop(); });
  } catch (const std::exception&) {
    // Fewer prefetch threads (none: the handler installs every chunk on its fault).
  }
}

bool LazySession::PrefetchOne(bool* worked) {
  // The hot chunks first, then every chunk in order (one already in is skipped).
  const std::vector<uint32_t>& hot = config_.hot;
  const size_t i = next_.fetch_add(1);
  if (i >= hot.size() + config_.count) return false;
  const uint32_t c = i < hot.size() ? hot[i] : static_cast<uint32_t>(i - hot.size());
  // In image order a span goes whole; a hot chunk alone, unless it starts a run
  // of the list through half its span or more (a walk a profile recorded:
  // Resolve lists a span a walking fault brought in whole) (uffd.h kWholeSpans).
  const int64_t s = SpanOf(c);
  if (s >= 0) {
    if ((i >= hot.size() || HotRun(i, config_.spans[static_cast<size_t>(s)])) && TakeWhole(static_cast<size_t>(s))) {
      InstallWhole(static_cast<size_t>(s), false);
      if (worked != nullptr) *worked = true;
      return true;
    }
    if (!ChunkWise(static_cast<size_t>(s))) return true;  // another thread's, whole
  }
  uint8_t expected = kPending;
  if (state_[c].compare_exchange_strong(expected, kBusy)) {
    Install(c, false);
    if (worked != nullptr) *worked = true;
  }
  return true;
}

bool LazySession::HelpOne() {
  // Past chunks and spans other threads hold (bounded: each call takes an index).
  bool worked = false;
  bool more = true;
  while (more && !worked && !stop_.load(std::memory_order_relaxed)) more = PrefetchOne(&worked);
  return more;
}

void LazySession::PrefetchLoop() {
  // Background work (uffd.h kPrefetchPolicy): SCHED_IDLE, else kPrefetchNice
  // nicer (raising one's own nice is always allowed).
  struct sched_param idle;
  memset(&idle, 0, sizeof idle);
  if (sched_setscheduler(0, SCHED_IDLE, &idle) != 0) {
    const id_t tid = static_cast<id_t>(syscall(SYS_gettid));
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, tid);
    if (errno == 0) (void)setpriority(PRIO_PROCESS, tid, std::min(19, nice + kPrefetchNice));
  }
  // Every CPU the handler was allowed at its start (it may be pinned to one now: kFollowFaulter).
  if (follow_.on) (void)sched_setaffinity(0, sizeof follow_.allowed, &follow_.allowed);
  MarkPrefetchThread();
  while (!stop_.load(std::memory_order_relaxed) && !reads_off_.load(std::memory_order_relaxed) && PrefetchOne()) {
  }
}

void LazySession::WakeRange(uint64_t start, uint64_t length) {
  struct uffdio_range range;
  range.start = start;
  range.len = length;
  ioctl(config_.uffd, UFFDIO_WAKE, &range);
}

void LazySession::Warm(uint32_t c, uint64_t skip) {
  const LazyChunk ch = ChunkOf(c);
  const uint64_t page = config_.page_size;
  uint64_t sum = 0;
  for (uint64_t off = Span(ch); off >= page && !warm_stop_.load(std::memory_order_relaxed);) {
    off -= page;
    if (ch.dest + off != skip) sum += *reinterpret_cast<const volatile uint8_t*>(ch.dest + off);
  }
  warm_sink_.fetch_add(sum, std::memory_order_relaxed);
}

void LazySession::WarmLoop() {
  // Every CPU the handler was allowed at its start (it may be pinned to one now: kFollowFaulter).
  if (follow_.on) (void)sched_setaffinity(0, sizeof follow_.allowed, &follow_.allowed);
  std::vector<std::pair<uint32_t, uint64_t>> work;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(warm_mu_);
      warm_cv_.wait(lock, [this] { return !warm_.empty() || warm_stop_.load() || Complete(); });
      if (warm_.empty()) return;
      work.swap(warm_);
      warm_posted_.store(false, std::memory_order_relaxed);
    }
    for (const auto& w : work) {
      Warm(w.first, w.second);
      if (!warm_stop_.load()) warmed_.fetch_add(1, std::memory_order_relaxed);  // else dropped unread
      Settle();
    }
    work.clear();
    // Faults come in bursts: wait for the next chunk awake a little (kWarmSpinNs) rather
    // than asleep, whose wake-up costs more than the chunk's reads (see uffd.h).
    const uint64_t t0 = MonotonicNs();
    while (!warm_posted_.load(std::memory_order_relaxed) && !warm_stop_.load(std::memory_order_relaxed) &&
           !Complete() && MonotonicNs() - t0 < kWarmSpinNs) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      asm volatile("yield");
#endif
    }
  }
}

void LazySession::EndWarm() {
  {
    std::lock_guard<std::mutex> lock(warm_mu_);  // no lost wake-up between its test and its wait
  }
  warm_cv_.notify_all();
}

}  // namespace crimg
