#include "address_space.h"

#ifndef __linux__
#error "crimg_mmap targets Linux (MAP_FIXED_NOREPLACE, MAP_POPULATE, madvise set)"
#endif

#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <new>
#include <vector>

#include "address_space_internal.h"

// glibc < 2.28 headers lack it; the kernel ABI value is stable (Linux 4.17).
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace crimg {

using internal::Addr;
using internal::FileKind;
using internal::Ptr;

namespace {

// Any live entry of `m` (disjoint intervals keyed by start) overlapping
// [start, end), or nullptr. SpanOf extracts an entry's length.
template <typename T, typename SpanOf>
typename std::map<uintptr_t, T>::iterator FirstOverlap(
    std::map<uintptr_t, T>& m, uintptr_t start, uintptr_t end, SpanOf span_of) {
  auto it = m.upper_bound(start);
  if (it != m.begin()) {
    auto prev = std::prev(it);
    if (prev->first + span_of(prev->second) > start) return prev;
  }
  if (it != m.end() && it->first < end) return it;
  return m.end();
}

}  // namespace

Failure Failure::Errno(int err, const char* syscall, bool has_address,
                       uintptr_t address) {
  Failure f;
  f.kind = Kind::kErrno;
  f.err = err;
  f.syscall = syscall;
  f.has_address = has_address;
  f.address = address;
  return f;
}

Failure Failure::Policy(std::string message) {
  Failure f;
  f.kind = Kind::kPolicy;
  f.message = std::move(message);
  return f;
}

std::string Hex(uintptr_t value) {
  char buf[2 + 16 + 1];
  std::snprintf(buf, sizeof buf, "0x%llx",
                static_cast<unsigned long long>(value));
  return buf;
}

AddressSpace& AddressSpace::Get() {
  // Leaked on purpose: finalizers may still run while static destructors do.
  static AddressSpace* instance = new AddressSpace();
  return *instance;
}

AddressSpace::AddressSpace()
    : page_size_(static_cast<size_t>(sysconf(_SC_PAGESIZE))) {}

bool AddressSpace::RoundUp(size_t length, size_t* out) const {
  if (length > SIZE_MAX - (page_size_ - 1)) return false;
  *out = (length + page_size_ - 1) & ~(page_size_ - 1);
  return true;
}

Reservation* AddressSpace::ReservationContaining(uintptr_t start,
                                                 uintptr_t end) {
  auto it = reservations_.upper_bound(start);
  if (it == reservations_.begin()) return nullptr;
  Reservation* r = std::prev(it)->second;
  return (r->address <= start && end <= r->address + r->span) ? r : nullptr;
}

Mapping* AddressSpace::MappingContaining(uintptr_t start, uintptr_t end) {
  auto it = mappings_.upper_bound(start);
  if (it == mappings_.begin()) return nullptr;
  Mapping* m = std::prev(it)->second;
  return (m->address <= start && end <= m->address + m->span) ? m : nullptr;
}

Mapping* AddressSpace::FirstMappingOverlapping(uintptr_t start,
                                               uintptr_t end) {
  auto it = FirstOverlap(mappings_, start, end,
                         [](const Mapping* m) { return m->span; });
  return it == mappings_.end() ? nullptr : it->second;
}

bool AddressSpace::OverlapsLost(Reservation& r, uintptr_t start,
                                uintptr_t end, uintptr_t* hit) {
  auto it = FirstOverlap(r.lost, start, end, [](size_t span) { return span; });
  if (it == r.lost.end()) return false;
  *hit = it->first;
  return true;
}

// Puts PROT_NONE back over a sub-range of a live reservation, so the address
// range stays ours. MAP_FIXED is safe here: the range is known to be ours.
void AddressSpace::ReReserve(Reservation* r, uintptr_t address, size_t span) {
  void* p = mmap(Ptr(address), span, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) {
    // The old pages may or may not be gone; either way this hole is no longer
    // provably ours. Drop whatever is left and never touch it again.
    munmap(Ptr(address), span);
    r->lost[address] = span;
    ClearProt(address, address + span);
    return;
  }
  SetProt(address, address + span, PROT_NONE);
}

void AddressSpace::ClearProt(uintptr_t start, uintptr_t end) {
  if (start >= end) return;
  auto it = prots_.upper_bound(start);
  if (it != prots_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > start) {
      // Split the range that straddles `start`; its head stays.
      const ProtRange whole = prev->second;
      prev->second.end = start;
      if (whole.end > end) {
        prots_[end] = ProtRange{whole.end, whole.prot};
        return;
      }
    }
  }
  it = prots_.lower_bound(start);
  while (it != prots_.end() && it->first < end) {
    if (it->second.end > end) {
      // Keep the tail past `end`.
      const ProtRange tail = it->second;
      prots_.erase(it);
      prots_[end] = tail;
      return;
    }
    it = prots_.erase(it);
  }
}

