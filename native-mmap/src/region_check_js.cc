// The fast engine of section 8.1's record checks (format/region-table.ts) and
// region totals (format/region-totals.ts). Each loop only says how many records
// from the start are certainly good; the JS code checks the record where it
// stopped again itself, names the fault, or goes on past it when it finds none.
// So no outcome and no message is decided here: a record this code doubts
// costs one JS check, and one it passes passes every check of the spec, in
// exact 64-bit arithmetic (the JS loop's second opinion is BigInt).
//
// Why native: 2^20 records (a 64 MiB section) took 75-130 ms in the JS loop on
// a first open, mostly compiling it while it ran (a loaded 2-core machine
// compiles slowly), against ISSUE 14's bound of 100 ms; here 2-3 ms.
#include <string.h>

#include <string>

#include <napi.h>

#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "scan.h"

namespace crimg {
namespace {

constexpr size_t kRegionRecord = 64;  // section 8.1
constexpr size_t kChunkRecord = 24;   // section 5.3
constexpr int kBadBlock = 4;          // format/region-table.ts BAD_BLOCK

inline bool Continuation(uint8_t b) { return (b & 0xc0) == 0x80; }

// An optional typed-array argument: null/undefined gives {nullptr, 0}.
TypedBytes Optional(Napi::Env env, const Napi::Value& v, napi_typedarray_type type, const char* what) {
  if (v.IsNull() || v.IsUndefined()) return TypedBytes{nullptr, 0};
  return TypedArg(env, v, type, what);
}

// The string table of format/region-table.ts: `strings` as stored, `clean` the
// same bytes with every byte outside a well-formed character made '?' (the
// table itself when it is UTF-8 as a whole), `bad` the count of such bytes
// before each 16-byte block (null for a UTF-8 table).
struct Strings {
  const uint8_t* raw;
  const uint8_t* clean;
  size_t length;
  const uint32_t* bad;
  size_t bad_length;
};

// Bytes made '?' before byte `p`; false when `bad` does not reach (then the JS
// code decides).
bool BadBefore(const Strings& s, size_t p, uint64_t* n) {
  const size_t b = p >> kBadBlock;
  if (b >= s.bad_length) return false;
  uint64_t count = s.bad[b];
  for (size_t k = b << kBadBlock; k < p; k++) count += s.raw[k] != s.clean[k];
  *n = count;
  return true;
}

// format/region-table.ts nameIsUtf8: the slice [start, end) (inside the table)
// starts on a character, does not end inside one, and holds no byte outside a
// well-formed character.
bool NameIsUtf8(const Strings& s, size_t start, size_t end) {
  if (start == end) return true;
  if (Continuation(s.raw[start])) return false;
  if (end < s.length && Continuation(s.clean[end])) return false;
  if (s.bad == nullptr) return true;
  const size_t hi = (end >> kBadBlock) + 1;
  if (hi < s.bad_length && s.bad[hi] == s.bad[start >> kBadBlock]) return true;
  uint64_t a = 0, b = 0;
  return BadBefore(s, end, &a) && BadBefore(s, start, &b) && a == b;
}

}  // namespace

// checkRegionRecords(records: Uint8Array, first, state: Float64Array(3),
//   ctx: Float64Array(7), strings: Uint8Array, clean: Uint8Array | null,
//   badBlocks: Uint32Array | null, lineStarts: Uint32Array | null) -> number
// Records `first`.. of a region section (whole 64-byte records, little-endian)
// after the records before them: state = [next chunk number, previous region's
// end >> 32 (-1: none; 2^32: the end of the address space), its low 32 bits],
// ctx = [page size, chunk size, chunk table records, max chunks per region, max
// name length, records per line of lineStarts, the kind number of a gap]. Returns how many records from
// the start pass every check of section 8.1, with `state` advanced past them
// and, for each one whose number is a multiple of the line, lineStarts[2 * line]
// and [2 * line + 1] set to its address's high and low words.
Napi::Value CheckRegionRecordsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes records = TypedArg(env, info[0], napi_uint8_array, "records to be a Uint8Array");
  const double first = Integer(env, info[1], "first", 0, kMaxSafeInteger);
  TypedBytes state = TypedArg(env, info[2], napi_float64_array, "state to be a Float64Array");
  TypedBytes ctx = TypedArg(env, info[3], napi_float64_array, "ctx to be a Float64Array");
  TypedBytes raw = TypedArg(env, info[4], napi_uint8_array, "strings to be a Uint8Array");
  TypedBytes clean = Optional(env, info[5], napi_uint8_array, "clean to be a Uint8Array or null");
  TypedBytes bad = Optional(env, info[6], napi_uint32_array, "badBlocks to be a Uint32Array or null");
  TypedBytes starts = Optional(env, info[7], napi_uint32_array, "lineStarts to be a Uint32Array or null");
  if (state.length != 3 || ctx.length != 7) ThrowRange(env, "expected state of 3 and ctx of 7 numbers");
  if (records.length % kRegionRecord != 0) ThrowRange(env, "expected records to be whole 64-byte records, got " + std::to_string(records.length) + " bytes");
  if (clean.data != nullptr && clean.length != raw.length) ThrowRange(env, "expected clean to be as long as strings");
  const double* c = reinterpret_cast<const double*>(ctx.data);
  for (int k = 0; k < 7; k++) {
    const bool positive = k == 0 || k == 1 || k == 5;  // page size, chunk size, line records
    if (!(c[k] >= (positive ? 1 : 0) && c[k] <= (k == 6 ? 255 : kMaxSafeInteger)) || c[k] != static_cast<double>(static_cast<uint64_t>(c[k]))) {
      ThrowRange(env, "expected ctx[" + std::to_string(k) + "] to be an integer in range");
    }
  }
  if ((static_cast<uint64_t>(c[0]) & (static_cast<uint64_t>(c[0]) - 1)) != 0) ThrowRange(env, "expected the page size to be a power of two");
  const uint64_t page_mask = static_cast<uint64_t>(c[0]) - 1;
  const uint64_t chunk_size = static_cast<uint64_t>(c[1]);
  const uint64_t chunk_count = static_cast<uint64_t>(c[2]);
  const uint64_t max_chunks = static_cast<uint64_t>(c[3]);
  const uint64_t max_name = static_cast<uint64_t>(c[4]);
  const uint64_t line_records = static_cast<uint64_t>(c[5]);
  const uint8_t gap_kind = static_cast<uint8_t>(c[6]);
  double* st = reinterpret_cast<double*>(state.data);
  if (starts.data != nullptr) {
    if (Failure f = AddressSpace::Get().CheckWritable(starts.data, starts.length * 4, "lineStarts")) ThrowFailure(env, f);
  }
  if (Failure f = AddressSpace::Get().CheckWritable(state.data, 3 * sizeof(double), "state")) ThrowFailure(env, f);
  // Where the numbering stands: a state this code did not write is refused rather than trusted.
  if (!(st[0] >= 0 && st[0] <= static_cast<double>(chunk_count) && st[0] == static_cast<double>(static_cast<uint64_t>(st[0])))
      || !(st[1] == -1 || (st[1] >= 0 && st[1] <= 4294967296.0 && st[1] == static_cast<double>(static_cast<uint64_t>(st[1]))))
      || !(st[2] >= 0 && st[2] < 4294967296.0 && st[2] == static_cast<double>(static_cast<uint64_t>(st[2])))) {
    ThrowRange(env, "expected state to be [next chunk, previous end high, previous end low]");
  }
  uint64_t next = static_cast<uint64_t>(st[0]);
  unsigned __int128 prev_end = st[1] < 0 ? 0 : (static_cast<unsigned __int128>(static_cast<uint64_t>(st[1])) << 32) | static_cast<uint64_t>(st[2]);
  const Strings s{raw.data, clean.data != nullptr ? clean.data : raw.data, raw.length,
                  reinterpret_cast<const uint32_t*>(bad.data), bad.length};
  uint32_t* line = reinterpret_cast<uint32_t*>(starts.data);
  const size_t n = records.length / kRegionRecord;
  const uint64_t base = static_cast<uint64_t>(first);
  size_t k = 0;
  for (; k < n; k++) {
    const uint8_t* r = records.data + k * kRegionRecord;
    const uint64_t address = Load64(r);
    const uint64_t length = Load64(r + 8);
    const uint64_t first_chunk = Load64(r + 16);
    const uint64_t count = Load64(r + 24);
    const uint64_t stored = Load64(r + 32);
    const uint64_t zeros = Load64(r + 40);
    const uint64_t name_offset = Load32(r + 48);
    const uint64_t name_end = name_offset + Load32(r + 52);
    const uint8_t prot = r[56];
    const bool gap = r[57] == gap_kind;
    const unsigned __int128 end = static_cast<unsigned __int128>(address) + length;
    const uint64_t expect = gap ? 0 : length / chunk_size + (length % chunk_size != 0);
    const bool ok = (address & page_mask) == 0
        && length != 0
        && end <= (static_cast<unsigned __int128>(1) << 64)
        && address >= prev_end
        && count == expect
        && expect <= max_chunks
        && first_chunk == next
        && zeros <= count
        && (!gap || (prot == 0 && stored == 0))
        && (prot & ~7) == 0
        && count <= chunk_count - next
        && name_end - name_offset <= max_name
        && name_end <= s.length
        && NameIsUtf8(s, name_offset, name_end);
    if (!ok) break;
    const uint64_t i = base + k;
    if (line != nullptr && i % line_records == 0) {
      const uint64_t at = 2 * (i / line_records);
      if (at + 1 >= starts.length) break;  // the JS code decides
      line[at] = static_cast<uint32_t>(address >> 32);
      line[at + 1] = static_cast<uint32_t>(address);
    }
    next += count;
    prev_end = end;
  }
  st[0] = static_cast<double>(next);
  if (k > 0 || st[1] >= 0) {
    st[1] = static_cast<double>(static_cast<uint64_t>(prev_end >> 32));
    st[2] = static_cast<double>(static_cast<uint64_t>(prev_end & 0xffffffffu));
  }
  return Napi::Number::New(env, static_cast<double>(k));
}

