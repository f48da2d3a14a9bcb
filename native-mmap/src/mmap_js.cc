// JS binding of the native restore shim's low layer: mmap, mprotect, madvise
// and munmap, with every argument validated before any syscall (args.h) and
// failures thrown as described in errors.h.
//
// Mapped memory is handed out as external ArrayBuffers whose finalizer
// unmaps (buffers.h); a reservation is a frozen, type-tagged
// { address, length } object, never an ArrayBuffer, because its pages are
// PROT_NONE and touching them from script would be a SIGSEGV.
#include <sys/mman.h>

#include <cmath>
#include <string>
#include <vector>

#include <napi.h>

#include "address_space.h"
#include "args.h"
#include "bindings.h"
#include "buffers.h"
#include "errors.h"

namespace crimg {
namespace {

void FinalizeReservation(napi_env, void* data, void*) {
  AddressSpace::Get().ReservationFinalized(static_cast<Reservation*>(data));
}

Napi::Value DoMap(const Napi::CallbackInfo& info, int fd, uint64_t offset,
                  size_t length, const Napi::Value& prot_value,
                  const Napi::Value& opts_value) {
  Napi::Env env = info.Env();
  std::string prot_text;
  const int prot = Prot(env, prot_value, &prot_text);
  if ((prot & PROT_READ) == 0) {
    // The result is an ArrayBuffer; reading unreadable pages is a SIGSEGV.
    ThrowRange(env, "expected a readable prot ('r..') for a mapping handed "
                    "out as an ArrayBuffer, got '" + prot_text +
                    "' (use reserve() for no-access ranges)");
  }
  const MapOptions opts = Options(env, opts_value);
  MapRequest req;
  req.fd = fd;
  req.offset = offset;
  req.length = length;
  req.prot = prot;
  req.placement = PlacementOf(opts);
  req.address = opts.address;
  req.populate = opts.populate;
  Failure failure;
  Mapping* m = AddressSpace::Get().Map(req, &failure);
  if (m == nullptr) ThrowFailure(env, failure);
  return NewMappingBuffer(env, m);
}

// Runs per placeRuns call: far above vm.max_map_count's default (65530),
// low enough that the copy of the list stays small.
constexpr size_t kMaxRuns = size_t{1} << 22;

}  // namespace

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(
      info.Env(), static_cast<double>(AddressSpace::Get().page_size()));
}

// mapFile(fd, offset, length, prot, opts?) -> ArrayBuffer
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = static_cast<int>(Integer(env, info[0], "fd", 0, INT32_MAX));
  const uint64_t offset = PageAlignedOffset(env, info[1]);
  const size_t length = Length(env, info[2], "length");
  return DoMap(info, fd, static_cast<uint64_t>(offset), length, info[3],
               info[4]);
}

// mapAnonymous(length, prot, opts?) -> ArrayBuffer (zero-filled)
Napi::Value MapAnonymous(const Napi::CallbackInfo& info) {
  const size_t length = Length(info.Env(), info[0], "length");
  return DoMap(info, -1, 0, length, info[1], info[2]);
}

// reserve(length, opts?) -> frozen { address: bigint, length: number }
Napi::Value Reserve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t length = Length(env, info[0], "length");
  const MapOptions opts = Options(env, info[1]);
  if (opts.fixed) {
    ThrowRange(env, "expected opts.fixed to be unset for reserve(), got true "
                    "(MAP_FIXED could replace memory the process is using; "
                    "use fixedNoReplace)");
  }
  if (opts.populate) {
    ThrowRange(env, "expected opts.populate to be unset for reserve(), got "
                    "true (a reservation has no accessible pages)");
  }
  Napi::Object handle = Napi::Object::New(env);  // before reserving: may throw
  Failure failure;
  Reservation* r = AddressSpace::Get().Reserve(length, PlacementOf(opts),
                                               opts.address, &failure);
  if (r == nullptr) ThrowFailure(env, failure);
  // Wrap next: from here on the handle's finalizer owns the reservation, so
  // a throw below cannot leak it. Until then it is ours to undo.
  if (napi_wrap(env, handle, r, FinalizeReservation, nullptr, nullptr) !=
      napi_ok) {
    AddressSpace::Get().ReservationFinalized(r);
    throw Napi::Error::New(env, "napi_wrap failed for a reservation handle");
  }
  const auto ro = static_cast<napi_property_attributes>(napi_enumerable);
  handle.DefineProperties({
      Napi::PropertyDescriptor::Value(
          "address", Napi::BigInt::New(env, static_cast<uint64_t>(r->address)),
          ro),
      Napi::PropertyDescriptor::Value(
          "length", Napi::Number::New(env, static_cast<double>(r->span)), ro),
  });
  handle.TypeTag(&kReservationTag);
  handle.Freeze();
  return handle;
}

