// See encode_common.h.
#include "encode_common.h"

#include <string.h>

#include <array>
#include <cmath>

namespace crimg {

ZstdEncoder& ThreadZstdEncoder() {
  thread_local ZstdEncoder encoder;
  return encoder;
}

bool PageLooksRandom(const uint8_t* p) {
  static const std::array<double, 257> kNLogN = [] {
    std::array<double, 257> t{};
    for (int n = 1; n <= 256; n++) t[n] = n * std::log2(static_cast<double>(n));
    return t;
  }();
  uint16_t hist[256] = {0};
  for (int i = 0; i < 256; i++) hist[p[i * 16]]++;
  double sum = 0;
  for (int b = 0; b < 256; b++) sum += kNLogN[hist[b]];
  return 8 - sum / 256 > 6.9;
}

bool EveryPageLooksRandom(const uint8_t* p, size_t len) {
  const size_t pages = len / 4096;
  if (pages == 0) return false;
  for (size_t i = 0; i < pages; i++) {
    if (!PageLooksRandom(p + i * 4096)) return false;
  }
  return true;
}

Napi::Value BigSums(Napi::Env env, const std::vector<uint64_t>& sums) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, sums.size() * sizeof(uint64_t));
  if (!sums.empty()) memcpy(ab.Data(), sums.data(), sums.size() * sizeof(uint64_t));
  napi_value typed;
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, napi_biguint64_array, sums.size(), ab, 0, &typed), Napi::Value());
  return Napi::Value(env, typed);
}

Napi::Int32Array Int32s(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

int64_t FrameIfSmaller(ZstdEncoder& enc, int level, const uint8_t* p, size_t len, uint8_t* out, const char** error) {
  if (len <= 1) return kNotSmaller;
  const int64_t n = enc.Encode(level, p, len, out, len - 1, error);
  return n == -1 ? kNotSmaller : n;
}

}  // namespace crimg
