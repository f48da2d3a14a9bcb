// JS exceptions of the binding (see errors.h).
#include "errors.h"

#include <errno.h>
#include <string.h>

namespace crimg {
namespace {

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
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ETXTBSY: return "ETXTBSY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case ESRCH: return "ESRCH";
    case ENOEXEC: return "ENOEXEC";
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

}  // namespace

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
  throw SyscallError(env, f);
}

Napi::Error SyscallError(Napi::Env env, const Failure& f) {
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
  return e;
}

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

}  // namespace crimg
