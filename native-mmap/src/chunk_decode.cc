// See chunk_decode.h. zlib and OpenSSL are the ones Node links and exports
// (as deflate.cc and aead.cc use them); zstd is compiled in from deps/zstd.
#include "chunk_decode.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <new>
#include <utility>

#include <openssl/evp.h>
#include <zlib.h>

#define ZSTD_STATIC_LINKING_ONLY
#include "../deps/zstd/lib/zstd.h"
#include "../deps/zstd/lib/zstd_errors.h"

#include "aead.h"
#include "scan.h"

namespace crimg {
namespace {

constexpr uint32_t kMaxPlain = 16u * 1024 * 1024;  // LIMITS.maxChunkSize
constexpr uint32_t kTag = kAeadTag;

ChunkResult Fail(ChunkStatus s, const ChunkRecord& rec, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

ChunkResult Fail(ChunkStatus s, const ChunkRecord& rec, const char* fmt, ...) {
  ChunkResult r;
  r.status = s;
  int n = snprintf(r.message, sizeof r.message, "chunk %llu: ", static_cast<unsigned long long>(rec.number));
  if (n < 0) n = 0;
  if (static_cast<size_t>(n) < sizeof r.message) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.message + n, sizeof r.message - static_cast<size_t>(n), fmt, ap);
    va_end(ap);
  }
  return r;
}

// Opens ciphertext || tag into `out` (ct_len bytes). 1 verified, 0 tag
// mismatch, -1 library failure.
int AeadOpen(int cipher_id, const uint8_t* key, const uint8_t* nonce, const uint8_t* aad,
             const uint8_t* ct, size_t ct_len, const uint8_t* tag, uint8_t* out) {
  // Fetched once (thread-safe static initialisation), as aead.cc does.
  static EVP_CIPHER* const kAes = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static EVP_CIPHER* const kChacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  const EVP_CIPHER* cipher = cipher_id == 1 ? kAes : kChacha;
  if (cipher == nullptr) return -1;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return -1;
  int result = -1;
  int n = 0;
  if (EVP_DecryptInit_ex(ctx, cipher, nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx, nullptr, nullptr, key, nonce) == 1 &&
      EVP_DecryptUpdate(ctx, nullptr, &n, aad, static_cast<int>(kChunkAadLength)) == 1 &&
      (ct_len == 0 || EVP_DecryptUpdate(ctx, out, &n, ct, static_cast<int>(ct_len)) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTag), const_cast<uint8_t*>(tag)) == 1) {
    uint8_t end[16];
    result = EVP_DecryptFinal_ex(ctx, ct_len > 0 ? out + n : end, &n) == 1 ? 1 : 0;
  }
  EVP_CIPHER_CTX_free(ctx);
  return result;
}

}  // namespace

const char* ChunkStatusCode(ChunkStatus s) {
  switch (s) {
    case ChunkStatus::kOk: return "OK";
    case ChunkStatus::kCorruptIndex: return "CORRUPT_INDEX";
    case ChunkStatus::kCorruptChunk: return "CORRUPT_CHUNK";
    case ChunkStatus::kAuthFailed: return "AUTH_FAILED";
    case ChunkStatus::kUnsupportedFeature: return "UNSUPPORTED_FEATURE";
    case ChunkStatus::kInvalidArgument: return "INVALID_ARGUMENT";
    case ChunkStatus::kIoError: return "IO_ERROR";
  }
  return "IO_ERROR";
}

const char* ChunkFormProblem(uint16_t flags, uint32_t stored_length, uint32_t plain_length,
                             int codec, int cipher, uint64_t checksum) {
  const uint16_t known = kChunkZero | kChunkRaw | kChunkEncoded | kChunkEncrypted;
  if ((flags & ~known) != 0) return "chunk flags have reserved bits set";
  const uint16_t form = flags & (kChunkZero | kChunkRaw | kChunkEncoded);
  if (form != kChunkZero && form != kChunkRaw && form != kChunkEncoded) {
    return "chunk flags must have exactly one of ZERO, RAW, ENCODED";
  }
  const bool encrypted = (flags & kChunkEncrypted) != 0;
  if (form == kChunkZero) {
    if (encrypted) return "a zero chunk must not be ENCRYPTED";
    if (stored_length != 0) return "a zero chunk must have stored length 0";
    if (checksum != 0) return "a zero chunk must have checksum 0";
    return nullptr;
  }
  if (encrypted != (cipher != 0)) {
    return encrypted ? "chunk is ENCRYPTED in an image without cipher"
                     : "chunk is not ENCRYPTED in an image with a cipher";
  }
  const uint64_t t = cipher != 0 ? kTag : 0;
  if (form == kChunkRaw) {
    return stored_length != plain_length + t ? "RAW chunk's stored length is not its plain length (plus the tag)" : nullptr;
  }
  if (codec == kCodecNone) return "ENCODED chunk in an image without codec";
  if (stored_length <= t || stored_length >= plain_length + t) {
    return "ENCODED chunk's stored length is not between the tag length and the plain length (plus the tag)";
  }
  return nullptr;
}

