// zstd encoding of one chunk (codec id 2, spec/FORMAT.md section 6.2): one
// single-segment frame with its content size, no dictionary, no checksum
// (the chunk table's XXH64 covers the stored bytes). See zstd_encode.cc.
#ifndef CRIMG_ZSTD_ENCODE_H_
#define CRIMG_ZSTD_ENCODE_H_

#include <stddef.h>
#include <stdint.h>

namespace crimg {

constexpr int kZstdMinLevel = 1;
constexpr int kZstdMaxLevel = 19;

// A compression context, reused from chunk to chunk; one per thread.
class ZstdEncoder {
 public:
  ZstdEncoder() = default;
  ~ZstdEncoder();
  ZstdEncoder(const ZstdEncoder&) = delete;
  ZstdEncoder& operator=(const ZstdEncoder&) = delete;

  // Encodes plain[0, length) at `level` into out[0, capacity). Returns the
  // frame's length, -1 when it does not fit in `capacity` (the writer passes
  // length - 1: only a smaller form is kept, section 5.1), or -2 when zstd
  // failed otherwise (`*error` then names why).
  int64_t Encode(int level, const uint8_t* plain, size_t length, uint8_t* out, size_t capacity,
                 const char** error);

 private:
  static const char* SetParameters(void* cctx, int level, int window_log);

  void* cctx_ = nullptr;  // ZSTD_CCtx*
  int level_ = 0;         // the parameters set on cctx_ (0: none yet)
  int window_log_ = 0;
};

}  // namespace crimg

#endif  // CRIMG_ZSTD_ENCODE_H_