// unmap(bufferOrReservation)
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value v = info[0];
  if (v.IsArrayBuffer()) {
    size_t byte_length = 0;
    const uintptr_t address = LiveBufferAddress(env, v, "buffer", &byte_length);
    // Detach before unmapping: if detaching failed after munmap, script would
    // keep a view of unmapped memory. Detaching also drops V8's reference, so
    // the finalizer runs later and finds the record already unmapped.
    v.As<Napi::ArrayBuffer>().Detach();
    Failure f = AddressSpace::Get().UnmapAt(address, byte_length);
    if (f) ThrowFailure(env, f);
    return env.Undefined();
  }
  if (v.IsObject() && v.As<Napi::Object>().CheckTypeTag(&kReservationTag)) {
    void* data = nullptr;
    if (napi_unwrap(env, v, &data) != napi_ok || data == nullptr) {
      ThrowType(env, "expected a reservation from reserve(), got a damaged one");
    }
    Failure f = AddressSpace::Get().Release(static_cast<Reservation*>(data));
    if (f) ThrowFailure(env, f);
    return env.Undefined();
  }
  ThrowType(env, "expected an ArrayBuffer from mapFile()/mapAnonymous() or a "
                 "reservation from reserve(), got " + Describe(v) +
                 (v.IsTypedArray() ? " (pass view.buffer)" : ""));
}

// placeRuns(reservation, fd, runs: Float64Array [offset, length, fileOffset]*,
//           prot); fileOffset -1 places anonymous zero memory.
Napi::Value PlaceRuns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Reservation* r = ReservationArg(env, info[0]);
  // -1 (no file) or an fd; Integer() cannot print a negative minimum.
  const bool no_file =
      info[1].IsNumber() && info[1].As<Napi::Number>().DoubleValue() == -1;
  const int fd =
      no_file ? -1 : static_cast<int>(Integer(env, info[1], "fd", 0, INT32_MAX));
  Napi::Value list = info[2];
  if (!list.IsTypedArray() ||
      list.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowType(env, "expected runs to be a Float64Array of [offset, length, "
                   "fileOffset] triples, got " + Describe(list));
  }
  Napi::Float64Array values = list.As<Napi::Float64Array>();
  const size_t count = values.ElementLength();
  if (count == 0 || count % 3 != 0 || count / 3 > kMaxRuns) {
    ThrowRange(env, "expected runs to hold 1 to " + std::to_string(kMaxRuns) +
                        " [offset, length, fileOffset] triples, got " +
                        std::to_string(count) + " numbers");
  }
  std::string prot_text;
  const int prot = Prot(env, info[3], &prot_text);
  // Copied before any check: a SharedArrayBuffer behind the array could
  // change under us between the checks and the mmaps.
  std::vector<double> copy(values.Data(), values.Data() + count);
  std::vector<Run> runs(count / 3);
  bool any_file = false;
  for (size_t i = 0; i < runs.size(); i++) {
    const double offset = copy[3 * i];
    const double length = copy[3 * i + 1];
    const double file_offset = copy[3 * i + 2];
    const auto integer = [](double d, double min) {
      return std::isfinite(d) && std::floor(d) == d && d >= min &&
             d <= kMaxSafeInteger;
    };
    if (!integer(offset, 0) || !integer(length, 1) ||
        !integer(file_offset, -1)) {
      ThrowRange(env, "expected run " + std::to_string(i) +
                          " to be integers [offset >= 0, length >= 1, "
                          "fileOffset >= -1], got [" +
                          Napi::Number::New(env, offset).ToString().Utf8Value() +
                          ", " +
                          Napi::Number::New(env, length).ToString().Utf8Value() +
                          ", " +
                          Napi::Number::New(env, file_offset)
                              .ToString()
                              .Utf8Value() +
                          "]");
    }
    runs[i] = Run{static_cast<size_t>(offset), static_cast<size_t>(length),
                  static_cast<int64_t>(file_offset)};
    if (file_offset >= 0) any_file = true;
  }
  if (any_file && fd < 0) {
    ThrowRange(env, "expected an open fd for the file runs, got -1");
  }
  Failure f = AddressSpace::Get().PlaceRuns(r, fd, runs, prot);
  if (f) ThrowFailure(env, f);
  return env.Undefined();
}

