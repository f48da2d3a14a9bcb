// XXH64 and the chunk scan (see scan.h). XXH64 follows the reference
// specification; test/sparse.test.ts ('native chunk scan') checks it against
// xxhash-wasm, the format's portable checksum engine, on every length from 0
// to 300 and on chunks.
#include "scan.h"

#include <string.h>

namespace crimg {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t Round(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = Rotl(acc, 31);
  return acc * kP1;
}

inline uint64_t Merge(uint64_t acc, uint64_t v) {
  acc ^= Round(0, v);
  return acc * kP1 + kP4;
}

}  // namespace

namespace {

// The tail of XXH64 after the stripes: the remaining `len` (< 32) bytes at `p`
// into `h` (which already holds the total length), then the avalanche.
uint64_t Finish(uint64_t h, const uint8_t* p, size_t len) {
  const uint8_t* const end = p + len;
  while (p + 8 <= end) {
    h ^= Round(0, Load64(p));
    h = Rotl(h, 27) * kP1 + kP4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= static_cast<uint64_t>(Load32(p)) * kP1;
    h = Rotl(h, 23) * kP2 + kP3;
    p += 4;
  }
  while (p < end) {
    h ^= static_cast<uint64_t>(*p) * kP5;
    h = Rotl(h, 11) * kP1;
    p++;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

uint64_t Converge(const uint64_t v[4]) {
  uint64_t h = Rotl(v[0], 1) + Rotl(v[1], 7) + Rotl(v[2], 12) + Rotl(v[3], 18);
  for (int k = 0; k < 4; k++) h = Merge(h, v[k]);
  return h;
}

// Stripes of 32 bytes from `p` while at least 32 remain; returns the bytes used.
size_t Stripes(uint64_t v[4], const uint8_t* p, size_t len) {
  size_t used = 0;
  for (; used + 32 <= len; used += 32) {
    v[0] = Round(v[0], Load64(p + used));
    v[1] = Round(v[1], Load64(p + used + 8));
    v[2] = Round(v[2], Load64(p + used + 16));
    v[3] = Round(v[3], Load64(p + used + 24));
  }
  return used;
}

}  // namespace

uint64_t Xxh64(const uint8_t* p, size_t len, uint64_t seed) {
  uint64_t h;
  size_t used = 0;
  if (len >= 32) {
    uint64_t v[4] = {seed + kP1 + kP2, seed + kP2, seed, seed - kP1};
    used = Stripes(v, p, len);
    h = Converge(v);
  } else {
    h = seed + kP5;
  }
  return Finish(h + static_cast<uint64_t>(len), p + used, len - used);
}

void Xxh64Init(Xxh64State* s) {
  memset(s, 0, sizeof *s);
  s->v[0] = kP1 + kP2;
  s->v[1] = kP2;
  s->v[2] = 0;
  s->v[3] = 0 - kP1;
}

void Xxh64Update(Xxh64State* s, const uint8_t* p, size_t len) {
  if (s->buffered > 31) s->buffered = 31;  // a state not made here: no write past buf
  s->total += len;
  if (s->buffered > 0) {
    const size_t take = len < 32 - s->buffered ? len : 32 - s->buffered;
    memcpy(s->buf + s->buffered, p, take);
    s->buffered += static_cast<uint32_t>(take);
    p += take;
    len -= take;
    if (s->buffered < 32) return;
    Stripes(s->v, s->buf, 32);
    s->buffered = 0;
  }
  const size_t used = Stripes(s->v, p, len);
  memcpy(s->buf, p + used, len - used);
  s->buffered = static_cast<uint32_t>(len - used);
}

uint64_t Xxh64Digest(const Xxh64State* s) {
  const uint64_t h = s->total >= 32 ? Converge(s->v) : s->v[2] + kP5;  // v[2] is the seed until a stripe
  return Finish(h + s->total, s->buf, s->buffered > 31 ? 31 : s->buffered);
}

bool IsZero(const uint8_t* p, size_t len) {
  size_t i = 0;
  // Data chunks almost always fail on the first word: test it alone first.
  if (len >= 8 && Load64(p) != 0) return false;
  for (; i + 64 <= len; i += 64) {
    uint64_t acc = 0;
    for (size_t k = 0; k < 64; k += 8) acc |= Load64(p + i + k);
    if (acc != 0) return false;
  }
  for (; i < len; i++) {
    if (p[i] != 0) return false;
  }
  return true;
}

size_t ScanChunks(const uint8_t* p, size_t len, size_t chunk_size,
                  uint64_t* sums, uint8_t* zero) {
  size_t zeros = 0;
  size_t k = 0;
  for (size_t off = 0; off < len; off += chunk_size, k++) {
    const size_t n = len - off < chunk_size ? len - off : chunk_size;
    if (IsZero(p + off, n)) {
      zero[k] = 1;
      sums[k] = 0;
      zeros++;
    } else {
      zero[k] = 0;
      sums[k] = Xxh64(p + off, n, 0);
    }
  }
  return zeros;
}

void HashChunks(const uint8_t* p, size_t len, size_t chunk_size, uint64_t* sums) {
  size_t k = 0;
  for (size_t off = 0; off < len; off += chunk_size, k++) {
    sums[k] = Xxh64(p + off, len - off < chunk_size ? len - off : chunk_size, 0);
  }
}

}  // namespace crimg
