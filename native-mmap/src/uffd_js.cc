// JS binding of lazy restore (uffd.h), used by restore/_lazy.ts:
//
//   lazyStart(spec, done(stopped)) -> { session, via, userModeOnly, poison }
//                                   | { session: null, why }
//   lazyStop(session)    threads stopped and joined; memory untouched
//   lazyClose(session)   descriptors closed (after the memory is unmapped)
//   lazyStats(session)   { faults, faultInstalls, prefetched, zeroInstalls, eexist, settled, total, poison }
//   lazyProfile(session) Float64Array: chunk numbers in first-fault order
//   lazyFailure(session) { code, chunk (number), detail } | null
//
// spec: { ranges: [{ reservation, offset, length }], table (the chunk table's
// bytes), regions: BigUint64Array (5 words per region), chunkSize, dataStart,
// dataEnd, hot: Float64Array (chunk numbers to prefetch first), prefetch,
// threads: number, sources: [{ fd } | { read(offset, length) -> Promise<Uint8Array> }],
// contexts: [{ codec, cipher, chunkSize, key?, imageId?, headerHash? }] }.
// `done` runs on the JS thread once every chunk is settled, or once the
// session is stopped first (stopped = true). Keys are copied into the session
// and named nowhere.
#include <string.h>
#include <unistd.h>

#include <algorithm>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include <napi.h>

#include "address_space.h"
#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "batch_decode.h"
#include "uffd.h"

namespace crimg {
namespace {

constexpr napi_type_tag kLazyTag = {0x6372696d676c617aULL, 0x51c2e8a07d3b9f14ULL};

struct Holder {
  std::shared_ptr<LazySession> session;
};

std::shared_ptr<LazySession> SessionArg(Napi::Env env, const Napi::Value& v) {
  bool tagged = false;
  if (!v.IsExternal() || napi_check_object_type_tag(env, v, &kLazyTag, &tagged) != napi_ok || !tagged) {
    ThrowType(env, "expected a lazy session from lazyStart(), got " + Describe(v));
  }
  return v.As<Napi::External<Holder>>().Data()->session;
}

// One read of a JS source: the JS side fills `bytes`, then the waiting thread
// copies them out. Shared, so a request abandoned on stop stays valid for a
// late answer.
struct ReadRequest {
  uint64_t offset;
  size_t length;
  std::vector<uint8_t> bytes;
  std::mutex mu;
  std::condition_variable cv;
  bool answered = false;
  std::string error;
};

void Answer(const std::shared_ptr<ReadRequest>& req, const char* error) {
  std::lock_guard<std::mutex> lock(req->mu);
  req->answered = true;
  if (error != nullptr) req->error = error;
  req->cv.notify_all();
}

}  // namespace

// uffd.h; here for room (uffd.cc is near the 600-line limit).
void Prefault(const void* p, size_t bytes) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (p != nullptr && end > start) PopulateWrite(start, end - start);
}

