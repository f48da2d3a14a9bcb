// See uffd.h. The kernel side, from userfaultfd(2) and ioctl_userfaultfd(2):
// - UFFDIO_COPY of a range copies page by page; it stops at the first page
//   already present, returning EEXIST when nothing was copied, or EAGAIN with
//   `copy` = bytes copied before it. Pages present are never replaced, so a
//   race between the handler and a prefetch thread over one chunk costs a
//   skipped page, never a clobbered write.
// - Unless UFFDIO_COPY_MODE_DONTWAKE, the copy wakes every thread waiting on a
//   fault in the copied range; a fault message read after its page came in is
//   answered with UFFDIO_WAKE.
// - Closing the descriptor unregisters the ranges and wakes every waiter: a
//   still-missing page would then fill with zeros, so it is closed only once
//   every chunk is in (or poisoned), or after the memory is unmapped.
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "scan.h"

namespace crimg {
namespace {

// Per thread: the stored bytes and the page-rounded plain bytes handed to
// UFFDIO_COPY (Install and Assist share them; a thread does one at a time).
thread_local std::vector<uint8_t> t_in, t_out;

std::string ErrnoText(const char* what, int e) {
  return std::string(what) + ": " + strerror(e);
}

// MADV_DONTFORK or MADV_DOFORK over every registered range.
void Inherit(const LazyConfig& config, int advice) {
  for (const auto& r : config.ranges) (void)madvise(reinterpret_cast<void*>(r.first), r.second, advice);
}

}  // namespace

LazySession::LazySession(LazyConfig config, bool poison, Done done)
    : config_(std::move(config)), poison_(poison), done_(std::move(done)) {
  const size_t n = std::max<size_t>(config_.count, 1);
  state_.reset(static_cast<std::atomic<uint8_t>*>(calloc(n, 1)));
  faulted_.reset(static_cast<std::atomic<uint8_t>*>(calloc(n, 1)));
  span_state_.reset(static_cast<std::atomic<uint8_t>*>(calloc(std::max<size_t>(config_.spans.size(), 1), 1)));
  if (!state_ || !faulted_ || !span_state_) throw std::bad_alloc();
  by_dest_.resize(config_.regions.size());
  for (size_t i = 0; i < by_dest_.size(); i++) by_dest_[i] = static_cast<uint32_t>(i);
  std::sort(by_dest_.begin(), by_dest_.end(), [this](uint32_t a, uint32_t b) { return config_.regions[a].dest < config_.regions[b].dest; });
}

const char* LazySession::Start(LazyConfig config, bool poison, Done done,
                               std::shared_ptr<LazySession>* out, int* err) {
  *err = 0;
  const int uffd = config.uffd;
  // The session reads its own dups: the caller may close its image (and the
  // number be reused for another file) before every chunk is in.
  const auto undo = [&config](size_t dups) {
    for (size_t i = 0; i < dups; i++) {
      if (config.sources[i].fd >= 0) close(config.sources[i].fd);
    }
    for (auto& src : config.sources) {
      if (src.release) src.release();
    }
  };
  for (size_t i = 0; i < config.sources.size(); i++) {
    if (config.sources[i].fd < 0) continue;
    const int dup = fcntl(config.sources[i].fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
      *err = errno;
      undo(i);
      close(uffd);
      return "dup";
    }
    config.sources[i].fd = dup;
  }
  PlanSpans(&config);
  // Not inherited until every chunk is in (from before the registration, so
  // that a fork() from another thread never copies a registered range): a
  // fork()ed child's copy is not registered (no UFFD_FEATURE_EVENT_FORK), so
  // its missing pages would read as zeros there. Absent, they fault (SIGSEGV).
  Inherit(config, MADV_DONTFORK);
  size_t registered = 0;
  for (const auto& range : config.ranges) {
    struct uffdio_register reg;
    memset(&reg, 0, sizeof reg);
    reg.range.start = range.first;
    reg.range.len = range.second;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
      *err = errno;
      break;
    }
    registered++;
  }
  if (*err != 0) {
    undo(config.sources.size());
    close(uffd);  // unregisters what was registered
    Inherit(config, MADV_DOFORK);  // the caller copies into the memory instead
    return "UFFDIO_REGISTER";
  }
  std::shared_ptr<LazySession> s(new LazySession(std::move(config), poison, std::move(done)));
  s->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->stop_fd_ < 0) {
    *err = errno;
    s->done_called_.store(true);  // the caller reports it, done never runs
    s->Close();
    Inherit(s->config_, MADV_DOFORK);
    return "eventfd";
  }
  if (s->config_.count == 0) {
    s->Settle();
  }
  // The prefetch threads are started by the handler thread once it has
  // served the first faults (or none came for a moment): off the caller's
  // path, and not in the way of the first touch (their start cost ~1 ms of
  // the first byte on this VM). Only the handler touches prefetchers_ until
  // it is joined, and Stop() joins it first.
  try {
    s->handler_ = std::thread([self = s] { self->HandlerLoop(); });
  } catch (const std::system_error& e) {
    *err = e.code().value();
    s->done_called_.store(true);
    s->Close();
    Inherit(s->config_, MADV_DOFORK);
    return "thread creation";
  }
  *out = s;
  return nullptr;
}