ChunkDecoder::ChunkDecoder() = default;

ChunkDecoder::~ChunkDecoder() { Release(); }

ChunkDecoder::ChunkDecoder(ChunkDecoder&& other) noexcept
    : inflate_(std::exchange(other.inflate_, nullptr)),
      zstd_(std::exchange(other.zstd_, nullptr)),
      scratch_(std::move(other.scratch_)) {}

ChunkDecoder& ChunkDecoder::operator=(ChunkDecoder&& other) noexcept {
  if (this != &other) {
    Release();
    inflate_ = std::exchange(other.inflate_, nullptr);
    zstd_ = std::exchange(other.zstd_, nullptr);
    scratch_ = std::move(other.scratch_);
  }
  return *this;
}

void ChunkDecoder::Release() {
  if (inflate_ != nullptr) {
    z_stream* z = static_cast<z_stream*>(inflate_);
    inflateEnd(z);
    delete z;
    inflate_ = nullptr;
  }
  if (zstd_ != nullptr) {
    ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(zstd_));
    zstd_ = nullptr;
  }
}

namespace {

// Raw DEFLATE of `src` into exactly `plain` bytes of `out` (spec section 6, id 1).
ChunkResult Inflate(z_stream* z, const ChunkRecord& rec, const uint8_t* src, size_t len, uint8_t* out) {
  if (inflateReset2(z, -15) != Z_OK) return Fail(ChunkStatus::kIoError, rec, "inflateReset2 failed");
  z->next_in = const_cast<Bytef*>(src);
  z->avail_in = static_cast<uInt>(len);
  z->next_out = out;
  z->avail_out = rec.plain_length;
  const int rc = inflate(z, Z_FINISH);
  const size_t produced = rec.plain_length - z->avail_out;
  if (rc == Z_STREAM_END) {
    if (z->avail_in != 0) {
      return Fail(ChunkStatus::kCorruptChunk, rec,
                  "deflate stream is followed by %u bytes in its chunk (a chunk is one complete stream and nothing else)",
                  z->avail_in);
    }
    if (produced != rec.plain_length) {
      return Fail(ChunkStatus::kCorruptChunk, rec, "deflate stream decodes to %zu bytes, expected %u", produced,
                  rec.plain_length);
    }
    return ChunkResult{};
  }
  if (rc == Z_DATA_ERROR) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "deflate stream does not decode (%s)",
                z->msg != nullptr ? z->msg : "invalid data");
  }
  if (rc == Z_MEM_ERROR) return Fail(ChunkStatus::kIoError, rec, "out of memory inflating");
  if (z->avail_out == 0) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "deflate stream decodes to more than the plain length of %u bytes",
                rec.plain_length);
  }
  return Fail(ChunkStatus::kCorruptChunk, rec, "deflate stream ends early, after %zu of %u bytes", produced,
              rec.plain_length);
}

