// See batch_decode.h.
#include "batch_decode.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <new>
#include <thread>

#include "scan.h"

namespace crimg {
namespace {

// A run of items read with one pread.
struct Unit {
  size_t first;     // first item
  size_t count;     // items
  uint64_t offset;  // file offset of the first item's stored bytes
  size_t bytes;     // stored bytes of all its items (contiguous in the file)
  bool direct;      // RAW without cipher, destinations back to back: read into place
};

// RAW in an image without cipher, with a destination: its stored bytes are its plain bytes.
bool Direct(const ChunkImage& image, const BatchItem& it) {
  return image.cipher == 0 && it.dest != nullptr && (it.rec.flags & kChunkRaw) != 0;
}

std::vector<Unit> CutUnits(const ChunkImage& image, const std::vector<BatchItem>& items) {
  std::vector<Unit> units;
  for (size_t i = 0; i < items.size(); i++) {
    const BatchItem& it = items[i];
    const bool direct = Direct(image, it);
    if (!units.empty()) {
      Unit& u = units.back();
      const BatchItem& prev = items[i - 1];
      const bool follows = it.file_offset == u.offset + u.bytes;
      const bool fits = u.bytes + it.rec.stored_length <= kUnitBytes;
      const bool same = direct == u.direct &&
                        (!direct || it.dest == prev.dest + prev.rec.plain_length);
      if (follows && fits && same) {
        u.count++;
        u.bytes += it.rec.stored_length;
        continue;
      }
    }
    units.push_back(Unit{i, 1, it.file_offset, it.rec.stored_length, direct});
  }
  return units;
}

// Reads exactly `length` bytes at `offset`; 0 or the errno (EIO for a file
// that ends early: it changed after its index was read).
int ReadFully(int fd, uint8_t* out, size_t length, uint64_t offset) {
  size_t done = 0;
  while (done < length) {
    const ssize_t n = pread(fd, out + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

class Batch {
 public:
  Batch(const BatchJob& job, const std::vector<BatchItem>& items)
      : job_(job), items_(items), units_(CutUnits(job.image, items)) {}

  std::vector<BatchFailure> Run(BatchStats* stats) {
    unsigned threads = job_.threads != 0 ? job_.threads : std::thread::hardware_concurrency();
    if (threads == 0) threads = 1;
    threads = static_cast<unsigned>(std::min<size_t>({threads, units_.size(), 256}));
    populate_ = job_.populate && PopulateSupported();
    if (populate_ && job_.huge) AdviseHugeWhereMostlyStored(items_);
    std::vector<std::thread> pool;
    // This thread works too: threads - 1 more.
    for (unsigned t = 1; t < threads; t++) {
      try {
        pool.emplace_back([this] { Work(); });
      } catch (...) {
        break;  // fewer threads, same result
      }
    }
    if (!units_.empty()) Work();
    for (std::thread& t : pool) t.join();
    if (stats != nullptr) {
      stats->threads = units_.empty() ? 0 : static_cast<unsigned>(pool.size() + 1);
      stats->units = units_.size();
      stats->populated = populate_;
    }
    std::sort(failures_.begin(), failures_.end(),
              [](const BatchFailure& a, const BatchFailure& b) { return a.item < b.item; });
    if (!job_.all && failures_.size() > 1) failures_.resize(1);
    return std::move(failures_);
  }

 private:
  void Work() {
    ChunkDecoder decoder;
    std::vector<uint8_t> stored;
    std::vector<uint8_t> drop;
    for (;;) {
      if (!job_.all && stop_.load(std::memory_order_acquire)) return;
      const size_t u = next_.fetch_add(1, std::memory_order_relaxed);
      if (u >= units_.size()) return;
      bool ok = false;
      try {
        ok = Process(units_[u], &decoder, &stored, &drop);
      } catch (const std::bad_alloc&) {
        // A scratch buffer could not grow: this unit's chunks fail, the process lives.
        ok = ReadFailed(units_[u], ENOMEM, "decoding");
      }
      if (!ok) stop_.store(true, std::memory_order_release);
    }
  }

  // Makes the destinations of a unit's items present before they are written,
  // merging those that follow each other.
  void Provision(const Unit& u) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    uintptr_t start = 0, end = 0;
    for (size_t i = u.first; i < u.first + u.count; i++) {
      const BatchItem& it = items_[i];
      if (it.dest == nullptr) continue;
      const uintptr_t s = reinterpret_cast<uintptr_t>(it.dest) & ~(page - 1);
      const uintptr_t e = (reinterpret_cast<uintptr_t>(it.dest) + it.rec.plain_length + page - 1) & ~(page - 1);
      if (end != 0 && s <= end) {
        end = std::max(end, e);
        continue;
      }
      if (end != 0) PopulateWrite(start, end - start);
      start = s;
      end = e;
    }
    if (end != 0) PopulateWrite(start, end - start);
  }

  // Reads and decodes one unit; false when a chunk of it failed (the rest of
  // the unit is skipped unless every failure is wanted).
  bool Process(const Unit& u, ChunkDecoder* decoder, std::vector<uint8_t>* stored,
               std::vector<uint8_t>* drop) {
    if (populate_) Provision(u);
    if (u.direct) {
      uint8_t* at = items_[u.first].dest;
      if (const int err = Read(at, u.bytes, u.offset)) {
        memset(at, 0, u.bytes);
        return ReadFailed(u, err);
      }
      bool ok = true;
      for (size_t i = u.first; i < u.first + u.count; i++) {
        const BatchItem& it = items_[i];
        if (Xxh64(it.dest, it.rec.plain_length, 0) == it.rec.checksum) continue;
        memset(it.dest, 0, it.rec.plain_length);  // no unverified bytes left in place
        char message[200];
        snprintf(message, sizeof message, "chunk %llu: checksum of the stored bytes does not match the chunk table",
                 static_cast<unsigned long long>(it.rec.number));
        Fail(i, ChunkStatus::kCorruptChunk, message);
        ok = false;
        if (!job_.all) return false;
      }
      return ok;
    }
    if (stored->size() < u.bytes) stored->resize(u.bytes);
    if (const int err = Read(stored->data(), u.bytes, u.offset)) return ReadFailed(u, err);
    bool ok = true;
    for (size_t i = u.first; i < u.first + u.count; i++) {
      const BatchItem& it = items_[i];
      uint8_t* out = it.dest;
      if (out == nullptr) {
        if (drop->size() < it.rec.plain_length) drop->resize(it.rec.plain_length);
        out = drop->data();
      }
      const uint8_t* bytes = stored->data() + (it.file_offset - u.offset);
      const ChunkResult r = decoder->Decode(job_.image, it.rec, bytes, out, true);
      if (r.status == ChunkStatus::kOk) continue;
      Fail(i, r.status, r.message);
      ok = false;
      if (!job_.all) return false;
    }
    return ok;
  }

  // The stored bytes at `offset`: from the file, or from job_.memory.
  int Read(uint8_t* out, size_t length, uint64_t offset) {
    if (job_.memory == nullptr) return ReadFully(job_.fd, out, length, offset);
    if (offset < job_.memory_base || offset - job_.memory_base > job_.memory_length ||
        length > job_.memory_length - (offset - job_.memory_base)) {
      return EIO;
    }
    memcpy(out, job_.memory + (offset - job_.memory_base), length);
    return 0;
  }

  bool ReadFailed(const Unit& u, int err, const char* doing = "reading") {
    char why[96];
    const char* text = strerror_r(err, why, sizeof why);  // GNU: returns the text
    char message[200];
    snprintf(message, sizeof message, "chunk %llu: %s %zu stored bytes at offset %llu failed: %s",
             static_cast<unsigned long long>(items_[u.first].rec.number), doing, u.bytes,
             static_cast<unsigned long long>(u.offset), text);
    // Every chunk of the unit is unread: each is a finding when all are wanted (verify).
    for (size_t i = u.first; i < (job_.all ? u.first + u.count : u.first + 1); i++) {
      Fail(i, ChunkStatus::kIoError, message);
    }
    return false;
  }

  void Fail(size_t item, ChunkStatus status, const char* message) {
    std::lock_guard<std::mutex> lock(mutex_);
    failures_.push_back(BatchFailure{item, status, message});
  }

  const BatchJob& job_;
  const std::vector<BatchItem>& items_;
  const std::vector<Unit> units_;
  bool populate_ = false;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<BatchFailure> failures_;
};

}  // namespace

std::vector<BatchFailure> DecodeBatch(const BatchJob& job, const std::vector<BatchItem>& items,
                                      BatchStats* stats) {
  Batch batch(job, items);
  return batch.Run(stats);
}

}  // namespace crimg
