// See zstd_encode.h.
#include "zstd_encode.h"

#include "../deps/zstd/lib/zstd.h"
#include "../deps/zstd/lib/zstd_errors.h"

namespace crimg {

ZstdEncoder::~ZstdEncoder() {
  if (cctx_ != nullptr) ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_));
}

int64_t ZstdEncoder::Encode(int level, const uint8_t* plain, size_t length, uint8_t* out, size_t capacity,
                            const char** error) {
  *error = nullptr;
  if (cctx_ == nullptr) {
    cctx_ = ZSTD_createCCtx();
    if (cctx_ == nullptr) {
      *error = "out of memory for a zstd context";
      return -2;
    }
  }
  ZSTD_CCtx* c = static_cast<ZSTD_CCtx*>(cctx_);
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  size_t rc = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0);
  if (ZSTD_isError(rc)) {
    *error = ZSTD_getErrorName(rc);
    return -2;
  }
  // ZSTD_compress2 knows the source size, so the frame carries it and its
  // window shrinks to it: a single-segment frame (section 6.2).
  const size_t n = ZSTD_compress2(c, out, capacity, plain, length);
  if (ZSTD_isError(n)) {
    if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return -1;
    *error = ZSTD_getErrorName(n);
    return -2;
  }
  return static_cast<int64_t>(n);
}

}  // namespace crimg
