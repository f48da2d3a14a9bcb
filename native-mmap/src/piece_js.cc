// Whole pieces of a region encoded (and, with a cipher, sealed) in one libuv
// pool job each, for the image writer (image/_chunk-stream.ts): zstdPiece,
// deflatePiece and rawPiece (no codec) take the piece's bytes (copied before
// they return), their FilePiece kin read it from a file on the pool thread.
// Per chunk, the job makes what the chunk-by-chunk path makes, byte for byte
// (test/writer-pieces.test.ts). Messages name only lengths and positions.
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include <napi.h>

#include "aead.h"
#include "args.h"
#include "bindings.h"
#include "deflate.h"
#include "encode_common.h"
#include "errors.h"
#include "scan.h"
#include "zstd_encode.h"

namespace crimg {
namespace {

constexpr int kNone = 0;  // the header's codec ids (spec/FORMAT.md section 6)
constexpr int kDeflate = 1;
constexpr int kZstd = 2;

// A codec as the piece bindings name it.
struct Codec {
  int id;
  int min_level;
  int max_level;
  const char* piece;       // the bindings' names, in messages
  const char* file_piece;
  const char* code;        // the error code of a failure other than a read's
  const char* failed;      // what failed, when the codec does not say
  const char* resource;    // the async resource's name
};

// No codec: every chunk but a zero one stored raw (an image with a cipher seals it).
const Codec kNoneCodec{kNone, 0, 0, "rawPiece", "rawFilePiece", "ERR_CRIMG_AEAD", "sealing failed", "crimg:raw-piece"};
const Codec kDeflateCodec{kDeflate, 1, kDeflateMaxLevel, "deflatePiece", "deflateFilePiece", "ERR_CRIMG_DEFLATE", "deflate failed", "crimg:deflate-piece"};
const Codec kZstdCodec{kZstd, kZstdMinLevel, kZstdMaxLevel, "zstdPiece", "zstdFilePiece", "ERR_CRIMG_ZSTD", "zstd failed", "crimg:zstd-piece"};

constexpr size_t kPieceMax = 64 * 1024 * 1024;  // codec/pieces.ts PIECE_MAX
constexpr size_t kMaxChunk = 16 * 1024 * 1024;   // LIMITS.maxChunkSize
constexpr size_t kPrefix = 48;  // image id (16) || H (32), the start of every chunk's associated data

// An image with a cipher: each stored form sealed under the data key with its
// chunk's nonce and associated data (spec/FORMAT.md section 7.3), as the
// chunk-by-chunk path seals it (image/chunk-encoder.ts). The key is wiped when
// the job ends.
struct Seal {
  int cipher = 0;  // 0: no cipher
  uint8_t key[32];
  uint8_t prefix[kPrefix];
  uint64_t first_chunk = 0;  // the piece's first chunk number
  uint32_t region = 0;
  uint64_t address = 0;      // the piece's first chunk's address
  bool last = false;         // the piece's last chunk ends its region

  Seal() = default;
  Seal(const Seal&) = default;
  Seal& operator=(const Seal&) = default;
  ~Seal() { explicit_bzero(key, sizeof key); }
};


// A piece's job: every chunk of one piece of a region (whole chunks but
// perhaps the last), each tested, compressed and summed as the chunk-by-chunk
// path does (zstd: zstdBatch with kScan | kSums; deflate: deflateBatch with the
// page flags of codec/chunk.ts's pageLooksRandom, the checksum XXH64 of what is
// stored), the stored bytes back to back in one block. The piece was copied
// into `plain` before the job (zstdPiece, deflatePiece), or the job reads it
// from a file into `plain` itself (zstdFilePiece, deflateFilePiece), and the
// stored bytes are copied on the main thread after it into memory the caller's
// `alloc` gives then (exactly what is stored: the caller packs pieces into kept
// memory): the pool thread touches no script memory.
class PieceWorker : public Napi::AsyncProgressWorker<char> {
 public:
  // `fd` >= 0: `plain` is filled by reading `length` bytes of `fd` from `position` first, and
  // `read` (when a function) is called on the main thread once that read is done, before the
  // callback (the caller may then let the file change: the rest of the job does not read it).
  PieceWorker(Napi::Function cb, const Codec& codec, int level, size_t chunk_size, const Seal& seal, BlockPool::Block plain,
              size_t length, Napi::Function alloc, int fd = -1, uint64_t position = 0, Napi::Value read = Napi::Value())
      : Napi::AsyncProgressWorker<char>(cb, codec.resource), codec_(codec), level_(level), chunk_size_(chunk_size),
        seal_(seal), plain_(std::move(plain)), length_(length), sizes_((length + chunk_size - 1) / chunk_size, 0),
        sums_(sizes_.size(), 0), alloc_(Napi::Persistent(alloc)), fd_(fd), position_(position) {
    if (!read.IsEmpty() && read.IsFunction()) read_ = Napi::Persistent(read.As<Napi::Function>());
  }

