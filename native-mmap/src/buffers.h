// Mapped memory handed to script as ArrayBuffers. Two ways:
//   - NewMappingBuffer: an external ArrayBuffer through N-API whose finalizer
//     unmaps (mapFile(), mapAnonymous(), and view() where the fast path is off);
//   - NewWindowBuffer (views.cc): view() buffers through the V8 API, outside
//     V8's external-memory accounting, when that is safe.
// Both take a Mapping from AddressSpace and Adopt it, or Abandon it and throw.
#ifndef CRIMG_BUFFERS_H_
#define CRIMG_BUFFERS_H_

#include <napi.h>

#include "address_space.h"

namespace crimg {

Napi::Value NewMappingBuffer(Napi::Env env, Mapping* m);

// Sets up the per-environment state of the V8 fast path; never throws.
void InitWindows(Napi::Env env);
// A view() buffer over window `m`: the V8 fast path, or NewMappingBuffer.
Napi::Value NewWindowBuffer(Napi::Env env, Mapping* m);
// Whether view() buffers escape V8's external-memory accounting.
bool UnaccountedViews(Napi::Env env);

}  // namespace crimg

#endif  // CRIMG_BUFFERS_H_
