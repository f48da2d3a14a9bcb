// Bulk provisioning of fresh anonymous memory (see batch_decode.h). A first
// write to a fresh page costs a fault each (12 us measured on a VM whose host
// reclaims freed memory: 3.2-6.5 s per GiB) where MADV_POPULATE_WRITE over the
// same GiB took 260 ms. On such a VM the host backs a guest page only at its
// first real write, ~4 us more per 4 KiB page after MADV_POPULATE_WRITE, where a
// 2 MiB page costs about as much as one 4 KiB page (128 MiB measured: touch
// 0.9-1.3 s, populate then write 0.5 s, huge pages populated then written 18-29
// ms). So huge pages are asked for every aligned 2 MiB that destinations cover
// whole (HugeWhereCovered: no zero chunk inside, so nothing more is resident),
// and for the whole range with restore's 'hugepage' advice.
#include <errno.h>
#include <sys/mman.h>

#include <atomic>

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

void HugeWhereCovered(uintptr_t start, uintptr_t end) {
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t from = (start + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t to = end & ~(kHuge - 1);
  // Best effort: without transparent huge pages the advice is refused and pages stay 4 KiB.
  if (to > from) (void)madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
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