LazySession::~LazySession() {
  // The last owner: JS released it (Stop and Close ran) or collected it
  // after every chunk settled; or the handler thread itself, ending. The
  // warm thread first (see Stop; here its queue is empty, every chunk settled).
  reads_off_.store(true);
  JoinWarm();
  EndSpanReads();
  stop_.store(true);
  Wake();
  // The handler first: it starts the prefetch threads (on this thread, it is past that).
  if (handler_.joinable()) {
    if (handler_.get_id() == std::this_thread::get_id()) {
      handler_.detach();
    } else {
      handler_.join();
    }
  }
  for (auto& t : prefetchers_) {
    if (t.joinable()) t.join();
  }
  if (!done_called_.exchange(true)) done_(true);
  Close();
}

void LazySession::Stop() {
  std::lock_guard<std::mutex> lock(join_mu_);
  if (closed_.load()) return;
  // The warm thread first, while the handler still serves faults: a page of
  // a chunk it reads may be missing again (dropped by the process), and only
  // the handler can bring it in, once no JS read holds it (reads_off_).
  reads_off_.store(true);
  JoinWarm();
  EndSpanReads();  // likewise, the prefetch threads' reads of the spans they moved
  stop_.store(true);
  Wake();
  // The handler first: it starts the prefetch threads, and touches prefetchers_ until it ends.
  if (handler_.joinable() && handler_.get_id() != std::this_thread::get_id()) handler_.join();
  for (auto& t : prefetchers_) {
    if (t.joinable()) t.join();
  }
  if (!done_called_.exchange(true)) done_(true);
  if (!handler_.joinable()) ReleaseReaders();
}

void LazySession::Close() {
  if (closed_.exchange(true)) return;
  if (config_.uffd >= 0 && !uffd_closed_.exchange(true)) close(config_.uffd);
  {
    // Set to -1 as it closes: a later Wake() (the destructor's) must not
    // write into whatever file reuses the number.
    std::lock_guard<std::mutex> lock(fd_mu_);
    if (stop_fd_ >= 0) close(stop_fd_);
    stop_fd_ = -1;
  }
  for (auto& src : config_.sources) {
    if (src.fd >= 0) close(src.fd);
    src.fd = -1;
  }
  ReleaseReaders();
}

uint64_t LazySession::Span(const LazyChunk& ch) const {
  const uint64_t p = config_.page_size;
  return (static_cast<uint64_t>(ch.plain_len) + p - 1) / p * p;
}

