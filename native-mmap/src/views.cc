// The V8 fast path for view() buffers (see buffers.h), the only file that
// uses the V8 API directly.
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
#include "buffers.h"

#include <memory>
#include <string>

#include <v8.h>

#include "errors.h"

namespace crimg {
namespace {

struct WindowState {
  bool fast = false;
  Napi::FunctionReference mark_untransferable;
};

static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>),
              "napi_value must be a v8::Local<v8::Value>");

napi_value ToNapi(v8::Local<v8::Value> local) {
  return reinterpret_cast<napi_value>(*local);
}

void FinalizeWindow(napi_env, void* data, void*) {
  AddressSpace::Get().MappingFinalized(static_cast<Mapping*>(data));
}

}  // namespace

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

bool UnaccountedViews(Napi::Env env) {
  return env.GetInstanceData<WindowState>()->fast;
}

}  // namespace crimg
