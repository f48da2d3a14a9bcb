// Lazy restore through userfaultfd (restore/_lazy.ts): the memory of a
// restore is registered for MISSING faults; a handler thread resolves each
// fault by decoding the whole chunk that holds it and installing it with one
// UFFDIO_COPY (UFFDIO_ZEROPAGE for a zero chunk), and prefetch threads install
// the other chunks, a hot list first, then in image order; an aligned 2 MiB of
// whole chunks may go in whole, as a huge page moved in with UFFDIO_MOVE
// (kWholeSpans, uffd_spans.cc). No JavaScript runs per fault or per chunk read
// from a file.
//
// Never unverified bytes: a chunk is installed only after its checksum (and
// tag, and exact decoding) passed; a chunk that fails is not installed, its
// pages are poisoned (UFFDIO_POISON: any access is a SIGBUS, as a read error
// under a file mapping) where the kernel offers it, else left missing with the
// descriptor kept open, so a thread touching them waits until release.
//
// No N-API in this layer (uffd_js.cc binds it).
#ifndef CRIMG_UFFD_H_
#define CRIMG_UFFD_H_

#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chunk_decode.h"

namespace crimg {


// One chunk to install, as Install reads it (LazySession::ChunkOf): made on
// demand from its region and its chunk table record, not kept per chunk.
struct LazyChunk {
  uint64_t dest;        // where its first byte goes (in the restore's memory)
  uint64_t address;     // its recorded address (associated data of a sealed chunk)
  uint64_t offset;      // file offset of its stored bytes
  uint64_t checksum;    // XXH64 of the stored bytes
  uint64_t number;      // its number in its image's chunk table (nonce)
  uint64_t listed;      // its number in the restored image's table (a child's own, for the profile and failures)
  uint32_t plain_len;
  uint32_t stored_len;
  uint32_t region;      // its region number (associated data)
  uint16_t flags;       // kChunk* bits (chunk_decode.h)
  bool last;            // its region's last chunk (associated data)
  uint16_t source;      // index into LazyConfig::sources
  uint16_t context;     // index into LazyConfig::contexts
};

// An aligned 2 MiB of a region's memory made of whole chunks (kWholeSpans):
// installed either whole, decoded into a huge page and moved in with one
// UFFDIO_MOVE, or chunk by chunk, never both. Built by Start (PlanSpans).
struct LazySpan {
  uint64_t start;   // 2 MiB-aligned
  uint32_t first;   // its first chunk's index
  uint32_t count;   // its chunks (2 MiB / chunk size)
};

// One restored region. The session numbers the chunks of its regions
// 0..count-1 in order (a chunk's "index"); a region's are [begin, begin + count).
struct LazyRegion {
  uint64_t dest;     // placed address of its first byte (page-aligned)
  uint64_t address;  // recorded address
  uint64_t length;
  uint64_t first;    // its first chunk's number in the chunk table
  uint32_t number;   // its region number
  uint32_t begin;
  uint32_t count;
};

// How the chunks of one image are decoded: codec, cipher and key.
struct LazyContext {
  int codec = 0;   // 0 none, 1 deflate, 2 zstd
  int cipher = 0;  // 0 none, 1 AES-256-GCM, 2 ChaCha20-Poly1305
  uint32_t chunk_size = 0;
  uint8_t key[32] = {};  // the data key Kd (section 7.2)
  uint8_t image_id[16] = {};
  uint8_t header_hash[32] = {};
};

// Reads `length` bytes at `offset` into `out`; nullptr or what failed.
// A file source is a pread on `fd`; another source calls `read` (a JS
// callback through a thread-safe function, see uffd_js.cc).
struct LazySource {
  int fd = -1;          // the caller's; Start dups it, the session reads and closes its dup
  // Its image's data area, when not the config's (a parent image's file, section 8.3).
  bool has_bounds = false;
  uint64_t data_start = 0;
  uint64_t data_end = 0;
  std::function<const char*(uint64_t offset, size_t length, uint8_t* out, const std::atomic<bool>& stop)> read;
  // Called once when no thread will call `read` again (the JS reader is let go).
  std::function<void()> release;
};

// Why a chunk was not installed: a CrimgError code (CORRUPT_CHUNK,
// AUTH_FAILED, CORRUPT_INDEX, IO_ERROR, ...) and what happened.
struct LazyFailure {
  std::string code;     // empty: no failure
  uint32_t chunk = 0;   // its index (LazyRegion)
  std::string detail;   // no key material, no plaintext
};

struct LazyConfig {
  int uffd = -1;                        // from OpenUffd, owned from here on
  size_t page_size = 4096;
  bool user_mode_only = false;
  bool thread_id = false;               // OpenUffd's: faults name their thread (kFollowFaulter)
  bool follow = true;                   // kFollowFaulter unless CRIMG_LAZY_FOLLOW=0 (read by the caller's thread)
  bool warm = true;                     // kWarm unless CRIMG_LAZY_WARM=0
  bool help = true;                     // the handler's help (kHelpAfterMs) unless CRIMG_LAZY_HELP=0
  bool move = false;                    // OpenUffd's: UFFDIO_MOVE offered (Linux 6.8+)
  bool huge = true;                     // kWholeSpans: spec.huge (no 'nohugepage' advice) and not CRIMG_LAZY_HUGE=0
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [start, length) registered
  // What is restored: O(regions), nothing per chunk (restore returns sooner:
  // a per-chunk list in fresh memory cost ~0.15 us a chunk on this VM).
  std::vector<LazyRegion> regions;      // ascending `begin`
  uint32_t count = 0;                   // chunks in all regions
  uint64_t chunk_size = 0;
  // The chunk table's records (24 bytes each, section 5.3), read in place
  // when a chunk is installed: the caller keeps them alive and unchanged
  // until ReadsOver().
  const uint8_t* table = nullptr;
  uint64_t records = 0;
  // A child's IN_PARENT chunks resolved to a parent's (section 8.3), by
  // ascending index: source, context, number and record replace the table's.
  std::vector<std::pair<uint32_t, LazyChunk>> resolved;
  std::vector<LazySpan> spans;          // by ascending first chunk (Start fills it)
  std::vector<uint32_t> hot;            // indices prefetched first, then every chunk in order
  bool prefetch = true;
  unsigned prefetch_threads = 2;
  std::vector<LazySource> sources;
  std::vector<LazyContext> contexts;
  // The data area: a stored chunk outside it is CORRUPT_INDEX (section 5).
  uint64_t data_start = 0;
  uint64_t data_end = 0;
};

// Statistics, for accessProfile() and the bench.
struct LazyStats {
  uint64_t faults = 0;          // fault messages read by the handler
  uint64_t fault_installs = 0;  // chunks installed by the handler for a fault
  uint64_t prefetched = 0;      // chunks installed by prefetch threads
  uint64_t zero_installs = 0;   // zero chunks (UFFDIO_ZEROPAGE)
  uint64_t eexist = 0;          // pages found present while installing
  uint64_t assists = 0;         // faults on a chunk in a prefetch thread's hands, decoded by the handler too
  uint64_t settled = 0;         // chunks installed or failed
  uint64_t total = 0;
  bool poison = false;          // UFFDIO_POISON in use for failed chunks
  // Time the handler spent on its fault installs: reading, checking and
  // decoding; then UFFDIO_COPY / UFFDIO_ZEROPAGE (the rest of a fault's
  // time is the kernel's round trip and the toucher's).
  uint64_t fault_decode_ns = 0;
  uint64_t fault_install_ns = 0;
  uint64_t warmed = 0;         // fault installs whose other pages the warm thread read (kWarm)
  uint64_t handler_moves = 0;  // times the handler moved to its faulting thread's CPU (kFollowFaulter)
  uint64_t spans_moved = 0;    // 2 MiB spans installed whole by UFFDIO_MOVE of a huge page (kWholeSpans)
  uint64_t spans = 0;          // spans that could be (config.spans)
  uint64_t span_decode_ns = 0; // time whole spans took to read, check and decode (their first write takes the huge page)
  uint64_t span_move_ns = 0;   // and to move in
};

// CLOCK_MONOTONIC in nanoseconds.
uint64_t MonotonicNs();

// userfaultfd(2), trying in order: the syscall; the syscall with
// UFFD_USER_MODE_ONLY (allowed without privilege when the sysctl
// vm.unprivileged_userfaultfd is 0); /dev/userfaultfd (USERFAULTFD_IOC_NEW,
// for a process allowed to open it where a seccomp filter forbids the
// syscall). Then UFFDIO_API with UFFD_FEATURE_POISON when the kernel has it.
// Returns the descriptor or -1 with `why` saying what each attempt met.
struct UffdOpened {
  int fd = -1;
  bool user_mode_only = false;
  bool poison = false;
  bool thread_id = false;  // UFFD_FEATURE_THREAD_ID: a fault names its thread
  bool move = false;       // UFFD_FEATURE_MOVE (6.8+; kWholeSpans), unless CRIMG_LAZY_HUGE=0
  const char* via = "";  // "syscall", "syscall (user mode only)", "/dev/userfaultfd"
  std::string why;       // when fd < 0
};
UffdOpened OpenUffd();

// Whether the environment variable `name` is "0" (a knob turned off). Read
// on the JS thread only: getenv elsewhere could race a setenv from script.
bool KnobOff(const char* name);

// kWholeSpans: fills config->spans with the aligned 2 MiB spans of whole
// chunks of its regions, and advises them MADV_HUGEPAGE, where the kernel
// offers UFFDIO_MOVE (config->move), config->huge asks for it, pages are
// 4 KiB, 2 MiB transparent huge pages are to be had (uffd_spans.cc
// HugePagesOffered) and the chunk size divides 2 MiB; else leaves it empty.
// Before the ranges are registered.
void PlanSpans(LazyConfig* config);
// Marks the calling thread as a prefetch thread (it reads the pages of the
// spans it moves in; uffd_spans.cc).
void MarkPrefetchThread();

// Makes the pages of [p, p + bytes) present in one call (MADV_POPULATE_WRITE
// on the whole pages inside it; best effort): a fresh vector of a session's
// size would otherwise fault page by page on first write.
void Prefault(const void* p, size_t bytes);

// Prefetch threads run SCHED_IDLE: they are background work, and a thread
// touching the memory, or the handler serving it, must not wait behind them
// for a core (at nice +10 they still cost a fault 1-5 ms when they held both
// cores on this VM; an idle-class thread is preempted at once by any wakeup).
// Where SCHED_IDLE is refused, this much nicer than the process.
constexpr int kPrefetchNice = 10;
// A chunk's state (LazySession::state_), and a 2 MiB span's (span_state_).
constexpr uint8_t kPending = 0;
constexpr uint8_t kBusy = 1;
constexpr uint8_t kInstalled = 2;
constexpr uint8_t kFailed = 3;
constexpr uint8_t kSpanFree = 0;
constexpr uint8_t kSpanWhole = 1;
constexpr uint8_t kSpanChunks = 2;
constexpr uint8_t kSpanBroken = 3;  // taken whole, and the handler copied a chunk in: its faults are assisted at once
// With no fault and no chunk settled for this long, the handler installs a
// prefetch chunk itself (the prefetch threads are starved). CRIMG_LAZY_HELP=0
// turns it off (for tests: `done` then waits on the prefetch threads alone).
constexpr int kHelpAfterMs = 2;
// The handler runs on the CPU of the thread whose fault it serves (read from
// /proc/self/task/TID/stat, ~3 us; moving costs ~17 us when that CPU changes).
// A fault then costs no wake-up of another CPU: the faulting thread wakes the
// handler on its own CPU and blocks, the handler's UFFDIO_COPY wakes it there
// again. Each cross-CPU wake-up of an idle CPU costs 20-40 us on this VM
// (halted vCPUs): a 10 % working set of 64 KiB chunks went from 340-460 ms
// to ~250 ms. Only to CPUs the handler was allowed at its start; prefetch
// threads keep that whole set. CRIMG_LAZY_FOLLOW=0 turns it off.
constexpr bool kFollowFaulter = true;
// A fresh 4 KiB page costs its first reader ~5 us on this VM (the hypervisor's
// shadow page tables: one exit per page, whoever reads it first, once per
// process). A chunk installed for a fault is handed to a warm thread, which
// reads its other pages from the last while the faulting thread reads from
// where it faulted, then settles it. (Prefetch threads do not: where the
// touching thread follows right behind them, as with a hot list, reading
// ahead only moved the same work to the busier CPU.) CRIMG_LAZY_WARM=0 turns it off.
constexpr bool kWarm = true;
// After its last chunk the warm thread waits this long awake (a pause loop)
// for the next before it sleeps: woken from sleep it started 10-30 us late on
// this VM, half a chunk's reads, and an idle CPU also drew the faulting
// thread's wake-up away from the handler's CPU. A 10 % working set: 273 ->
// 243 ms (medians of 5, interleaved); 100 us: 249 ms, 1 and 3 ms as 300 us.
constexpr uint64_t kWarmSpinNs = 300000;
// Whole spans. UFFDIO_COPY of anonymous memory installs 4 KiB pages, and on
// this VM each costs its first reader a shadow-page exit (~2.5-5 us), whoever
// reads it: touching every page of a 1 GiB lazy restore cost 1.4-1.8 s
// against 11 ms once the same memory was moved in as 2 MiB pages (a C loop:
// 512 UFFDIO_MOVEs of a freshly filled huge page, 119 ms for the GiB, against
// 230-300 ms of 64 KiB UFFDIO_COPYs). So where a region holds aligned 2 MiB
// spans of whole chunks (and the kernel has UFFDIO_MOVE, Linux 6.8, and
// transparent huge pages), a span is decoded into a per-thread huge page and
// moved in whole: by the prefetch threads in image order (hot-list chunks go
// one by one, a hot list being a scattered working set, unless a run of it
// covers half a span: HotRun), and by the handler
// for a fault next to the last fault's span (a thread walking the memory);
// other faults install their chunk alone, as a 2 MiB decode would serve a
// scattered working set 10x slower. A span less than half stored goes chunk
// by chunk (its zero chunks as zero pages, no memory). CRIMG_LAZY_HUGE=0 and
// the 'nohugepage' advice turn it off.
constexpr uint64_t kSpanBytes = 2u << 20;
// A fault on a span another thread is installing whole waits for its move; a
// prefetch thread is idle-class, and on a busy machine may get no core: after
// this long the handler decodes and copies the faulting chunk itself (the move
// then stops at that page, and the rest of the span goes chunk by chunk). A
// span takes 1.4-2.3 ms here, 4-6.5 ms on average when huge pages come cold,
// and at 8 ms the bench's touch-all runs saw 2-3 assists (each costing its
// span the huge page).
constexpr int kSpanAssistAfterMs = 20;

class LazySession : public std::enable_shared_from_this<LazySession> {
 public:
  // `done` runs once, on some thread, when every chunk is settled (installed
  // or failed), or when the session is stopped first (stopped = true).
  using Done = std::function<void(bool stopped)>;

