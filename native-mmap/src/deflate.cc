// See deflate.h. node:zlib makes a Transform stream per chunk and wakes a pool
// thread per chunk (about 17 us of main-thread time each, here); a batch of
// chunks is one pool job. Each run is a fresh z_stream, as node:zlib's: a
// stream reused with deflateReset compresses differently, because Node's zlib
// (Chromium's) hashes a few bytes past the input, which are then the previous
// run's instead of zeros. test/sparse.test.ts compares with node:zlib byte for
// byte.
#include "deflate.h"

#include <string.h>
#include <zlib.h>

namespace crimg {
namespace {

constexpr size_t kPage = 4096;

// Stored blocks holding [p, p + n), as codec/deflate.ts's storedBlocks.
// Returns false when they do not fit in `avail`.
bool Stored(const uint8_t* p, size_t n, bool final, uint8_t** out, size_t* avail) {
  const size_t blocks = n == 0 ? 1 : (n + 65534) / 65535;
  if (n + 5 * blocks > *avail) return false;
  uint8_t* o = *out;
  for (size_t i = 0; i < blocks; i++) {
    const size_t seg = n - i * 65535 < 65535 ? n - i * 65535 : 65535;
    o[0] = final && i == blocks - 1 ? 1 : 0;
    o[1] = seg & 0xff;
    o[2] = (seg >> 8) & 0xff;
    o[3] = ~seg & 0xff;
    o[4] = (~seg >> 8) & 0xff;
    memcpy(o + 5, p + i * 65535, seg);
    o += 5 + seg;
  }
  *avail -= static_cast<size_t>(o - *out);
  *out = o;
  return true;
}

// One run of compressible bytes as a fresh raw stream (Z_SYNC_FLUSH unless
// final). 1 ok, 0 does not fit in `avail`, -1 error.
int Compress(int level, const uint8_t* p, size_t n, bool final, uint8_t** out, size_t* avail) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
  z.next_in = const_cast<Bytef*>(p);
  z.avail_in = static_cast<uInt>(n);
  z.next_out = *out;
  z.avail_out = static_cast<uInt>(*avail);
  const int rc = deflate(&z, final ? Z_FINISH : Z_SYNC_FLUSH);
  int result = 1;
  if (final ? rc != Z_STREAM_END : (rc != Z_OK || z.avail_in != 0 || z.avail_out == 0)) {
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

}  // namespace

const char* DeflateChunks(int level, const std::vector<DeflateInput>& inputs, int32_t* sizes) {
  for (size_t i = 0; i < inputs.size(); i++) {
    const DeflateInput& in = inputs[i];
    uint8_t* out = in.out;
    size_t avail = in.length > 0 ? in.length - 1 : 0;
    const size_t pages = (in.length + kPage - 1) / kPage;
    bool ok = in.length > 0;
    size_t p = 0;
    while (ok && p < pages) {
      const bool random = in.random[p] != 0;
      size_t q = p + 1;
      while (q < pages && (in.random[q] != 0) == random) q++;
      const size_t start = p * kPage;
      const size_t end = q * kPage < in.length ? q * kPage : in.length;
      const bool final = q == pages;
      if (random) {
        ok = Stored(in.plain + start, end - start, final, &out, &avail);
      } else {
        const int r = Compress(level, in.plain + start, end - start, final, &out, &avail);
        if (r < 0) return "deflate failed";
        ok = r == 1;
      }
      p = q;
    }
    sizes[i] = ok ? static_cast<int32_t>(out - in.out) : -1;
  }
  return nullptr;
}

}  // namespace crimg
