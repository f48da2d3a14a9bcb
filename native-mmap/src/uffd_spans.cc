// Whole spans of a lazy restore (uffd.h kWholeSpans): an aligned 2 MiB of
// whole chunks decoded into a per-thread huge page and moved in with one
// UFFDIO_MOVE, so that its reader takes one 2 MiB page instead of 512 fresh
// 4 KiB ones. From the kernel (mm/userfaultfd.c, Linux 6.8+):
// - UFFDIO_MOVE moves a PMD-mapped huge page whole when source and
//   destination are 2 MiB-aligned, the length covers it and nothing is mapped
//   at the destination's PMD; otherwise it splits the page and moves 4 KiB
//   pages (still correct, only slower). A page present at the destination
//   stops it with EEXIST; a source page shared with a forked child, EBUSY;
//   a page table or page another thread holds for a moment, EAGAIN (moved
//   again here); `move` is then the bytes moved before it (the rest is
//   installed here by UFFDIO_COPY from the same buffer).
// - Both areas must be private anonymous, writable, with the same
//   protection, and the destination registered with this descriptor; a fault
//   in a huge-page-eligible area reaches the handler with its PMD still empty
//   (do_huge_pmd_anonymous_page asks userfaultfd first), which is why the
//   spans are advised MADV_HUGEPAGE before they are registered.
// - Unless UFFDIO_MOVE_MODE_DONTWAKE, the move wakes every thread waiting on
//   a fault in the range.
#include "uffd.h"

#include "batch_decode.h"  // PopulateWrite (provision.cc)

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>

#ifndef UFFDIO_MOVE
struct uffdio_move {
  __u64 dst;
  __u64 src;
  __u64 len;
  __u64 mode;
  __s64 move;
};
#define _UFFDIO_MOVE (0x05)
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

