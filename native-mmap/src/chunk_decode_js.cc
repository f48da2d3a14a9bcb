// JS binding of the native chunk decoder (chunk_decode.h), so tests can hold
// it against codec/chunk.ts's decodeChunk byte for byte, and the node engine
// can decode zstd chunks (Node 20 has no zstd). Messages name only lengths and
// types, never key or data.
#include <string.h>

#include <string>

#include <napi.h>

#include "args.h"
#include "bindings.h"
#include "chunk_decode.h"
#include "errors.h"

namespace crimg {
namespace {

uint64_t BigU64(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsBigInt()) ThrowType(env, std::string("expected ") + name + " to be a bigint, got " + Describe(v));
  bool lossless = false;
  const uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowRange(env, std::string("expected ") + name + " to be a u64, got " + Describe(v));
  return x;
}

const uint8_t* KeyBytes(Napi::Env env, const Napi::Value& v, size_t length, const char* what, const char* name) {
  if (v.IsUndefined()) return nullptr;
  TypedBytes b = TypedArg(env, v, napi_uint8_array, what);
  if (b.length != length) {
    ThrowRange(env, std::string("expected ") + name + " to be " + std::to_string(length) + " bytes, got " +
                        std::to_string(b.length) + " bytes");
  }
  return b.data;
}

}  // namespace

// decodeChunk(p: { codec, cipher, chunkSize, dataKey?, imageId?, headerHash?, number: bigint,
//   region, address: bigint, last, plainLength, flags, checksum: bigint, verifyChecksum? },
//   stored: Uint8Array, out: Uint8Array(plainLength)) -> null | { code, message }
// Synchronous, on the calling thread, through one decoder per thread.
Napi::Value DecodeChunkJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "expected params to be an object, got " + TypeName(info[0]));
  Napi::Object p = info[0].As<Napi::Object>();
  // Every property first (a getter runs script), then the typed arrays' pointers, read last.
  const Napi::Value codec = p.Get("codec"), cipher = p.Get("cipher"), chunk_size = p.Get("chunkSize"),
                    key = p.Get("dataKey"), id = p.Get("imageId"), hash = p.Get("headerHash"),
                    number = p.Get("number"), region = p.Get("region"), address = p.Get("address"),
                    last = p.Get("last"), plain = p.Get("plainLength"), flags = p.Get("flags"),
                    checksum = p.Get("checksum"), verify = p.Get("verifyChecksum");
  ChunkImage image;
  image.codec = static_cast<int>(Integer(env, codec, "codec", 0, 255));
  image.cipher = static_cast<int>(Integer(env, cipher, "cipher", 0, 255));
  image.chunk_size = static_cast<uint32_t>(Integer(env, chunk_size, "chunkSize", 0, 0xffffffff));
  ChunkRecord rec;
  rec.number = BigU64(env, number, "number");
  rec.region = static_cast<uint32_t>(Integer(env, region, "region", 0, 0xffffffff));
  rec.address = BigU64(env, address, "address");
  if (!last.IsBoolean()) ThrowType(env, "expected last to be a boolean, got " + Describe(last));
  rec.last = last.As<Napi::Boolean>().Value();
  rec.plain_length = static_cast<uint32_t>(Integer(env, plain, "plainLength", 1, 16 * 1024 * 1024));
  rec.flags = static_cast<uint16_t>(Integer(env, flags, "flags", 0, 0xffff));
  rec.checksum = BigU64(env, checksum, "checksum");
  const bool verify_checksum = verify.IsUndefined() || verify.ToBoolean().Value();
  image.data_key = KeyBytes(env, key, 32, "dataKey to be a Uint8Array", "dataKey");
  image.image_id = KeyBytes(env, id, 16, "imageId to be a Uint8Array", "imageId");
  image.header_hash = KeyBytes(env, hash, 32, "headerHash to be a Uint8Array", "headerHash");
  TypedBytes stored = TypedArg(env, info[1], napi_uint8_array, "stored to be a Uint8Array");
  TypedBytes out = TypedArg(env, info[2], napi_uint8_array, "out to be a Uint8Array");
  if (stored.length > 0xffffffff) ThrowRange(env, "expected stored to be below 4 GiB");
  rec.stored_length = static_cast<uint32_t>(stored.length);
  if (out.length != rec.plain_length) {
    ThrowRange(env, "expected out to hold plainLength = " + std::to_string(rec.plain_length) + " bytes, got " +
                        std::to_string(out.length));
  }
  if (Failure f = AddressSpace::Get().CheckWritable(out.data, out.length, "out")) ThrowFailure(env, f);
  thread_local ChunkDecoder decoder;
  static const uint8_t kEmpty[1] = {0};
  const ChunkResult r = decoder.Decode(image, rec, stored.data != nullptr ? stored.data : kEmpty, out.data,
                                       verify_checksum);
  if (r.status == ChunkStatus::kOk) return env.Null();
  Napi::Object result = Napi::Object::New(env);
  result.Set("code", r.code());
  result.Set("message", r.message);
  return result;
}

}  // namespace crimg
