// JS bindings of zstd encoding (zstd_encode.h): one chunk on the calling
// thread, and batches of chunks as one libuv pool job (the image writer's
// encoder pool), with the writer's zero and entropy tests (on the calling
// thread, before the copy) and checksums. Whole pieces of a region are
// piece_js.cc's. Messages name only lengths.
#include <string.h>

#include <string>
#include <vector>

#include <napi.h>

#include "args.h"
#include "bindings.h"
#include "encode_common.h"
#include "errors.h"
#include "scan.h"
#include "zstd_encode.h"

namespace crimg {
namespace {

[[noreturn]] void ThrowZstd(Napi::Env env, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  SetCode(e, "ERR_CRIMG_ZSTD");
  throw e;
}

// zstdBatch's flags.
constexpr uint32_t kScan = 1;  // zero and entropy tests before compressing
constexpr uint32_t kSums = 2;  // XXH64 of what is stored: the frame, else the plain bytes

class ZstdWorker : public Napi::AsyncWorker {
 public:
  // `sizes`: kCompress for each chunk whose bytes are in `plain` (back to back, `lengths`
  // long), else its final code; `sums` (with kSums) already set for the others.
  ZstdWorker(Napi::Function cb, int level, uint32_t flags, BlockPool::Block plain, std::vector<size_t> lengths,
             std::vector<int32_t> sizes, std::vector<uint64_t> sums)
      : Napi::AsyncWorker(cb, "crimg:zstd"), level_(level), flags_(flags), plain_(std::move(plain)),
        lengths_(std::move(lengths)), sizes_(std::move(sizes)), sums_(std::move(sums)) {}

  ~ZstdWorker() override {
    BlockPool::Get().Give(std::move(plain_));
    BlockPool::Get().Give(std::move(out_));
  }

  void Execute() override {
    size_t total = 0;
    for (size_t i = 0; i < lengths_.size(); i++) {
      if (sizes_[i] == kCompress) total += lengths_[i];
    }
    out_ = BlockPool::Get().Take(total);
    if (out_.data == nullptr) {
      SetError("zstdBatch: out of memory for the frames of " + std::to_string(total) + " bytes");
      return;
    }
    ZstdEncoder& enc = ThreadZstdEncoder();
    size_t at = 0;
    size_t put = 0;
    for (size_t i = 0; i < lengths_.size(); i++) {
      if (sizes_[i] != kCompress) continue;
      const size_t len = lengths_[i];
      const uint8_t* plain = plain_.data.get() + at;
      at += len;
      const char* error = nullptr;
      const int64_t n = FrameIfSmaller(enc, level_, plain, len, out_.data.get() + put, &error);
      if (n == -2) {
        SetError(std::string("zstdBatch: ") + (error != nullptr ? error : "zstd failed"));
        return;
      }
      const int32_t size = static_cast<int32_t>(n);
      sizes_[i] = size;
      if (flags_ & kSums) sums_[i] = size >= 0 ? Xxh64(out_.data.get() + put, static_cast<size_t>(size), 0) : Xxh64(plain, len, 0);
      if (size > 0) put += static_cast<size_t>(size);
    }
    BlockPool::Get().Give(std::move(plain_));
  }

  // callback(null, sizes: Int32Array, frames: (Uint8Array | null)[], sums: BigUint64Array | null).
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    // A failure building the results (out of memory for the frames' buffer) goes to the
    // callback, so the batch's chunks are rejected rather than left pending for ever.
    Napi::Value results[3];
    try {
      const size_t n = sizes_.size();
      Napi::Int32Array sizes = Int32s(env, sizes_);
      Napi::Array frames = Napi::Array::New(env, n);
      size_t total = 0;
      for (size_t i = 0; i < n; i++) total += sizes_[i] > 0 ? static_cast<size_t>(sizes_[i]) : 0;
      // One buffer of the frames' total length (a few tens of KiB: warm heap memory, one
      // allocation a batch), each frame a view of it.
      Napi::Buffer<uint8_t> all = Napi::Buffer<uint8_t>::Copy(env, out_.data.get(), total);
      Napi::ArrayBuffer ab = all.ArrayBuffer();
      size_t put = all.ByteOffset();
      for (size_t i = 0; i < n; i++) {
        if (sizes_[i] > 0) {
          const size_t len = static_cast<size_t>(sizes_[i]);
          frames.Set(static_cast<uint32_t>(i), Napi::Uint8Array::New(env, len, ab, put));
          put += len;
        } else {
          frames.Set(static_cast<uint32_t>(i), env.Null());
        }
      }
      results[0] = sizes;
      results[1] = frames;
      results[2] = (flags_ & kSums) ? BigSums(env, sums_) : env.Null();
    } catch (const Napi::Error& e) {
      Callback().Call({e.Value()});
      return;
    }
    Callback().Call({env.Null(), results[0], results[1], results[2]});
  }