namespace {

// The reader of a source with a JS read(offset, length) callback, called
// through a thread-safe function from the handler and prefetch threads.
LazySource JsSource(Napi::Env env, Napi::Function read) {
  auto tsfn = std::make_shared<Napi::ThreadSafeFunction>(
      Napi::ThreadSafeFunction::New(env, read, "crimg:lazy-read", 0, 1));
  tsfn->Unref(env);  // the session's done callback keeps the loop alive
  LazySource s;
  // Once no thread reads (settled, stopped or closed): else the function, and
  // the image source it holds, would never be collected.
  s.release = [tsfn] { tsfn->Release(); };
  s.read = [tsfn](uint64_t offset, size_t length, uint8_t* out, const std::atomic<bool>& stop) -> const char* {
    auto req = std::make_shared<ReadRequest>();
    req->offset = offset;
    req->length = length;
    auto call = [req](Napi::Env env, Napi::Function fn) {
      try {
        Napi::Value p = fn.Call({Napi::Number::New(env, static_cast<double>(req->offset)),
                                 Napi::Number::New(env, static_cast<double>(req->length))});
        if (!p.IsPromise()) {
          Answer(req, "read() did not return a promise");
          return;
        }
        Napi::Object promise = p.As<Napi::Object>();
        auto ok = Napi::Function::New(env, [req](const Napi::CallbackInfo& info) {
          Napi::Value v = info[0];
          if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
              v.As<Napi::Uint8Array>().ElementLength() != req->length) {
            Answer(req, "read() resolved to something other than the bytes asked for");
            return;
          }
          Napi::Uint8Array a = v.As<Napi::Uint8Array>();
          req->bytes.assign(a.Data(), a.Data() + req->length);
          Answer(req, nullptr);
        });
        auto bad = Napi::Function::New(env, [req](const Napi::CallbackInfo&) {
          Answer(req, "read() rejected");
        });
        promise.Get("then").As<Napi::Function>().Call(promise, {ok, bad});
      } catch (const Napi::Error&) {
        Answer(req, "read() threw");
      }
    };
    if (tsfn->BlockingCall(call) != napi_ok) return "the JavaScript thread is gone";
    std::unique_lock<std::mutex> lock(req->mu);
    while (!req->answered) {
      if (stop.load()) return "stopped";
      req->cv.wait_for(lock, std::chrono::milliseconds(20));
    }
    if (!req->error.empty()) {
      thread_local std::string error;
      error = req->error;
      return error.c_str();
    }
    memcpy(out, req->bytes.data(), length);
    return nullptr;
  };
  return s;
}

void CopyKeyBytes(Napi::Env env, const Napi::Object& o, const char* key, uint8_t* out, size_t n) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return;
  TypedBytes b = TypedArg(env, v, napi_uint8_array, "contexts[].key, imageId and headerHash to be Uint8Arrays");
  if (b.length != n) ThrowRange(env, std::string("expected contexts[].") + key + " to hold " + std::to_string(n) + " bytes, got " + std::to_string(b.length));
  memcpy(out, b.data, n);
}

}  // namespace

