// JS binding of lazy restore (uffd.h), used by restore/_lazy.ts:
//
//   lazyStart(spec, done(stopped)) -> { session, via, userModeOnly, poison }
//                                   | { session: null, why }
//   lazyStop(session)    threads stopped and joined; memory untouched
//   lazyClose(session)   descriptors closed (after the memory is unmapped)
//   lazyStats(session)   { faults, faultInstalls, prefetched, zeroInstalls, eexist, settled, total, poison,
//                          faultDecodeUs, faultInstallUs, warmed, handlerMoves, spansMoved, spans,
//                          spanDecodeUs, spanMoveUs }
//   lazyProfile(session) Float64Array: chunk numbers in first-fault order
//   lazyFailure(session) { code, chunk (number), detail } | null
//
// spec: { ranges: [{ reservation, offset, length }], table (the chunk table's
// bytes, read in place until the threads end), regions: BigUint64Array (5 words per region), chunkSize, dataStart,
// dataEnd, hot: Float64Array (chunk numbers to prefetch first), prefetch,
// threads: number, huge?: boolean (whole 2 MiB spans, uffd.h kWholeSpans; default true),
// sources: [{ fd } | { read(offset, length) -> Promise<Uint8Array> }],
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
  // The chunk table's bytes, read in place by the session's threads: kept
  // alive while they may read them (collected before that, the reference is
  // left, as the threads are).
  Napi::ObjectReference table;
  ~Holder() {
    if (session && !session->ReadsOver()) table.SuppressDestruct();
  }
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
    if (stop.load()) return "stopped";  // no call queued for a JS thread that may run it only after release
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
  // Nothing per chunk: regions, and the table read in place (a per-chunk list
  // in fresh memory cost ~0.15 us a chunk, 2-3 ms of restore() per GiB of
  // 64 KiB chunks on this VM).
  config.table = table.data;
  config.records = records;
  config.chunk_size = chunk_size;
  uint64_t count = 0;
  for (size_t k = 0; k < rw.length / 5; k++) {
    const uint64_t* x = rws + k * 5;
    const uint64_t dest = x[0], length = x[2], first = x[3];
    const uint64_t n = (length + chunk_size - 1) / chunk_size;
    if (length == 0 || dest % config.page_size != 0 || first > records || n > records - first) {
      ThrowRange(env, "expected spec.regions[" + std::to_string(k) + "] to be a page-aligned region whose chunks are in the table");
    }
    if (count + n > UINT32_MAX) ThrowRange(env, "expected fewer than 2^32 chunks");
    config.regions.push_back({dest, x[1], length, first, static_cast<uint32_t>(x[4]), static_cast<uint32_t>(count), static_cast<uint32_t>(n)});
    count += n;
  }
  config.count = static_cast<uint32_t>(count);
  // Prefetch order: the hot chunks (chunk numbers) that are restored, in
  // their order, then every chunk in image order (one in already is skipped).
  TypedBytes hot = TypedArg(env, spec.Get("hot"), napi_float64_array, "spec.hot to be a Float64Array");
  {
    std::vector<uint32_t> by_first(config.regions.size());
    for (size_t k = 0; k < by_first.size(); k++) by_first[k] = static_cast<uint32_t>(k);
    const auto& regions = config.regions;
    std::sort(by_first.begin(), by_first.end(), [&regions](uint32_t a, uint32_t b) { return regions[a].first < regions[b].first; });
    const double* h = reinterpret_cast<const double*>(hot.data);
    for (size_t i = 0; i < hot.length; i++) {
      if (!(h[i] >= 0) || h[i] > kMaxSafeInteger) continue;
      const uint64_t number = static_cast<uint64_t>(h[i]);
      auto it = std::upper_bound(by_first.begin(), by_first.end(), number,
                                 [&regions](uint64_t x, uint32_t k) { return x < regions[k].first; });
      if (it == by_first.begin()) continue;
      const LazyRegion& r = regions[*(it - 1)];
      if (number - r.first >= r.count) continue;
      config.hot.push_back(static_cast<uint32_t>(r.begin + (number - r.first)));
    }
  }
  // A child image's IN_PARENT chunks resolved to their parent's (section 8.3): 8 words
  // each, [index in the chunk list, offset, stored length | flags << 32, checksum, number,
  // region | last << 32, source | context << 16, 0]. Sources and contexts are checked at install.
  Napi::Value resolved = spec.Get("resolved");
  if (!resolved.IsUndefined()) {
    TypedBytes res = TypedArg(env, resolved, napi_biguint64_array, "spec.resolved to be a BigUint64Array");
    if (res.length % 8 != 0) ThrowRange(env, "expected spec.resolved to hold 8 words per chunk");
    const uint64_t* w = reinterpret_cast<const uint64_t*>(res.data);
    config.resolved.reserve(res.length / 8);
    for (size_t k = 0; k < res.length / 8; k++) {
      const uint64_t* x = w + k * 8;
      if (x[0] >= config.count) ThrowRange(env, "expected spec.resolved[" + std::to_string(k) + "] to name a chunk of the regions");
      LazyChunk c{};
      c.offset = x[1];
      c.stored_len = static_cast<uint32_t>(x[2] & 0xffffffffu);
      c.flags = static_cast<uint16_t>((x[2] >> 32) & 0xffffu);
      c.checksum = x[3];
      c.number = x[4];
      c.region = static_cast<uint32_t>(x[5] & 0xffffffffu);
      c.last = ((x[5] >> 32) & 1u) != 0;
      c.source = static_cast<uint16_t>(x[6] & 0xffffu);
      c.context = static_cast<uint16_t>((x[6] >> 16) & 0xffffu);
      config.resolved.emplace_back(static_cast<uint32_t>(x[0]), c);
    }
    // In index order as made (restore/_lazy-chain.ts); a later entry for an index wins.
    std::stable_sort(config.resolved.begin(), config.resolved.end(),
                     [](const std::pair<uint32_t, LazyChunk>& a, const std::pair<uint32_t, LazyChunk>& b) { return a.first < b.first; });
    for (size_t k = config.resolved.size(); k-- > 1;) {
      if (config.resolved[k - 1].first == config.resolved[k].first) config.resolved.erase(config.resolved.begin() + static_cast<std::ptrdiff_t>(k - 1));
    }
  }
  Napi::Value pf = spec.Get("prefetch");
  config.prefetch = !pf.IsBoolean() || pf.As<Napi::Boolean>().Value();
  config.prefetch_threads = static_cast<unsigned>(Integer(env, spec.Get("threads"), "spec.threads", 1, 64));
  // Whole spans in 2 MiB pages (uffd.h kWholeSpans) unless false ('nohugepage' advice).
  Napi::Value hv = spec.Get("huge");
  if (!hv.IsUndefined() && !hv.IsBoolean()) ThrowType(env, "expected spec.huge to be a boolean, got " + Describe(hv));
  const bool huge = !hv.IsBoolean() || hv.As<Napi::Boolean>().Value();

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
  config.thread_id = opened.thread_id;
  config.follow = !KnobOff("CRIMG_LAZY_FOLLOW");  // here, on the JS thread (KnobOff)
  config.warm = !KnobOff("CRIMG_LAZY_WARM");
  config.help = !KnobOff("CRIMG_LAZY_HELP");
  config.move = opened.move;
  config.huge = huge && !KnobOff("CRIMG_LAZY_HUGE");

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
  auto handle = Napi::External<Holder>::New(env, new Holder{session, Napi::Persistent(spec.Get("table").As<Napi::Object>())},
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
  o.Set("faultDecodeUs", static_cast<double>(s.fault_decode_ns) / 1e3);
  o.Set("faultInstallUs", static_cast<double>(s.fault_install_ns) / 1e3);
  o.Set("warmed", static_cast<double>(s.warmed));
  o.Set("handlerMoves", static_cast<double>(s.handler_moves));
  o.Set("spansMoved", static_cast<double>(s.spans_moved));
  o.Set("spans", static_cast<double>(s.spans));
  o.Set("spanDecodeUs", static_cast<double>(s.span_decode_ns / 1000));
  o.Set("spanMoveUs", static_cast<double>(s.span_move_ns / 1000));
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
