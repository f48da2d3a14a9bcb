// OpenUffd (uffd.h), apart from uffd.cc for room: userfaultfd(2) tried three
// ways, then the UFFDIO_API handshake, with UFFD_FEATURE_POISON when the
// kernel has it. And the session's small members: Copy and Zero (the
// ioctls' retries), Wake, ReleaseReaders, the accessors and the chunk lookups.
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "uffd.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFDIO_POISON
struct uffdio_poison {
  struct uffdio_range range;
  __u64 mode;
  __s64 updated;
};
#define _UFFDIO_POISON (0x08)
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC 0xAA
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif

namespace crimg {
namespace {

// UFFDIO_API on `fd` with `features`; false (errno set) when refused.
bool Handshake(int fd, uint64_t features) {
  struct uffdio_api api;
  memset(&api, 0, sizeof api);
  api.api = UFFD_API;
  api.features = features;
  if (ioctl(fd, UFFDIO_API, &api) != 0) return false;
  if ((api.features & features) == features) return true;
  errno = EINVAL;  // accepted without offering all that was asked
  return false;
}

// One way of making the descriptor; -1 with errno.
int Make(int how) {
  const int flags = O_CLOEXEC | O_NONBLOCK;
  if (how == 0) return static_cast<int>(syscall(SYS_userfaultfd, flags));
  if (how == 2) return static_cast<int>(syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY));
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev < 0) return -1;
  int fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
  int e = errno;
  close(dev);
  errno = e;
  return fd;
}

std::string ErrnoText(const char* what, int e) {
  return std::string(what) + ": " + strerror(e);
}

}  // namespace

bool KnobOff(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && strcmp(v, "0") == 0;
}

UffdOpened OpenUffd() {
  UffdOpened r;
  static const char* const kVia[] = {"syscall", "/dev/userfaultfd", "syscall (user mode only)"};
  for (int how = 0; how < 3; how++) {
    int fd = Make(how);
    if (fd < 0) {
      if (!r.why.empty()) r.why += "; ";
      r.why += ErrnoText(kVia[how], errno);
      continue;
    }
    // UFFD_FEATURE_POISON where the kernel has it (6.6+) and
    // UFFD_FEATURE_THREAD_ID (4.14+, the handler follows the faulting
    // thread's CPU: uffd.h kFollowFaulter); a refused handshake cannot be
    // repeated on the same descriptor, so each next try makes another.
    // CRIMG_UFFD_POISON=0: without poison, as on older kernels (a failed
    // chunk's pages left missing, a thread touching them waiting until release).
    // UFFD_FEATURE_MOVE (6.8+: uffd.h kWholeSpans) with each, unless CRIMG_LAZY_HUGE=0.
    const bool want_poison = !KnobOff("CRIMG_UFFD_POISON");
    const bool want_move = !KnobOff("CRIMG_LAZY_HUGE");
    const uint64_t tries[] = {UFFD_FEATURE_POISON | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MOVE,
                              UFFD_FEATURE_POISON | UFFD_FEATURE_THREAD_ID,
                              UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MOVE, UFFD_FEATURE_THREAD_ID, 0};
    uint64_t features = 0;
    bool shaken = false;
    for (uint64_t want : tries) {
      if (!want_poison && (want & UFFD_FEATURE_POISON)) continue;
      if (!want_move && (want & UFFD_FEATURE_MOVE)) continue;
      if (fd < 0) fd = Make(how);
      if (fd < 0) break;
      if (Handshake(fd, want)) {
        features = want;
        shaken = true;
        break;
      }
      close(fd);
      fd = -1;
    }
    if (!shaken) {
      if (!r.why.empty()) r.why += "; ";
      r.why += ErrnoText(kVia[how], errno);
      if (fd >= 0) close(fd);
      continue;
    }
    const bool poison = (features & UFFD_FEATURE_POISON) != 0;
    r.thread_id = (features & UFFD_FEATURE_THREAD_ID) != 0;
    r.move = (features & UFFD_FEATURE_MOVE) != 0;
    r.fd = fd;
    r.user_mode_only = how == 2;
    r.poison = poison;
    r.via = kVia[how];
    return r;
  }
  return r;
}

