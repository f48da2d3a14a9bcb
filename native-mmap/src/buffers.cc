// External ArrayBuffers over mappings, through N-API (see buffers.h).
#include "buffers.h"

#include "errors.h"

namespace crimg {
namespace {

void FinalizeMapping(napi_env, void*, void* hint) {
  AddressSpace::Get().MappingFinalized(static_cast<Mapping*>(hint));
}

}  // namespace

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

}  // namespace crimg
