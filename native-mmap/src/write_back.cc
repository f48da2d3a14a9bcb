// JS binding of the image writer's write-back hint (sync_file_range).
#include <fcntl.h>

#include <cstdint>

#include <napi.h>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace crimg {
namespace {

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

}  // namespace

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

}  // namespace crimg
