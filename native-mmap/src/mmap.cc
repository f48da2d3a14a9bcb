// JS binding of the native restore shim's low layer: mmap, mprotect, madvise
// and munmap, with every argument validated before any syscall.
//
// Conventions (as in node-addon-examples):
//   - wrong JS type               -> TypeError  code ERR_INVALID_ARG_TYPE
//   - right type, bad value       -> RangeError code ERR_INVALID_ARG_VALUE
//     (message "expected X, got Y")
//   - failing syscall             -> Error with code (errno name), errno,
//     syscall, address; message "EEXIST: mmap failed at 0x7f..: File exists"
// Mapped memory is handed out as external ArrayBuffers whose finalizer
// unmaps; a reservation is a frozen, type-tagged { address, length } object,
// never an ArrayBuffer, because its pages are PROT_NONE and touching them
// from script would be a SIGSEGV.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include <cmath>
#include <string>
#include <vector>

#include <napi.h>
#include <v8.h>

#include "address_space.h"
#include "scan.h"
#include "aead.h"
#include "deflate.h"

namespace crimg {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

// Random 128-bit tag proving an object is a reservation handle made here;
// a look-alike { address, length } from script fails the check.
constexpr napi_type_tag kReservationTag = {0x6372696d67726573ULL,
                                           0x9e3d1c54a07b2f61ULL};

// ---------------------------------------------------------------- errors

const char* ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ETXTBSY: return "ETXTBSY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case EOVERFLOW: return "EOVERFLOW";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EHWPOISON: return "EHWPOISON";
    default: return "UNKNOWN";  // what libuv's uv_err_name says too
  }
}

// strerror_r comes in a GNU (returns char*) and an XSI (returns int) flavour;
// overloads pick whichever the libc declared.
[[maybe_unused]] const char* StrerrorResult(int rc, const char* buf) {
  return rc == 0 ? buf : "Unknown error";
}
[[maybe_unused]] const char* StrerrorResult(const char* text, const char*) {
  return text;
}
std::string Strerror(int err) {
  char buf[128] = {0};
  return StrerrorResult(strerror_r(err, buf, sizeof buf), buf);
}

void SetCode(Napi::Error& e, const char* code) {
  e.Value().Set("code", Napi::String::New(e.Env(), code));
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message) {
  Napi::Error e = Napi::TypeError::New(env, message);
  SetCode(e, "ERR_INVALID_ARG_TYPE");
  throw e;
}

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message) {
  Napi::Error e = Napi::RangeError::New(env, message);
  SetCode(e, "ERR_INVALID_ARG_VALUE");
  throw e;
}

[[noreturn]] void ThrowFailure(Napi::Env env, const Failure& f) {
  if (f.kind == Failure::Kind::kPolicy) ThrowRange(env, f.message);
  const char* code = ErrnoName(f.err);
  std::string message = std::string(code) + ": " + f.syscall + " failed";
  if (f.has_address) message += " at " + Hex(f.address);
  message += ": " + Strerror(f.err);
  Napi::Error e = Napi::Error::New(env, message);
  Napi::Object o = e.Value();
  o.Set("code", Napi::String::New(env, code));
  // Positive, like os.constants.errno (Node's own fs errors use -errno).
  o.Set("errno", Napi::Number::New(env, f.err));
  o.Set("syscall", Napi::String::New(env, f.syscall));
  if (f.has_address) {
    o.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(f.address)));
  }
  throw e;
}

// The type alone, for arguments whose value must never appear in a message.
std::string TypeName(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: return "a number";
    case napi_bigint: return "a bigint";
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_external: return "an external";
    case napi_object:
      if (v.IsArray()) return "an array";
      if (v.IsArrayBuffer()) return "an ArrayBuffer";
      if (v.IsTypedArray()) return "a typed array";
      if (v.IsDataView()) return "a DataView";
      return "an object";
    default: return "a value of unknown type";
  }
}

// "got Y" part of a message: the value of a boolean, number, bigint or string, else its
// type. Never runs script: no toString() on objects.
std::string Describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: return v.ToString().Utf8Value();
    case napi_bigint: return v.ToString().Utf8Value() + "n";
    case napi_string: {
      std::string s = v.As<Napi::String>().Utf8Value();
      if (s.size() > 32) s = s.substr(0, 32) + "...";
      return "'" + s + "'";
    }
    default: return TypeName(v);
  }
}