void LazySession::HandlerLoop() {
  const int uffd = config_.uffd;
  const uint64_t page = config_.page_size;
  // The first fault's buffers made present now, while restore returns (page
  // by page they cost ~0.4 ms of the first byte at 64 KiB chunks on this VM).
  uint64_t widest = 0;
  for (const LazyContext& ctx : config_.contexts) widest = std::max<uint64_t>(widest, ctx.chunk_size);
  widest = (widest + page - 1) / page * page;
  t_in.reserve(widest);
  t_out.reserve(widest);
  Prefault(t_in.data(), t_in.capacity());
  Prefault(t_out.data(), t_out.capacity());
  CPU_ZERO(&follow_.allowed);
  follow_.on = kFollowFaulter && config_.follow && config_.thread_id &&
               sched_getaffinity(0, sizeof follow_.allowed, &follow_.allowed) == 0 && CPU_COUNT(&follow_.allowed) > 1;
  struct pollfd fds[2];
  fds[0] = {uffd, POLLIN, 0};
  fds[1] = {stop_fd_, POLLIN, 0};
  struct uffd_msg msgs[64];
  bool prefetch = config_.prefetch;
  // With prefetch on, the idle-class prefetch threads may get no core on a
  // busy machine, and `done` must not wait on them for ever: when kHelpAfterMs
  // pass with no fault and no progress, the handler installs one chunk (or
  // whole span) of the prefetch order itself (a few % of a core at most: the handler
  // prefetching at full speed beside a thread touching prefetched memory made
  // that thread 2x slower on this VM).
  bool help = config_.prefetch && config_.help;
  // Progress: chunks settled, and chunks decoded into a whole span in hand
  // (which settle together, 2 ms or more apart).
  const auto progress = [this] { return settled_.load() + span_chunks_.load(std::memory_order_relaxed); };
  size_t seen = progress();
  bool warm_tried = false;
  bool finished = false;
  while (!stop_.load()) {
    if (!finished && Complete()) {
      finished = true;
      if (Finish()) break;
      // The descriptor stays open (a failed chunk's pages missing): faults
      // still come, a page the process drops from a good chunk among them.
      prefetch = help = false;
      warm_tried = true;
    }
    int timeout = prefetch ? 1 : help ? kHelpAfterMs : -1;
    if (!waiting_.empty()) {
      const int next = AssistWaiting();
      if (next >= 0 && (timeout < 0 || next < timeout)) timeout = next;
    }
    int n = poll(fds, 2, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0 && prefetch) {  // no fault within 1 ms: prefetch now
      StartPrefetch();
      prefetch = false;
      seen = progress();
      continue;
    }
    if (n == 0 && !waiting_.empty()) continue;  // a waiting fault's deadline (AssistWaiting, above)
    if (n == 0) {
      if (progress() == seen) help = HelpOne();
      seen = progress();
      continue;
    }
    if (fds[1].revents != 0) {
      uint64_t v;
      (void)!read(stop_fd_, &v, sizeof v);
      continue;  // stop_ or Complete(), checked above
    }
    if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) break;
    ssize_t got = read(uffd, msgs, sizeof msgs);
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      break;
    }
    const size_t count = static_cast<size_t>(got) / sizeof(struct uffd_msg);
    for (size_t k = 0; k < count && !stop_.load(); k++) {
      if (msgs[k].event != UFFD_EVENT_PAGEFAULT) continue;
      faults_.fetch_add(1, std::memory_order_relaxed);
      if (follow_.on) Follow(msgs[k].arg.pagefault.feat.ptid);
      const uint64_t addr = msgs[k].arg.pagefault.address & ~(page - 1);
      const int64_t c = ChunkAt(addr);
      if (c < 0) {
        // Not a chunk's page (none is registered without one): zeros,
        // as the kernel would give without us.
        Zero(addr, page);
        continue;
      }
      if (faulted_[c].exchange(1) == 0) {
        std::lock_guard<std::mutex> lock(mu_);
        try {
          profile_.push_back(static_cast<uint32_t>(c));
        } catch (const std::exception&) {
          // Out of memory: the profile misses it; the fault is still served.
        }
      }
      Resolve(static_cast<uint32_t>(c), true, addr);
    }
    if (!warm_tried) {  // the first faults served: the warm thread now
      warm_tried = true;
      StartWarm();
    }
    if (prefetch) {  // the first faults served: prefetch now
      StartPrefetch();
      prefetch = false;
    }
  }
  if (follow_.stat_fd >= 0) close(follow_.stat_fd);
  follow_.stat_fd = -1;
  if (!finished && !stop_.load() && Complete()) Finish();  // the loop left on a poll error
}