  ~PieceWorker() override {
    BlockPool::Get().Give(std::move(plain_));
    BlockPool::Get().Give(std::move(out_));
  }

  void Execute(const ExecutionProgress& progress) override {
    if (fd_ >= 0) {
      if (!Read()) return;
      if (!read_.IsEmpty()) progress.Signal();
    }
    // Each chunk stores at most its plain length, and its tag when sealed.
    const size_t tag = seal_.cipher != 0 ? kAeadTag : 0;
    const size_t capacity = length_ + tag * sizes_.size();
    out_ = BlockPool::Get().Take(capacity);
    if (out_.data == nullptr) {
      SetError(std::string(codec_.piece) + ": out of memory for the stored bytes of " + std::to_string(capacity) + " bytes");
      return;
    }
    ZstdEncoder& enc = ThreadZstdEncoder();
    uint8_t* out = out_.data.get();
    size_t put = 0;  // put + len + tag <= capacity for every chunk still to come
    for (size_t i = 0, at = 0; i < sizes_.size(); i++, at += chunk_size_) {
      const size_t len = std::min(chunk_size_, length_ - at);
      const uint8_t* p = plain_.data.get() + at;
      if (IsZero(p, len)) {
        sizes_[i] = kZeroChunk;
        continue;
      }
      const bool random = codec_.id != kNone && EveryPageLooksRandom(p, len);
      const char* error = nullptr;
      int64_t n = kRandom;
      if (codec_.id == kNone) {
        n = kNotSmaller;
      } else if (codec_.id == kDeflate) {
        n = DeflateIfSmaller(level_, p, len, random, out + put);
      } else if (!random) {
        n = FrameIfSmaller(enc, level_, p, len, out + put, &error);
      }
      if (n == -2) {
        SetError(std::string(codec_.piece) + ": " + (error != nullptr ? error : codec_.failed));
        return;
      }
      const int32_t size = static_cast<int32_t>(n);
      const size_t body = size >= 0 ? static_cast<size_t>(size) : len;
      if (tag == 0) {
        if (size < 0) memcpy(out + put, p, len);
      } else {
        // Sealed into place: an encoded form where the encoder put it (in place), a raw chunk
        // from the piece.
        uint8_t nonce[12], aad[kChunkAadLength];
        ChunkNonceAad(seal_.prefix, seal_.prefix + 16, seal_.first_chunk + i, seal_.region, static_cast<uint32_t>(len),
                      seal_.address + i * chunk_size_, size >= 0, seal_.last && i + 1 == sizes_.size(), nonce, aad);
        const char* failed = AeadSeal(seal_.cipher, seal_.key, nonce, aad, kChunkAadLength, size >= 0 ? out + put : p, body, out + put);
        if (failed != nullptr) {
          SetError(std::string(codec_.piece) + ": sealing failed: " + failed);
          return;
        }
      }
      const size_t stored = body + tag;
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
        Napi::Error e = Napi::Error::New(env, std::string(codec_.piece) + ": " +
            (ok ? f.message : "expected alloc to return a Uint8Array of at least " + std::to_string(used_) + " bytes"));
        SetCode(e, codec_.code);
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
      // A codec, sealing or memory failure (SetError's message): coded here.
      Napi::Value v = e.Value();
      if (v.IsObject()) v.As<Napi::Object>().Set("code", Napi::String::New(env, codec_.code));
      Callback().Call({v});
      return;
    }
    Napi::Error r = read_err_ > 0 ? SyscallError(env, Failure::Errno(read_err_, "pread", false, 0))
                                  : Napi::Error::New(env, std::string(codec_.file_piece) + ": the file ended early");
    if (read_err_ == 0) SetCode(r, "ERR_CRIMG_EOF");
    r.Value().Set("position", Napi::Number::New(env, static_cast<double>(read_at_)));
    Callback().Call({r.Value()});
  }