// ---------------------------------------------------------------- arguments

// A safe integer in [min, max].
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

// "rwx" with '-' for an absent permission, e.g. 'r--', 'rw-', 'r-x', '---'.
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

struct MapOptions {
  bool has_address = false;
  uintptr_t address = 0;
  bool fixed = false;
  bool fixed_no_replace = false;
  bool populate = false;
};

bool OptionalBool(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);  // may run a getter; its exception propagates
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) {
    ThrowType(env, std::string("expected opts.") + key +
                       " to be a boolean, got " + Describe(v));
  }
  return v.As<Napi::Boolean>().Value();
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

// An ArrayBuffer this addon handed out and has not unmapped: its address.
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

// bigint address or mapped ArrayBuffer, for protect() and advise().
uintptr_t Target(Napi::Env env, const Napi::Value& v) {
  if (v.IsBigInt()) return Address(env, v, "address");
  if (v.IsArrayBuffer()) {
    size_t byte_length = 0;
    return LiveBufferAddress(env, v, "buffer", &byte_length);
  }
  ThrowType(env, "expected a bigint address or an ArrayBuffer from mapFile() "
                 "or mapAnonymous(), got " + Describe(v));
}

// ---------------------------------------------------------------- buffers

void FinalizeMapping(napi_env, void*, void* hint) {
  AddressSpace::Get().MappingFinalized(static_cast<Mapping*>(hint));
}

void FinalizeReservation(napi_env, void* data, void*) {
  AddressSpace::Get().ReservationFinalized(static_cast<Reservation*>(data));
}

Napi::Value NewMappingBuffer(Napi::Env env, Mapping* m) {
  napi_value result = nullptr;
  // The C call, not Napi::ArrayBuffer::New, to see the exact status.
  const napi_status status = napi_create_external_arraybuffer(
      env, reinterpret_cast<void*>(m->address), m->byte_length,
      FinalizeMapping, m, &result);
  if (status == napi_ok) {
    AddressSpace::Get().Adopt(m);
    return Napi::Value(env, result);
  }
  AddressSpace::Get().Abandon(m);
  if (status == napi_no_external_buffers_allowed) {
    // Runtimes with the V8 memory cage (Electron) cannot wrap foreign memory;
    // copying would defeat mapping, so say so and let the caller fall back.
    Napi::Error e = Napi::Error::New(
        env, "external ArrayBuffers are not allowed in this runtime, so mapped "
             "memory cannot be handed to script; use the portable (read) path");
    SetCode(e, "ERR_CRIMG_NO_EXTERNAL_BUFFERS");
    throw e;
  }
  // E.g. Node's ERR_BUFFER_TOO_LARGE above buffer.constants.MAX_LENGTH.
  if (env.IsExceptionPending()) throw env.GetAndClearPendingException();
  throw Napi::Error::New(env, "napi_create_external_arraybuffer failed");
}

// ---------------------------------------------------------------- windows
//
// A view() buffer can be hundreds of MiB of file-backed or untouched pages.
// Made with napi_create_external_arraybuffer, V8 would count every byte as
// external memory and answer each 64 MiB with a garbage collection (measured:
// 25 ms for 1 GiB in 200 buffers with an almost empty heap, and it grows with
// the heap). V8 does not count a backing store whose deleter is
// BackingStore::EmptyDeleter ("the embedder owns the memory"), so windows are
// made that way through the V8 API when it is safe to:
//   - the addon is compiled against this very Node's headers (install.mjs), so
//     napi_value is v8::Local<v8::Value> as Node's own N-API layer casts it;
//     checked at load time by a round trip;
//   - the buffer is marked untransferable (worker_threads.markAsUntransferable,
//     as Node marks its own external buffers; checked at load time on a probe):
//     a transfer copies, so no second ArrayBuffer ever shares the memory and
//     the owner's finalizer (napi_add_finalizer) may release it;
//   - not with the V8 sandbox, where external backing stores must lie inside
//     the sandbox.
// When any of this is unavailable, windows fall back to NewMappingBuffer.