void AddressSpace::SetProt(uintptr_t start, uintptr_t end, int prot) {
  if (start >= end) return;
  ClearProt(start, end);
  prots_[start] = ProtRange{end, prot};
}

Failure AddressSpace::CheckWritable(const void* data, size_t length,
                                    const char* what) {
  if (length == 0 || data == nullptr) return Failure();
  const uintptr_t start = Addr(data);
  const uintptr_t end = length > UINTPTR_MAX - start ? UINTPTR_MAX : start + length;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = prots_.upper_bound(start);
  if (it != prots_.begin() && std::prev(it)->second.end > start) it = std::prev(it);
  for (; it != prots_.end() && it->first < end; ++it) {
    const int prot = it->second.prot;
    if ((prot & PROT_WRITE) != 0) continue;
    std::string text = "---";
    if (prot & PROT_READ) text[0] = 'r';
    if (prot & PROT_EXEC) text[2] = 'x';
    const uintptr_t at = std::max(start, it->first);
    return Failure::Policy(
        std::string("expected ") + what + " to be writable memory, got " +
        std::to_string(length) + " bytes at " + Hex(start) + " whose byte " +
        std::to_string(at - start) + " lies in a '" + text +
        "' range this addon mapped at " + Hex(it->first) +
        " (writing there would be a SIGSEGV; pass a writable buffer)");
  }
  return Failure();
}

Mapping* AddressSpace::Map(const MapRequest& req, Failure* failure) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t span = 0;
  if (req.length == 0 || !RoundUp(req.length, &span)) {
    *failure = Failure::Policy("expected a length that fits the address space");
    return nullptr;
  }
  const bool placed = req.placement != Placement::kAnywhere;
  if (placed && req.address > UINTPTR_MAX - span) {
    *failure = Failure::Policy("expected address + length to fit the address "
                               "space, got " + Hex(req.address) + " + " +
                               std::to_string(span));
    return nullptr;
  }

  if (req.fd >= 0) {
    // Pages of a file mapping that lie wholly past end-of-file raise SIGBUS
    // on access, which would kill the process, so the range must be inside
    // the file now. (A later truncation by someone else can still do it; no
    // mmap user can prevent that.)
    struct stat st;
    if (fstat(req.fd, &st) != 0) {
      *failure = Failure::Errno(errno, "fstat", false, 0);
      return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
      *failure = Failure::Policy(
          std::string("expected fd to refer to a regular file, got ") +
          FileKind(st.st_mode));
      return nullptr;
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (req.offset > size || req.length > size - req.offset) {
      *failure = Failure::Policy(
          "expected offset + length <= file size " + std::to_string(size) +
          ", got " + std::to_string(req.offset) + " + " +
          std::to_string(req.length) +
          " (pages past end-of-file fault with SIGBUS)");
      return nullptr;
    }
  }

  Reservation* parent = nullptr;
  int flags = MAP_PRIVATE;
  if (req.fd < 0) flags |= MAP_ANONYMOUS;
  if (req.populate) flags |= MAP_POPULATE;
  void* want = placed ? Ptr(req.address) : nullptr;

  if (req.placement == Placement::kFixed) {
    const uintptr_t end = req.address + span;
    parent = ReservationContaining(req.address, end);
    if (parent == nullptr) {
      *failure = Failure::Policy(
          "expected opts.address inside a live reservation from reserve() "
          "when opts.fixed is set, got " + Hex(req.address) + " + " +
          std::to_string(span) +
          " (MAP_FIXED elsewhere could replace memory the process is using; "
          "use fixedNoReplace)");
      return nullptr;
    }
    if (Mapping* m = FirstMappingOverlapping(req.address, end)) {
      *failure = Failure::Policy(
          "expected a free range inside the reservation, got " +
          Hex(req.address) + " + " + std::to_string(span) +
          " overlapping the live mapping at " + Hex(m->address) +
          " (unmap it first)");
      return nullptr;
    }
    uintptr_t hit = 0;
    if (OverlapsLost(*parent, req.address, end, &hit)) {
      *failure = Failure::Policy(
          "expected a free range inside the reservation, got " +
          Hex(req.address) + " + " + std::to_string(span) +
          " overlapping " + Hex(hit) +
          ", a hole the reservation lost when re-reserving failed");
      return nullptr;
    }
    flags |= MAP_FIXED;
  } else if (req.placement == Placement::kFixedNoReplace) {
    flags |= MAP_FIXED_NOREPLACE;
  }

  void* p = mmap(want, req.length, req.prot, flags, req.fd,
                 static_cast<off_t>(req.offset));
  if (p == MAP_FAILED) {
    const int err = errno;
    // A failed MAP_FIXED may already have discarded the reserved pages.
    if (parent != nullptr) ReReserve(parent, req.address, span);
    *failure = Failure::Errno(err, "mmap", placed, req.address);
    return nullptr;
  }
  if (req.placement == Placement::kFixedNoReplace && p != want) {
    // Kernels before 4.17 ignore MAP_FIXED_NOREPLACE and treat the address
    // as a hint; a different address means the requested one was taken.
    munmap(p, span);
    *failure = Failure::Errno(EEXIST, "mmap", true, req.address);
    return nullptr;
  }

  Mapping* m = new (std::nothrow)
      Mapping{Addr(p), span, req.length, parent, true, false};
  if (m == nullptr) {
    if (parent != nullptr) ReReserve(parent, Addr(p), span);
    else munmap(p, span);
    *failure = Failure::Errno(ENOMEM, "mmap", placed, req.address);
    return nullptr;
  }
  mappings_[m->address] = m;
  SetProt(m->address, m->address + span, req.prot);
  return m;
}