// view(reservation, offset, length, prot) -> ArrayBuffer over placed pages
Napi::Value View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Reservation* r = ReservationArg(env, info[0]);
  const uint64_t offset = PageAlignedOffset(env, info[1]);
  const size_t length = Length(env, info[2], "length");
  std::string prot_text;
  const int prot = Prot(env, info[3], &prot_text);
  if ((prot & PROT_READ) == 0) {
    ThrowRange(env, "expected a readable prot ('r..') for a view handed out "
                    "as an ArrayBuffer, got '" + prot_text + "'");
  }
  Failure failure;
  Mapping* m = AddressSpace::Get().View(r, static_cast<size_t>(offset), length,
                                        prot, &failure);
  if (m == nullptr) ThrowFailure(env, failure);
  return NewWindowBuffer(env, m);
}

// protect(addressOrBuffer, length, prot)
Napi::Value Protect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uintptr_t address = Target(env, info[0]);
  const size_t length = Length(env, info[1], "length");
  std::string prot_text;
  const int prot = Prot(env, info[2], &prot_text);
  Failure f = AddressSpace::Get().Protect(address, length, prot, prot_text);
  if (f) ThrowFailure(env, f);
  return env.Undefined();
}

// advise(addressOrBuffer, length, advice)
Napi::Value Advise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uintptr_t address = Target(env, info[0]);
  const size_t length = Length(env, info[1], "length");
  Napi::Value v = info[2];
  if (!v.IsString()) {
    ThrowType(env, "expected advice to be a string, got " + Describe(v));
  }
  const std::string name = v.As<Napi::String>().Utf8Value();
  int advice = 0;
  if (name == "willneed") advice = MADV_WILLNEED;
  else if (name == "sequential") advice = MADV_SEQUENTIAL;
  else if (name == "random") advice = MADV_RANDOM;
  else if (name == "hugepage") advice = MADV_HUGEPAGE;
  else if (name == "nohugepage") advice = MADV_NOHUGEPAGE;
  else if (name == "dontneed") advice = MADV_DONTNEED;
  else {
    ThrowRange(env, "expected advice to be one of 'willneed', 'sequential', "
                    "'random', 'hugepage', 'nohugepage', 'dontneed', got " +
                        Describe(v));
  }
  Failure f = AddressSpace::Get().Advise(address, length, advice);
  if (f) ThrowFailure(env, f);
  return env.Undefined();
}

// addressOf(buffer) -> bigint
Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) {
    ThrowType(env, "expected an ArrayBuffer from mapFile() or mapAnonymous(), "
                   "got " + Describe(info[0]));
  }
  size_t byte_length = 0;
  const uintptr_t address =
      LiveBufferAddress(env, info[0], "buffer", &byte_length);
  return Napi::BigInt::New(env, static_cast<uint64_t>(address));
}

}  // namespace crimg
