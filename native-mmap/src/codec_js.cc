// JS binding of the codec engines' native parts: the chunk scan and XXH64
// (scan.h), AEAD sealing (aead.h) and batches of raw DEFLATE (deflate.h).
// Their arguments hold keys, plaintext and memory contents, so messages name
// only their types and lengths (TypedArg).
#include <string.h>

#include <string>
#include <vector>

#include <napi.h>

#include "aead.h"
#include "args.h"
#include "bindings.h"
#include "deflate.h"
#include "batch_result.h"
#include "errors.h"
#include "scan.h"

namespace crimg {
namespace {

// Throws a RangeError when the `bytes` bytes native code is about to write at
// `out` lie, even partly, in a range this addon mapped without PROT_WRITE
// (AddressSpace::CheckWritable): a write there would kill the process.
void CheckOut(Napi::Env env, const TypedBytes& out, size_t bytes, const char* what) {
  if (Failure f = AddressSpace::Get().CheckWritable(out.data, bytes, what)) ThrowFailure(env, f);
}

}  // namespace

// scanChunks(bytes: Uint8Array, chunkSize, sums: BigUint64Array, zero: Uint8Array) -> zero count
// The writer's inner loop (image/writer.ts): the zero test and XXH64 of each
// chunk, straight on the caller's memory, so no copy into a hasher's heap.
Napi::Value ScanChunksJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes bytes = TypedArg(env, info[0], napi_uint8_array, "bytes to be a Uint8Array");
  const size_t chunk = Length(env, info[1], "chunkSize");
  TypedBytes sums = TypedArg(env, info[2], napi_biguint64_array, "sums to be a BigUint64Array");
  TypedBytes zero = TypedArg(env, info[3], napi_uint8_array, "zero to be a Uint8Array");
  const size_t chunks = bytes.length / chunk + (bytes.length % chunk != 0 ? 1 : 0);
  if (sums.length < chunks || zero.length < chunks) {
    ThrowRange(env, "expected sums and zero to hold " + std::to_string(chunks) +
                        " chunks, got " + std::to_string(sums.length) + " and " +
                        std::to_string(zero.length));
  }
  if (chunks == 0) return Napi::Number::New(env, 0);
  CheckOut(env, sums, chunks * sizeof(uint64_t), "sums");
  CheckOut(env, zero, chunks, "zero");
  const size_t zeros = ScanChunks(bytes.data, bytes.length, chunk,
                                  reinterpret_cast<uint64_t*>(sums.data), zero.data);
  return Napi::Number::New(env, static_cast<double>(zeros));
}

// hashChunks(bytes: Uint8Array, chunkSize, sums: BigUint64Array) -> undefined
// XXH64 of every chunk of `bytes` (the last may be shorter): a reader checking a
// run of stored chunks in one call.
Napi::Value HashChunksJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes bytes = TypedArg(env, info[0], napi_uint8_array, "bytes to be a Uint8Array");
  const size_t chunk = Length(env, info[1], "chunkSize");
  TypedBytes sums = TypedArg(env, info[2], napi_biguint64_array, "sums to be a BigUint64Array");
  const size_t chunks = bytes.length / chunk + (bytes.length % chunk != 0 ? 1 : 0);
  if (sums.length < chunks) {
    ThrowRange(env, "expected sums to hold " + std::to_string(chunks) + " chunks, got " + std::to_string(sums.length));
  }
  if (chunks > 0) CheckOut(env, sums, chunks * sizeof(uint64_t), "sums");
  if (chunks > 0) HashChunks(bytes.data, bytes.length, chunk, reinterpret_cast<uint64_t*>(sums.data));
  return env.Undefined();
}

// xxh64(bytes: Uint8Array) -> bigint (seed 0)
Napi::Value Xxh64Js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes bytes = TypedArg(env, info[0], napi_uint8_array, "bytes to be a Uint8Array");
  return Napi::BigInt::New(env, Xxh64(bytes.data == nullptr ? reinterpret_cast<const uint8_t*>("") : bytes.data, bytes.length, 0));
}

namespace {

// The 80-byte state argument of the streaming XXH64 bindings, copied out (any alignment).
Xxh64State StateArg(Napi::Env env, const Napi::Value& v, TypedBytes* bytes) {
  *bytes = TypedArg(env, v, napi_uint8_array, "state to be a Uint8Array");
  if (bytes->length != sizeof(Xxh64State)) {
    ThrowRange(env, "expected state to be " + std::to_string(sizeof(Xxh64State)) + " bytes, got " + std::to_string(bytes->length));
  }
  CheckOut(env, *bytes, sizeof(Xxh64State), "state");
  Xxh64State s;
  memcpy(&s, bytes->data, sizeof s);
  return s;
}

}  // namespace