bool LazySession::Finish() {
  // Every chunk in (or poisoned): the registration is no longer needed, and
  // a page dropped later (MADV_DONTNEED) should fill with zeros as any
  // anonymous page, not wait for a handler that is gone. With a failed chunk
  // left missing (no poison), the descriptor stays open until release.
  bool closed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.code.empty() || (poison_ && !poison_refused_.load())) {
      if (!uffd_closed_.exchange(true)) close(config_.uffd);
      closed = true;
    }
  }
  // No chunk is left to read (a prefetch thread holds none once all are
  // settled): the readers go now, not at release, which may never come; the
  // chunk table too unless the handler serves on (it reads it: ChunkOf).
  for (auto& t : prefetchers_) {
    if (t.joinable()) t.join();
  }
  if (closed) ReleaseReaders();
  else ReleaseSources();
  return closed;
}

void LazySession::Resolve(uint32_t c, bool by_fault, uint64_t addr) {
  if (ResolveInSpan(c, by_fault, addr)) return;
  uint8_t expected = kPending;
  if (state_[c].compare_exchange_strong(expected, kBusy)) {
    Install(c, by_fault, addr);
    return;
  }
  // Busy: its installer's copy (or poison) wakes the waiter; the handler
  // decodes it too rather than wait on a nicer prefetch thread. Installed or
  // failed: the page came in (or was poisoned) before this message was read.
  if (by_fault && expected == kBusy) {
    Assist(c);
    return;
  }
  // Only installed: a failed chunk's pages are poisoned (the poison woke the
  // thread) or, without poison, left missing, its thread waiting until
  // release; waking it would fault again at once, a busy loop.
  if (by_fault && expected == kInstalled) Dropped(c, addr);
}

void LazySession::Dropped(uint32_t c, uint64_t addr) {
  // A page of an installed chunk missing again was dropped by the process
  // (MADV_DONTNEED, or MADV_FREE reclaimed): it reads zeros, as any dropped
  // anonymous page. Only waking the thread made it fault again at once, a
  // busy loop until done. A page present again (a fault read just before
  // the install) is left as it is (EEXIST) and its thread woken below.
  if (addr != 0) Zero(addr, config_.page_size);
  const LazyChunk ch = ChunkOf(c);
  WakeRange(ch.dest, Span(ch));
}

