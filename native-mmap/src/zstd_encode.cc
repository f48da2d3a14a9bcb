// See zstd_encode.h.
#include "zstd_encode.h"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_WINDOWLOG_MIN, ZSTD_getFrameHeader
#include "../deps/zstd/lib/zstd.h"
#include "../deps/zstd/lib/zstd_errors.h"

namespace crimg {
namespace {

// ceil(log2(length)), at least zstd's smallest window: the smallest window
// that holds the whole chunk.
int WindowLogFor(size_t length) {
  int log = ZSTD_WINDOWLOG_MIN;
  while (log < ZSTD_WINDOWLOG_MAX_32 && (size_t{1} << log) < length) log++;
  return log;
}

// Why the frame out[0, n) breaks a rule every reader checks (section 6.2:
// one single-segment frame whose content size is `length`, no dictionary), or
// nullptr. Header only: the writer must never keep a chunk its reader refuses.
const char* FrameProblem(const uint8_t* out, size_t n, size_t length) {
  ZSTD_FrameHeader fh;
  if (n < 5 || ZSTD_getFrameHeader(&fh, out, n) != 0 || fh.frameType != ZSTD_frame) {
    return "zstd wrote a frame whose header does not decode";
  }
  if ((out[4] & 0x20) == 0) return "zstd wrote a frame that is not single-segment";
  if (fh.frameContentSize != length) return "zstd wrote a frame whose content size is not the plain length";
  if (fh.dictID != 0) return "zstd wrote a frame naming a dictionary";
  return nullptr;
}

}  // namespace

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
  const int window_log = WindowLogFor(length);
  if (level == level_ && window_log == window_log_) {
    // The same parameters as the previous chunk (the writer's every full chunk): a new frame
    // only, without setting them again (measured 31 against 33 us of CPU per 16 KiB chunk).
    ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
  } else if (const char* problem = SetParameters(c, level, window_log)) {
    level_ = 0;  // unknown: set them all again next time
    *error = problem;
    return -2;
  } else {
    level_ = level;
    window_log_ = window_log;
  }
  // ZSTD_compress2 knows the source size, so the frame carries it and, with
  // the window above, is single-segment (section 6.2).
  const size_t n = ZSTD_compress2(c, out, capacity, plain, length);
  if (ZSTD_isError(n)) {
    if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return -1;
    *error = ZSTD_getErrorName(n);
    return -2;
  }
  if (const char* problem = FrameProblem(out, n, length)) {
    *error = problem;
    return -2;
  }
  return static_cast<int64_t>(n);
}

// Resets `c` and sets every parameter of a chunk's frame; the error's name, or nullptr.
const char* ZstdEncoder::SetParameters(void* cctx, int level, int window_log) {
  ZSTD_CCtx* c = static_cast<ZSTD_CCtx*>(cctx);
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  size_t rc = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0);
  // The window must hold the whole chunk: the level's own window (level 1:
  // 512 KiB, level 3: 2 MiB) is smaller than chunks of 1 MiB and more, and
  // zstd sets the single-segment flag only when the content fits the window.
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
  return ZSTD_isError(rc) ? ZSTD_getErrorName(rc) : nullptr;
}

}  // namespace crimg