void AddressSpace::Adopt(Mapping* m) {
  std::lock_guard<std::mutex> lock(mutex_);
  m->buffer_owned = true;
}

void AddressSpace::Abandon(Mapping* m) {
  std::lock_guard<std::mutex> lock(mutex_);
  // The failed ArrayBuffer creation may or may not still call the finalizer
  // (Node calls it synchronously on some failure paths), so the record is
  // deliberately leaked: buffer_owned stays false and the finalizer ignores it.
  if (m->live) UnmapLocked(m);
}

Failure AddressSpace::UnmapLocked(Mapping* m) {
  if (m->window && m->parent != nullptr && m->parent->live) {
    // A window's pages belong to its reservation: only the buffer goes.
  } else if (m->parent != nullptr && m->parent->live) {
    // Inside a live reservation the pages go back to PROT_NONE instead of
    // being unmapped: a hole could be taken by another mmap, and a later
    // MAP_FIXED placement there would then destroy it.
    ReReserve(m->parent, m->address, m->span);
  } else if (munmap(Ptr(m->address), m->span) != 0) {
    // Only possible if the kernel cannot split a VMA (vm.max_map_count).
    // Keep the record live so the finalizer can retry.
    return Failure::Errno(errno, "munmap", true, m->address);
  } else {
    ClearProt(m->address, m->address + m->span);
  }
  mappings_.erase(m->address);
  m->live = false;
  return Failure();
}

void AddressSpace::MappingFinalized(Mapping* m) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!m->buffer_owned) return;  // abandoned record, see Abandon
  if (m->live && UnmapLocked(m)) {
    // Still mapped and munmap keeps failing: forget it (leak the pages) rather
    // than leave a dangling record in the registry.
    mappings_.erase(m->address);
  }
  delete m;
}

bool AddressSpace::IsLiveMapping(uintptr_t address, size_t byte_length) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = mappings_.find(address);
  return it != mappings_.end() && it->second->byte_length == byte_length;
}

Failure AddressSpace::UnmapAt(uintptr_t address, size_t byte_length) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = mappings_.find(address);
  if (it == mappings_.end() || it->second->byte_length != byte_length) {
    return Failure::Policy("expected a live mapping at " + Hex(address) +
                           ", got none (already unmapped?)");
  }
  return UnmapLocked(it->second);
}

Reservation* AddressSpace::Reserve(size_t length, Placement placement,
                                   uintptr_t address, Failure* failure) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t span = 0;
  if (length == 0 || !RoundUp(length, &span)) {
    *failure = Failure::Policy("expected a length that fits the address space");
    return nullptr;
  }
  const bool placed = placement != Placement::kAnywhere;
  if (placed && address > UINTPTR_MAX - span) {
    *failure = Failure::Policy("expected address + length to fit the address "
                               "space, got " + Hex(address) + " + " +
                               std::to_string(span));
    return nullptr;
  }
  // MAP_FIXED is never offered here: it would replace whatever is there.
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (placement == Placement::kFixedNoReplace) flags |= MAP_FIXED_NOREPLACE;
  void* want = placed ? Ptr(address) : nullptr;
  void* p = mmap(want, span, PROT_NONE, flags, -1, 0);
  if (p == MAP_FAILED) {
    *failure = Failure::Errno(errno, "mmap", placed, address);
    return nullptr;
  }
  if (placement == Placement::kFixedNoReplace && p != want) {
    munmap(p, span);  // pre-4.17 kernel treated the flag as a hint
    *failure = Failure::Errno(EEXIST, "mmap", true, address);
    return nullptr;
  }
  Reservation* r = new (std::nothrow) Reservation{Addr(p), span, true, {}};
  if (r == nullptr) {
    munmap(p, span);
    *failure = Failure::Errno(ENOMEM, "mmap", placed, address);
    return nullptr;
  }
  reservations_[r->address] = r;
  SetProt(r->address, r->address + span, PROT_NONE);
  return r;
}