  // Plans the whole spans (kWholeSpans: config.spans, MADV_HUGEPAGE on
  // them), registers the ranges and starts the threads; nullptr or what failed
  // (then nothing is left registered and the descriptor is closed).
  static const char* Start(LazyConfig config, bool poison, Done done,
                           std::shared_ptr<LazySession>* out, int* err);

  ~LazySession();

  // Stops and joins the threads (each finishes the chunk in hand). The
  // descriptor stays open: the caller unmaps the memory, then Close().
  // Nothing after Close().
  void Stop();
  // Closes the descriptors, the dups of the sources' files among them, and
  // lets the readers go (a thread still waiting on a fault then retries: on
  // unmapped memory a SIGSEGV, or EFAULT for a system call). After Stop(), or
  // with no thread running.
  void Close();

  LazyStats Stats() const;
  // Chunk indices in the order their first fault reached the handler.
  std::vector<uint32_t> Profile() const;
  LazyFailure FirstFailure() const;
  // Its number in the restored image's chunk table.
  uint64_t ChunkNumber(uint32_t c) const;
  bool Complete() const { return settled_.load() == config_.count; }
  // No thread reads the chunk table or a source any more.
  bool ReadsOver() const { return readers_released_.load(); }

 private:
  explicit LazySession(LazyConfig config, bool poison, Done done);
  void HandlerLoop();
  // Once every chunk settled, on the handler: closes the userfaultfd unless a
  // failed chunk's pages stay missing (then false: the handler serves on),
  // joins the prefetch threads and releases the readers.
  bool Finish();
  // Moves the handler to the CPU thread `tid` last ran on (kFollowFaulter).
  void Follow(uint32_t tid);
  // Starts the warm thread (kWarm; the handler's, once).
  void StartWarm();
  // Starts the prefetch threads (the handler's, once).
  void StartPrefetch();
  // Installs the next chunk of the prefetch order unless another thread has
  // it; false once the order is exhausted.
  // worked: set when it installed something (not only skipped a chunk or span
  // another thread holds).
  bool PrefetchOne(bool* worked = nullptr);
  // The handler's help: PrefetchOne until it installs something; false once
  // the order is exhausted.
  bool HelpOne();
  void PrefetchLoop();
  // Installs chunk c unless another thread has it; by_fault: for a fault.
  void Resolve(uint32_t c, bool by_fault, uint64_t addr = 0);
  // addr: the faulting page (by_fault), which the warm thread leaves to its thread.
  void Install(uint32_t c, bool by_fault, uint64_t addr = 0);
  // A fault on a chunk a (nicer) prefetch thread has in hand: decoded and
  // copied here too, at the handler's priority; the first copy wins (EEXIST
  // for the other), the owner settles it. Nothing on failure: the owner fails it.
  void Assist(uint32_t c);
  // Reads, checks and decodes chunk c into `out` (its span, zero-padded);
  // nullptr, or the CrimgError code with `detail` set.
  // `out` holds Span(ch) bytes.
  const char* Produce(const LazyChunk& ch, std::vector<uint8_t>& in, uint8_t* out, std::string* detail);
  // wake = false: UFFDIO_COPY_MODE_DONTWAKE (the caller wakes the range).
  bool Copy(uint64_t dest, const uint8_t* src, uint64_t length, bool wake = true);
  bool Zero(uint64_t dest, uint64_t length, bool wake = true);
  void Fail(uint32_t c, const char* code, std::string detail);
  // A fault on installed chunk c: its page at `addr` was dropped by the
  // process; a zero page in, the chunk's waiters woken.
  void Dropped(uint32_t c, uint64_t addr);
  // UFFDIO_POISON over [dest, dest + length), as Copy and Zero fill (page by
  // page across mappings); false when the kernel refused part of it (ENOMEM,
  // EAGAIN 1000 times): those pages stay missing.
  bool Poison(uint64_t dest, uint64_t length);
  void Settle();
  // Reads one byte of every page of chunk c, the last first, but the page at
  // `skip` (kWarm). Stops early when the session stops.
  void Warm(uint32_t c, uint64_t skip);
  void WarmLoop();
  // Lets the warm thread see warm_stop_ or Complete().
  void EndWarm();
  // Ends and joins the warm thread (it drops what it has queued unread).
  void JoinWarm();
  // UFFDIO_WAKE of the threads waiting on [start, start + length).
  void WakeRange(uint64_t start, uint64_t length);
  // Ends the handler's poll (the eventfd, unless closed).
  void Wake();
  // Lets every source's reader go, once (no thread may read after), and
  // the chunk table (ReadsOver()).
  void ReleaseReaders();
  // The sources' readers only: the handler still reads the table (Finish).
  void ReleaseSources();
  int64_t ChunkAt(uint64_t address) const;
  const LazyRegion& RegionOf(uint32_t c) const;
  LazyChunk ChunkOf(uint32_t c) const;
  uint64_t Span(const LazyChunk& ch) const;
  // kWholeSpans (uffd_spans.cc). The span holding chunk c, or -1.
  int64_t SpanOf(uint32_t c) const;
  // Claims span s to install whole; false when another thread claimed it
  // (whole or chunk by chunk), or whole spans are off (then marked chunk by
  // chunk).
  bool TakeWhole(size_t s);
  // A fault (or Resolve) on chunk c where c lies in a span: installs the span
  // whole for a walking fault, waits (or has handled) a span taken whole;
  // false when c is to be installed alone (its span, if any, chunk by chunk).
  bool ResolveInSpan(uint32_t c, bool by_fault, uint64_t addr);
  // Marks span s as installed chunk by chunk; false when it is taken whole.
  bool ChunkWise(size_t s);
  // Whether config_.hot[i..] runs from an edge of `sp` through half of it or
  // more, one chunk after another (up or down).
  bool HotRun(size_t i, const LazySpan& sp) const;
  // Decodes every chunk of span s (claimed by TakeWhole) into this thread's
  // huge page and moves it in; chunk by chunk from there when a chunk fails
  // or the move is refused.
  void InstallWhole(size_t s, bool by_fault);