 private:
  // Reads the piece from fd_ into plain_; false (and the error set) when it cannot.
  bool Read() {
    plain_ = BlockPool::Get().Take(length_);
    if (plain_.data == nullptr) {
      SetError(std::string(codec_.file_piece) + ": out of memory for a piece of " + std::to_string(length_) + " bytes");
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

  const Codec& codec_;
  int level_;
  size_t chunk_size_;
  Seal seal_;
  BlockPool::Block plain_;
  size_t length_;
  std::vector<int32_t> sizes_;
  std::vector<uint64_t> sums_;
  Napi::FunctionReference alloc_;  // gives the memory the stored bytes are copied into
  Napi::FunctionReference read_;   // the file piece's `read`: told when the read is done
  int fd_;
  uint64_t position_;
  int read_err_ = -1;  // >= 0 once a read failed: its errno, 0 for end of file
  uint64_t read_at_ = 0;
  BlockPool::Block out_;
  size_t used_ = 0;
};

// The `seal` argument of a piece: undefined (no cipher), or { cipher: 1 | 2,
// key: Uint8Array(32), prefix: Uint8Array(48) (image id || H), chunk (the piece's first chunk
// number), region, address: bigint (its first chunk's), last: boolean (its last chunk ends
// the region) }. Every property is read before any bytes are looked at: a getter runs script.
// Messages never show the key. Its span is checked once the piece's length is known (SealSpan).
Seal SealArg(Napi::Env env, const Napi::Value& v) {
  Seal seal;
  if (v.IsUndefined()) return seal;
  if (!v.IsObject() || v.IsTypedArray()) ThrowType(env, "expected seal to be an object, got " + TypeName(v));
  Napi::Object o = v.As<Napi::Object>();
  const Napi::Value cipher = o.Get("cipher"), key = o.Get("key"), prefix = o.Get("prefix"), chunk = o.Get("chunk"),
                    region = o.Get("region"), address = o.Get("address"), last = o.Get("last");
  seal.cipher = static_cast<int>(Integer(env, cipher, "seal.cipher", kCipherAes256Gcm, kCipherChacha20Poly1305));
  seal.first_chunk = static_cast<uint64_t>(Integer(env, chunk, "seal.chunk", 0, kMaxSafeInteger));
  seal.region = static_cast<uint32_t>(Integer(env, region, "seal.region", 0, 4294967295.0));
  if (!address.IsBigInt()) ThrowType(env, "expected seal.address to be a bigint, got " + TypeName(address));
  bool lossless = false;
  seal.address = address.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowRange(env, "expected seal.address to be a u64");
  if (!last.IsBoolean()) ThrowType(env, "expected seal.last to be a boolean, got " + TypeName(last));
  seal.last = last.As<Napi::Boolean>().Value();
  const TypedBytes k = TypedArg(env, key, napi_uint8_array, "seal.key to be a Uint8Array");
  if (k.length != sizeof seal.key) ThrowRange(env, "expected seal.key to be 32 bytes, got " + std::to_string(k.length));
  const TypedBytes pre = TypedArg(env, prefix, napi_uint8_array, "seal.prefix to be a Uint8Array");
  if (pre.length != kPrefix) ThrowRange(env, "expected seal.prefix to be 48 bytes, got " + std::to_string(pre.length));
  memcpy(seal.key, k.data, sizeof seal.key);
  memcpy(seal.prefix, pre.data, kPrefix);
  return seal;
}

// A piece of `length` bytes (1 byte to 64 MiB) in chunks of `chunk`: its chunk count (at most
// 65536).
size_t PieceChunks(Napi::Env env, size_t length, size_t chunk) {
  if (length == 0 || length > kPieceMax) ThrowRange(env, "expected a piece of 1 byte to 64 MiB, got " + std::to_string(length) + " bytes");
  const size_t count = (length + chunk - 1) / chunk;
  if (count > 65536) ThrowRange(env, "expected at most 65536 chunks in a piece, got " + std::to_string(count));
  return count;
}

// The seal's chunk numbers and addresses for a piece of `count` chunks stay in range.
void SealSpan(Napi::Env env, const Seal& seal, size_t count, size_t chunk) {
  if (seal.cipher == 0) return;
  if (seal.first_chunk > static_cast<uint64_t>(kMaxSafeInteger) - count) {
    ThrowRange(env, "expected seal.chunk with the piece's " + std::to_string(count) + " chunks below 2^53");
  }
  if ((count - 1) * chunk > UINT64_MAX - seal.address) {
    ThrowRange(env, "expected seal.address with the piece's " + std::to_string(count) + " chunks below 2^64");
  }
}

// zstdPiece(level, bytes: Uint8Array, chunkSize, alloc(n) -> Uint8Array, callback(err, sizes,
// sums, stored)[, seal]) -> undefined; deflatePiece(...) the same with deflate (level 1..9),
// rawPiece(...) with no codec (level 0: every chunk but a zero one stored raw, -1). One
// pool job for a whole piece of a region: chunk i is bytes[i * chunkSize, ...) (the last may
// be shorter); sizes[i] is its encoded length, -1 or -3 (stored raw: not smaller, or every
// page looks random; deflate says -1 for both) or -2 (zeros, nothing stored); sums[i]
// XXH64 of what is stored (0 for zeros); `stored`, what alloc(n) returned when the job was done
// (n: the bytes stored), holds the stored bytes of the chunks in order, back to back, so that a
// compact image writes them as they are. `bytes` (at most 64 MiB, at most 65536 chunks) is
// copied before this returns: the caller may reuse it at once. With `seal` (SealArg), each
// stored chunk is sealed: its ciphertext and 16-byte tag, sizes[i] still the encoded length
// (or -1, -2, -3) before sealing, sums[i] XXH64 of the sealed bytes.
Napi::Value PieceJs(const Napi::CallbackInfo& info, const Codec& codec) {
  Napi::Env env = info.Env();
  const int level = static_cast<int>(Integer(env, info[0], "level", codec.min_level, codec.max_level));
  const size_t chunk = static_cast<size_t>(Integer(env, info[2], "chunkSize", 1, kMaxChunk));
  if (!info[3].IsFunction()) ThrowType(env, "expected alloc to be a function, got " + TypeName(info[3]));
  if (!info[4].IsFunction()) ThrowType(env, "expected a callback function, got " + TypeName(info[4]));
  // The seal first (its getters run script), then the bytes, copied before anything else runs.
  const Seal seal = SealArg(env, info[5]);
  TypedBytes bytes = TypedArg(env, info[1], napi_uint8_array, "bytes to be a Uint8Array");
  SealSpan(env, seal, PieceChunks(env, bytes.length, chunk), chunk);
  BlockPool::Block plain = BlockPool::Get().Take(bytes.length);
  if (plain.data == nullptr) ThrowRange(env, std::string(codec.piece) + ": out of memory for a piece of " + std::to_string(bytes.length) + " bytes");
  memcpy(plain.data.get(), bytes.data, bytes.length);
  auto* w = new PieceWorker(info[4].As<Napi::Function>(), codec, level, chunk, seal, std::move(plain), bytes.length,
                            info[3].As<Napi::Function>());
  w->Queue();
  return env.Undefined();
}

// zstdFilePiece(level, fd, position, length, chunkSize, alloc, callback[, read[, seal]]) ->
// undefined, and deflateFilePiece(...): zstdPiece (deflatePiece) of `length` bytes (1 byte to
// 64 MiB) of file `fd` from `position` (a safe integer), read by the job itself on the pool
// thread: no copy on this thread. Keep `fd` open
// until `read` (called with no argument once the read is done, before the callback) or the
// callback. A failed read is the callback's error (and `read` is not called): a system error
// (code the errno name, syscall 'pread') or, when the file ends first, code ERR_CRIMG_EOF;
// either with the `position` of the read.
Napi::Value FilePieceJs(const Napi::CallbackInfo& info, const Codec& codec) {
  Napi::Env env = info.Env();
  const int level = static_cast<int>(Integer(env, info[0], "level", codec.min_level, codec.max_level));
  const int fd = static_cast<int>(Integer(env, info[1], "fd", 0, INT_MAX));
  const double position = Integer(env, info[2], "position", 0, 9007199254740991.0);
  const size_t length = static_cast<size_t>(Integer(env, info[3], "length", 1, kPieceMax));
  const size_t chunk = static_cast<size_t>(Integer(env, info[4], "chunkSize", 1, kMaxChunk));
  if (!info[5].IsFunction()) ThrowType(env, "expected alloc to be a function, got " + TypeName(info[5]));
  if (!info[6].IsFunction()) ThrowType(env, "expected a callback function, got " + TypeName(info[6]));
  if (!info[7].IsUndefined() && !info[7].IsFunction()) ThrowType(env, "expected read to be a function, got " + TypeName(info[7]));
  const size_t count = PieceChunks(env, length, chunk);
  const Seal seal = SealArg(env, info[8]);
  SealSpan(env, seal, count, chunk);
  auto* w = new PieceWorker(info[6].As<Napi::Function>(), codec, level, chunk, seal, BlockPool::Block(), length,
                            info[5].As<Napi::Function>(), fd, static_cast<uint64_t>(position), info[7]);
  w->Queue();
  return env.Undefined();
}

}  // namespace

Napi::Value ZstdPieceJs(const Napi::CallbackInfo& info) { return PieceJs(info, kZstdCodec); }
Napi::Value ZstdFilePieceJs(const Napi::CallbackInfo& info) { return FilePieceJs(info, kZstdCodec); }
Napi::Value DeflatePieceJs(const Napi::CallbackInfo& info) { return PieceJs(info, kDeflateCodec); }
Napi::Value DeflateFilePieceJs(const Napi::CallbackInfo& info) { return FilePieceJs(info, kDeflateCodec); }
Napi::Value RawPieceJs(const Napi::CallbackInfo& info) { return PieceJs(info, kNoneCodec); }
Napi::Value RawFilePieceJs(const Napi::CallbackInfo& info) { return FilePieceJs(info, kNoneCodec); }

}  // namespace crimg