struct WindowState {
  bool fast = false;
  Napi::FunctionReference mark_untransferable;
};

static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>),
              "napi_value must be a v8::Local<v8::Value>");

napi_value ToNapi(v8::Local<v8::Value> local) {
  return reinterpret_cast<napi_value>(*local);
}

// Sets up the per-environment state; never throws.
void InitWindows(Napi::Env env) {
  auto* state = new WindowState();
  env.SetInstanceData<WindowState>(state);
#if !defined(V8_ENABLE_SANDBOX)
  try {
    // process.getBuiltinModule exists from Node 20.16 (package.json: >=20.19).
    Napi::Object process = env.Global().Get("process").As<Napi::Object>();
    Napi::Value get = process.Get("getBuiltinModule");
    if (!get.IsFunction()) return;
    Napi::Value threads = get.As<Napi::Function>().Call(
        process, {Napi::String::New(env, "worker_threads")});
    if (!threads.IsObject()) return;
    Napi::Value mark = threads.As<Napi::Object>().Get("markAsUntransferable");
    if (!mark.IsFunction()) return;
    // The napi_value <-> v8::Local cast, checked once.
    v8::Isolate* isolate = v8::Isolate::GetCurrent();
    if (isolate == nullptr) return;
    napi_value probe = ToNapi(v8::Number::New(isolate, 42.5));
    double back = 0;
    if (napi_get_value_double(env, probe, &back) != napi_ok || back != 42.5) {
      return;
    }
    // Marking must work, or a transfer would move the memory out from under
    // the finalizer: transfer a marked probe over static bytes and check it
    // was copied (it stays attached). Were it moved, the moved buffer points
    // at static storage, which is never freed.
    static char probe_bytes[16];
    v8::Local<v8::ArrayBuffer> marked = v8::ArrayBuffer::New(
        isolate, v8::ArrayBuffer::NewBackingStore(
                     probe_bytes, sizeof probe_bytes,
                     v8::BackingStore::EmptyDeleter, nullptr));
    mark.As<Napi::Function>().Call({ToNapi(marked)});
    Napi::Value clone = env.Global().Get("structuredClone");
    if (!clone.IsFunction()) return;
    Napi::Object options = Napi::Object::New(env);
    Napi::Array transfer = Napi::Array::New(env, 1);
    transfer.Set(uint32_t{0}, Napi::Value(env, ToNapi(marked)));
    options.Set("transfer", transfer);
    clone.As<Napi::Function>().Call({Napi::Value(env, ToNapi(marked)), options});
    if (marked->ByteLength() != sizeof probe_bytes) return;
    state->mark_untransferable = Napi::Persistent(mark.As<Napi::Function>());
    state->fast = true;
  } catch (const Napi::Error&) {
    // Leave windows on the N-API path.
  }
#endif
}

void FinalizeWindow(napi_env, void* data, void*) {
  AddressSpace::Get().MappingFinalized(static_cast<Mapping*>(data));
}

Napi::Value NewWindowBuffer(Napi::Env env, Mapping* m) {
  WindowState* state = env.GetInstanceData<WindowState>();
  if (state == nullptr || !state->fast) return NewMappingBuffer(env, m);
  if (m->byte_length > v8::TypedArray::kMaxLength) {
    AddressSpace::Get().Abandon(m);
    ThrowRange(env, "expected length <= " +
                        std::to_string(v8::TypedArray::kMaxLength) +
                        " (the largest ArrayBuffer), got " +
                        std::to_string(m->byte_length));
  }
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(
      reinterpret_cast<void*>(m->address), m->byte_length,
      v8::BackingStore::EmptyDeleter, nullptr);
  v8::Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate, std::move(store));
  napi_value value = ToNapi(ab);
  try {
    state->mark_untransferable.Call({value});
    if (napi_add_finalizer(env, value, m, FinalizeWindow, nullptr, nullptr) !=
        napi_ok) {
      throw Napi::Error::New(env, "napi_add_finalizer failed for a view");
    }
  } catch (...) {
    // No finalizer owns the record: take the memory away from the buffer
    // before giving the record up.
    ab->Detach(v8::Local<v8::Value>()).Check();
    AddressSpace::Get().Abandon(m);
    throw;
  }
  AddressSpace::Get().Adopt(m);
  return Napi::Value(env, value);
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