namespace {

// The retry loop shared by UFFDIO_COPY and UFFDIO_ZEROPAGE over [dest, dest +
// length): `op(at, len, &did)` issues the ioctl for [at, at + len) and returns
// its result, `did` the bytes it filled (negative: none). A page already
// present (EEXIST) is counted and skipped; EAGAIN (stopped at a present page,
// or the address space changing) is tried again a bounded number of times.
template <typename Op>
bool FillRange(uint64_t dest, uint64_t length, uint64_t page, std::atomic<uint64_t>& eexist, Op op) {
  uint64_t done = 0;
  int spins = 0;
  bool paged = false;  // a page at a time: the range crosses mappings
  while (done < length) {
    int64_t did = 0;
    const uint64_t len = paged ? std::min(page, length - done) : length - done;
    if (op(dest + done, len, &did) == 0) {
      if (!paged) return true;
      done += len;
      continue;
    }
    const int e = errno;
    if (did > 0) done += static_cast<uint64_t>(did);
    if (e == ENOENT && !paged && did <= 0 && len > page) {
      // The range spans more than one mapping (the process changed the
      // protection of part of it: mprotect splits the mapping), which one
      // ioctl does not cross (ENOENT): page by page, each in one mapping.
      paged = true;
    } else if (e == EEXIST) {
      eexist.fetch_add(1, std::memory_order_relaxed);
      done += page;
    } else if (e == EAGAIN) {
      if (did <= 0 && ++spins > 1000) return (errno = EAGAIN, false);
      if (did <= 0) std::this_thread::yield();
    } else {
      return (errno = e, false);  // ENOMEM; ENOENT, ESRCH, EINVAL: unregistered or unmapped
    }
  }
  return true;
}

}  // namespace

bool LazySession::Copy(uint64_t dest, const uint8_t* src, uint64_t length, bool wake) {
  const int uffd = config_.uffd;
  return FillRange(dest, length, config_.page_size, eexist_, [&](uint64_t at, uint64_t len, int64_t* did) {
    struct uffdio_copy cp;
    memset(&cp, 0, sizeof cp);
    cp.dst = at;
    cp.src = reinterpret_cast<uint64_t>(src + (at - dest));
    cp.len = len;
    cp.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE;
    const int r = ioctl(uffd, UFFDIO_COPY, &cp);
    *did = cp.copy;
    return r;
  });
}

bool LazySession::Zero(uint64_t dest, uint64_t length, bool wake) {
  const int uffd = config_.uffd;
  return FillRange(dest, length, config_.page_size, eexist_, [&](uint64_t at, uint64_t len, int64_t* did) {
    struct uffdio_zeropage zp;
    memset(&zp, 0, sizeof zp);
    zp.range.start = at;
    zp.range.len = len;
    zp.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE;
    const int r = ioctl(uffd, UFFDIO_ZEROPAGE, &zp);
    *did = zp.zeropage;
    return r;
  });
}

bool LazySession::Poison(uint64_t dest, uint64_t length) {
  const int uffd = config_.uffd;
  return FillRange(dest, length, config_.page_size, eexist_, [&](uint64_t at, uint64_t len, int64_t* did) {
    struct uffdio_poison p;
    memset(&p, 0, sizeof p);
    p.range.start = at;
    p.range.len = len;
    const int r = ioctl(uffd, UFFDIO_POISON, &p);
    *did = p.updated;
    return r;
  });
}

uint64_t MonotonicNs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000u + static_cast<uint64_t>(t.tv_nsec);
}

void LazySession::Wake() {
  std::lock_guard<std::mutex> lock(fd_mu_);
  if (stop_fd_ < 0) return;
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
}