Napi::Value LazyStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "expected spec to be an object, got " + Describe(info[0]));
  if (!info[1].IsFunction()) ThrowType(env, "expected done to be a function, got " + Describe(info[1]));
  Napi::Object spec = info[0].As<Napi::Object>();
  LazyConfig config;
  config.page_size = AddressSpace::Get().page_size();

  Napi::Value rv = spec.Get("ranges");
  if (!rv.IsArray()) ThrowType(env, "expected spec.ranges to be an array, got " + Describe(rv));
  Napi::Array ranges = rv.As<Napi::Array>();
  for (uint32_t i = 0; i < ranges.Length(); i++) {
    Napi::Value e = ranges.Get(i);
    if (!e.IsObject()) ThrowType(env, "expected spec.ranges[] to be objects, got " + Describe(e));
    Napi::Object o = e.As<Napi::Object>();
    Reservation* r = ReservationArg(env, o.Get("reservation"));
    const double offset = Integer(env, o.Get("offset"), "ranges[].offset", 0, kMaxSafeInteger);
    const size_t length = Length(env, o.Get("length"), "ranges[].length");
    if (!r->live || !PageAligned(static_cast<uint64_t>(offset)) || !PageAligned(length) ||
        static_cast<double>(length) + offset > static_cast<double>(r->span)) {
      ThrowRange(env, "expected ranges[] to be page-aligned ranges inside live reservations, got offset " +
                          std::to_string(static_cast<uint64_t>(offset)) + " length " + std::to_string(length));
    }
    config.ranges.emplace_back(r->address + static_cast<uint64_t>(offset), length);
  }

  // The chunk table as stored (24-byte records, section 5.3) and the regions
  // whose chunks are restored: 5 words each (placed address, recorded
  // address, length, first chunk, region number).
  TypedBytes table = TypedArg(env, spec.Get("table"), napi_uint8_array, "spec.table to be a Uint8Array");
  TypedBytes rw = TypedArg(env, spec.Get("regions"), napi_biguint64_array, "spec.regions to be a BigUint64Array");
  const uint64_t chunk_size = static_cast<uint64_t>(Integer(env, spec.Get("chunkSize"), "spec.chunkSize", 1, 16 << 20));
  if (chunk_size % config.page_size != 0) ThrowRange(env, "expected spec.chunkSize to be a multiple of the page size");
  config.data_start = static_cast<uint64_t>(Integer(env, spec.Get("dataStart"), "spec.dataStart", 0, kMaxSafeInteger));
  config.data_end = static_cast<uint64_t>(Integer(env, spec.Get("dataEnd"), "spec.dataEnd", 0, kMaxSafeInteger));
  if (rw.length % 5 != 0) ThrowRange(env, "expected spec.regions to hold 5 words per region");
  const uint64_t* rws = reinterpret_cast<const uint64_t*>(rw.data);
  const uint64_t records = table.length / 24;
  {
    // One allocation, its pages made present in one call: growing the vector
    // and faulting its pages one by one cost about 1.5 ms of the restore's
    // 1.6 ms for 4096 chunks on a VM whose host reclaims freed memory.
    uint64_t total = 0;
    for (size_t k = 0; k < rw.length / 5; k++) total += (rws[k * 5 + 2] + chunk_size - 1) / chunk_size;
    config.chunks.reserve(static_cast<size_t>(std::min(total, records)));
    Prefault(config.chunks.data(), config.chunks.capacity() * sizeof(LazyChunk));
  }
  for (size_t k = 0; k < rw.length / 5; k++) {
    const uint64_t* x = rws + k * 5;
    const uint64_t dest = x[0], recorded = x[1], length = x[2], first = x[3];
    const uint32_t region = static_cast<uint32_t>(x[4]);
    const uint64_t n = (length + chunk_size - 1) / chunk_size;
    if (length == 0 || dest % config.page_size != 0 || first > records || n > records - first) {
      ThrowRange(env, "expected spec.regions[" + std::to_string(k) + "] to be a page-aligned region whose chunks are in the table");
    }
    if (config.chunks.size() + n > UINT32_MAX) ThrowRange(env, "expected fewer than 2^32 chunks");
    for (uint64_t j = 0; j < n; j++) {
      const uint8_t* rec = table.data + (first + j) * 24;
      LazyChunk c;
      memcpy(&c.offset, rec, 8);
      memcpy(&c.stored_len, rec + 8, 4);
      memcpy(&c.flags, rec + 12, 2);
      memcpy(&c.checksum, rec + 16, 8);
      c.dest = dest + j * chunk_size;
      c.address = recorded + j * chunk_size;
      c.number = first + j;
      c.listed = c.number;
      c.plain_len = static_cast<uint32_t>(j + 1 < n ? chunk_size : length - j * chunk_size);
      c.region = region;
      c.last = j + 1 == n;
      c.source = 0;
      c.context = 0;
      config.chunks.push_back(c);
    }
  }
  // Prefetch order: the hot chunks (chunk numbers) that are restored, in
  // their order, then every other chunk in image order.
  TypedBytes hot = TypedArg(env, spec.Get("hot"), napi_float64_array, "spec.hot to be a Float64Array");
  {
    const auto& chunks = config.chunks;
    const auto by_number = [](const LazyChunk& a, const LazyChunk& b) { return a.number < b.number; };
    const bool sorted = std::is_sorted(chunks.begin(), chunks.end(), by_number);
    std::vector<uint8_t> taken(hot.length > 0 ? chunks.size() : 0, 0);
    config.order.reserve(chunks.size());
    Prefault(config.order.data(), config.order.capacity() * sizeof(uint32_t));
    const double* h = reinterpret_cast<const double*>(hot.data);
    for (size_t i = 0; i < hot.length && sorted; i++) {
      if (!(h[i] >= 0) || h[i] > kMaxSafeInteger) continue;
      LazyChunk key;
      key.number = static_cast<uint64_t>(h[i]);
      auto it = std::lower_bound(chunks.begin(), chunks.end(), key, by_number);
      if (it == chunks.end() || it->number != key.number) continue;
      const size_t idx = static_cast<size_t>(it - chunks.begin());
      if (taken[idx]) continue;
      taken[idx] = 1;
      config.order.push_back(static_cast<uint32_t>(idx));
    }
    for (size_t i = 0; i < config.chunks.size(); i++) {
      if (taken.empty() || !taken[i]) config.order.push_back(static_cast<uint32_t>(i));
    }
  }
  // A child image's IN_PARENT chunks resolved to their parent's (section 8.3): 8 words
  // each, [index in the chunk list, offset, stored length | flags << 32, checksum, number,
  // region | last << 32, source | context << 16, 0]; applied after the prefetch order
  // (which follows the child's chunk numbers). Sources and contexts are checked at install.
  Napi::Value resolved = spec.Get("resolved");
  if (!resolved.IsUndefined()) {
    TypedBytes res = TypedArg(env, resolved, napi_biguint64_array, "spec.resolved to be a BigUint64Array");
    if (res.length % 8 != 0) ThrowRange(env, "expected spec.resolved to hold 8 words per chunk");
    const uint64_t* w = reinterpret_cast<const uint64_t*>(res.data);
    for (size_t k = 0; k < res.length / 8; k++) {
      const uint64_t* x = w + k * 8;
      if (x[0] >= config.chunks.size()) ThrowRange(env, "expected spec.resolved[" + std::to_string(k) + "] to name a chunk of the regions");
      LazyChunk& c = config.chunks[x[0]];
      c.offset = x[1];
      c.stored_len = static_cast<uint32_t>(x[2] & 0xffffffffu);
      c.flags = static_cast<uint16_t>((x[2] >> 32) & 0xffffu);
      c.checksum = x[3];
      c.number = x[4];
      c.region = static_cast<uint32_t>(x[5] & 0xffffffffu);
      c.last = ((x[5] >> 32) & 1u) != 0;
      c.source = static_cast<uint16_t>(x[6] & 0xffffu);
      c.context = static_cast<uint16_t>((x[6] >> 16) & 0xffffu);
    }
  }
  Napi::Value pf = spec.Get("prefetch");
  config.prefetch = !pf.IsBoolean() || pf.As<Napi::Boolean>().Value();
  config.prefetch_threads = static_cast<unsigned>(Integer(env, spec.Get("threads"), "spec.threads", 1, 64));

  Napi::Value sv = spec.Get("sources");
  if (!sv.IsArray()) ThrowType(env, "expected spec.sources to be an array, got " + Describe(sv));
  Napi::Array sources = sv.As<Napi::Array>();
  for (uint32_t i = 0; i < sources.Length(); i++) {
    Napi::Object o = sources.Get(i).As<Napi::Object>();
    Napi::Value fd = o.Get("fd");
    if (fd.IsNumber()) {
      LazySource s;
      s.fd = static_cast<int>(Integer(env, fd, "sources[].fd", 0, 2147483647));
      // A parent image's file (section 8.3): its own data area.
      if (o.Get("dataEnd").IsNumber()) {
        s.has_bounds = true;
        s.data_start = static_cast<uint64_t>(Integer(env, o.Get("dataStart"), "sources[].dataStart", 0, kMaxSafeInteger));
        s.data_end = static_cast<uint64_t>(Integer(env, o.Get("dataEnd"), "sources[].dataEnd", 0, kMaxSafeInteger));
      }
      config.sources.push_back(std::move(s));
    } else if (o.Get("read").IsFunction()) {
      config.sources.push_back(JsSource(env, o.Get("read").As<Napi::Function>()));
    } else {
      ThrowType(env, "expected sources[] to have an fd or a read function");
    }
  }
  Napi::Value cv = spec.Get("contexts");
  if (!cv.IsArray()) ThrowType(env, "expected spec.contexts to be an array, got " + Describe(cv));
  Napi::Array contexts = cv.As<Napi::Array>();
  for (uint32_t i = 0; i < contexts.Length(); i++) {
    Napi::Object o = contexts.Get(i).As<Napi::Object>();
    LazyContext c;
    c.codec = static_cast<int>(Integer(env, o.Get("codec"), "contexts[].codec", 0, 255));
    c.cipher = static_cast<int>(Integer(env, o.Get("cipher"), "contexts[].cipher", 0, 255));
    c.chunk_size = static_cast<uint32_t>(Integer(env, o.Get("chunkSize"), "contexts[].chunkSize", 1, 16 << 20));
    CopyKeyBytes(env, o, "key", c.key, 32);
    CopyKeyBytes(env, o, "imageId", c.image_id, 16);
    CopyKeyBytes(env, o, "headerHash", c.header_hash, 32);
    config.contexts.push_back(c);
  }

  UffdOpened opened = OpenUffd();
  Napi::Object result = Napi::Object::New(env);
  if (opened.fd < 0) {
    for (auto& src : config.sources) {
      if (src.release) src.release();
    }
    result.Set("session", env.Null());
    result.Set("why", opened.why);
    return result;
  }
  config.uffd = opened.fd;
  config.user_mode_only = opened.user_mode_only;

  auto tsfn = std::make_shared<Napi::ThreadSafeFunction>(
      Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "crimg:lazy-done", 0, 1));
  auto done = [tsfn](bool stopped) {
    tsfn->BlockingCall([stopped](Napi::Env env, Napi::Function fn) {
      fn.Call({Napi::Boolean::New(env, stopped)});
    });
    tsfn->Release();
  };
  std::shared_ptr<LazySession> session;
  int err = 0;
  const char* failed = LazySession::Start(std::move(config), opened.poison, done, &session, &err);
  if (failed != nullptr) {
    tsfn->Release();
    Napi::Error e = Napi::Error::New(env, std::string(strerror(err)) + ": " + failed + " failed");
    SetCode(e, "ERR_CRIMG_UFFD");
    e.Set("errno", Napi::Number::New(env, err));
    throw e;
  }
  auto handle = Napi::External<Holder>::New(env, new Holder{session},
                                           [](Napi::Env, Holder* h) { delete h; });
  napi_type_tag_object(env, handle, &kLazyTag);
  result.Set("session", handle);
  result.Set("via", opened.via);
  result.Set("userModeOnly", opened.user_mode_only);
  result.Set("poison", opened.poison);
  return result;
}

