// Placements into a reservation (see address_space.h): PlaceRuns lays out a
// region's file and zero runs with MAP_FIXED, View makes part of it readable
// for one ArrayBuffer. Both check everything before the first syscall.
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <new>
#include <string>
#include <vector>

#include "address_space.h"
#include "address_space_internal.h"

namespace crimg {

using internal::FileKind;
using internal::Ptr;

Failure AddressSpace::PlaceRuns(Reservation* r, int fd,
                                const std::vector<Run>& runs, int prot) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!r->live) {
    return Failure::Policy("expected a live reservation, got one at " +
                           Hex(r->address) + " that was already released");
  }
  // Every check before the first mmap: a refusal leaves nothing changed.
  std::vector<size_t> spans(runs.size());
  size_t previous_end = 0;
  bool any_file = false;
  for (size_t i = 0; i < runs.size(); i++) {
    const Run& run = runs[i];
    const std::string which = "run " + std::to_string(i);
    if (run.length == 0 || !RoundUp(run.length, &spans[i]) ||
        run.offset % page_size_ != 0) {
      return Failure::Policy("expected " + which +
                             " to have a page-aligned offset and a length > 0");
    }
    if (run.offset > r->span || spans[i] > r->span - run.offset) {
      return Failure::Policy(
          "expected " + which + " inside the reservation of " +
          std::to_string(r->span) + " bytes, got offset " +
          std::to_string(run.offset) + " + " + std::to_string(spans[i]));
    }
    if (i > 0 && run.offset < previous_end) {
      return Failure::Policy(
          "expected runs in ascending order without overlap, got " + which +
          " at offset " + std::to_string(run.offset) +
          " before the end of the previous run at " +
          std::to_string(previous_end));
    }
    previous_end = run.offset + spans[i];
    const uintptr_t start = r->address + run.offset;
    const uintptr_t end = start + spans[i];
    if (Mapping* m = FirstMappingOverlapping(start, end)) {
      // Replacing pages under a live ArrayBuffer, and failing half-way, would
      // leave the buffer over PROT_NONE pages.
      return Failure::Policy("expected " + which +
                             " clear of live buffers, got one overlapping "
                             "the buffer at " + Hex(m->address) +
                             " (unmap it first)");
    }
    uintptr_t hit = 0;
    if (OverlapsLost(*r, start, end, &hit)) {
      return Failure::Policy("expected " + which +
                             " clear of lost holes, got one overlapping " +
                             Hex(hit));
    }
    if (run.file_offset >= 0) {
      any_file = true;
      if (run.file_offset % static_cast<int64_t>(page_size_) != 0) {
        return Failure::Policy("expected the file offset of " + which +
                               " to be a multiple of the page size, got " +
                               std::to_string(run.file_offset));
      }
    }
  }
  if (any_file) {
    // As in Map: pages wholly past end-of-file would raise SIGBUS.
    struct stat st;
    if (fstat(fd, &st) != 0) return Failure::Errno(errno, "fstat", false, 0);
    if (!S_ISREG(st.st_mode)) {
      return Failure::Policy(
          std::string("expected fd to refer to a regular file, got ") +
          FileKind(st.st_mode));
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    for (size_t i = 0; i < runs.size(); i++) {
      const Run& run = runs[i];
      if (run.file_offset < 0) continue;
      const uint64_t offset = static_cast<uint64_t>(run.file_offset);
      if (offset > size || run.length > size - offset) {
        return Failure::Policy(
            "expected run " + std::to_string(i) +
            " inside the file: file offset + length <= file size " +
            std::to_string(size) + ", got " + std::to_string(offset) + " + " +
            std::to_string(run.length) +
            " (pages past end-of-file fault with SIGBUS)");
      }
    }
  }
  for (size_t i = 0; i < runs.size(); i++) {
    const Run& run = runs[i];
    const bool anonymous = run.file_offset < 0;
    const uintptr_t at = r->address + run.offset;
    void* p = mmap(Ptr(at), run.length, prot,
                   MAP_PRIVATE | MAP_FIXED | (anonymous ? MAP_ANONYMOUS : 0),
                   anonymous ? -1 : fd,
                   anonymous ? 0 : static_cast<off_t>(run.file_offset));
    if (p == MAP_FAILED) {
      const int err = errno;
      // All or nothing. The failed MAP_FIXED may have discarded run i's pages.
      for (size_t k = 0; k <= i; k++) {
        ReReserve(r, r->address + runs[k].offset, spans[k]);
      }
      return Failure::Errno(err, "mmap", true, at);
    }
    SetProt(at, at + spans[i], prot);
  }
  return Failure();
}

Mapping* AddressSpace::View(Reservation* r, size_t offset, size_t length,
                            int prot, Failure* failure) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!r->live) {
    *failure = Failure::Policy("expected a live reservation, got one at " +
                               Hex(r->address) + " that was already released");
    return nullptr;
  }
  size_t span = 0;
  if (length == 0 || !RoundUp(length, &span) || offset % page_size_ != 0 ||
      offset > r->span || span > r->span - offset) {
    *failure = Failure::Policy(
        "expected a page-aligned range inside the reservation of " +
        std::to_string(r->span) + " bytes, got offset " +
        std::to_string(offset) + " + " + std::to_string(length));
    return nullptr;
  }
  const uintptr_t start = r->address + offset;
  if (Mapping* m = FirstMappingOverlapping(start, start + span)) {
    *failure = Failure::Policy(
        "expected a range clear of live buffers, got " + Hex(start) + " + " +
        std::to_string(span) + " overlapping the buffer at " +
        Hex(m->address) + " (unmap it first)");
    return nullptr;
  }
  uintptr_t hit = 0;
  if (OverlapsLost(*r, start, start + span, &hit)) {
    *failure = Failure::Policy(
        "expected a range clear of lost holes, got " + Hex(start) + " + " +
        std::to_string(span) + " overlapping " + Hex(hit));
    return nullptr;
  }
  // Every page of a live reservation outside its lost holes is mapped (the
  // PROT_NONE reservation itself, or a placement), so once this succeeds every
  // byte of the buffer is readable.
  if (mprotect(Ptr(start), span, prot) != 0) {
    *failure = Failure::Errno(errno, "mprotect", true, start);
    return nullptr;
  }
  SetProt(start, start + span, prot);
  Mapping* m = new (std::nothrow) Mapping{start, span, length, r, true, false};
  if (m == nullptr) {
    *failure = Failure::Errno(ENOMEM, "mprotect", true, start);
    return nullptr;
  }
  m->window = true;
  mappings_[m->address] = m;
  return m;
}

}  // namespace crimg