// One zstd frame of `src` into exactly `plain` bytes of `out` (spec section 6.2).
ChunkResult Unzstd(ZSTD_DCtx* d, const ChunkImage& image, const ChunkRecord& rec, const uint8_t* src, size_t len,
                   uint8_t* out) {
  if (len >= 4) {
    const uint32_t magic = static_cast<uint32_t>(src[0]) | static_cast<uint32_t>(src[1]) << 8 |
                           static_cast<uint32_t>(src[2]) << 16 | static_cast<uint32_t>(src[3]) << 24;
    if ((magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) {
      return Fail(ChunkStatus::kCorruptChunk, rec, "zstd skippable frame (a chunk is one zstd frame and nothing else)");
    }
  }
  ZSTD_FrameHeader fh;
  const size_t h = ZSTD_getFrameHeader(&fh, src, len);
  if (ZSTD_isError(h)) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame header does not decode (%s)", ZSTD_getErrorName(h));
  }
  if (h != 0) return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame header is truncated (%zu bytes)", len);
  if (fh.dictID != 0) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame names dictionary %u (dictionaries are not allowed)",
                fh.dictID);
  }
  // Frame_Header_Descriptor bit 5 (RFC 8878 3.1.1.1.1): the window is the content size.
  if (fh.frameType != ZSTD_frame || len < 5 || (src[4] & 0x20) == 0) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame is not single-segment (its window must be its content size)");
  }
  if (fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame has no content size (required, the plain length %u)",
                rec.plain_length);
  }
  if (fh.frameContentSize != rec.plain_length) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame content size %llu is not the plain length %u",
                static_cast<unsigned long long>(fh.frameContentSize), rec.plain_length);
  }
  if (image.chunk_size != 0 && fh.windowSize > image.chunk_size) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame window size %llu is larger than the chunk size %u",
                static_cast<unsigned long long>(fh.windowSize), image.chunk_size);
  }
  const size_t frame = ZSTD_findFrameCompressedSize(src, len);
  if (ZSTD_isError(frame)) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame is truncated or malformed (%s)", ZSTD_getErrorName(frame));
  }
  if (frame != len) {
    return Fail(ChunkStatus::kCorruptChunk, rec,
                "zstd frame is followed by %zu bytes in its chunk (a chunk is one zstd frame and nothing else)",
                len - frame);
  }
  // RFC 8878 3.1.1.2.3: no block holds more than min(window, 128 KiB). libzstd's
  // one-shot decoder does not hold raw and RLE blocks to it (its streaming one
  // does), so a frame of one 256 KiB RLE block decoded here and nowhere else.
  // The block walk is bounded: ZSTD_findFrameCompressedSize checked it fits.
  const size_t block_max = std::min<size_t>(ZSTD_BLOCKSIZE_MAX, rec.plain_length);
  for (size_t at = fh.headerSize; at + 3 <= len;) {
    const uint32_t bh = static_cast<uint32_t>(src[at]) | static_cast<uint32_t>(src[at + 1]) << 8 |
                        static_cast<uint32_t>(src[at + 2]) << 16;
    if ((bh >> 3) > block_max) {
      return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame does not decode (a block is larger than the window)");
    }
    at += 3 + (((bh >> 1) & 3) == 1 ? 1 : (bh >> 3));
    if ((bh & 1) != 0) break;
  }
  const size_t got = ZSTD_decompressDCtx(d, out, rec.plain_length, src, len);
  if (ZSTD_isError(got)) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame does not decode (%s)", ZSTD_getErrorName(got));
  }
  if (got != rec.plain_length) {
    return Fail(ChunkStatus::kCorruptChunk, rec, "zstd frame decodes to %zu bytes, expected %u", got,
                rec.plain_length);
  }
  return ChunkResult{};
}

}  // namespace

