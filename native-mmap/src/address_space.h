// Process-wide bookkeeping of every range this addon maps or reserves.
//
// Why it exists: MAP_FIXED silently replaces whatever is mapped at the target
// address, and munmap/mprotect/madvise act on raw addresses. Handed to script
// unchecked, any of them can pull memory out from under V8 and crash the
// process. So every operation that takes an address is first checked against
// this registry: MAP_FIXED only lands inside a reservation made here and never
// on a live mapping, and protect/advise only touch ranges made here.
//
// No N-API in this layer: it returns a Failure that the binding turns into a
// JS exception. One mutex guards everything because the address space is
// shared by every worker thread that loads the addon.
#ifndef CRIMG_ADDRESS_SPACE_H_
#define CRIMG_ADDRESS_SPACE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace crimg {

// Outcome of an operation: success, a failed syscall, or a policy refusal
// (which the binding reports as a RangeError).
struct Failure {
  enum class Kind { kNone, kErrno, kPolicy };
  Kind kind = Kind::kNone;
  int err = 0;                // kErrno: the errno value
  const char* syscall = "";   // kErrno: which syscall failed
  bool has_address = false;   // kErrno: whether `address` is meaningful
  uintptr_t address = 0;
  std::string message;        // kPolicy: "expected X, got Y" text

  explicit operator bool() const { return kind != Kind::kNone; }
  static Failure Errno(int err, const char* syscall, bool has_address,
                       uintptr_t address);
  static Failure Policy(std::string message);
};

struct Reservation;

// One mmap made for script, backing exactly one external ArrayBuffer.
struct Mapping {
  uintptr_t address;
  size_t span;          // page-rounded length: what the kernel mapped
  size_t byte_length;   // the ArrayBuffer's byteLength
  Reservation* parent;  // reservation it was placed into, or nullptr
  bool live;            // false once unmapped; the record outlives the pages
  bool buffer_owned;    // set once an ArrayBuffer finalizer owns the record
  // A window from View(): a buffer over pages its reservation owns. Dropping
  // it leaves the pages as they are while the reservation is live; after the
  // reservation is released the window owns (and finally unmaps) its pages.
  bool window = false;
};

// A PROT_NONE range held so that placements inside it cannot collide with
// anything else in the process.
struct Reservation {
  uintptr_t address;
  size_t span;
  bool live;
  // Sub-ranges we failed to re-reserve after a placement went away (mmap
  // refused, e.g. vm.max_map_count reached). Something else may live there
  // now, so they are never placed into, protected, or unmapped again.
  std::map<uintptr_t, size_t> lost;
};

enum class Placement { kAnywhere, kHint, kFixed, kFixedNoReplace };

// One run of PlaceRuns: `length` bytes at `offset` into the reservation, from
// the file at `file_offset`, or anonymous zero memory when `file_offset` < 0.
struct Run {
  size_t offset;
  size_t length;
  int64_t file_offset;
};

struct MapRequest {
  int fd = -1;            // -1 for anonymous memory
  uint64_t offset = 0;    // file offset, page-aligned
  size_t length = 0;      // bytes, > 0
  int prot = 0;           // PROT_* bits, always including PROT_READ
  Placement placement = Placement::kAnywhere;
  uintptr_t address = 0;  // used unless placement is kAnywhere
  bool populate = false;  // MAP_POPULATE
};

class AddressSpace {
 public:
  static AddressSpace& Get();

  size_t page_size() const { return page_size_; }
  // Rounds up to a page multiple; false on overflow.
  bool RoundUp(size_t length, size_t* out) const;

  // Maps a file range or anonymous memory. On success the caller must hand
  // the record to an ArrayBuffer and call Adopt, or call Abandon.
  Mapping* Map(const MapRequest& request, Failure* failure);
  void Adopt(Mapping* mapping);
  void Abandon(Mapping* mapping);
  // Called from the ArrayBuffer finalizer; unmaps if still live, frees record.
  void MappingFinalized(Mapping* mapping);

  // True if a live mapping starts at `address` with this byte length.
  bool IsLiveMapping(uintptr_t address, size_t byte_length);
  // Explicit unmap of the live mapping starting at `address`.
  Failure UnmapAt(uintptr_t address, size_t byte_length);

  Reservation* Reserve(size_t length, Placement placement, uintptr_t address,
                       Failure* failure);
  // Releases the reservation's free parts. Placements inside it stay mapped
  // (their ArrayBuffers may still be reachable) and become standalone.
  Failure Release(Reservation* reservation);
  void ReservationFinalized(Reservation* reservation);

  // Places `runs` (ascending, not overlapping, inside `reservation`, clear of
  // live buffers) with one MAP_FIXED mmap each. The pages belong to the
  // reservation: no ArrayBuffer points at them, so any prot is allowed, and
  // they go when the reservation is released. All or nothing: on failure the
  // runs already placed go back to PROT_NONE.
  Failure PlaceRuns(Reservation* reservation, int fd, const std::vector<Run>& runs,
                    int prot);
  // Makes [offset, offset + length) of a live reservation readable with
  // `prot` (mprotect) and registers it as a window (see Mapping::window) that
  // the caller hands to one ArrayBuffer (Adopt) or Abandons.
  Mapping* View(Reservation* reservation, size_t offset, size_t length, int prot,
                Failure* failure);

  Failure Protect(uintptr_t address, size_t length, int prot,
                  const std::string& prot_text);
  Failure Advise(uintptr_t address, size_t length, int advice);

  // Refuses [data, data + length) when any byte of it lies in a range made
  // here without PROT_WRITE (a read-only mapping or view, a reservation), as a
  // policy failure naming `what` and the first such range: writing there is a
  // SIGSEGV. Memory this addon did not map (V8's heap, Buffers) is not
  // checked. Called on every output buffer before native code writes to it.
  Failure CheckWritable(const void* data, size_t length, const char* what);

 private:
  AddressSpace();
  Reservation* ReservationContaining(uintptr_t start, uintptr_t end);
  Mapping* MappingContaining(uintptr_t start, uintptr_t end);
  Mapping* FirstMappingOverlapping(uintptr_t start, uintptr_t end);
  bool OverlapsLost(Reservation& r, uintptr_t start, uintptr_t end,
                    uintptr_t* hit);
  Failure CheckOwnedSpan(uintptr_t address, size_t length, size_t* span, Mapping** m);
  Failure CheckOwned(uintptr_t start, uintptr_t end, Reservation** reservation,
                     Mapping** mapping);
  void ReReserve(Reservation* r, uintptr_t address, size_t span);
  Failure UnmapLocked(Mapping* mapping);
  // The protection of every page range made here, kept in step with each
  // mmap, mprotect and munmap (CheckWritable reads it). Caller holds mutex_.
  void SetProt(uintptr_t start, uintptr_t end, int prot);
  void ClearProt(uintptr_t start, uintptr_t end);

  size_t page_size_;
  std::mutex mutex_;
  std::map<uintptr_t, Mapping*> mappings_;          // live, by start address
  std::map<uintptr_t, Reservation*> reservations_;  // live, by start address
  // Disjoint page ranges by start: end address and PROT_* bits.
  struct ProtRange {
    uintptr_t end;
    int prot;
  };
  std::map<uintptr_t, ProtRange> prots_;
};

// "0x7f12..." for messages.
std::string Hex(uintptr_t value);

}  // namespace crimg

#endif  // CRIMG_ADDRESS_SPACE_H_
