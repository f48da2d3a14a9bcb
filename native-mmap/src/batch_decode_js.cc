// JS binding of batch decode (batch_decode.h): decodeBatch, one libuv pool
// job that reads and decodes a whole set of chunks on native threads, into a
// reservation's placed memory or into scratch that is dropped.
//
// decodeBatch(job, done(err, result))
//   job.fd                 the image file (the job reads a dup: the caller may close it); or
//   job.stored, job.storedBase  a Uint8Array of stored bytes already in memory
//                          and the file offset of its first byte (a remote span)
//   job.codec, job.cipher  header ids; job.chunkSize the header chunk size
//   job.dataKey (32), job.imageId (16), job.headerHash (32): Uint8Arrays,
//                          with a cipher (copied, wiped after the job)
//   job.items              BigUint64Array, kWords words per chunk (below)
//   job.targets            reservations the destinations lie in (reserve()),
//                          empty or absent when every chunk is dropped
//   job.threads            0 (every core) to 256; job.populate, job.all: booleans
// result: { failures: [{ item, code, message }], threads, units, populated }
//
// Every destination is checked before the job starts: inside its target's
// span and writable (AddressSpace::CheckWritable). While the job runs the
// caller must leave the destinations placed (no unmap, protect or re-place
// of them; the targets stay referenced by the job, and a released
// reservation leaves its placements mapped).
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include <napi.h>

#include "address_space.h"
#include "args.h"
#include "batch_decode.h"
#include "bindings.h"
#include "errors.h"

namespace crimg {
namespace {

// Words per item in job.items:
//   0 file offset of the stored bytes     1 chunk number
//   2 address of the chunk's first byte   3 checksum (XXH64 of the stored bytes)
//   4 stored length | plain length << 32  5 flags | last << 16 | region << 32
//   6 destination offset in its target, or 2^64 - 1 to drop
//   7 the target's index in job.targets (0 when dropped)
constexpr size_t kWords = 8;
constexpr uint64_t kDrop = ~uint64_t{0};
constexpr uint32_t kMaxPlain = 16u * 1024 * 1024;

class BatchWorker : public Napi::AsyncWorker {
 public:
  BatchWorker(Napi::Function cb, Napi::Object job)
      : Napi::AsyncWorker(cb, "crimg:decodeBatch"), keep_(Napi::Persistent(job)) {}

  ~BatchWorker() override {
    explicit_bzero(key_.data(), key_.size());
    if (job.fd >= 0) close(job.fd);  // the dup (DecodeBatchJs)
  }

  BatchJob job;
  std::vector<BatchItem> items;
  std::vector<size_t> index;  // items[k] is job.items' chunk index[k] (zero chunks are left out)
  std::array<uint8_t, 32> key_{};
  std::array<uint8_t, 16> image_id_{};
  std::array<uint8_t, 32> header_hash_{};
  // Failures found before the job (record forms), by item index.
  std::vector<BatchFailure> early;

  void Execute() override {
    try {
      failures_ = DecodeBatch(job, items, &stats_);
    } catch (const std::exception& e) {
      SetError(std::string("decodeBatch: ") + e.what());  // bad_alloc, thread start-up
    }
  }

