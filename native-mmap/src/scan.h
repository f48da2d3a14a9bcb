// Chunk scanning for the image writer: the zero test and XXH64 of every chunk
// of a buffer, in one pass over memory the writer already holds (a read buffer
// or a mapping of the input file). Pure functions, no syscalls.
#ifndef CRIMG_SCAN_H_
#define CRIMG_SCAN_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace crimg {

// Unaligned little-endian loads (x86-64 and aarch64 Linux are little-endian;
// binding.gyp builds for Linux only).
inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
inline uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
inline uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

// XXH64 of `len` bytes at `p` with `seed` (the reference algorithm,
// github.com/Cyan4973/xxHash, spec doc/xxhash_spec.md).
uint64_t Xxh64(const uint8_t* p, size_t len, uint64_t seed);

// XXH64 (seed 0) over bytes given in pieces: Init, Update per piece, Digest
// (a file section read piece by piece, hashed without holding it whole).
struct Xxh64State {
  uint64_t v[4];
  uint64_t total;
  uint8_t buf[32];
  uint32_t buffered;  // bytes of buf in use, < 32
  uint32_t unused;
};
static_assert(sizeof(Xxh64State) == 80, "the JS side holds the state in 80 bytes");
void Xxh64Init(Xxh64State* s);
void Xxh64Update(Xxh64State* s, const uint8_t* p, size_t len);
uint64_t Xxh64Digest(const Xxh64State* s);

// True when every byte of [p, p + len) is zero. Stops at the first non-zero
// word, so a chunk of data costs a few loads.
bool IsZero(const uint8_t* p, size_t len);

// For chunk k of [p, p + len) cut into `chunk_size` pieces (the last may be
// shorter): zero[k] = 1 and sums[k] = 0 for an all-zero chunk, else zero[k] = 0
// and sums[k] = XXH64 (seed 0). Returns the number of zero chunks.
size_t ScanChunks(const uint8_t* p, size_t len, size_t chunk_size,
                  uint64_t* sums, uint8_t* zero);

// sums[k] = XXH64 (seed 0) of chunk k of [p, p + len) cut into `chunk_size`
// pieces (the last may be shorter), zero or not: a reader checking stored chunks.
void HashChunks(const uint8_t* p, size_t len, size_t chunk_size, uint64_t* sums);

}  // namespace crimg

#endif  // CRIMG_SCAN_H_