// xxh64Init(state: Uint8Array(80)) -> undefined: a new XXH64 (seed 0) over pieces.
Napi::Value Xxh64InitJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes out;
  Xxh64State s = StateArg(env, info[0], &out);
  Xxh64Init(&s);
  memcpy(out.data, &s, sizeof s);
  return env.Undefined();
}

// xxh64Update(state: Uint8Array(80), bytes: Uint8Array) -> undefined: the next piece.
Napi::Value Xxh64UpdateJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes out;
  Xxh64State s = StateArg(env, info[0], &out);
  TypedBytes bytes = TypedArg(env, info[1], napi_uint8_array, "bytes to be a Uint8Array");
  if (bytes.length > 0) Xxh64Update(&s, bytes.data, bytes.length);
  memcpy(out.data, &s, sizeof s);
  return env.Undefined();
}

// xxh64Digest(state: Uint8Array(80)) -> bigint: XXH64 of every piece so far.
Napi::Value Xxh64DigestJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes out;
  const Xxh64State s = StateArg(env, info[0], &out);
  return Napi::BigInt::New(env, Xxh64Digest(&s));
}

// aeadSeal(cipherId: 1 | 2, key: Uint8Array(32), nonce: Uint8Array(12), aad: Uint8Array,
//          plain: Uint8Array, out: Uint8Array(plain.length + 16))
// The format's cipher ids (spec/FORMAT.md section 7): 1 AES-256-GCM, 2
// ChaCha20-Poly1305; out = ciphertext || tag. Messages never name the key or the data.
Napi::Value AeadSealJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* kExpected = "expected cipherId to be 1 (aes-256-gcm) or 2 (chacha20-poly1305), got ";
  if (!info[0].IsNumber()) ThrowType(env, kExpected + Describe(info[0]));
  const double cipher_id = info[0].As<Napi::Number>().DoubleValue();
  if (cipher_id != kCipherAes256Gcm && cipher_id != kCipherChacha20Poly1305) {
    ThrowRange(env, kExpected + Describe(info[0]));
  }
  TypedBytes key = TypedArg(env, info[1], napi_uint8_array, "key to be a Uint8Array");
  TypedBytes nonce = TypedArg(env, info[2], napi_uint8_array, "nonce to be a Uint8Array");
  TypedBytes aad = TypedArg(env, info[3], napi_uint8_array, "aad to be a Uint8Array");
  TypedBytes plain = TypedArg(env, info[4], napi_uint8_array, "plain to be a Uint8Array");
  TypedBytes out = TypedArg(env, info[5], napi_uint8_array, "out to be a Uint8Array");
  if (key.length != 32) ThrowRange(env, "expected a 32-byte key, got " + std::to_string(key.length) + " bytes");
  if (nonce.length != 12) ThrowRange(env, "expected a 12-byte nonce, got " + std::to_string(nonce.length) + " bytes");
  if (out.length != plain.length + 16) {
    ThrowRange(env, "expected out to hold plain.length + 16 = " + std::to_string(plain.length + 16) +
                        " bytes, got " + std::to_string(out.length));
  }
  CheckOut(env, out, out.length, "out");
  static const uint8_t kEmpty[1] = {0};
  const char* failed = AeadSeal(static_cast<int>(cipher_id), key.data, nonce.data,
                                aad.data ? aad.data : kEmpty, aad.length,
                                plain.data ? plain.data : kEmpty, plain.length, out.data);
  if (failed != nullptr) {
    Napi::Error e = Napi::Error::New(env, std::string("aeadSeal: ") + failed);
    SetCode(e, "ERR_CRIMG_AEAD");
    throw e;
  }
  return env.Undefined();
}

namespace {

// deflateBatch(level, plains: Uint8Array[], random: Uint8Array, out: Uint8Array,
//              sizes: Int32Array, callback(err)) -> undefined
// One libuv pool job deflating every chunk of `plains` (see deflate.h): chunk
// i's flags are the next ceil(len / 4096) bytes of `random`, its output goes
// to `out` at the sum of the previous chunks' lengths, sizes[i] gets its
// length or -1. The inputs are copied before this returns and the results
// copied into `out` and `sizes` on this thread when the job is done, so the
// pool thread never touches script-owned memory: a caller may detach, resize
// or reuse any of the buffers meanwhile (then the callback gets an error).
class DeflateWorker : public Napi::AsyncWorker {
 public:
  DeflateWorker(Napi::Function cb, int level, std::vector<uint8_t> plain, std::vector<size_t> lengths,
                std::vector<uint8_t> random, Napi::Object keep)
      : Napi::AsyncWorker(cb, "crimg:deflate"), level_(level), plain_(std::move(plain)),
        lengths_(std::move(lengths)), random_(std::move(random)), keep_(Napi::Persistent(keep)) {}

