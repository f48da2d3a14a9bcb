// See deflate.h. node:zlib makes a Transform stream per chunk and wakes a pool
// thread per chunk (about 17 us of main-thread time each, here); a batch of
// chunks is one pool job. Each chunk is a fresh z_stream, as node:zlib's: a
// stream reused with deflateReset compresses differently, because Node's zlib
// (Chromium's) hashes a few bytes past the input, which are then the previous
// chunk's instead of zeros. test/sparse.test.ts compares with node:zlib byte for
// byte.
#include "deflate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <memory>
#include <new>
#include <vector>

namespace crimg {
namespace {

// Memory of this thread's deflate streams, kept from chunk to chunk. A stream
// asks for ~270 KiB (window, hash chains, pending buffer) and malloc handed
// most of it back to the kernel at deflateEnd, so every chunk faulted it in
// again: ~60 % of the 43,000 page faults of a 512 MiB deflate:1 write (perf),
// ~5 us each on a VM. A stream's blocks are carved from one kept buffer and
// all released when it ends (one stream at a time per thread); what does not
// fit goes to malloc. Like malloc's, the memory is not zeroed: zlib clears
// what it reads (the window, the hash heads), and the tests compare the bytes
// with node:zlib's.
class StreamMemory {
 public:
  static voidpf Alloc(voidpf opaque, uInt items, uInt size) {
    auto* m = static_cast<StreamMemory*>(opaque);
    const size_t n = (static_cast<size_t>(items) * size + 63) & ~size_t{63};
    if (m->data_ == nullptr) m->data_.reset(new (std::nothrow) uint8_t[kCapacity + 64]);
    if (m->data_ != nullptr && n <= kCapacity - m->used_) {
      uint8_t* base = m->data_.get() + ((64 - reinterpret_cast<uintptr_t>(m->data_.get()) % 64) % 64);
      void* p = base + m->used_;
      m->used_ += n;
      return p;
    }
    return malloc(n);  // null when out of memory: deflateInit2 then fails with Z_MEM_ERROR
  }

  static void Free(voidpf opaque, voidpf p) {
    auto* m = static_cast<StreamMemory*>(opaque);
    const uint8_t* q = static_cast<const uint8_t*>(p);
    if (m->data_ != nullptr && q >= m->data_.get() && q < m->data_.get() + kCapacity + 64) return;
    free(p);
  }

  // Before a stream starts: the last one has ended (deflateEnd), its blocks are free.
  void Reset() { used_ = 0; }