  LazyConfig config_;
  bool poison_;
  Done done_;
  std::vector<uint32_t> by_dest_;  // region indices by placed address
  struct Free {
    void operator()(void* p) const { free(p); }
  };
  // calloc'd (kPending and 0): large ones are fresh zero pages, not touched until used.
  std::unique_ptr<std::atomic<uint8_t>[], Free> state_;
  std::unique_ptr<std::atomic<uint8_t>[], Free> faulted_;
  std::unique_ptr<std::atomic<uint8_t>[], Free> span_state_;  // kWholeSpans: free, whole, chunk by chunk
  int64_t last_span_ = -2;  // the last fault's span (the handler's only)
  std::atomic<bool> spans_off_{false};  // a move refused for good: no more whole spans
  // Prefetch threads reading a span they moved (InstallWhole), and the flag
  // that ends those reads: a page of it the process dropped faults, and only
  // the handler can serve it, so Stop() ends the reads before the handler.
  std::atomic<int> span_readers_{0};
  std::atomic<bool> span_reads_off_{false};
  // Ends the span reads and waits (bounded) for the readers to leave them.
  void EndSpanReads();
  std::atomic<uint64_t> span_chunks_{0};  // chunks decoded into whole spans (progress for the handler's help)
  // Faults waiting on a span another thread installs whole: chunk, page and
  // when to assist (kSpanAssistAfterMs). The handler's only.
  struct Waiting {
    uint32_t chunk;
    uint64_t deadline_ns;
  };
  std::vector<Waiting> waiting_;
  // Assists the waiting faults past their deadline; the poll timeout (ms) until the next, or -1.
  int AssistWaiting();
  std::atomic<size_t> next_{0};
  std::atomic<size_t> settled_{0};
  std::atomic<bool> stop_{false};
  // Set first in Stop() and the destructor: reads through a JS source end
  // ("stopped"), so that the handler, waiting on one, goes back to serving the
  // faults of the threads Stop() joins (the JS thread, in release(), answers none).
  std::atomic<bool> reads_off_{false};
  std::atomic<bool> poison_refused_{false};  // a failed chunk's pages not all poisoned
  std::atomic<bool> done_called_{false};
  std::atomic<bool> closed_{false};
  std::atomic<bool> uffd_closed_{false};
  std::mutex fd_mu_;  // stop_fd_: written by any thread, closed by Close()
  int stop_fd_ = -1;
  std::atomic<bool> readers_released_{false};
  std::atomic<bool> sources_released_{false};
  std::thread handler_;
  std::vector<std::thread> prefetchers_;
  // kFollowFaulter: the CPUs the handler may use (the prefetch threads get
  // all of them back), the one it is pinned to (-1: none), and the stat file
  // of the last faulting thread. Only the handler thread uses them.
  struct Follower {
    bool on = false;
    cpu_set_t allowed;
    int pinned = -1;
    uint32_t tid = 0;
    int stat_fd = -1;
  } follow_;
  // kWarm: chunks installed for a fault, with the faulting page, for the
  // warm thread, which reads their other pages and then settles them.
  std::atomic<bool> warm_on_{false};  // set and read by the handler thread
  std::atomic<bool> warm_stop_{false};
  std::atomic<bool> warm_posted_{false};  // a chunk queued since the warm thread last took the queue
  std::thread warmer_;
  std::mutex warm_mu_;
  std::condition_variable warm_cv_;
  std::vector<std::pair<uint32_t, uint64_t>> warm_;
  std::atomic<uint64_t> warm_sink_{0};
  mutable std::mutex mu_;  // profile_, failure_
  std::vector<uint32_t> profile_;
  LazyFailure failure_;
  std::atomic<uint64_t> faults_{0}, fault_installs_{0}, prefetched_{0}, zero_installs_{0}, eexist_{0}, assists_{0};
  std::atomic<uint64_t> fault_decode_ns_{0}, fault_install_ns_{0};
  std::atomic<uint64_t> warmed_{0}, handler_moves_{0}, spans_moved_{0}, span_decode_ns_{0}, span_move_ns_{0};
  std::mutex join_mu_;
};

}  // namespace crimg

#endif  // CRIMG_UFFD_H_