Napi::Value LazyStop(const Napi::CallbackInfo& info) {
  SessionArg(info.Env(), info[0])->Stop();
  return info.Env().Undefined();
}

Napi::Value LazyClose(const Napi::CallbackInfo& info) {
  SessionArg(info.Env(), info[0])->Close();
  return info.Env().Undefined();
}

Napi::Value LazyStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LazyStats s = SessionArg(env, info[0])->Stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("faults", static_cast<double>(s.faults));
  o.Set("faultInstalls", static_cast<double>(s.fault_installs));
  o.Set("assists", static_cast<double>(s.assists));
  o.Set("prefetched", static_cast<double>(s.prefetched));
  o.Set("zeroInstalls", static_cast<double>(s.zero_installs));
  o.Set("eexist", static_cast<double>(s.eexist));
  o.Set("settled", static_cast<double>(s.settled));
  o.Set("total", static_cast<double>(s.total));
  o.Set("poison", s.poison);
  return o;
}

Napi::Value LazyProfile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<LazySession> s = SessionArg(env, info[0]);
  std::vector<uint32_t> p = s->Profile();
  Napi::Float64Array a = Napi::Float64Array::New(env, p.size());
  for (size_t i = 0; i < p.size(); i++) a[i] = static_cast<double>(s->ChunkNumber(p[i]));
  return a;
}

Napi::Value LazyFailureJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LazyFailure f = SessionArg(env, info[0])->FirstFailure();
  if (f.code.empty()) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("code", f.code);
  o.Set("chunk", static_cast<double>(SessionArg(env, info[0])->ChunkNumber(f.chunk)));
  o.Set("detail", f.detail);
  return o;
}

}  // namespace crimg