void LazySession::Install(uint32_t c, bool by_fault, uint64_t addr) {
  std::vector<uint8_t>& in = t_in;
  std::vector<uint8_t>& out = t_out;
  const LazyChunk ch = ChunkOf(c);
  std::string detail;
  const char* code = nullptr;
  const uint64_t t0 = by_fault ? MonotonicNs() : 0;
  try {
    out.resize(Span(ch));
    code = Produce(ch, in, out.data(), &detail);
  } catch (const std::exception&) {  // bad_alloc growing the buffers
    code = "IO_ERROR";
    detail = "out of memory";
  }
  // Released meanwhile (a read answered "stopped", say): not a failure of the chunk.
  if (stop_.load() || (code != nullptr && strcmp(code, "ZERO") != 0 && reads_off_.load())) return;
  if (code != nullptr && strcmp(code, "ZERO") != 0) {
    Fail(c, code, std::move(detail));
    return;
  }
  // Counted before the pages go in: the woken thread may read the counters at once.
  auto& counter = by_fault ? fault_installs_ : prefetched_;
  counter.fetch_add(1, std::memory_order_relaxed);
  if (code != nullptr) zero_installs_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t t1 = by_fault ? MonotonicNs() : 0;
  // For a fault, with the warm thread: installed without waking, handed to the warm thread,
  // then woken (kWarm: the waking CPU then has a wake-up pending, so the faulting thread
  // stays on the CPU it faulted on, the handler's, rather than being moved to an idle one).
  const bool handoff = by_fault && warm_on_.load();
  const uint64_t span = Span(ch);
  const bool in_place = code != nullptr ? Zero(ch.dest, span, !handoff) : Copy(ch.dest, out.data(), span, !handoff);
  if (by_fault) {
    fault_decode_ns_.fetch_add(t1 - t0, std::memory_order_relaxed);
    fault_install_ns_.fetch_add(MonotonicNs() - t1, std::memory_order_relaxed);
  }
  if (!in_place && !stop_.load()) {
    // ENOMEM, or EAGAIN past the retries: counted installed, its pages
    // would read zeros once the descriptor closes.
    const int e = errno;
    if (handoff) WakeRange(ch.dest, span);  // the pages that did go in
    counter.fetch_sub(1, std::memory_order_relaxed);
    if (code != nullptr) zero_installs_.fetch_sub(1, std::memory_order_relaxed);
    Fail(c, "IO_ERROR", ErrnoText(code != nullptr ? "cannot install the chunk's zero pages (UFFDIO_ZEROPAGE)"
                                                  : "cannot install the chunk's pages (UFFDIO_COPY)", e));
    return;
  }
  state_[c].store(kInstalled);
  if (handoff) {
    bool queued = false;
    {
      std::lock_guard<std::mutex> lock(warm_mu_);
      try {
        warm_.emplace_back(c, addr);
        queued = true;
        warm_posted_.store(true, std::memory_order_relaxed);
      } catch (const std::exception&) {
        // Out of memory: not warmed, settled here.
      }
    }
    if (queued) warm_cv_.notify_one();
    WakeRange(ch.dest, span);
    if (queued) return;  // the warm thread settles it
  }
  Settle();
}

void LazySession::Assist(uint32_t c) {
  std::vector<uint8_t>& in = t_in;
  std::vector<uint8_t>& out = t_out;
  const LazyChunk ch = ChunkOf(c);
  std::string detail;
  const char* code = nullptr;
  try {
    out.resize(Span(ch));
    code = Produce(ch, in, out.data(), &detail);
  } catch (const std::exception&) {
    return;  // out of memory: the owner installs (or fails) it
  }
  if (code != nullptr && strcmp(code, "ZERO") != 0) return;  // the owner fails it
  assists_.fetch_add(1, std::memory_order_relaxed);
  if (code != nullptr) Zero(ch.dest, Span(ch));
  else Copy(ch.dest, out.data(), Span(ch));
}