 private:
  static constexpr size_t kCapacity = 512 * 1024;
  std::unique_ptr<uint8_t[]> data_;
  size_t used_ = 0;
};

// [p, p + n) as a fresh raw stream ended with Z_FINISH. 1 ok, 0 does not fit
// in `avail` (not smaller), -1 error.
int Compress(int level, const uint8_t* p, size_t n, uint8_t** out, size_t* avail) {
  thread_local StreamMemory memory;
  memory.Reset();
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = StreamMemory::Alloc;
  z.zfree = StreamMemory::Free;
  z.opaque = &memory;
  if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
  z.next_in = const_cast<Bytef*>(p);
  z.avail_in = static_cast<uInt>(n);
  z.next_out = *out;
  z.avail_out = static_cast<uInt>(*avail);
  const int rc = deflate(&z, Z_FINISH);
  int result = 1;
  if (rc != Z_STREAM_END) {
    // Z_OK or Z_BUF_ERROR with the output full: not smaller. Anything else is an error.
    result = rc == Z_OK || rc == Z_BUF_ERROR ? 0 : -1;
  } else {
    const size_t used = *avail - z.avail_out;
    *out += used;
    *avail -= used;
  }
  deflateEnd(&z);
  return result;
}

constexpr size_t kPage = 4096;
constexpr size_t kQuarter = kPage / 4;

// Shannon entropy in bits per byte of a histogram of n bytes.
double Entropy(const uint32_t* h, size_t n) {
  double s = 0;
  for (int b = 0; b < 256; b++) {
    if (h[b]) s += h[b] * log2(static_cast<double>(h[b]));
  }
  return log2(static_cast<double>(n)) - s / static_cast<double>(n);
}

// Repeats zlib could use: positions whose 4 bytes equal those at the last
// earlier position of the same hash within 32 KiB (zlib's window; a chunk is
// its own stream). Random bytes repeat 4 bytes by chance about once per 2^17
// bytes here; a copy of L bytes counts about L - 3 times.
size_t Repeats(const uint8_t* p, size_t n) {
  constexpr int kBits = 15;
  thread_local std::vector<uint32_t> head;
  head.assign(size_t{1} << kBits, 0);
  size_t repeats = 0;
  for (size_t i = 0; i + 4 <= n; i++) {
    uint32_t w;
    memcpy(&w, p + i, 4);
    const uint32_t h = (w * 2654435761u) >> (32 - kBits);
    const uint32_t prev = head[h];
    if (prev != 0 && i - (prev - 1) <= 32768 && memcmp(p + prev - 1, p + i, 4) == 0) repeats++;
    head[h] = static_cast<uint32_t>(i + 1);
  }
  return repeats;
}

// True when zlib is not expected to shrink the chunk: every page (all whole)
// has each 1 KiB quarter above 7.75 bits per byte and the page above 7.94
// (uniform random bytes measure 0.1 % below 7.751 and 7.941: a structured run
// of a few dozen bytes brings its quarter below), and 4-byte repeats within
// zlib's window no more than chance makes (copied bytes are no longer random
// to deflate). The encoder flags pages from 256 sampled bytes; this looks at
// every byte, on the pool thread, before a chunk is stored raw untried.
bool LooksIncompressible(const uint8_t* p, size_t n) {
  if (n == 0 || n % kPage != 0) return false;
  for (size_t k = 0; k < n / kPage; k++) {
    const uint8_t* page = p + k * kPage;
    uint32_t whole[256] = {0};
    for (size_t q = 0; q < 4; q++) {
      uint32_t h[256] = {0};
      const uint8_t* from = page + q * kQuarter;
      for (size_t i = 0; i < kQuarter; i++) h[from[i]]++;
      if (Entropy(h, kQuarter) <= 7.75) return false;
      for (int b = 0; b < 256; b++) whole[b] += h[b];
    }
    if (Entropy(whole, kPage) <= 7.94) return false;
  }
  return Repeats(p, n) <= n / 65536;
}

}  // namespace

int64_t DeflateIfSmaller(int level, const uint8_t* plain, size_t length, bool every_page_random, uint8_t* out) {
  // Each chunk whole, as one stream: exactly node:zlib's deflateRawSync bytes.
  // The page flags no longer split it: runs of pages flagged random were once kept as
  // stored blocks between separately deflated runs: a page flagged from 256
  // sampled bytes may hold compressible runs, and each fresh stream lost the
  // window and paid a sync flush and new code tables, so the chunk came out
  // larger than zlib's own on memory whose pages mix random and structured runs
  // (issue 16: 13.9 MB against 12.4 MB for 32 MiB). A chunk whose every page
  // is flagged is stored raw without trying zlib when every byte of it looks
  // random too (LooksIncompressible).
  if (length == 0 || (every_page_random && LooksIncompressible(plain, length))) return -1;
  uint8_t* end = out;
  size_t avail = length - 1;
  const int r = Compress(level, plain, length, &end, &avail);
  if (r < 0) return -2;
  return r == 1 ? static_cast<int64_t>(end - out) : -1;
}

const char* DeflateChunks(int level, const std::vector<DeflateInput>& inputs, int32_t* sizes) {
  for (size_t i = 0; i < inputs.size(); i++) {
    const DeflateInput& in = inputs[i];
    const size_t pages = (in.length + kPage - 1) / kPage;
    bool flagged = pages > 0;
    for (size_t p = 0; flagged && p < pages; p++) flagged = in.random[p] != 0;
    const int64_t n = DeflateIfSmaller(level, in.plain, in.length, flagged, in.out);
    if (n == -2) return "deflate failed";
    sizes[i] = static_cast<int32_t>(n);
  }
  return nullptr;
}

}  // namespace crimg