Failure AddressSpace::Release(Reservation* r) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!r->live) {
    return Failure::Policy("expected a live reservation, got one at " +
                           Hex(r->address) + " that was already released");
  }
  // Everything between live placements and lost holes is ours to unmap.
  std::vector<std::pair<uintptr_t, uintptr_t>> keep;  // [start, end)
  const uintptr_t end = r->address + r->span;
  for (auto it = mappings_.lower_bound(r->address);
       it != mappings_.end() && it->first < end; ++it) {
    if (it->second->parent == r) it->second->parent = nullptr;
    keep.emplace_back(it->first, it->first + it->second->span);
  }
  for (const auto& hole : r->lost) {
    keep.emplace_back(hole.first, hole.first + hole.second);
  }
  std::sort(keep.begin(), keep.end());
  Failure first;
  uintptr_t cursor = r->address;
  auto unmap_gap = [&](uintptr_t from, uintptr_t to) {
    if (from >= to) return;
    if (munmap(Ptr(from), to - from) != 0) {
      if (!first) first = Failure::Errno(errno, "munmap", true, from);
    } else {
      ClearProt(from, to);
    }
  };
  for (const auto& k : keep) {
    unmap_gap(cursor, k.first);
    if (k.second > cursor) cursor = k.second;
  }
  unmap_gap(cursor, end);
  reservations_.erase(r->address);
  r->live = false;
  return first;
}

void AddressSpace::ReservationFinalized(Reservation* r) {
  Release(r);  // a refusal only means it was released explicitly already
  delete r;
}

// Resolves [start, end) to the one reservation or standalone mapping made
// here that contains it; anything else is refused so script cannot mprotect
// or madvise memory V8 or another library owns.
Failure AddressSpace::CheckOwned(uintptr_t start, uintptr_t end,
                                 Reservation** reservation,
                                 Mapping** mapping) {
  *reservation = nullptr;
  *mapping = nullptr;
  if (Mapping* m = MappingContaining(start, end)) {
    *mapping = m;
    return Failure();
  }
  if (Reservation* r = ReservationContaining(start, end)) {
    uintptr_t hit = 0;
    if (OverlapsLost(*r, start, end, &hit)) {
      return Failure::Policy("expected a range owned by the reservation, got " +
                             Hex(start) + " + " + std::to_string(end - start) +
                             " overlapping the lost hole at " + Hex(hit));
    }
    *reservation = r;
    return Failure();
  }
  return Failure::Policy(
      "expected a range inside one mapping or reservation made by this addon, "
      "got " + Hex(start) + " + " + std::to_string(end - start));
}

// The page-rounded span of [address, +length) when it fits the address space and lies in
// this addon's own ranges; `m` is the mapping that starts there, if any. Caller holds mutex_.
Failure AddressSpace::CheckOwnedSpan(uintptr_t address, size_t length, size_t* span,
                                     Mapping** m) {
  if (!RoundUp(length, span) || address > UINTPTR_MAX - *span) {
    return Failure::Policy("expected address + length to fit the address space");
  }
  Reservation* r = nullptr;
  return CheckOwned(address, address + *span, &r, m);
}

Failure AddressSpace::Protect(uintptr_t address, size_t length, int prot,
                              const std::string& prot_text) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t span = 0;
  Mapping* m = nullptr;
  if (Failure f = CheckOwnedSpan(address, length, &span, &m)) return f;
  if (m == nullptr) m = FirstMappingOverlapping(address, address + span);
  if (m != nullptr && (prot & PROT_READ) == 0) {
    // Reading an ArrayBuffer whose pages are not readable is a SIGSEGV.
    return Failure::Policy(
        "expected a readable prot ('r..') for a range backing a live "
        "ArrayBuffer at " + Hex(m->address) + ", got '" + prot_text +
        "' (unmap the buffer first)");
  }
  if (mprotect(Ptr(address), span, prot) != 0) {
    return Failure::Errno(errno, "mprotect", true, address);
  }
  SetProt(address, address + span, prot);
  return Failure();
}

Failure AddressSpace::Advise(uintptr_t address, size_t length, int advice) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t span = 0;
  Mapping* m = nullptr;
  if (Failure f = CheckOwnedSpan(address, length, &span, &m)) return f;
  if (madvise(Ptr(address), span, advice) != 0) {
    return Failure::Errno(errno, "madvise", true, address);
  }
  return Failure();
}

}  // namespace crimg
