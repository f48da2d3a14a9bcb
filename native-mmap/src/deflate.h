// Raw DEFLATE of chunks for the image writer's node engine, through the zlib
// that Node links and exports (the same library as node:zlib, so the same
// bits). See deflate.cc.
#ifndef CRIMG_DEFLATE_H_
#define CRIMG_DEFLATE_H_

#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace crimg {

struct DeflateInput {
  const uint8_t* plain;
  size_t length;
  // One flag per 4 KiB page of the chunk (the last may be partial): 1 = store
  // the page as a stored block instead of compressing it.
  const uint8_t* random;
  // Where the output goes; capacity is length - 1 (only a smaller form is kept).
  uint8_t* out;
};

// Deflates each input as one raw DEFLATE stream: runs of compressible pages
// compressed (each run a fresh stream, Z_SYNC_FLUSH between runs, Z_FINISH at
// the end), runs of random pages as stored blocks, as codec/deflate.ts's
// deflatePagesAsync does. sizes[i] = bytes written, or -1 when the encoded form
// would not be smaller than the plain chunk. Returns nullptr or what failed.
const char* DeflateChunks(int level, const std::vector<DeflateInput>& inputs,
                          int32_t* sizes);

}  // namespace crimg

#endif  // CRIMG_DEFLATE_H_