 private:
  int level_;
  uint32_t flags_;
  BlockPool::Block plain_;
  std::vector<size_t> lengths_;
  std::vector<int32_t> sizes_;
  std::vector<uint64_t> sums_;
  BlockPool::Block out_;
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
  const int64_t n = ThreadZstdEncoder().Encode(level, plain.data != nullptr ? plain.data : kEmpty, plain.length,
                                           out.data != nullptr ? out.data : sink, out.length, &error);
  if (n == -2) ThrowZstd(env, std::string("zstdCompress: ") + (error != nullptr ? error : "zstd failed"));
  return Napi::Number::New(env, static_cast<double>(n));
}

// zstdBatch(level, plains: Uint8Array[], flags, callback(err, sizes, frames, sums)) -> Int32Array
// One pool job compressing every chunk of `plains`, copied before this returns (into kept
// memory: see BlockPool). sizes[i]: chunk i's frame length (frames[i] holds the frame), or -1
// (not smaller: store raw); with flags & 1 (scan, here before the copy) -2 for a chunk of zeros
// and -3 for one whose pages all look random (not compressed, store raw), frames[i] null for
// all three. With flags & 2, sums[i] is XXH64 of what is stored (the frame, else the plain
// bytes; 0 for zeros). Returns { sizes, sums } known before the job: sizes -2 and -3 (their
// sums final too), and -2^31 for each chunk the job compresses; when there is none, no job is
// queued and the callback is never called.
Napi::Value ZstdBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int level = static_cast<int>(Integer(env, info[0], "level", kZstdMinLevel, kZstdMaxLevel));
  if (!info[1].IsArray()) ThrowType(env, "expected plains to be an array of Uint8Array, got " + TypeName(info[1]));
  const uint32_t flags = static_cast<uint32_t>(Integer(env, info[2], "flags", 0, kScan | kSums));
  if (!info[3].IsFunction()) ThrowType(env, "expected a callback function, got " + TypeName(info[3]));
  Napi::Array list = info[1].As<Napi::Array>();
  const uint32_t n = list.Length();
  if (n > 4096) ThrowRange(env, "expected at most 4096 chunks in one batch, got " + std::to_string(n));
  // Every element first (a getter runs script, which could detach a buffer already looked
  // at), then their bytes, then the copy: no script runs between a pointer and its copy.
  std::vector<Napi::Value> values;
  values.reserve(n);
  for (uint32_t i = 0; i < n; i++) values.push_back(list.Get(i));
  std::vector<TypedBytes> plains;
  plains.reserve(n);
  std::vector<size_t> lengths;
  lengths.reserve(n);
  size_t total = 0;
  for (const Napi::Value& v : values) {
    TypedBytes b = TypedArg(env, v, napi_uint8_array, "every plain to be a Uint8Array");
    if (b.length > 16 * 1024 * 1024 || total + b.length > (size_t{1} << 31)) {
      ThrowRange(env, "expected chunks of at most 16 MiB in a batch below 2 GiB");
    }
    plains.push_back(b);
    lengths.push_back(b.length);
    total += b.length;
  }
  // The tests here, on this thread: a zero chunk is read only until its end and a random one
  // is sampled, and neither is copied; only the chunks to compress are (the job cannot read
  // the caller's buffers, which script may detach or free meanwhile).
  std::vector<int32_t> sizes(n, kCompress);
  std::vector<uint64_t> sums((flags & kSums) ? n : 0, 0);
  size_t copied = 0;
  for (uint32_t i = 0; i < n; i++) {
    const TypedBytes& b = plains[i];
    if ((flags & kScan) && IsZero(b.data, b.length)) {
      sizes[i] = kZeroChunk;
    } else if ((flags & kScan) && EveryPageLooksRandom(b.data, b.length)) {
      sizes[i] = kRandom;
      if (flags & kSums) sums[i] = Xxh64(b.data, b.length, 0);
    } else {
      copied += b.length;
    }
  }
  // The codes known now, returned at once: the caller need not wait for the job to store a
  // zero or random chunk, and no job is queued when no chunk is left to compress.
  Napi::Object known = Napi::Object::New(env);
  known.Set("sizes", Int32s(env, sizes));
  known.Set("sums", (flags & kSums) ? BigSums(env, sums) : env.Null());
  bool any = false;
  for (uint32_t i = 0; i < n; i++) any = any || sizes[i] == kCompress;
  if (!any) return known;
  BlockPool::Block plain = BlockPool::Get().Take(copied);
  if (plain.data == nullptr) ThrowRange(env, "zstdBatch: out of memory for a batch of " + std::to_string(copied) + " bytes");
  size_t at = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (sizes[i] != kCompress || plains[i].length == 0) continue;
    memcpy(plain.data.get() + at, plains[i].data, plains[i].length);
    at += plains[i].length;
  }
  auto* w = new ZstdWorker(info[3].As<Napi::Function>(), level, flags, std::move(plain), std::move(lengths),
                           std::move(sizes), std::move(sums));
  w->Queue();
  return known;
}

}  // namespace crimg
