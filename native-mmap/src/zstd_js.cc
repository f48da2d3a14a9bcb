// JS bindings of zstd encoding (zstd_encode.h): one chunk on the calling
// thread, and batches of chunks as one libuv pool job (the image writer's
// encoder pool, as deflateBatch in codec_js.cc). Messages name only lengths.
#include <string.h>

#include <string>
#include <vector>

#include <napi.h>

#include "args.h"
#include "bindings.h"
#include "batch_result.h"
#include "errors.h"
#include "zstd_encode.h"

namespace crimg {
namespace {

ZstdEncoder& ThreadEncoder() {
  thread_local ZstdEncoder encoder;
  return encoder;
}

[[noreturn]] void ThrowZstd(Napi::Env env, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  SetCode(e, "ERR_CRIMG_ZSTD");
  throw e;
}

class ZstdWorker : public Napi::AsyncWorker {
 public:
  ZstdWorker(Napi::Function cb, int level, std::vector<uint8_t> plain, std::vector<size_t> lengths, Napi::Object keep)
      : Napi::AsyncWorker(cb, "crimg:zstd"), level_(level), plain_(std::move(plain)), lengths_(std::move(lengths)),
        keep_(Napi::Persistent(keep)) {}

  void Execute() override {
    out_.resize(plain_.size());
    sizes_.assign(lengths_.size(), -1);
    ZstdEncoder& enc = ThreadEncoder();
    size_t at = 0;
    for (size_t i = 0; i < lengths_.size(); i++) {
      const size_t len = lengths_[i];
      const char* error = nullptr;
      const int64_t n = len > 1 ? enc.Encode(level_, plain_.data() + at, len, out_.data() + at, len - 1, &error) : -1;
      if (n == -2) {
        SetError(std::string("zstdBatch: ") + (error != nullptr ? error : "zstd failed"));
        return;
      }
      sizes_[i] = static_cast<int32_t>(n);
      at += len;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    DeliverEncodedBatch(env, keep_.Value(), out_, sizes_, lengths_, "zstdBatch", "ERR_CRIMG_ZSTD", Callback());
  }

 private:
  int level_;
  std::vector<uint8_t> plain_;
  std::vector<size_t> lengths_;
  std::vector<uint8_t> out_;
  std::vector<int32_t> sizes_;
  Napi::ObjectReference keep_;  // out and sizes, written when the job is done
};

}  // namespace

// zstdCompress(level 1..19, plain: Uint8Array, out: Uint8Array) -> frame length, or -1 when
// the frame would not fit in out (pass plain.length - 1 bytes: only a smaller form is kept).
Napi::Value ZstdCompressJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int level = static_cast<int>(Integer(env, info[0], "level", kZstdMinLevel, kZstdMaxLevel));
  TypedBytes plain = TypedArg(env, info[1], napi_uint8_array, "plain to be a Uint8Array");
  TypedBytes out = TypedArg(env, info[2], napi_uint8_array, "out to be a Uint8Array");
  if (plain.length > 16 * 1024 * 1024) ThrowRange(env, "expected plain to be at most 16 MiB, got " + std::to_string(plain.length) + " bytes");
  if (out.length > 0) {
    if (Failure f = AddressSpace::Get().CheckWritable(out.data, out.length, "out")) ThrowFailure(env, f);
  }
  static const uint8_t kEmpty[1] = {0};
  uint8_t sink[1];
  const char* error = nullptr;
  const int64_t n = ThreadEncoder().Encode(level, plain.data != nullptr ? plain.data : kEmpty, plain.length,
                                           out.data != nullptr ? out.data : sink, out.length, &error);
  if (n == -2) ThrowZstd(env, std::string("zstdCompress: ") + (error != nullptr ? error : "zstd failed"));
  return Napi::Number::New(env, static_cast<double>(n));
}

// zstdBatch(level, plains: Uint8Array[], out: Uint8Array, sizes: Int32Array, callback(err)) -> undefined
// One pool job compressing every chunk of `plains`: chunk i's frame goes to `out` at the sum of
// the previous chunks' lengths, sizes[i] gets its length or -1 (not smaller). Inputs are copied
// before this returns, results copied back on this thread, as deflateBatch.
Napi::Value ZstdBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int level = static_cast<int>(Integer(env, info[0], "level", kZstdMinLevel, kZstdMaxLevel));
  if (!info[1].IsArray()) ThrowType(env, "expected plains to be an array of Uint8Array, got " + TypeName(info[1]));
  if (!info[4].IsFunction()) ThrowType(env, "expected a callback function, got " + TypeName(info[4]));
  Napi::Array list = info[1].As<Napi::Array>();
  const uint32_t n = list.Length();
  if (n > 4096) ThrowRange(env, "expected at most 4096 chunks in one batch, got " + std::to_string(n));
  std::vector<Napi::Value> plains;
  plains.reserve(n);
  for (uint32_t i = 0; i < n; i++) plains.push_back(list.Get(i));
  std::vector<uint8_t> plain;
  std::vector<size_t> lengths;
  lengths.reserve(n);
  for (const Napi::Value& v : plains) {
    TypedBytes b = TypedArg(env, v, napi_uint8_array, "every plain to be a Uint8Array");
    if (b.length > 16 * 1024 * 1024 || plain.size() + b.length > (size_t{1} << 31)) {
      ThrowRange(env, "expected chunks of at most 16 MiB in a batch below 2 GiB");
    }
    plain.insert(plain.end(), b.data, b.data + b.length);
    lengths.push_back(b.length);
  }
  TypedBytes out = TypedArg(env, info[2], napi_uint8_array, "out to be a Uint8Array");
  if (out.length < plain.size()) {
    ThrowRange(env, "expected out to hold the plains' total length " + std::to_string(plain.size()) + ", got " +
                        std::to_string(out.length));
  }
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowType(env, "expected sizes to be an Int32Array, got " + TypeName(info[3]));
  }
  TypedBytes sizes = TypedArg(env, info[3], napi_int32_array, "sizes to be an Int32Array");
  if (sizes.length < n) {
    ThrowRange(env, "expected sizes to hold " + std::to_string(n) + " entries, got " + std::to_string(sizes.length));
  }
  if (!plain.empty()) {
    if (Failure f = AddressSpace::Get().CheckWritable(out.data, plain.size(), "out")) ThrowFailure(env, f);
  }
  if (n > 0) {
    if (Failure f = AddressSpace::Get().CheckWritable(sizes.data, n * sizeof(int32_t), "sizes")) ThrowFailure(env, f);
  }
  Napi::Object keep = Napi::Object::New(env);
  keep.Set("out", info[2]);
  keep.Set("sizes", info[3]);
  auto* w = new ZstdWorker(info[4].As<Napi::Function>(), level, std::move(plain), std::move(lengths), keep);
  w->Queue();
  return env.Undefined();
}

}  // namespace crimg