ChunkResult ChunkDecoder::Decode(const ChunkImage& image, const ChunkRecord& rec, const uint8_t* stored,
                                 uint8_t* out, bool verify_checksum) {
  if (rec.plain_length == 0 || rec.plain_length > kMaxPlain || out == nullptr) {
    return Fail(ChunkStatus::kInvalidArgument, rec, "plain length %u is not 1 to 16 MiB, or no output buffer",
                rec.plain_length);
  }
  if (stored == nullptr && rec.stored_length != 0) {
    return Fail(ChunkStatus::kInvalidArgument, rec, "no stored bytes given for stored length %u", rec.stored_length);
  }
  if (const char* problem =
          ChunkFormProblem(rec.flags, rec.stored_length, rec.plain_length, image.codec, image.cipher, rec.checksum)) {
    memset(out, 0, rec.plain_length);
    return Fail(ChunkStatus::kCorruptIndex, rec, "%s; the chunk table is damaged, verify the image", problem);
  }
  if (rec.flags & kChunkZero) {
    memset(out, 0, rec.plain_length);
    return ChunkResult{};
  }
  const bool encoded = (rec.flags & kChunkEncoded) != 0;
  const bool encrypted = (rec.flags & kChunkEncrypted) != 0;
  if (verify_checksum && Xxh64(stored != nullptr ? stored : out, rec.stored_length, 0) != rec.checksum) {
    memset(out, 0, rec.plain_length);
    return Fail(ChunkStatus::kCorruptChunk, rec,
                "checksum of the stored bytes does not match the chunk table; re-copy the image from its source");
  }
  if (encoded && image.codec != kCodecDeflate && image.codec != kCodecZstd) {
    memset(out, 0, rec.plain_length);
    return Fail(ChunkStatus::kUnsupportedFeature, rec, "unknown codec id %d; the image was written by a newer crimg",
                image.codec);
  }
  if (encrypted && image.cipher != 1 && image.cipher != 2) {
    memset(out, 0, rec.plain_length);
    return Fail(ChunkStatus::kUnsupportedFeature, rec, "unknown cipher id %d; the image was written by a newer crimg",
                image.cipher);
  }
  if (encrypted && (image.data_key == nullptr || image.image_id == nullptr || image.header_hash == nullptr)) {
    memset(out, 0, rec.plain_length);
    return Fail(ChunkStatus::kInvalidArgument, rec, "an encrypted chunk needs the data key, image id and header hash");
  }

  const uint8_t* body = stored;
  size_t body_len = rec.stored_length;
  if (encrypted) {
    uint8_t nonce[12];
    uint8_t aad[kChunkAadLength];
    ChunkNonceAad(image.image_id, image.header_hash, rec.number, rec.region, rec.plain_length, rec.address, encoded,
                  rec.last, nonce, aad);
    body_len = rec.stored_length - kTag;
    uint8_t* dst = out;  // RAW: ciphertext is as long as the plain bytes
    if (encoded) {
      if (scratch_.size() < body_len) {
        try {
          scratch_.resize(body_len);
        } catch (const std::bad_alloc&) {
          memset(out, 0, rec.plain_length);
          return Fail(ChunkStatus::kIoError, rec, "out of memory for %zu bytes of scratch", body_len);
        }
      }
      dst = scratch_.data();
    }
    const int opened = AeadOpen(image.cipher, image.data_key, nonce, aad, stored, body_len, stored + body_len, dst);
    if (opened != 1) {
      memset(dst, 0, body_len);
      memset(out, 0, rec.plain_length);
      if (opened < 0) return Fail(ChunkStatus::kIoError, rec, "the cipher failed to start in this OpenSSL");
      return Fail(ChunkStatus::kAuthFailed, rec,
                  "authentication tag does not verify (tampered or moved bytes, or a wrong key)");
    }
    if (!encoded) return ChunkResult{};
    body = dst;
  }

  if (!encoded) {
    if (body != out) memmove(out, body, rec.plain_length);
    return ChunkResult{};
  }
  ChunkResult r;
  if (image.codec == kCodecDeflate) {
    if (inflate_ == nullptr) {
      z_stream* z = new (std::nothrow) z_stream;
      if (z == nullptr) {
        memset(out, 0, rec.plain_length);
        return Fail(ChunkStatus::kIoError, rec, "out of memory for an inflate stream");
      }
      memset(z, 0, sizeof *z);
      if (inflateInit2(z, -15) != Z_OK) {
        delete z;
        memset(out, 0, rec.plain_length);
        return Fail(ChunkStatus::kIoError, rec, "inflateInit2 failed");
      }
      inflate_ = z;
    }
    r = Inflate(static_cast<z_stream*>(inflate_), rec, body, body_len, out);
  } else {
    if (zstd_ == nullptr) {
      zstd_ = ZSTD_createDCtx();
      if (zstd_ == nullptr) {
        memset(out, 0, rec.plain_length);
        return Fail(ChunkStatus::kIoError, rec, "out of memory for a zstd context");
      }
    }
    r = Unzstd(static_cast<ZSTD_DCtx*>(zstd_), image, rec, body, body_len, out);
  }
  if (encrypted) memset(scratch_.data(), 0, body_len);
  if (r.status != ChunkStatus::kOk) memset(out, 0, rec.plain_length);
  return r;
}

}  // namespace crimg
