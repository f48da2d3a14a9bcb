// Decoding one stored chunk into its plain bytes, from C++ on any thread
// (spec/FORMAT.md sections 5.3, 6 and 7.3): the native reader's inner step,
// for copy restore and verify threads and for the lazy-restore fault handler.
// No N-API here: chunk_decode_js.cc is the JS binding tests use.
//
// Usage, one context per thread (a context is not shared between threads at
// the same time; distinct contexts never touch shared state):
//
//   crimg::ChunkDecoder dec;                         // per thread, reused
//   crimg::ChunkImage img{codec, cipher, chunk_size, data_key, image_id, header_hash};
//   crimg::ChunkRecord rec{number, region, address, last, plain_length,
//                          stored_length, flags, checksum};
//   crimg::ChunkResult r = dec.Decode(img, rec, stored, out);
//   if (r.status != crimg::ChunkStatus::kOk) { /* r.code(), r.message */ }
//
// `stored` points at the record's `stored_length` stored bytes (read from the
// file at the record's offset; the caller checks that the offset and length
// lie in the data area, section 5). `out` has room for `plain_length` bytes.
//
// Order, exactly as section 5.3: the record's form rules (flags and stored
// length: kCorruptIndex), XXH64 of the stored bytes (kCorruptChunk), the tag
// (kAuthFailed), the decoding (kCorruptChunk: raw DEFLATE must end exactly at
// the plain length with no byte after the stream; zstd must be one frame with
// the rules of section 6.2). A zero chunk memsets `out`.
//
// Guarantees: never writes outside out[0, plain_length); on any status other
// than kOk, out[0, plain_length) is zeroed (no partly decoded or
// unauthenticated plaintext is left behind); keys and plain bytes never appear
// in messages; no allocation per call once the context has decoded its first
// encrypted-and-encoded chunk of the largest size (its scratch buffer grows to
// the largest stored length seen).
#ifndef CRIMG_CHUNK_DECODE_H_
#define CRIMG_CHUNK_DECODE_H_

#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace crimg {

// Each status but kOk is the CrimgError code of the same name (format/errors.ts);
// ChunkStatusCode gives it as a string.
enum class ChunkStatus : int {
  kOk = 0,
  kCorruptIndex = 1,        // CORRUPT_INDEX: flags / stored length break section 5.3
  kCorruptChunk = 2,        // CORRUPT_CHUNK: checksum, or the stream does not decode to plain_length
  kAuthFailed = 3,          // AUTH_FAILED: the tag does not verify
  kUnsupportedFeature = 4,  // UNSUPPORTED_FEATURE: unknown codec or cipher id
  kInvalidArgument = 5,     // INVALID_ARGUMENT: caller misuse (null key with a cipher, plain_length 0 or > 16 MiB)
  kIoError = 6,             // IO_ERROR: out of memory or a library failing to start
};

// "CORRUPT_CHUNK" etc.; "OK" for kOk.
const char* ChunkStatusCode(ChunkStatus s);

// The format's codec ids (section 6).
constexpr int kCodecNone = 0;
constexpr int kCodecDeflate = 1;
constexpr int kCodecZstd = 2;

// Chunk flags (section 5.3).
constexpr uint16_t kChunkZero = 1;
constexpr uint16_t kChunkRaw = 2;
constexpr uint16_t kChunkEncoded = 4;
constexpr uint16_t kChunkEncrypted = 8;

// What every chunk of one image shares. Pointers are borrowed for the call.
struct ChunkImage {
  int codec = 0;            // header codec id: 0 none, 1 deflate, 2 zstd
  int cipher = 0;           // header cipher id: 0 none, 1 AES-256-GCM, 2 ChaCha20-Poly1305
  uint32_t chunk_size = 0;  // header chunk size (bounds a zstd frame's window)
  const uint8_t* data_key = nullptr;     // Kd, 32 bytes, with a cipher (section 7.2)
  const uint8_t* image_id = nullptr;     // 16 bytes, with a cipher
  const uint8_t* header_hash = nullptr;  // H, 32 bytes, with a cipher
};

// One chunk-table record and where the chunk sits (the AAD fields of 7.3).
struct ChunkRecord {
  uint64_t number = 0;         // chunk number c (position in the chunk table)
  uint32_t region = 0;         // region number r
  uint64_t address = 0;        // address of the chunk's first byte
  bool last = false;           // the region's last chunk
  uint32_t plain_length = 0;   // 1 .. 16 MiB
  uint32_t stored_length = 0;  // from the record
  uint16_t flags = 0;          // from the record
  uint64_t checksum = 0;       // from the record (XXH64 of the stored bytes)
};

struct ChunkResult {
  ChunkStatus status = ChunkStatus::kOk;
  // "chunk 12: checksum of the stored bytes does not match the chunk table";
  // empty for kOk. Never names key or plain bytes.
  char message[200] = {0};
  const char* code() const { return ChunkStatusCode(status); }
};

// Per-thread decoding state: a zlib inflate stream, a zstd decompression
// context, and scratch for the opened bytes of encrypted encoded chunks.
// Movable, not copyable.
class ChunkDecoder {
 public:
  ChunkDecoder();
  ~ChunkDecoder();
  ChunkDecoder(ChunkDecoder&& other) noexcept;
  ChunkDecoder& operator=(ChunkDecoder&& other) noexcept;
  ChunkDecoder(const ChunkDecoder&) = delete;
  ChunkDecoder& operator=(const ChunkDecoder&) = delete;

  // Decodes the chunk into out[0, rec.plain_length). `stored` may be null
  // only when rec.stored_length is 0. `verify_checksum` false skips the XXH64
  // step (for a caller that checked it already, e.g. a batch hash).
  ChunkResult Decode(const ChunkImage& image, const ChunkRecord& rec, const uint8_t* stored,
                     uint8_t* out, bool verify_checksum = true);

 private:
  void Release();
  void* inflate_ = nullptr;  // z_stream*, made on first deflate chunk
  void* zstd_ = nullptr;     // ZSTD_DCtx*, made on first zstd chunk
  std::vector<uint8_t> scratch_;
};

// Stateless form check of section 5.3 (what Decode reports as kCorruptIndex):
// nullptr when the record is well formed, else the problem.
const char* ChunkFormProblem(uint16_t flags, uint32_t stored_length, uint32_t plain_length,
                             int codec, int cipher, uint64_t checksum);

}  // namespace crimg

#endif  // CRIMG_CHUNK_DECODE_H_
