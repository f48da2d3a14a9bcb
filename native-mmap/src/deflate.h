// Raw DEFLATE of chunks for the image writer's node engine, through the zlib
// that Node links and exports (the same library as node:zlib, so the same
// bits). See deflate.cc.
#ifndef CRIMG_DEFLATE_H_
#define CRIMG_DEFLATE_H_

#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace crimg {

constexpr int kDeflateMaxLevel = 9;  // zlib's levels: 1 (fastest) to 9

struct DeflateInput {
  const uint8_t* plain;
  size_t length;
  // One flag per 4 KiB page of the chunk (the last may be partial), 1 = the
  // page looks random to the encoder's sample. A chunk whose every page is
  // flagged is checked byte by byte and, when it looks random throughout, not
  // deflated (-1); any other chunk is deflated whole (see deflate.cc).
  const uint8_t* random;
  // Where the output goes; capacity is length - 1 (only a smaller form is kept).
  uint8_t* out;
};

// Deflates each input as one raw DEFLATE stream, the chunk whole (the bytes of
// node:zlib's deflateRawSync at the same level). sizes[i] = bytes written, or
// -1 when the encoded form would not be smaller than the plain chunk, or when
// every page is flagged and looks random throughout (not tried). Returns
// nullptr or what failed.
const char* DeflateChunks(int level, const std::vector<DeflateInput>& inputs,
                          int32_t* sizes);

// One chunk as DeflateChunks treats it, `every_page_random` standing for its
// page flags (every page flagged: a partial last page never is): the length
// written to `out` (room for length - 1 bytes), -1 to store it raw (not
// smaller, or random throughout), -2 when zlib failed.
int64_t DeflateIfSmaller(int level, const uint8_t* plain, size_t length, bool every_page_random, uint8_t* out);

}  // namespace crimg

#endif  // CRIMG_DEFLATE_H_