// ---------------------------------------------------------------- exports

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(
      info.Env(), static_cast<double>(AddressSpace::Get().page_size()));
}

// A non-negative, page-aligned offset argument (file offset or offset in a reservation).
uint64_t PageAlignedOffset(Napi::Env env, const Napi::Value& v) {
  const double offset = Integer(env, v, "offset", 0, kMaxSafeInteger);
  if (!PageAligned(static_cast<uint64_t>(offset))) {
    ThrowRange(env, "expected offset to be a multiple of the page size (" +
                        std::to_string(AddressSpace::Get().page_size()) +
                        "), got " + Describe(v));
  }
  return static_cast<uint64_t>(offset);
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

// The Reservation behind a handle from reserve(); a look-alike is refused.
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

// Runs per placeRuns call: far above vm.max_map_count's default (65530),
// low enough that the copy of the list stays small.
constexpr size_t kMaxRuns = size_t{1} << 22;

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

// Bytes of a typed array of `type`, or a TypeError naming `what`.
struct TypedBytes {
  uint8_t* data;
  size_t length;  // elements
};
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

// scanChunks(bytes: Uint8Array, chunkSize, sums: BigUint64Array, zero: Uint8Array) -> zero count
// The writer's inner loop (format/writer.ts): the zero test and XXH64 of each
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
  if (chunks > 0) HashChunks(bytes.data, bytes.length, chunk, reinterpret_cast<uint64_t*>(sums.data));
  return env.Undefined();
}

// xxh64(bytes: Uint8Array) -> bigint (seed 0)
Napi::Value Xxh64Js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes bytes = TypedArg(env, info[0], napi_uint8_array, "bytes to be a Uint8Array");
  return Napi::BigInt::New(env, Xxh64(bytes.data == nullptr ? reinterpret_cast<const uint8_t*>("") : bytes.data, bytes.length, 0));
}

// writeBack(fd, offset, length, done) -> undefined
// Starts the kernel writing a written file range to disk without waiting for it
// (sync_file_range SYNC_FILE_RANGE_WRITE), so that a later fsync has little
// left to do. It may block while the device queue is full, so it runs on the
// libuv pool, never on the JavaScript thread; `done` runs here afterwards, with
// no arguments: a hint has no errors to report (fsync reports write errors).
// The caller keeps `fd` open until `done` has run.
class WriteBackWorker : public Napi::AsyncWorker {
 public:
  WriteBackWorker(Napi::Function cb, int fd, off64_t offset, off64_t length)
      : Napi::AsyncWorker(cb, "crimg:writeBack"), fd_(fd), offset_(offset), length_(length) {}
  void Execute() override {
    (void)sync_file_range(fd_, offset_, length_, SYNC_FILE_RANGE_WRITE);
  }
  void OnOK() override { Callback().Call({}); }

 private:
  const int fd_;
  const off64_t offset_;
  const off64_t length_;
};

Napi::Value WriteBack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = static_cast<int>(Integer(env, info[0], "fd", 0, INT32_MAX));
  const double offset = Integer(env, info[1], "offset", 0, 9007199254740991.0);
  // At least 1: sync_file_range reads a length of 0 as "to the end of the file".
  const double length = Integer(env, info[2], "length", 1, 9007199254740991.0);
  if (!info[3].IsFunction()) ThrowType(env, "expected done to be a function, got " + TypeName(info[3]));
  auto* w = new WriteBackWorker(info[3].As<Napi::Function>(), fd, static_cast<off64_t>(offset),
                                static_cast<off64_t>(length));
  w->Queue();
  return env.Undefined();
}