namespace crimg {
namespace {

static_assert(kPending == 0, "calloc'd states start pending");

// One thread's 2 MiB-aligned buffer, advised MADV_HUGEPAGE (one huge page
// where the kernel has one) and MADV_DONTFORK (a forked child sharing its page
// would make the move refuse it). A whole move of a huge page leaves it empty
// (no page table), ready for the next span; after any other span, and every
// kRemapEvery spans (a buffer that got small pages, where no huge page was to
// be had, keeps a page table that splits every later move), it is mapped anew:
// remapping for every span made raw spans ~2x dearer here (~0.9 against ~0.4 ms).
// Unmapped when the thread ends.
constexpr int kRemapEvery = 64;
struct SpanBuffer {
  uint8_t* base = nullptr;
  bool reuse = false;  // the last span ended in a whole move
  int uses = 0;
  ~SpanBuffer() { Unmap(); }
  void Unmap() {
    if (base != nullptr) munmap(base, kSpanBytes);
    base = nullptr;
  }
  bool Map() {
    void* p = mmap(nullptr, 2 * kSpanBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    const uintptr_t at = reinterpret_cast<uintptr_t>(p);
    const uintptr_t aligned = (at + kSpanBytes - 1) & ~(kSpanBytes - 1);
    if (aligned > at) munmap(p, aligned - at);
    if (at + 2 * kSpanBytes > aligned + kSpanBytes) {
      munmap(reinterpret_cast<void*>(aligned + kSpanBytes), at + 2 * kSpanBytes - (aligned + kSpanBytes));
    }
    base = reinterpret_cast<uint8_t*>(aligned);
    (void)madvise(base, kSpanBytes, MADV_HUGEPAGE);
    (void)madvise(base, kSpanBytes, MADV_DONTFORK);
    return true;
  }
  // Ready for a span: mapped, zero and present (MADV_POPULATE_WRITE: one huge
  // page, or 512 small ones where none is to be had, else written), so that a
  // zero chunk, which is not written, is no hole the move would refuse.
  bool Ready() {
    if (base == nullptr || !reuse || ++uses % kRemapEvery == 0) {
      Unmap();
      if (!Map()) return false;
    }
    reuse = false;
    if (!PopulateWrite(reinterpret_cast<uintptr_t>(base), kSpanBytes)) memset(base, 0, kSpanBytes);
    return true;
  }
};
thread_local SpanBuffer t_span;
thread_local std::vector<uint8_t> t_span_in;
thread_local std::vector<uint8_t> t_span_zero;  // per chunk of the span in hand: a zero chunk
thread_local bool t_prefetch_thread = false;     // MarkPrefetchThread

// The first line of a small sysfs file, or "" when it cannot be read.
std::string ReadSmall(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[256];
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// 2 MiB transparent huge pages to be had: the PMD size is 2 MiB, THP is not
// 'never', nor its 2 MiB size (Linux 6.8+: 'inherit' follows the first), nor
// turned off for this process (PR_SET_THP_DISABLE). Read once per process.
bool HugePagesOffered() {
  static const bool offered = [] {
    if (ReadSmall("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size").compare(0, 7, "2097152") != 0) return false;
    const std::string all = ReadSmall("/sys/kernel/mm/transparent_hugepage/enabled");
    if (all.empty() || all.find("[never]") != std::string::npos) return false;
    if (ReadSmall("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled").find("[never]") != std::string::npos) return false;
    return prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1;
  }();
  return offered;
}

}  // namespace

void MarkPrefetchThread() { t_prefetch_thread = true; }

void PlanSpans(LazyConfig* config) {
  config->spans.clear();
  const uint64_t page = config->page_size;
  const uint64_t size = config->chunk_size;
  if (!config->move || !config->huge || page != 4096 || size == 0 || size > kSpanBytes ||
      kSpanBytes % size != 0 || !HugePagesOffered()) {
    return;
  }
  const auto& resolved = config->resolved;
  // Chunk c's flags: a child's IN_PARENT chunk resolved to a parent's, else its record's.
  const auto flags_of = [config, &resolved](const LazyRegion& r, uint32_t c) -> uint16_t {
    if (!resolved.empty()) {
      auto it = std::lower_bound(resolved.begin(), resolved.end(), c,
                                 [](const std::pair<uint32_t, LazyChunk>& e, uint32_t x) { return e.first < x; });
      if (it != resolved.end() && it->first == c) return it->second.flags;
    }
    uint16_t f;
    memcpy(&f, config->table + (r.first + (c - r.begin)) * 24 + 12, 2);
    return f;
  };
  const uint32_t per = static_cast<uint32_t>(kSpanBytes / size);
  for (const LazyRegion& r : config->regions) {  // ascending `begin`: so are the spans
    if (r.dest % size != 0) continue;  // chunks would straddle the spans
    // The chunks' pages end at `end` (the last chunk's page-rounded length).
    const uint64_t end = r.dest + (r.length + page - 1) / page * page;
    const uint64_t a = (r.dest + kSpanBytes - 1) & ~(kSpanBytes - 1);
    const uint64_t z = end & ~(kSpanBytes - 1);
    if (z <= a) continue;
    const bool registered = std::any_of(config->ranges.begin(), config->ranges.end(), [a, z](const std::pair<uint64_t, uint64_t>& g) {
      return g.first <= a && z <= g.first + g.second;
    });
    if (!registered) continue;
    // Only spans the stored chunks fill half of or more (the rule copy mode's huge pages
    // follow): the others go chunk by chunk, their zero chunks as zero pages, and are not
    // advised, so that neither a write fault there (which takes a huge page before it asks
    // the handler) nor khugepaged once every chunk is in makes their zeros resident.
    // Advised in runs of neighbours, one madvise each.
    size_t run = config->spans.size();
    const auto advise = [config, &run]() {
      const size_t n = config->spans.size() - run;
      if (n > 0 && madvise(reinterpret_cast<void*>(config->spans[run].start), n * kSpanBytes, MADV_HUGEPAGE) != 0) {
        config->spans.resize(run);
      }
      run = config->spans.size();
    };
    for (uint64_t at = a; at < z; at += kSpanBytes) {
      const uint32_t first = static_cast<uint32_t>(r.begin + (at - r.dest) / size);
      uint32_t zero = 0;
      for (uint32_t k = 0; k < per; k++) {
        if (flags_of(r, first + k) & kChunkZero) zero++;
      }
      if (zero * 2 > per) {
        advise();
        continue;
      }
      config->spans.push_back({at, first, per});
    }
    advise();
  }
}

int64_t LazySession::SpanOf(uint32_t c) const {
  const auto& spans = config_.spans;
  if (spans.empty()) return -1;
  auto it = std::upper_bound(spans.begin(), spans.end(), c, [](uint32_t x, const LazySpan& s) { return x < s.first; });
  if (it == spans.begin()) return -1;
  --it;
  return c - it->first < it->count ? it - spans.begin() : -1;
}

bool LazySession::TakeWhole(size_t s) {
  if (spans_off_.load(std::memory_order_relaxed)) {
    ChunkWise(s);
    return false;
  }
  uint8_t expected = kSpanFree;
  return span_state_[s].compare_exchange_strong(expected, kSpanWhole);
}

bool LazySession::ResolveInSpan(uint32_t c, bool by_fault, uint64_t addr) {
  const int64_t s = SpanOf(c);
  if (s < 0) return false;
  // A fault on the near edge of the span next to the last fault's: a
  // thread walking the memory, which will want the whole span (uffd.h
  // kWholeSpans; a scattered working set does this once in ~16,000 faults).
  // A span of one chunk (2 MiB chunks) is always taken whole: it decodes
  // nothing more, and its pages come in one huge page instead of 512 small
  // ones, each an exit at its first read on a VM.
  const LazySpan& sp = config_.spans[static_cast<size_t>(s)];
  const bool walking = by_fault && (sp.count == 1 || (last_span_ == s - 1 && c == sp.first) ||
                                    (last_span_ == s + 1 && c == sp.first + sp.count - 1));
  if (by_fault) last_span_ = s;
  if (walking && TakeWhole(static_cast<size_t>(s))) {
    // Its thread walks on through the span: the span's chunks join the
    // access profile in the walk's order, as their faults would have.
    const bool up = c == sp.first;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (uint32_t k = 1; k < sp.count; k++) {
        const uint32_t x = up ? c + k : c - k;
        if (faulted_[x].exchange(1) != 0) continue;
        try {
          profile_.push_back(x);
        } catch (const std::exception&) {
          break;  // out of memory: the profile misses them
        }
      }
    }
    InstallWhole(static_cast<size_t>(s), true);
    return true;
  }
  if (!ChunkWise(static_cast<size_t>(s))) {
    // Taken whole: its move (or its copies) wakes the thread; if that takes
    // too long, the handler assists (AssistWaiting: a page copied in stops
    // the move there), and once it has, at once (kSpanBroken). Installed: a
    // page dropped since, as in Resolve.
    const uint8_t now = by_fault ? state_[c].load() : kInstalled + 1;
    if (now == kPending || now == kBusy) {
      if (span_state_[s].load() == kSpanBroken) {
        Assist(c);
      } else if (std::none_of(waiting_.begin(), waiting_.end(), [c](const Waiting& w) { return w.chunk == c; })) {
        try {
          waiting_.push_back({c, MonotonicNs() + kSpanAssistAfterMs * 1000000ull});
        } catch (const std::exception&) {
          // Out of memory: the fault waits for the move.
        }
      }
    } else if (now == kInstalled) {
      Dropped(c, addr);
    }
    return true;
  }
  return false;
}

bool LazySession::HotRun(size_t i, const LazySpan& sp) const {
  const std::vector<uint32_t>& hot = config_.hot;
  const uint32_t c = hot[i];
  const uint32_t need = std::max<uint32_t>(sp.count / 2, 1);
  if (hot.size() - i < need) return false;
  const bool up = c == sp.first;
  if (!up && c != sp.first + sp.count - 1) return false;
  for (uint32_t k = 1; k < need; k++) {
    if (hot[i + k] != (up ? c + k : c - k)) return false;
  }
  return true;
}

bool LazySession::ChunkWise(size_t s) {
  uint8_t expected = kSpanFree;
  return span_state_[s].compare_exchange_strong(expected, kSpanChunks) || expected == kSpanChunks;
}

void LazySession::InstallWhole(size_t s, bool by_fault) {
  const LazySpan sp = config_.spans[s];
  // Claimed whole: no other thread claims these chunks (uffd.cc Resolve,
  // PrefetchOne ask ChunkWise first).
  for (uint32_t k = 0; k < sp.count; k++) state_[sp.first + k].store(kBusy);
  SpanBuffer& buf = t_span;
  struct Bad {
    uint32_t k;
    const char* code;
    std::string detail;
  };
  std::vector<Bad> bad;  // chunks that failed their check (none, almost always)
  std::vector<uint8_t>& zero = t_span_zero;
  bool ready = false;
  try {
    bad.reserve(sp.count);
    zero.assign(sp.count, 0);
    ready = buf.Ready();
  } catch (const std::exception&) {
    ready = false;
  }
  if (!ready) {  // no buffer (out of address space or memory): chunk by chunk
    for (uint32_t k = 0; k < sp.count && !stop_.load(); k++) Install(sp.first + k, by_fault);
    return;
  }
  const uint64_t t0 = MonotonicNs();
  for (uint32_t k = 0; k < sp.count; k++) {
    const LazyChunk ch = ChunkOf(sp.first + k);
    std::string detail;
    const char* code = nullptr;
    try {
      code = Produce(ch, t_span_in, buf.base + (ch.dest - sp.start), &detail);
    } catch (const std::exception&) {  // bad_alloc growing the stored bytes' buffer
      code = "IO_ERROR";
      detail = "out of memory";
    }
    // Released (or releasing, a read answered "stopped"): not a failure of the span (the buffer is remade next time).
    if (stop_.load() || (code != nullptr && strcmp(code, "ZERO") != 0 && reads_off_.load())) return;
    span_chunks_.fetch_add(1, std::memory_order_relaxed);
    if (code == nullptr) continue;
    if (strcmp(code, "ZERO") == 0) {
      zero[k] = 1;  // the buffer's fresh page is zeros there already
      continue;
    }
    bad.push_back({k, code, std::move(detail)});  // reserved: no allocation
  }
  const uint64_t t1 = MonotonicNs();
  auto& counter = by_fault ? fault_installs_ : prefetched_;
  // Counted before the pages go in: the woken thread may read the counters at once.
  counter.fetch_add(sp.count - bad.size(), std::memory_order_relaxed);
  if (bad.empty()) spans_moved_.fetch_add(1, std::memory_order_relaxed);
  uint64_t moved = 0;
  int refused = 0;
  // EAGAIN: part moved, then a transient state or a page present; the rest is
  // tried again (a page present then says EEXIST), a bounded number of times.
  for (int tries = 0; bad.empty() && moved < kSpanBytes && tries < 100; tries++) {
    struct uffdio_move m;
    memset(&m, 0, sizeof m);
    m.dst = sp.start + moved;
    m.src = reinterpret_cast<uint64_t>(buf.base) + moved;
    m.len = kSpanBytes - moved;
    if (ioctl(config_.uffd, UFFDIO_MOVE, &m) == 0) {
      moved = kSpanBytes;
      break;
    }
    const int e = errno;
    if (m.move > 0) moved += static_cast<uint64_t>(m.move);
    if (e == EAGAIN) {
      if (m.move <= 0) std::this_thread::yield();
      continue;
    }
    refused = e;
    break;
  }
  // Refused for a reason that will not pass (EINVAL: a protection or lock
  // mismatch; ENOENT: a hole; EBUSY: a shared page; ENOMEM): no more whole
  // spans in this session. EEXIST is the handler's copy of a chunk whose fault
  // waited too long (Resolve), not a reason.
  if (refused != 0 && refused != EEXIST) spans_off_.store(true);
  const uint64_t t2 = MonotonicNs();
  span_decode_ns_.fetch_add(t1 - t0, std::memory_order_relaxed);
  span_move_ns_.fetch_add(t2 - t1, std::memory_order_relaxed);
  if (by_fault) {
    fault_decode_ns_.fetch_add(t1 - t0, std::memory_order_relaxed);
    fault_install_ns_.fetch_add(t2 - t1, std::memory_order_relaxed);
  }
  if (moved == kSpanBytes) {
    buf.reuse = true;  // the move took its page
    // Installed before the reads below: a fault there (a page the process
    // dropped meanwhile) is then served at once as a dropped page.
    for (uint32_t k = 0; k < sp.count; k++) state_[sp.first + k].store(kInstalled);
    // A prefetch thread reads a byte of every 4 KiB of the span where it now
    // lies, before settling it (its protection may forbid reads once done):
    // when the host backs the page in 4 KiB pieces, this VM's shadow page
    // tables take an exit per 4 KiB at the first read from each new address,
    // and a thread touching every page paid ~700 ms per GiB for them alone
    // (touch-all runs of 400-530 ms against 1.1-1.25 s, the same spans
    // decoded as fast in both). Here the two prefetch threads pay it, side by
    // side. Where the page is mapped whole it costs one exit. Not for a
    // fault (its thread is already reading the span), nor on the handler's
    // help (the handler must not fault on memory only it can serve).
    if (!by_fault && t_prefetch_thread) {
      // Entered, then the flag read (both sequentially consistent): either
      // EndSpanReads sees this thread in, or this thread sees the flag.
      span_readers_.fetch_add(1);
      uint64_t sum = 0;
      for (uint64_t off = 0; off < kSpanBytes && !span_reads_off_.load(); off += config_.page_size) {
        sum += *reinterpret_cast<const volatile uint8_t*>(sp.start + off);
      }
      span_readers_.fetch_sub(1);
      warm_sink_.fetch_add(sum, std::memory_order_relaxed);
    }
    for (uint32_t k = 0; k < sp.count; k++) Settle();
    return;
  }
  // A chunk failed, or the move was refused part way: chunk by chunk from
  // the buffer (the part moved is in; a failed chunk's pages are poisoned,
  // a zero chunk's are zero pages).
  if (bad.empty()) spans_moved_.fetch_sub(1, std::memory_order_relaxed);
  size_t b = 0;
  for (uint32_t k = 0; k < sp.count; k++) {
    const uint32_t c = sp.first + k;
    if (b < bad.size() && bad[b].k == k) {
      Fail(c, bad[b].code, std::move(bad[b].detail));
      b++;
      continue;
    }
    const LazyChunk ch = ChunkOf(c);
    const uint64_t off = ch.dest - sp.start;
    const uint64_t span = Span(ch);
    if (off + span > moved) {
      if (zero[k]) zero_installs_.fetch_add(1, std::memory_order_relaxed);
      if (!(zero[k] ? Zero(ch.dest, span) : Copy(ch.dest, buf.base + off, span))) {
        if (stop_.load()) return;
        const int e = errno;
        counter.fetch_sub(1, std::memory_order_relaxed);
        if (zero[k]) zero_installs_.fetch_sub(1, std::memory_order_relaxed);
        Fail(c, "IO_ERROR", std::string(zero[k] ? "cannot install the chunk's zero pages (UFFDIO_ZEROPAGE): "
                                                : "cannot install the chunk's pages (UFFDIO_COPY): ") + strerror(e));
        continue;
      }
    }
    state_[c].store(kInstalled);
    Settle();
  }
}

int LazySession::AssistWaiting() {
  uint64_t next = UINT64_MAX;
  size_t keep = 0;
  for (size_t i = 0; i < waiting_.size(); i++) {
    const Waiting w = waiting_[i];
    const uint8_t state = state_[w.chunk].load();
    if (state != kPending && state != kBusy) continue;  // in, or failed: its install woke the thread
    const uint64_t now = MonotonicNs();
    if (now >= w.deadline_ns) {
      // The span's owner is stuck: the chunk copied in here (waking the
      // thread), and the span's next faults at once.
      const int64_t s = SpanOf(w.chunk);
      if (s >= 0) span_state_[s].store(kSpanBroken);
      Assist(w.chunk);
      continue;
    }
    next = std::min(next, w.deadline_ns);
    waiting_[keep++] = w;
  }
  waiting_.resize(keep);
  if (next == UINT64_MAX) return -1;
  const uint64_t now = MonotonicNs();
  return next <= now ? 0 : static_cast<int>((next - now + 999999) / 1000000);
}

void LazySession::EndSpanReads() {
  span_reads_off_.store(true);
  // The handler still runs: a reader waiting on a dropped page is served (a
  // zero page) and leaves at its next page. Bounded: a handler itself waiting
  // on a JavaScript read cannot serve it while this thread waits here.
  const uint64_t t0 = MonotonicNs();
  while (span_readers_.load() != 0 && MonotonicNs() - t0 < 1000000000ull) std::this_thread::yield();
}

}  // namespace crimg
