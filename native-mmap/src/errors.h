// JS exceptions of the binding, one shape per kind of failure:
//   - wrong JS type               -> TypeError  code ERR_INVALID_ARG_TYPE
//   - right type, bad value       -> RangeError code ERR_INVALID_ARG_VALUE
//     (message "expected X, got Y")
//   - failing syscall             -> Error with code (errno name), errno,
//     syscall, address; message "EEXIST: mmap failed at 0x7f..: File exists"
// and the "got Y" part of messages, which never runs script.
#ifndef CRIMG_ERRORS_H_
#define CRIMG_ERRORS_H_

#include <string>

#include <napi.h>

#include "address_space.h"

namespace crimg {

// Sets `code` on a JS error, e.g. "ERR_CRIMG_AEAD".
void SetCode(Napi::Error& e, const char* code);

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message);
// A policy refusal as a RangeError, a failed syscall as a system error.
[[noreturn]] void ThrowFailure(Napi::Env env, const Failure& f);
// The system error ThrowFailure throws for a failed syscall (f.kind kErrno), to deliver
// rather than throw (an async job's callback).
Napi::Error SyscallError(Napi::Env env, const Failure& f);

// The type alone, for arguments whose value must never appear in a message.
std::string TypeName(const Napi::Value& v);
// "got Y" part of a message: the value of a boolean, number, bigint or string, else its
// type. Never runs script: no toString() on objects.
std::string Describe(const Napi::Value& v);

}  // namespace crimg

#endif  // CRIMG_ERRORS_H_
