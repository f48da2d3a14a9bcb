// JS bindings of zstd encoding (zstd_encode.h): one chunk on the calling
// thread; batches of chunks as one libuv pool job (the image writer's encoder
// pool), with the writer's zero and entropy tests (on the calling thread,
// before the copy) and checksums; and whole pieces of a region as one pool job
// (the tests, compression and checksums in the job, the piece copied first or
// read from its file by the job). Messages name only lengths.
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <napi.h>

#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "scan.h"
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

// Memory of batch jobs, kept from job to job: a fresh 4 KiB page costs 12-25 us
// to fault in on a VM (a batch's 256 KiB, 64 pages, cost ~1 ms a job, more
// than compressing it), so blocks go back to this free list instead of to
// malloc, which hands buffers of this size back to the kernel. At most
// kKeptBlocks of at most kKeptCapacity bytes are kept (two per job in flight,
// a handful of jobs): 4 MiB in all for batches of 16 KiB chunks, 16 MiB for
// pieces of 1 MiB, 64 MiB at most.
class BlockPool {
 public:
  struct Block {
    std::unique_ptr<uint8_t[]> data;
    size_t capacity = 0;
  };

  static BlockPool& Get() {
    static BlockPool* pool = new BlockPool();  // never destroyed: jobs may outlive static destruction
    return *pool;
  }

  // A block of at least `n` bytes (contents undefined); its data is null when memory is out
  // (a bad_alloc would end the process: the addon does not turn C++ exceptions into JS ones).
  Block Take(size_t n) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < free_.size(); i++) {
        if (free_[i].capacity >= n) {
          Block b = std::move(free_[i]);
          free_[i] = std::move(free_.back());
          free_.pop_back();
          return b;
        }
      }
    }
    Block b;
    b.capacity = std::max(n, kBlockSize);
    b.data.reset(new (std::nothrow) uint8_t[b.capacity]);  // default-initialised: not written here
    if (b.data == nullptr) b.capacity = 0;
    return b;
  }

  // Keeps `b` for a later job, unless enough are kept or it is larger than kKeptCapacity (a
  // batch of 1 MiB chunks and more: freed, not held for the life of the process).
  void Give(Block b) {
    if (b.data == nullptr || b.capacity > kKeptCapacity) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.size() < kKeptBlocks) free_.push_back(std::move(b));
  }

 private:
  static constexpr size_t kBlockSize = 256 * 1024;  // NATIVE_BATCH (16) chunks of 16 KiB
  static constexpr size_t kKeptBlocks = 16;
  static constexpr size_t kKeptCapacity = 4 * 1024 * 1024;
  std::mutex mutex_;
  std::vector<Block> free_;
};

// Whether the whole 4 KiB page at `p` looks random: codec/chunk.ts's
// pageLooksRandom, the same arithmetic in the same order (the Shannon entropy
// of 256 bytes sampled at stride 16 above 6.9 bits per byte), so both decide
// alike (test/codec-zstd-batch.test.ts compares them).
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

// codec/chunk.ts's looksIncompressible: every whole page looks random (false
// without a whole page).
bool LooksIncompressible(const uint8_t* p, size_t len) {
  const size_t pages = len / 4096;
  if (pages == 0) return false;
  for (size_t i = 0; i < pages; i++) {
    if (!PageLooksRandom(p + i * 4096)) return false;
  }
  return true;
}

// `sums` as a BigUint64Array.
Napi::Value BigSums(Napi::Env env, const std::vector<uint64_t>& sums) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, sums.size() * sizeof(uint64_t));
  if (!sums.empty()) memcpy(ab.Data(), sums.data(), sums.size() * sizeof(uint64_t));
  napi_value typed;
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, napi_biguint64_array, sums.size(), ab, 0, &typed), Napi::Value());
  return Napi::Value(env, typed);
}

