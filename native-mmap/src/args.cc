// Reading and checking the binding's JS arguments (see args.h).
#include "args.h"

#include <sys/mman.h>

#include <cmath>

#include "errors.h"

namespace crimg {
namespace {

bool OptionalBool(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);  // may run a getter; its exception propagates
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) {
    ThrowType(env, std::string("expected opts.") + key +
                       " to be a boolean, got " + Describe(v));
  }
  return v.As<Napi::Boolean>().Value();
}

}  // namespace

double Integer(Napi::Env env, const Napi::Value& v, const char* name,
               double min, double max) {
  if (!v.IsNumber()) {
    ThrowType(env, std::string("expected ") + name + " to be a number, got " +
                       Describe(v));
  }
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < min || d > max) {
    ThrowRange(env, std::string("expected ") + name +
                        " to be an integer in [" +
                        std::to_string(static_cast<uint64_t>(min)) + ", " +
                        std::to_string(static_cast<uint64_t>(max)) +
                        "], got " + Describe(v));
  }
  return d;
}

size_t Length(Napi::Env env, const Napi::Value& v, const char* name) {
  double max = kMaxSafeInteger;
  if (static_cast<double>(SIZE_MAX) < max) max = static_cast<double>(SIZE_MAX);
  return static_cast<size_t>(Integer(env, v, name, 1, max));
}

bool PageAligned(uint64_t value) {
  return value % AddressSpace::Get().page_size() == 0;
}

uintptr_t Address(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsBigInt()) {
    ThrowType(env, std::string("expected ") + name + " to be a bigint, got " +
                       Describe(v));
  }
  bool lossless = false;
  const uint64_t a = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || a == 0 || a > UINTPTR_MAX) {
    ThrowRange(env, std::string("expected ") + name +
                        " to be a non-zero pointer-sized address, got " +
                        Describe(v));
  }
  if (!PageAligned(a)) {
    ThrowRange(env, std::string("expected ") + name +
                        " to be a multiple of the page size (" +
                        std::to_string(AddressSpace::Get().page_size()) +
                        "), got " + Hex(static_cast<uintptr_t>(a)));
  }
  return static_cast<uintptr_t>(a);
}

int Prot(Napi::Env env, const Napi::Value& v, std::string* text) {
  if (!v.IsString()) {
    ThrowType(env, "expected prot to be a string like 'rw-', got " +
                       Describe(v));
  }
  *text = v.As<Napi::String>().Utf8Value();
  const std::string& s = *text;
  if (s.size() != 3 || (s[0] != 'r' && s[0] != '-') ||
      (s[1] != 'w' && s[1] != '-') || (s[2] != 'x' && s[2] != '-')) {
    ThrowRange(env, "expected prot to match /^[r-][w-][x-]$/, got " +
                        Describe(v));
  }
  int prot = PROT_NONE;
  if (s[0] == 'r') prot |= PROT_READ;
  if (s[1] == 'w') prot |= PROT_WRITE;
  if (s[2] == 'x') prot |= PROT_EXEC;
  return prot;
}

MapOptions Options(Napi::Env env, const Napi::Value& v) {
  MapOptions opts;
  if (v.IsUndefined() || v.IsNull()) return opts;
  if (!v.IsObject() || v.IsFunction()) {
    ThrowType(env, "expected opts to be an object, got " + Describe(v));
  }
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value address = o.Get("address");
  if (!address.IsUndefined()) {
    opts.has_address = true;
    opts.address = Address(env, address, "opts.address");
  }
  opts.fixed = OptionalBool(env, o, "fixed");
  opts.fixed_no_replace = OptionalBool(env, o, "fixedNoReplace");
  opts.populate = OptionalBool(env, o, "populate");
  if (opts.fixed && opts.fixed_no_replace) {
    ThrowRange(env, "expected at most one of opts.fixed and "
                    "opts.fixedNoReplace, got both");
  }
  if ((opts.fixed || opts.fixed_no_replace) && !opts.has_address) {
    ThrowType(env, std::string("expected opts.address to be a bigint when "
                               "opts.") +
                       (opts.fixed ? "fixed" : "fixedNoReplace") +
                       " is set, got undefined");
  }
  return opts;
}

Placement PlacementOf(const MapOptions& opts) {
  if (opts.fixed) return Placement::kFixed;
  if (opts.fixed_no_replace) return Placement::kFixedNoReplace;
  if (opts.has_address) return Placement::kHint;
  return Placement::kAnywhere;
}

uintptr_t LiveBufferAddress(Napi::Env env, const Napi::Value& v,
                            const char* name, size_t* byte_length) {
  Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
  const uintptr_t address = reinterpret_cast<uintptr_t>(ab.Data());
  *byte_length = ab.ByteLength();
  if (address == 0 || !AddressSpace::Get().IsLiveMapping(address, *byte_length)) {
    ThrowRange(env, std::string("expected ") + name +
                        " to be a live ArrayBuffer from mapFile() or "
                        "mapAnonymous(), got " +
                        (address == 0 ? "a detached ArrayBuffer (already "
                                        "unmapped?)"
                                      : "an ArrayBuffer this addon did not map"));
  }
  return address;
}

uintptr_t Target(Napi::Env env, const Napi::Value& v) {
  if (v.IsBigInt()) return Address(env, v, "address");
  if (v.IsArrayBuffer()) {
    size_t byte_length = 0;
    return LiveBufferAddress(env, v, "buffer", &byte_length);
  }
  ThrowType(env, "expected a bigint address or an ArrayBuffer from mapFile() "
                 "or mapAnonymous(), got " + Describe(v));
}

uint64_t PageAlignedOffset(Napi::Env env, const Napi::Value& v) {
  const double offset = Integer(env, v, "offset", 0, kMaxSafeInteger);
  if (!PageAligned(static_cast<uint64_t>(offset))) {
    ThrowRange(env, "expected offset to be a multiple of the page size (" +
                        std::to_string(AddressSpace::Get().page_size()) +
                        "), got " + Describe(v));
  }
  return static_cast<uint64_t>(offset);
}

Reservation* ReservationArg(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kReservationTag)) {
    ThrowType(env, "expected a reservation from reserve(), got " + Describe(v));
  }
  void* data = nullptr;
  if (napi_unwrap(env, v, &data) != napi_ok || data == nullptr) {
    ThrowType(env, "expected a reservation from reserve(), got a damaged one");
  }
  return static_cast<Reservation*>(data);
}

TypedBytes TypedArg(Napi::Env env, const Napi::Value& v, napi_typedarray_type type,
                    const char* what) {
  // Only the type is named: these arguments hold keys, plaintext and memory contents, so a
  // wrong one (a string key, say) must not be echoed.
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    ThrowType(env, std::string("expected ") + what + ", got " + TypeName(v));
  }
  // The element pointer straight from napi_get_typedarray_info: it works for views of
  // SharedArrayBuffers too, which Napi::TypedArray::ArrayBuffer() refuses.
  napi_typedarray_type t;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, v, &t, &length, &data, &buffer, &offset) != napi_ok) {
    ThrowType(env, std::string("expected ") + what + ", got a typed array it cannot read");
  }
  if (data == nullptr && length > 0) {
    ThrowRange(env, std::string("expected ") + what + " with live memory, got a detached buffer");
  }
  return TypedBytes{static_cast<uint8_t*>(data), length};
}

}  // namespace crimg