  void Execute() override {
    out_.resize(plain_.size());
    sizes_.assign(lengths_.size(), -1);
    std::vector<DeflateInput> inputs;
    inputs.reserve(lengths_.size());
    size_t at = 0;
    size_t flags = 0;
    for (size_t len : lengths_) {
      inputs.push_back(DeflateInput{plain_.data() + at, len, random_.data() + flags, out_.data() + at});
      at += len;
      flags += (len + 4095) / 4096;
    }
    const char* failed = DeflateChunks(level_, inputs, sizes_.data());
    if (failed != nullptr) SetError(failed);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    DeliverEncodedBatch(env, keep_.Value(), out_, sizes_, lengths_, "deflateBatch", "ERR_CRIMG_DEFLATE", Callback());
  }

 private:
  int level_;
  std::vector<uint8_t> plain_;
  std::vector<size_t> lengths_;
  std::vector<uint8_t> random_;
  std::vector<uint8_t> out_;
  std::vector<int32_t> sizes_;
  Napi::ObjectReference keep_;  // out and sizes, written when the job is done
};

}  // namespace

Napi::Value DeflateBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double level = Integer(env, info[0], "level", 1, kDeflateMaxLevel);
  if (!info[1].IsArray()) ThrowType(env, "expected plains to be an array of Uint8Array, got " + TypeName(info[1]));
  if (!info[5].IsFunction()) ThrowType(env, "expected a callback function, got " + TypeName(info[5]));
  // Every element first (an index getter runs script), then one pointer at a time, each
  // copied before anything else can run.
  Napi::Array list = info[1].As<Napi::Array>();
  const uint32_t n = list.Length();
  if (n > 4096) ThrowRange(env, "expected at most 4096 chunks in one batch, got " + std::to_string(n));
  std::vector<Napi::Value> plains;
  plains.reserve(n);
  for (uint32_t i = 0; i < n; i++) plains.push_back(list.Get(i));
  std::vector<uint8_t> plain;
  std::vector<size_t> lengths;
  lengths.reserve(n);
  size_t pages = 0;
  for (const Napi::Value& v : plains) {
    TypedBytes b = TypedArg(env, v, napi_uint8_array, "every plain to be a Uint8Array");
    if (b.length > 0x7fffffff || plain.size() + b.length > (size_t{1} << 31)) {
      ThrowRange(env, "expected a batch below 2 GiB");
    }
    plain.insert(plain.end(), b.data, b.data + b.length);
    lengths.push_back(b.length);
    pages += (b.length + 4095) / 4096;
  }
  TypedBytes random = TypedArg(env, info[2], napi_uint8_array, "random to be a Uint8Array");
  if (random.length < pages) {
    ThrowRange(env, "expected random to hold a flag per 4 KiB page of every chunk (" + std::to_string(pages) +
                        "), got " + std::to_string(random.length));
  }
  std::vector<uint8_t> flags(random.data, random.data + pages);
  TypedBytes out = TypedArg(env, info[3], napi_uint8_array, "out to be a Uint8Array");
  if (out.length < plain.size()) {
    ThrowRange(env, "expected out to hold the plains' total length " + std::to_string(plain.size()) +
                        ", got " + std::to_string(out.length));
  }
  if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowType(env, "expected sizes to be an Int32Array, got " + TypeName(info[4]));
  }
  TypedBytes sizes = TypedArg(env, info[4], napi_int32_array, "sizes to be an Int32Array");
  if (sizes.length < n) {
    ThrowRange(env, "expected sizes to hold " + std::to_string(n) + " entries, got " + std::to_string(sizes.length));
  }
  CheckOut(env, out, plain.size(), "out");
  CheckOut(env, sizes, static_cast<size_t>(n) * sizeof(int32_t), "sizes");
  Napi::Object keep = Napi::Object::New(env);
  keep.Set("out", info[3]);
  keep.Set("sizes", info[4]);
  auto* w = new DeflateWorker(info[5].As<Napi::Function>(), static_cast<int>(level), std::move(plain),
                              std::move(lengths), std::move(flags), keep);
  w->Queue();
  return env.Undefined();
}

}  // namespace crimg
