// What the image writer's encode jobs share (zstd_js.cc's batches,
// piece_js.cc's pieces of a region): kept memory, the writer's entropy test,
// the size codes of a chunk, zstd through a smaller-or-raw step, and the
// result arrays. See encode_common.cc.
#ifndef CRIMG_ENCODE_COMMON_H_
#define CRIMG_ENCODE_COMMON_H_

#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include <napi.h>

#include "zstd_encode.h"

namespace crimg {

// Memory of encode jobs, kept from job to job: a fresh 4 KiB page costs 12-25 us
// to fault in on a VM (a batch's 256 KiB, 64 pages, cost ~1 ms a job, more
// than compressing it), so blocks go back to this free list instead of to
// malloc, which hands buffers of this size back to the kernel. At most
// kKeptBlocks of at most kKeptCapacity bytes are kept (two per job in flight,
// a handful of jobs): 5 MiB in all for batches of 16 KiB chunks, 17 MiB for
// pieces of 1 MiB, 66 MiB at most.
class BlockPool {
 public:
  struct Block {
    std::unique_ptr<uint8_t[]> data;
    size_t capacity = 0;
  };

  static BlockPool& Get() {
    static BlockPool* pool = new BlockPool();  // never destroyed: jobs may outlive static destruction
    return *pool;
  }

  // A block of at least `n` bytes (contents undefined); its data is null when memory is out
  // (a bad_alloc would end the process: the addon does not turn C++ exceptions into JS ones).
  Block Take(size_t n) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < free_.size(); i++) {
        if (free_[i].capacity >= n) {
          Block b = std::move(free_[i]);
          free_[i] = std::move(free_.back());
          free_.pop_back();
          return b;
        }
      }
    }
    Block b;
    // Rounded up with room to spare, so that a block kept from a piece's plain bytes also
    // serves a sealed piece's output (its plain length and a 16-byte tag per chunk), and the
    // other way round: first fit would otherwise pass over every kept block of the other kind.
    b.capacity = (std::max(n, kBlockSize) + kSpare + kSpare - 1) / kSpare * kSpare;
    b.data.reset(new (std::nothrow) uint8_t[b.capacity]);  // default-initialised: not written here
    if (b.data == nullptr) b.capacity = 0;
    return b;
  }

  // Keeps `b` for a later job, unless enough are kept or it is larger than kKeptCapacity (a
  // batch of 1 MiB chunks and more: freed, not held for the life of the process).
  void Give(Block b) {
    if (b.data == nullptr || b.capacity > kKeptCapacity) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.size() < kKeptBlocks) free_.push_back(std::move(b));
  }

 private:
  static constexpr size_t kBlockSize = 256 * 1024;  // NATIVE_BATCH (16) chunks of 16 KiB
  static constexpr size_t kSpare = 64 * 1024;
  static constexpr size_t kKeptBlocks = 16;
  static constexpr size_t kKeptCapacity = 4 * 1024 * 1024 + 2 * kSpare;
  std::mutex mutex_;
  std::vector<Block> free_;
};

// Whether the whole 4 KiB page at `p` looks random: codec/chunk.ts's
// pageLooksRandom, the same arithmetic in the same order (the Shannon entropy
// of 256 bytes sampled at stride 16 above 6.9 bits per byte), so both decide
// alike (test/codec-zstd-batch.test.ts compares them).
bool PageLooksRandom(const uint8_t* p);

// codec/chunk.ts's looksIncompressible: every whole page looks random (false
// without a whole page; a partial last page is not looked at).
bool EveryPageLooksRandom(const uint8_t* p, size_t len);

// `sums` as a BigUint64Array.
Napi::Value BigSums(Napi::Env env, const std::vector<uint64_t>& sums);

// `v` as an Int32Array.
Napi::Int32Array Int32s(Napi::Env env, const std::vector<int32_t>& v);

// This thread's zstd context, reused from chunk to chunk.
ZstdEncoder& ThreadZstdEncoder();

// A chunk's size codes besides its encoded length (zstdBatch, the pieces).
constexpr int32_t kNotSmaller = -1;  // the encoded form would not be smaller: store raw
constexpr int32_t kZeroChunk = -2;   // every byte is zero
constexpr int32_t kRandom = -3;      // every page looks random: not compressed, store raw
constexpr int32_t kCompress = INT32_MIN;  // before a batch job: to be compressed (its bytes are in the job's block)

// The frame of chunk `p` (`len` bytes) at `level` into `out` when smaller than the chunk:
// its length, or kNotSmaller; -2 when zstd failed (`*error` names why). Both batch and piece
// jobs compress through it, so they store alike.
int64_t FrameIfSmaller(ZstdEncoder& enc, int level, const uint8_t* p, size_t len, uint8_t* out, const char** error);

}  // namespace crimg

#endif  // CRIMG_ENCODE_COMMON_H_