// `v` as an Int32Array.
Napi::Int32Array Int32s(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

// zstdBatch's size codes besides a frame length.
constexpr int32_t kNotSmaller = -1;  // the frame would not be smaller: store raw
constexpr int32_t kZeroChunk = -2;   // every byte is zero (kScan)
constexpr int32_t kRandom = -3;      // every page looks random: not compressed, store raw (kScan)
constexpr int32_t kCompress = INT32_MIN;  // before the job: to be compressed (its bytes are in the job's block)

// The frame of chunk `p` (`len` bytes) at `level` into `out` when smaller than the chunk:
// its length, or kNotSmaller; -2 when zstd failed (`*error` names why). Both batch and piece
// jobs compress through it, so they store alike.
int64_t FrameIfSmaller(ZstdEncoder& enc, int level, const uint8_t* p, size_t len, uint8_t* out, const char** error) {
  if (len <= 1) return kNotSmaller;
  const int64_t n = enc.Encode(level, p, len, out, len - 1, error);
  return n == -1 ? kNotSmaller : n;
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
    ZstdEncoder& enc = ThreadEncoder();
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

// zstdPiece's job: every chunk of one piece of a region (whole chunks but
// perhaps the last), each tested, compressed and summed as zstdBatch does with
// kScan | kSums, the stored bytes back to back in one block. The piece was
// copied into `plain` before the job (zstdPiece), or the job reads it from a
// file into `plain` itself (zstdFilePiece), and the stored bytes are copied on the
// main thread after it into memory the caller's `alloc` gives then (exactly
// what is stored: the caller packs pieces into kept memory): the pool thread
// touches no script memory.
class ZstdPieceWorker : public Napi::AsyncProgressWorker<char> {
 public:
  // `fd` >= 0: `plain` is filled by reading `length` bytes of `fd` from `position` first, and
  // `read` (when a function) is called on the main thread once that read is done, before the
  // callback (the caller may then let the file change: the rest of the job does not read it).
  ZstdPieceWorker(Napi::Function cb, int level, size_t chunk_size, BlockPool::Block plain, size_t length,
                  Napi::Function alloc, int fd = -1, uint64_t position = 0, Napi::Value read = Napi::Value())
      : Napi::AsyncProgressWorker<char>(cb, "crimg:zstd-piece"), level_(level), chunk_size_(chunk_size),
        plain_(std::move(plain)), length_(length), sizes_((length + chunk_size - 1) / chunk_size, 0),
        sums_(sizes_.size(), 0), alloc_(Napi::Persistent(alloc)), fd_(fd), position_(position) {
    if (!read.IsEmpty() && read.IsFunction()) read_ = Napi::Persistent(read.As<Napi::Function>());
  }

  ~ZstdPieceWorker() override {
    BlockPool::Get().Give(std::move(plain_));
    BlockPool::Get().Give(std::move(out_));
  }

  void Execute(const ExecutionProgress& progress) override {
    if (fd_ >= 0) {
      if (!Read()) return;
      if (!read_.IsEmpty()) progress.Signal();
    }
    out_ = BlockPool::Get().Take(length_);
    if (out_.data == nullptr) {
      SetError("zstdPiece: out of memory for the stored bytes of " + std::to_string(length_) + " bytes");
      return;
    }
    ZstdEncoder& enc = ThreadEncoder();
    uint8_t* out = out_.data.get();
    size_t put = 0;  // each chunk stores at most its plain length: put + len <= length_
    for (size_t i = 0, at = 0; i < sizes_.size(); i++, at += chunk_size_) {
      const size_t len = std::min(chunk_size_, length_ - at);
      const uint8_t* p = plain_.data.get() + at;
      if (IsZero(p, len)) {
        sizes_[i] = kZeroChunk;
        continue;
      }
      int32_t size = kRandom;
      if (!LooksIncompressible(p, len)) {
        const char* error = nullptr;
        const int64_t n = FrameIfSmaller(enc, level_, p, len, out + put, &error);
        if (n == -2) {
          SetError(std::string("zstdPiece: ") + (error != nullptr ? error : "zstd failed"));
          return;
        }
        size = static_cast<int32_t>(n);
      }
      const size_t stored = size >= 0 ? static_cast<size_t>(size) : len;
      if (size < 0) memcpy(out + put, p, len);
      sizes_[i] = size;
      sums_[i] = Xxh64(out + put, stored, 0);
      put += stored;
    }
    BlockPool::Get().Give(std::move(plain_));  // for the next job now, not when this one is deleted
    used_ = put;
  }

  // callback(null, sizes: Int32Array, sums: BigUint64Array, stored), where stored =
  // alloc(used) holds the stored bytes; what alloc returns is checked first (a Uint8Array of
  // at least `used` writable bytes), and a throw from it goes to the callback.
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Value results[3];
    try {
      Napi::Value stored = alloc_.Call({Napi::Number::New(env, static_cast<double>(used_))});
      napi_typedarray_type t;
      size_t out_len = 0, off = 0;
      void* out = nullptr;
      napi_value ab;
      const bool ok = stored.IsTypedArray() &&
                      napi_get_typedarray_info(env, stored, &t, &out_len, &out, &ab, &off) == napi_ok &&
                      t == napi_uint8_array && out_len >= used_ && (used_ == 0 || out != nullptr);
      Failure f;
      if (ok && used_ > 0) f = AddressSpace::Get().CheckWritable(out, used_, "alloc's memory");
      if (!ok || f) {
        Napi::Error e = Napi::Error::New(env, std::string("zstdPiece: ") +
            (ok ? f.message : "expected alloc to return a Uint8Array of at least " + std::to_string(used_) + " bytes"));
        SetCode(e, "ERR_CRIMG_ZSTD");
        throw e;
      }
      if (used_ > 0) memcpy(out, out_.data.get(), used_);
      results[0] = Int32s(env, sizes_);
      results[1] = BigSums(env, sums_);
      results[2] = stored;
    } catch (const Napi::Error& e) {
      Callback().Call({e.Value()});
      return;
    }
    Callback().Call({env.Null(), results[0], results[1], results[2]});
  }

  // The read is done (Execute signalled it): `read`, on the main thread.
  void OnProgress(const char*, size_t) override {
    if (read_.IsEmpty()) return;
    Napi::HandleScope scope(Env());
    read_.Call({});
  }

  // A failed read: the syscall error (code the errno name, syscall 'pread'), or for a file that
  // ended early an Error with code ERR_CRIMG_EOF; `position` (a number) where the read was.
  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (read_err_ < 0) {
      Callback().Call({e.Value()});
      return;
    }
    Napi::Error r = read_err_ > 0 ? SyscallError(env, Failure::Errno(read_err_, "pread", false, 0))
                                  : Napi::Error::New(env, "zstdFilePiece: the file ended early");
    if (read_err_ == 0) SetCode(r, "ERR_CRIMG_EOF");
    r.Value().Set("position", Napi::Number::New(env, static_cast<double>(read_at_)));
    Callback().Call({r.Value()});
  }

 private:
  // Reads the piece from fd_ into plain_; false (and the error set) when it cannot.
  bool Read() {
    plain_ = BlockPool::Get().Take(length_);
    if (plain_.data == nullptr) {
      SetError("zstdFilePiece: out of memory for a piece of " + std::to_string(length_) + " bytes");
      return false;
    }
    size_t done = 0;
    while (done < length_) {
      const ssize_t n = pread(fd_, plain_.data.get() + done, length_ - done, static_cast<off_t>(position_ + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        read_err_ = n < 0 ? errno : 0;
        read_at_ = position_ + done;
        SetError("read failed");  // OnError builds the error from read_err_
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return true;
  }

  int level_;
  size_t chunk_size_;
  BlockPool::Block plain_;
  size_t length_;
  std::vector<int32_t> sizes_;
  std::vector<uint64_t> sums_;
  Napi::FunctionReference alloc_;  // gives the memory the stored bytes are copied into
  Napi::FunctionReference read_;   // zstdFilePiece's `read`: told when the read is done
  int fd_;
  uint64_t position_;
  int read_err_ = -1;  // >= 0 once a read failed: its errno, 0 for end of file
  uint64_t read_at_ = 0;
  BlockPool::Block out_;
  size_t used_ = 0;
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
    } else if ((flags & kScan) && LooksIncompressible(b.data, b.length)) {
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

// zstdPiece(level, bytes: Uint8Array, chunkSize, alloc(n) -> Uint8Array, callback(err, sizes,
// sums, stored)) -> undefined. One pool job for a whole piece of a region: chunk i is
// bytes[i * chunkSize, ...) (the last may be shorter); sizes[i] is its frame length, -1 or -3
// (stored raw: not smaller, or every page looks random) or -2 (zeros, nothing stored); sums[i]
// XXH64 of what is stored (0 for zeros); `stored`, what alloc(n) returned when the job was done
// (n: the bytes stored), holds the stored bytes of the chunks in order, back to back, so that a
// compact image writes them as they are. `bytes` (at most 64 MiB, at most 65536 chunks) is
// copied before this returns: the caller may reuse it at once.
Napi::Value ZstdPieceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int level = static_cast<int>(Integer(env, info[0], "level", kZstdMinLevel, kZstdMaxLevel));
  TypedBytes bytes = TypedArg(env, info[1], napi_uint8_array, "bytes to be a Uint8Array");
  const size_t chunk = static_cast<size_t>(Integer(env, info[2], "chunkSize", 1, 16 * 1024 * 1024));
  if (!info[3].IsFunction()) ThrowType(env, "expected alloc to be a function, got " + TypeName(info[3]));
  if (!info[4].IsFunction()) ThrowType(env, "expected a callback function, got " + TypeName(info[4]));
  if (bytes.length == 0 || bytes.length > 64 * 1024 * 1024) {
    ThrowRange(env, "expected a piece of 1 byte to 64 MiB, got " + std::to_string(bytes.length) + " bytes");
  }
  if ((bytes.length + chunk - 1) / chunk > 65536) {
    ThrowRange(env, "expected at most 65536 chunks in a piece, got " + std::to_string((bytes.length + chunk - 1) / chunk));
  }
  BlockPool::Block plain = BlockPool::Get().Take(bytes.length);
  if (plain.data == nullptr) ThrowRange(env, "zstdPiece: out of memory for a piece of " + std::to_string(bytes.length) + " bytes");
  memcpy(plain.data.get(), bytes.data, bytes.length);
  auto* w = new ZstdPieceWorker(info[4].As<Napi::Function>(), level, chunk, std::move(plain), bytes.length,
                                info[3].As<Napi::Function>());
  w->Queue();
  return env.Undefined();
}

// zstdFilePiece(level, fd, position, length, chunkSize, alloc, callback[, read]) -> undefined
// zstdPiece of `length` bytes (1 byte to 64 MiB) of file `fd` from `position` (a safe
// integer), read by the job itself on the pool thread: no copy on this thread. Keep `fd` open
// until `read` (called with no argument once the read is done, before the callback) or the
// callback. A failed read is the callback's error (and `read` is not called): a system error
// (code the errno name, syscall 'pread') or, when the file ends first, code ERR_CRIMG_EOF;
// either with the `position` of the read.
Napi::Value ZstdFilePieceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int level = static_cast<int>(Integer(env, info[0], "level", kZstdMinLevel, kZstdMaxLevel));
  const int fd = static_cast<int>(Integer(env, info[1], "fd", 0, INT_MAX));
  const double position = Integer(env, info[2], "position", 0, 9007199254740991.0);
  const size_t length = static_cast<size_t>(Integer(env, info[3], "length", 1, 64 * 1024 * 1024));
  const size_t chunk = static_cast<size_t>(Integer(env, info[4], "chunkSize", 1, 16 * 1024 * 1024));
  if (!info[5].IsFunction()) ThrowType(env, "expected alloc to be a function, got " + TypeName(info[5]));
  if (!info[6].IsFunction()) ThrowType(env, "expected a callback function, got " + TypeName(info[6]));
  if (!info[7].IsUndefined() && !info[7].IsFunction()) ThrowType(env, "expected read to be a function, got " + TypeName(info[7]));
  if ((length + chunk - 1) / chunk > 65536) {
    ThrowRange(env, "expected at most 65536 chunks in a piece, got " + std::to_string((length + chunk - 1) / chunk));
  }
  auto* w = new ZstdPieceWorker(info[6].As<Napi::Function>(), level, chunk, BlockPool::Block(), length,
                                info[5].As<Napi::Function>(), fd, static_cast<uint64_t>(position), info[7]);
  w->Queue();
  return env.Undefined();
}

}  // namespace crimg