// checkRegionTotals(chunks: Uint8Array, regions: Uint8Array, count, zeroFlag) -> number
// How many of the first `count` region records (64 bytes each, at the start of
// `regions`) have stored bytes equal to the sum of their chunks' stored lengths
// and zero chunks equal to the number of their chunks with flag `zeroFlag` (ZERO) (section 8.1), the
// chunks being records [first chunk, first chunk + chunk count) of `chunks`
// (24 bytes each). A region whose chunks lie outside `chunks`, or whose stored
// bytes pass 2^53 - 1 (refused by the portable code), stops the count.
Napi::Value CheckRegionTotalsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TypedBytes chunks = TypedArg(env, info[0], napi_uint8_array, "chunks to be a Uint8Array");
  TypedBytes regions = TypedArg(env, info[1], napi_uint8_array, "regions to be a Uint8Array");
  const size_t count = static_cast<size_t>(Integer(env, info[2], "count", 0, kMaxSafeInteger));
  if (count > regions.length / kRegionRecord) {
    ThrowRange(env, "expected count to be at most " + std::to_string(regions.length / kRegionRecord) + ", got " + std::to_string(count));
  }
  const uint32_t zero_flag = static_cast<uint32_t>(Integer(env, info[3], "zeroFlag", 1, 65535));
  const uint64_t records = chunks.length / kChunkRecord;
  size_t k = 0;
  for (; k < count; k++) {
    const uint8_t* r = regions.data + k * kRegionRecord;
    const uint64_t first = Load64(r + 16);
    const uint64_t n = Load64(r + 24);
    if (first > records || n > records - first) break;
    uint64_t stored = 0;
    uint64_t zeros = 0;
    for (const uint8_t *p = chunks.data + first * kChunkRecord, *e = p + n * kChunkRecord; p < e; p += kChunkRecord) {
      if (Load16(p + 12) & zero_flag) zeros++;
      else stored += Load32(p + 8);
    }
    // Sums past 2^53 - 1 are refused by the portable code (region-totals.ts): stop there too.
    if (stored > 0x1FFFFFFFFFFFFFull || stored != Load64(r + 32) || zeros != Load64(r + 40)) break;
  }
  return Napi::Number::New(env, static_cast<double>(k));
}

}  // namespace crimg