void LazySession::ReleaseReaders() {
  ReleaseSources();
  readers_released_.store(true);
}

void LazySession::ReleaseSources() {
  if (sources_released_.exchange(true)) return;
  for (auto& src : config_.sources) {
    if (src.release) src.release();
  }
}

LazyStats LazySession::Stats() const {
  LazyStats s;
  s.faults = faults_.load();
  s.fault_installs = fault_installs_.load();
  s.prefetched = prefetched_.load();
  s.assists = assists_.load();
  s.zero_installs = zero_installs_.load();
  s.eexist = eexist_.load();
  s.settled = settled_.load();
  s.total = config_.count;
  s.fault_decode_ns = fault_decode_ns_.load();
  s.fault_install_ns = fault_install_ns_.load();
  s.warmed = warmed_.load();
  s.handler_moves = handler_moves_.load();
  s.spans_moved = spans_moved_.load();
  s.spans = config_.spans.size();
  s.span_decode_ns = span_decode_ns_.load();
  s.span_move_ns = span_move_ns_.load();
  s.poison = poison_;
  return s;
}

const LazyRegion& LazySession::RegionOf(uint32_t c) const {
  const auto& regions = config_.regions;
  auto it = std::upper_bound(regions.begin(), regions.end(), c,
                             [](uint32_t x, const LazyRegion& r) { return x < r.begin; });
  return *(it - 1);  // c < count, and the first region begins at 0
}

uint64_t LazySession::ChunkNumber(uint32_t c) const {
  const LazyRegion& r = RegionOf(c);
  return r.first + (c - r.begin);
}

int64_t LazySession::ChunkAt(uint64_t address) const {
  auto it = std::upper_bound(by_dest_.begin(), by_dest_.end(), address,
                             [this](uint64_t a, uint32_t k) { return a < config_.regions[k].dest; });
  if (it == by_dest_.begin()) return -1;
  const LazyRegion& r = config_.regions[*(it - 1)];
  const uint64_t page = config_.page_size;
  if (address - r.dest >= (r.length + page - 1) / page * page) return -1;
  return static_cast<int64_t>(r.begin + (address - r.dest) / config_.chunk_size);
}

LazyChunk LazySession::ChunkOf(uint32_t c) const {
  const LazyRegion& r = RegionOf(c);
  const uint64_t j = c - r.begin;
  const uint64_t size = config_.chunk_size;
  LazyChunk ch;
  const uint8_t* rec = config_.table + (r.first + j) * 24;
  memcpy(&ch.offset, rec, 8);
  memcpy(&ch.stored_len, rec + 8, 4);
  memcpy(&ch.flags, rec + 12, 2);
  memcpy(&ch.checksum, rec + 16, 8);
  ch.dest = r.dest + j * size;
  ch.address = r.address + j * size;
  ch.number = r.first + j;
  ch.listed = ch.number;
  ch.plain_len = static_cast<uint32_t>(j + 1 < r.count ? size : r.length - j * size);
  ch.region = r.number;
  ch.last = j + 1 == r.count;
  ch.source = 0;
  ch.context = 0;
  const auto& res = config_.resolved;
  if (!res.empty()) {
    auto it = std::lower_bound(res.begin(), res.end(), c,
                               [](const std::pair<uint32_t, LazyChunk>& e, uint32_t x) { return e.first < x; });
    if (it != res.end() && it->first == c) {
      const LazyChunk& p = it->second;
      ch.offset = p.offset;
      ch.stored_len = p.stored_len;
      ch.flags = p.flags;
      ch.checksum = p.checksum;
      ch.number = p.number;
      ch.region = p.region;
      ch.last = p.last;
      ch.source = p.source;
      ch.context = p.context;
    }
  }
  return ch;
}

std::vector<uint32_t> LazySession::Profile() const {
  std::lock_guard<std::mutex> lock(mu_);
  return profile_;
}

LazyFailure LazySession::FirstFailure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

}  // namespace crimg
