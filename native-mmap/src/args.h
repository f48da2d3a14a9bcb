// Reading and checking the binding's JS arguments, before any syscall. Each
// reader returns the value or throws (see errors.h): TypeError for a wrong
// type, RangeError "expected X, got Y" for a bad value.
#ifndef CRIMG_ARGS_H_
#define CRIMG_ARGS_H_

#include <stddef.h>
#include <stdint.h>

#include <string>

#include <napi.h>

#include "address_space.h"

namespace crimg {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

// Random 128-bit tag proving an object is a reservation handle made here;
// a look-alike { address, length } from script fails the check.
constexpr napi_type_tag kReservationTag = {0x6372696d67726573ULL,
                                           0x9e3d1c54a07b2f61ULL};

// A safe integer in [min, max].
double Integer(Napi::Env env, const Napi::Value& v, const char* name,
               double min, double max);
// A length in bytes: an integer >= 1.
size_t Length(Napi::Env env, const Napi::Value& v, const char* name);
bool PageAligned(uint64_t value);
// A non-zero, page-aligned bigint address.
uintptr_t Address(Napi::Env env, const Napi::Value& v, const char* name);
// "rwx" with '-' for an absent permission, e.g. 'r--', 'rw-', 'r-x', '---':
// the PROT_* bits; `text` gets the string.
int Prot(Napi::Env env, const Napi::Value& v, std::string* text);

// The opts argument of mapFile(), mapAnonymous() and reserve().
struct MapOptions {
  bool has_address = false;
  uintptr_t address = 0;
  bool fixed = false;
  bool fixed_no_replace = false;
  bool populate = false;
};
MapOptions Options(Napi::Env env, const Napi::Value& v);
Placement PlacementOf(const MapOptions& opts);

// An ArrayBuffer this addon handed out and has not unmapped: its address.
uintptr_t LiveBufferAddress(Napi::Env env, const Napi::Value& v,
                            const char* name, size_t* byte_length);
// bigint address or mapped ArrayBuffer, for protect() and advise().
uintptr_t Target(Napi::Env env, const Napi::Value& v);
// A non-negative, page-aligned offset argument (file offset or offset in a reservation).
uint64_t PageAlignedOffset(Napi::Env env, const Napi::Value& v);
// The Reservation behind a handle from reserve(); a look-alike is refused.
Reservation* ReservationArg(Napi::Env env, const Napi::Value& v);

// Bytes of a typed array of `type`, or a TypeError naming `what`.
struct TypedBytes {
  uint8_t* data;
  size_t length;  // elements
};
TypedBytes TypedArg(Napi::Env env, const Napi::Value& v, napi_typedarray_type type,
                    const char* what);

}  // namespace crimg

#endif  // CRIMG_ARGS_H_