// aeadSeal(suite: 0 | 1, key: Uint8Array(32), nonce: Uint8Array(12), aad: Uint8Array,
//          plain: Uint8Array, out: Uint8Array(plain.length + 16))
// Suite 0 AES-256-GCM, 1 ChaCha20-Poly1305; out = ciphertext || tag. Messages
// never name the key or the data.
Napi::Value AeadSealJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) ThrowType(env, "expected suite to be 0 or 1, got " + Describe(info[0]));
  const double suite = info[0].As<Napi::Number>().DoubleValue();
  if (suite != 0 && suite != 1) ThrowRange(env, "expected suite to be 0 or 1, got " + Describe(info[0]));
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
  static const uint8_t kEmpty[1] = {0};
  const char* failed = AeadSeal(static_cast<int>(suite), key.data, nonce.data,
                                aad.data ? aad.data : kEmpty, aad.length,
                                plain.data ? plain.data : kEmpty, plain.length, out.data);
  if (failed != nullptr) {
    Napi::Error e = Napi::Error::New(env, std::string("aeadSeal: ") + failed);
    SetCode(e, "ERR_CRIMG_AEAD");
    throw e;
  }
  return env.Undefined();
}

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
    Napi::Object keep = keep_.Value();
    napi_typedarray_type t;
    size_t out_len = 0, sizes_len = 0, off = 0;
    void* out = nullptr;
    void* sizes = nullptr;
    napi_value ab;
    const bool ok =
        napi_get_typedarray_info(env, keep.Get("out"), &t, &out_len, &out, &ab, &off) == napi_ok &&
        napi_get_typedarray_info(env, keep.Get("sizes"), &t, &sizes_len, &sizes, &ab, &off) == napi_ok &&
        out != nullptr && sizes != nullptr && out_len >= out_.size() && sizes_len >= sizes_.size();
    if (!ok) {
      Napi::Error e = Napi::Error::New(env, "deflateBatch: out or sizes was detached or shrunk while deflating");
      SetCode(e, "ERR_CRIMG_DEFLATE");
      Callback().Call({e.Value()});
      return;
    }
    size_t at = 0;
    for (size_t i = 0; i < lengths_.size(); i++) {
      if (sizes_[i] > 0) memcpy(static_cast<uint8_t*>(out) + at, out_.data() + at, static_cast<size_t>(sizes_[i]));
      at += lengths_[i];
    }
    memcpy(sizes, sizes_.data(), sizes_.size() * sizeof(int32_t));
    Callback().Call({env.Null()});
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

Napi::Value DeflateBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double level = Integer(env, info[0], "level", 1, 9);
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
  Napi::Object keep = Napi::Object::New(env);
  keep.Set("out", info[3]);
  keep.Set("sizes", info[4]);
  auto* w = new DeflateWorker(info[5].As<Napi::Function>(), static_cast<int>(level), std::move(plain),
                              std::move(lengths), std::move(flags), keep);
  w->Queue();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitWindows(env);
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("mapFile", Napi::Function::New(env, MapFile, "mapFile"));
  exports.Set("mapAnonymous",
              Napi::Function::New(env, MapAnonymous, "mapAnonymous"));
  exports.Set("reserve", Napi::Function::New(env, Reserve, "reserve"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  exports.Set("protect", Napi::Function::New(env, Protect, "protect"));
  exports.Set("advise", Napi::Function::New(env, Advise, "advise"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  exports.Set("placeRuns", Napi::Function::New(env, PlaceRuns, "placeRuns"));
  exports.Set("view", Napi::Function::New(env, View, "view"));
  exports.Set("scanChunks", Napi::Function::New(env, ScanChunksJs, "scanChunks"));
  exports.Set("xxh64", Napi::Function::New(env, Xxh64Js, "xxh64"));
  exports.Set("hashChunks", Napi::Function::New(env, HashChunksJs, "hashChunks"));
  exports.Set("aeadSeal", Napi::Function::New(env, AeadSealJs, "aeadSeal"));
  exports.Set("writeBack", Napi::Function::New(env, WriteBack, "writeBack"));
  exports.Set("deflateBatch", Napi::Function::New(env, DeflateBatchJs, "deflateBatch"));
  // Whether view() buffers escape V8's external-memory accounting (see
  // NewWindowBuffer); informational.
  exports.Set("unaccountedViews",
              Napi::Boolean::New(env, env.GetInstanceData<WindowState>()->fast));
  return exports;
}

}  // namespace
}  // namespace crimg

// NODE_API_MODULE pastes the name into an identifier, so it must be unqualified.
static Napi::Object InitCrimgMmap(Napi::Env env, Napi::Object exports) {
  return crimg::Init(env, exports);
}
NODE_API_MODULE(crimg_mmap, InitCrimgMmap)
