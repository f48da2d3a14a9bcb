// Bulk provisioning of fresh anonymous memory (see batch_decode.h). A first
// write to a fresh page costs a fault each (12 us measured on a VM whose host
// reclaims freed memory: 3.2-6.5 s per GiB) where MADV_POPULATE_WRITE over the
// same GiB took 260 ms. On such a VM the host backs a guest page only at its
// first real write, ~4 us more per 4 KiB page after MADV_POPULATE_WRITE, where a
// 2 MiB page costs about as much as one 4 KiB page (512 MiB measured: 4 KiB
// pages populated then written 0.9-1.1 s; 2 MiB pages 58-76 ms when the host
// has them backed, 0.3-0.4 s when not). So copy restore asks for huge pages
// for every aligned 2 MiB that its stored chunks fill at least half of: the
// zero chunks inside such a span become resident (zero-filled with the page,
// never written), at most as much memory again as the span's stored bytes;
// with transparent huge pages in 'madvise' mode (the setting here) spans
// mostly or wholly zero keep 4 KiB pages and cost nothing ('always' makes any
// populated span huge anyway, unless restore's advice is 'nohugepage').
#include <errno.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <vector>

#include "batch_decode.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14, uapi/asm-generic/mman-common.h
#endif

namespace crimg {
namespace {

// 0 unknown, 1 supported, 2 not supported.
std::atomic<int> g_populate{0};

}  // namespace

bool PopulateSupported() {
  int state = g_populate.load(std::memory_order_relaxed);
  if (state == 0) {
    // An empty range: EINVAL only when the advice itself is unknown.
    errno = 0;
    state = madvise(nullptr, 0, MADV_POPULATE_WRITE) == 0 ? 1 : 2;
    g_populate.store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

void AdviseHugeWhereMostlyStored(const std::vector<BatchItem>& items) {
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  // One pass in item order (ascending addresses within a target): a span's stored bytes are
  // summed while its items follow each other; a span met again later is summed anew (less
  // advice, never more).
  std::vector<uintptr_t> bases;
  uintptr_t span = 0, lo = 0, hi = 0;
  size_t stored = 0;
  bool open = false;
  const auto close = [&] {
    if (open && stored * 2 >= kHuge && span >= lo && span + kHuge <= hi) bases.push_back(span);
  };
  try {
    for (const BatchItem& it : items) {
      if (it.dest == nullptr) continue;
      uintptr_t at = reinterpret_cast<uintptr_t>(it.dest);
      const uintptr_t end = at + it.rec.plain_length;
      while (at < end) {
        const uintptr_t base = at & ~(kHuge - 1);
        const uintptr_t stop = std::min(end, base + kHuge);
        if (!open || base != span || it.target_start != lo) {
          close();
          span = base;
          lo = it.target_start;
          hi = it.target_end;
          stored = 0;
          open = true;
        }
        stored += stop - at;
        at = stop;
      }
    }
    close();
  } catch (const std::bad_alloc&) {
    // Best effort: the spans found so far are advised, the rest keep 4 KiB pages.
  }
  std::sort(bases.begin(), bases.end());
  for (size_t i = 0; i < bases.size();) {
    size_t j = i + 1;
    while (j < bases.size() && bases[j] == bases[j - 1] + kHuge) j++;
    // Best effort: without transparent huge pages the advice is refused and pages stay 4 KiB.
    (void)madvise(reinterpret_cast<void*>(bases[i]), (j - i) * kHuge, MADV_HUGEPAGE);
    i = j;
  }
}

bool PopulateWrite(uintptr_t address, size_t length) {
  if (length == 0 || !PopulateSupported()) return false;
  for (;;) {
    if (madvise(reinterpret_cast<void*>(address), length, MADV_POPULATE_WRITE) == 0) return true;
    if (errno == EINTR) continue;  // a signal arrived; some pages may be in, the rest follow
    if (errno == EINVAL) g_populate.store(2, std::memory_order_relaxed);
    return false;
  }
}

}  // namespace crimg
