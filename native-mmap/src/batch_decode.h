// Batch decode: many chunks of one image read from its file and decoded on
// several native threads, straight into place (copy-mode restore) or into
// per-thread scratch that is dropped (verify). One call per restore or
// verify, no JavaScript per chunk. Each chunk goes through chunk_decode.h.
// No N-API here: batch_decode_js.cc is the binding (decodeBatch).
//
// Work is cut into units of chunks whose stored bytes are contiguous in the
// file (one pread each, up to kUnitBytes); threads take units in image order
// from one counter. A RAW chunk of an image without cipher is read straight
// into its destination and hashed there (no copy). Before a unit is written,
// its destination pages are provisioned in bulk (provision.cc).
//
// Failures: with `all` every failing chunk is reported; without it the first
// failing chunk in image order is (no unit after a failing one is started;
// units before it run to their end, so an earlier failure always wins).
#ifndef CRIMG_BATCH_DECODE_H_
#define CRIMG_BATCH_DECODE_H_

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

#include "chunk_decode.h"

namespace crimg {

// Stored bytes per unit (one pread); a single chunk may be larger.
constexpr size_t kUnitBytes = size_t{1} << 20;

struct BatchItem {
  uint64_t file_offset = 0;  // where the stored bytes lie (checked by the caller against the data area)
  ChunkRecord rec;
  uint8_t* dest = nullptr;   // rec.plain_length bytes of writable memory, or nullptr to drop
  uintptr_t target_start = 0;  // the reservation `dest` lies in: [target_start, target_end),
  uintptr_t target_end = 0;    // empty when parts of it were lost to other mappings
};

struct BatchJob {
  int fd = -1;
  // Instead of the file: stored bytes already in memory (a remote image's
  // span), memory[k] being the byte at file offset memory_base + k; borrowed
  // for the call. An item outside it fails as a short read (EIO).
  const uint8_t* memory = nullptr;
  uint64_t memory_base = 0;
  size_t memory_length = 0;
  ChunkImage image;          // pointers borrowed for the call
  unsigned threads = 0;      // 0: every core (hardware_concurrency)
  bool populate = false;     // provision destination pages in bulk before writing them
  bool huge = true;          // with populate: 2 MiB pages where destinations fill half a 2 MiB or more
  bool all = false;          // report every failure, not only the first
};

struct BatchFailure {
  size_t item = 0;           // index into the items
  ChunkStatus status = ChunkStatus::kOk;
  std::string message;
};

struct BatchStats {
  unsigned threads = 0;      // threads used
  size_t units = 0;          // preads
  bool populated = false;    // MADV_POPULATE_WRITE was used
};

// Decodes `items` (in image order). Returns the failures sorted by item, the
// first only unless job.all. Items must have passed ChunkFormProblem: the
// caller checks forms first (a RAW length is trusted to size a direct read).
std::vector<BatchFailure> DecodeBatch(const BatchJob& job, const std::vector<BatchItem>& items,
                                      BatchStats* stats);

// provision.cc: makes [address, address + length) (page-aligned start) present
// and writable in one go with MADV_POPULATE_WRITE (Linux 5.14+), so the
// decoder's writes take no page fault each. Best effort: false when the
// kernel lacks it (detected once; the pages then fault in on first write) or
// refuses (ENOMEM and the like: the write faults as it would have).
bool PopulateWrite(uintptr_t address, size_t length);
// Whether this kernel has MADV_POPULATE_WRITE (probed on first use).
bool PopulateSupported();
// MADV_HUGEPAGE (best effort) on every aligned 2 MiB inside a target that the
// items' destinations fill at least half of, so that populating it takes a
// 2 MiB page (provision.cc).
void AdviseHugeWhereMostlyStored(const std::vector<BatchItem>& items);

}  // namespace crimg

#endif  // CRIMG_BATCH_DECODE_H_