  void Hold(Napi::Array targets) { targets_ = Napi::Persistent(targets); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    // Forms first found and decode failures merged in item order.
    std::vector<BatchFailure> all = std::move(early);
    for (BatchFailure& f : failures_) {
      f.item = index[f.item];
      all.push_back(std::move(f));
    }
    std::sort(all.begin(), all.end(), [](const BatchFailure& a, const BatchFailure& b) { return a.item < b.item; });
    if (!job.all && all.size() > 1) all.resize(1);
    Napi::Array list = Napi::Array::New(env, all.size());
    for (size_t i = 0; i < all.size(); i++) {
      Napi::Object f = Napi::Object::New(env);
      f.Set("item", Napi::Number::New(env, static_cast<double>(all[i].item)));
      f.Set("code", Napi::String::New(env, ChunkStatusCode(all[i].status)));
      f.Set("message", Napi::String::New(env, all[i].message));
      list.Set(static_cast<uint32_t>(i), f);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("failures", list);
    result.Set("threads", Napi::Number::New(env, stats_.threads));
    result.Set("units", Napi::Number::New(env, static_cast<double>(stats_.units)));
    result.Set("populated", Napi::Boolean::New(env, stats_.populated));
    Callback().Call({env.Null(), result});
  }

 private:
  Napi::ObjectReference keep_;     // the job
  Napi::Reference<Napi::Array> targets_;  // its target reservations, alive until done
  std::vector<BatchFailure> failures_;
  BatchStats stats_;
};

// A job field of exactly `length` bytes, copied into `out`.
template <size_t N>
void CopyBytes(Napi::Env env, const Napi::Object& job, const char* name, std::array<uint8_t, N>* out) {
  const std::string what = std::string(name) + " to be a Uint8Array";
  TypedBytes b = TypedArg(env, job.Get(name), napi_uint8_array, what.c_str());
  if (b.length != N) {
    ThrowRange(env, "expected " + std::string(name) + " to hold " + std::to_string(N) + " bytes, got " +
                        std::to_string(b.length));
  }
  memcpy(out->data(), b.data, N);
}

bool Flag(Napi::Env env, const Napi::Object& job, const char* name) {
  Napi::Value v = job.Get(name);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) ThrowType(env, std::string("expected ") + name + " to be a boolean, got " + Describe(v));
  return v.As<Napi::Boolean>().Value();
}

}  // namespace

Napi::Value DecodeBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "expected job to be an object, got " + TypeName(info[0]));
  if (!info[1].IsFunction()) ThrowType(env, "expected done to be a function, got " + TypeName(info[1]));
  Napi::Object job = info[0].As<Napi::Object>();
  auto* w = new BatchWorker(info[1].As<Napi::Function>(), job);
  try {
    BatchJob& j = w->job;
    if (job.Get("stored").IsUndefined()) {
      const int fd = static_cast<int>(Integer(env, job.Get("fd"), "fd", 0, INT32_MAX));
      // A dup, closed with the job: the image may be closed (and its number
      // reused by another file) while the job reads.
      j.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (j.fd < 0) ThrowRange(env, std::string("expected fd to be an open file: ") + strerror(errno));
    } else {
      // Stored bytes in memory (kept alive with the job; not to be changed until done runs).
      TypedBytes m = TypedArg(env, job.Get("stored"), napi_uint8_array, "stored to be a Uint8Array");
      j.memory = static_cast<const uint8_t*>(m.data);
      j.memory_length = m.length;
      j.memory_base = static_cast<uint64_t>(Integer(env, job.Get("storedBase"), "storedBase", 0, INT64_MAX));
    }
    j.image.codec = static_cast<int>(Integer(env, job.Get("codec"), "codec", 0, 255));
    j.image.cipher = static_cast<int>(Integer(env, job.Get("cipher"), "cipher", 0, 255));
    j.image.chunk_size = static_cast<uint32_t>(Integer(env, job.Get("chunkSize"), "chunkSize", 1, kMaxPlain));
    if (j.image.cipher != 0) {
      CopyBytes(env, job, "dataKey", &w->key_);
      CopyBytes(env, job, "imageId", &w->image_id_);
      CopyBytes(env, job, "headerHash", &w->header_hash_);
      j.image.data_key = w->key_.data();
      j.image.image_id = w->image_id_.data();
      j.image.header_hash = w->header_hash_.data();
    }
    Napi::Value threads = job.Get("threads");
    j.threads = threads.IsUndefined() ? 0 : static_cast<unsigned>(Integer(env, threads, "threads", 0, 256));
    j.populate = Flag(env, job, "populate");
    j.huge = job.Get("huge").IsUndefined() || Flag(env, job, "huge");
    j.all = Flag(env, job, "all");
    std::vector<Reservation*> targets;
    Napi::Value list = job.Get("targets");
    if (!list.IsUndefined()) {
      if (!list.IsArray()) ThrowType(env, "expected targets to be an array of reservations, got " + TypeName(list));
      Napi::Array a = list.As<Napi::Array>();
      for (uint32_t t = 0; t < a.Length(); t++) {
        Reservation* r = ReservationArg(env, a.Get(t));
        if (!r->live) ThrowRange(env, "expected live target reservations, got a released one at " + std::to_string(t));
        targets.push_back(r);
      }
    }
    // The array itself is script's: keep the reservations it held for the job's life.
    Napi::Array held = Napi::Array::New(env, targets.size());
    if (!list.IsUndefined()) {
      Napi::Array a = list.As<Napi::Array>();
      for (uint32_t t = 0; t < targets.size(); t++) held.Set(t, a.Get(t));
    }
    w->Hold(held);
    TypedBytes words = TypedArg(env, job.Get("items"), napi_biguint64_array, "items to be a BigUint64Array");
    if (words.length % kWords != 0) {
      ThrowRange(env, "expected items to hold " + std::to_string(kWords) + " words per chunk, got " +
                          std::to_string(words.length) + " words");
    }
    // Copied first: a SharedArrayBuffer behind the array could change under the checks.
    std::vector<uint64_t> w64(reinterpret_cast<const uint64_t*>(words.data),
                              reinterpret_cast<const uint64_t*>(words.data) + words.length);
    const size_t n = w64.size() / kWords;
    w->items.reserve(n);
    uintptr_t run_start = 0, run_end = 0;  // destinations back to back, checked as one range
    const auto check_run = [&]() {
      if (run_end == 0) return;
      if (Failure f = AddressSpace::Get().CheckWritable(reinterpret_cast<void*>(run_start), run_end - run_start,
                                                        "a destination")) {
        ThrowFailure(env, f);
      }
    };
    for (size_t i = 0; i < n; i++) {
      const uint64_t* v = &w64[i * kWords];
      BatchItem it;
      it.file_offset = v[0];
      it.rec.number = v[1];
      it.rec.address = v[2];
      it.rec.checksum = v[3];
      it.rec.stored_length = static_cast<uint32_t>(v[4]);
      it.rec.plain_length = static_cast<uint32_t>(v[4] >> 32);
      it.rec.flags = static_cast<uint16_t>(v[5]);
      it.rec.last = ((v[5] >> 16) & 1) != 0;
      it.rec.region = static_cast<uint32_t>(v[5] >> 32);
      if (it.rec.plain_length == 0 || it.rec.plain_length > kMaxPlain || v[0] > static_cast<uint64_t>(INT64_MAX)) {
        ThrowRange(env, "expected item " + std::to_string(i) + " to have a plain length of 1 to 16 MiB and a file offset below 2^63");
      }
      if ((it.rec.flags & kChunkZero) != 0 && ChunkFormProblem(it.rec.flags, it.rec.stored_length, it.rec.plain_length, j.image.codec, j.image.cipher, it.rec.checksum) == nullptr) {
        continue;  // nothing stored: the destination already reads as zeros
      }
      if (const char* problem = ChunkFormProblem(it.rec.flags, it.rec.stored_length, it.rec.plain_length,
                                                 j.image.codec, j.image.cipher, it.rec.checksum)) {
        w->early.push_back(BatchFailure{i, ChunkStatus::kCorruptIndex,
                                        "chunk " + std::to_string(it.rec.number) + ": " + problem});
        if (!j.all) break;  // nothing after the first failure matters
        continue;
      }
      if (v[6] != kDrop) {
        if (v[7] >= targets.size()) {
          ThrowRange(env, "expected item " + std::to_string(i) + "'s target below " + std::to_string(targets.size()) +
                              ", got " + std::to_string(v[7]));
        }
        Reservation* r = targets[static_cast<size_t>(v[7])];
        if (v[6] > r->span || it.rec.plain_length > r->span - v[6]) {
          ThrowRange(env, "expected item " + std::to_string(i) + "'s destination inside the target of " +
                              std::to_string(r->span) + " bytes, got offset " + std::to_string(v[6]) + " + " +
                              std::to_string(it.rec.plain_length));
        }
        const uintptr_t at = r->address + static_cast<uintptr_t>(v[6]);
        it.dest = reinterpret_cast<uint8_t*>(at);
        // No advice in a reservation with lost holes: something else may live there now.
        if (r->lost.empty()) {
          it.target_start = r->address;
          it.target_end = r->address + r->span;
        }
        if (at != run_end) {
          check_run();
          run_start = at;
        }
        run_end = at + it.rec.plain_length;
      }
      // Items are taken by index in image order: an item after an early failure
      // keeps its place so that failures sort right.
      w->items.push_back(it);
      w->index.push_back(i);
    }
    check_run();
  } catch (...) {
    delete w;
    throw;
  }
  w->Queue();
  return env.Undefined();
}

}  // namespace crimg
