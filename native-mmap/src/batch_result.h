// The end of a native encode batch (deflateBatch in codec_js.cc, zstdBatch in zstd_js.cc), on
// the main thread: copies each chunk's encoded bytes from the job's own buffer into the caller's
// `out` (at the chunk's plain offset) and the sizes into `sizes`, both kept alive in `keep`,
// after checking again that they are still attached, long enough and writable (the caller may
// have detached, shrunk or protected them while the job ran). Then calls the callback once: with
// null, or with an Error whose code is `code`.
#ifndef CRIMG_BATCH_RESULT_H_
#define CRIMG_BATCH_RESULT_H_

#include <string.h>

#include <string>
#include <vector>

#include <napi.h>

#include "errors.h"

namespace crimg {

inline void DeliverEncodedBatch(Napi::Env env, Napi::Object keep, const std::vector<uint8_t>& encoded,
                                const std::vector<int32_t>& sizes_in, const std::vector<size_t>& lengths,
                                const char* name, const char* code, const Napi::FunctionReference& callback) {
  napi_typedarray_type t;
  size_t out_len = 0, sizes_len = 0, off = 0;
  void* out = nullptr;
  void* sizes = nullptr;
  napi_value ab;
  const bool ok =
      napi_get_typedarray_info(env, keep.Get("out"), &t, &out_len, &out, &ab, &off) == napi_ok &&
      napi_get_typedarray_info(env, keep.Get("sizes"), &t, &sizes_len, &sizes, &ab, &off) == napi_ok &&
      out != nullptr && sizes != nullptr && out_len >= encoded.size() && sizes_len >= sizes_in.size();
  Failure f;
  if (ok) {
    f = AddressSpace::Get().CheckWritable(out, encoded.size(), "out");
    if (!f) f = AddressSpace::Get().CheckWritable(sizes, sizes_in.size() * sizeof(int32_t), "sizes");
  }
  if (!ok || f) {
    Napi::Error e = Napi::Error::New(env, std::string(name) + ": " +
                                              (ok ? f.message : "out or sizes was detached or shrunk while encoding"));
    SetCode(e, code);
    callback.Call({e.Value()});
    return;
  }
  size_t at = 0;
  for (size_t i = 0; i < lengths.size(); i++) {
    if (sizes_in[i] > 0) memcpy(static_cast<uint8_t*>(out) + at, encoded.data() + at, static_cast<size_t>(sizes_in[i]));
    at += lengths[i];
  }
  memcpy(sizes, sizes_in.data(), sizes_in.size() * sizeof(int32_t));
  callback.Call({env.Null()});
}

}  // namespace crimg

#endif  // CRIMG_BATCH_RESULT_H_