const char* LazySession::Produce(const LazyChunk& ch, std::vector<uint8_t>& in, uint8_t* out, std::string* detail) {
  thread_local ChunkDecoder decoder;
  const uint64_t span = Span(ch);
  // The chunk's own image: a child's IN_PARENT chunk comes from a parent (section 8.3).
  const LazyContext* own = ch.context < config_.contexts.size() ? &config_.contexts[ch.context] : nullptr;
  const LazySource* from = ch.source < config_.sources.size() ? &config_.sources[ch.source] : nullptr;
  const uint64_t data_start = from != nullptr && from->has_bounds ? from->data_start : config_.data_start;
  const uint64_t data_end = from != nullptr && from->has_bounds ? from->data_end : config_.data_end;
  if (const char* problem = ChunkFormProblem(ch.flags, ch.stored_len, ch.plain_len,
                                             own == nullptr ? 0 : own->codec,
                                             own == nullptr ? 0 : own->cipher, ch.checksum)) {
    *detail = std::string(problem) + "; the chunk table is damaged, verify the image";
    return "CORRUPT_INDEX";
  }
  if (!(ch.flags & kChunkZero) &&
      (ch.offset < data_start || ch.offset > data_end || ch.stored_len > data_end - ch.offset)) {
    *detail = "the chunk's stored bytes lie outside the data area; the chunk table is damaged, verify the image";
    return "CORRUPT_INDEX";
  }
  if (ch.flags & kChunkZero) return "ZERO";
  if (ch.source >= config_.sources.size() || ch.context >= config_.contexts.size()) {
    *detail = "no source or key for this chunk";
    return "INVALID_ARGUMENT";
  }
  const LazySource& src = config_.sources[ch.source];
  // A raw unencrypted chunk is read straight into the page buffer and
  // checked there; others are read, then checked and decoded into it.
  const bool direct = (ch.flags & (kChunkRaw | kChunkEncrypted)) == kChunkRaw && ch.stored_len == ch.plain_len;
  if (!direct) in.resize(ch.stored_len);
  uint8_t* dst = direct ? out : in.data();
  const char* failed = nullptr;
  if (src.fd >= 0) {
    size_t done = 0;
    while (done < ch.stored_len) {
      ssize_t r = pread(src.fd, dst + done, ch.stored_len - done, static_cast<off_t>(ch.offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        failed = strerror(errno);
        break;
      }
      if (r == 0) {
        failed = "the file ends before the chunk's stored bytes";
        break;
      }
      done += static_cast<size_t>(r);
    }
  } else if (src.read) {
    failed = src.read(ch.offset, ch.stored_len, dst, reads_off_);
  } else {
    failed = "the source has no reader";
  }
  if (failed != nullptr) {
    *detail = std::string("cannot read the chunk's stored bytes: ") + failed;
    return "IO_ERROR";
  }
  if (direct) {
    if (Xxh64(dst, ch.stored_len, 0) != ch.checksum) {
      memset(dst, 0, ch.stored_len);
      *detail = "checksum of the stored bytes does not match the chunk table";
      return "CORRUPT_CHUNK";
    }
  } else {
    const LazyContext& ctx = config_.contexts[ch.context];
    ChunkImage image;
    image.codec = ctx.codec;
    image.cipher = ctx.cipher;
    image.chunk_size = ctx.chunk_size;
    image.data_key = ctx.cipher != 0 ? ctx.key : nullptr;
    image.image_id = ctx.image_id;
    image.header_hash = ctx.header_hash;
    ChunkRecord rec;
    rec.number = ch.number;
    rec.region = ch.region;
    rec.address = ch.address;
    rec.last = ch.last;
    rec.plain_length = ch.plain_len;
    rec.stored_length = ch.stored_len;
    rec.flags = ch.flags;
    rec.checksum = ch.checksum;
    ChunkResult r = decoder.Decode(image, rec, dst, out);
    if (r.status != ChunkStatus::kOk) {
      *detail = r.message;
      return r.code();
    }
  }
  if (span > ch.plain_len) memset(out + ch.plain_len, 0, span - ch.plain_len);
  return nullptr;
}

void LazySession::Fail(uint32_t c, const char* code, std::string detail) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.code.empty()) {
      failure_.code = code;
      failure_.chunk = c;
      failure_.detail = std::move(detail);
    }
  }
  // Any access to its pages from now on is a SIGBUS; a thread waiting on
  // one is woken into it. Refused: the uffd stays open (HandlerLoop).
  const LazyChunk ch = ChunkOf(c);
  if (poison_ && !Poison(ch.dest, Span(ch))) poison_refused_.store(true);
  state_[c].store(kFailed);
  Settle();
}

void LazySession::Settle() {
  const size_t total = config_.count;
  const size_t n = total == 0 ? 0 : settled_.fetch_add(1) + 1;
  if (n != total) return;
  // Settled while release() stops the threads (the warm thread finishing its
  // queue): released first, not done; the memory is about to be unmapped.
  // Inherited again once every chunk is in and none failed (a failed
  // chunk's pages stay missing or poisoned: a child must not read them as zeros).
  const bool released = stop_.load() || warm_stop_.load();
  const bool failed = [this] { std::lock_guard<std::mutex> lock(mu_); return !failure_.code.empty(); }();
  if (!released && !failed) Inherit(config_, MADV_DOFORK);
  if (!done_called_.exchange(true)) done_(released);
  EndWarm();
  Wake();  // the handler ends
}

}  // namespace crimg
