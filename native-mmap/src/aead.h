// AEAD sealing through Node's OpenSSL (see aead.cc).
#ifndef CRIMG_AEAD_H_
#define CRIMG_AEAD_H_

#include <stddef.h>
#include <stdint.h>

namespace crimg {

// The format's cipher ids (spec/FORMAT.md section 7, format/constants.ts CIPHERS).
constexpr int kCipherAes256Gcm = 1;
constexpr int kCipherChacha20Poly1305 = 2;

constexpr size_t kAeadTag = 16;        // after each sealed message's ciphertext
constexpr size_t kChunkAadLength = 76;  // spec/FORMAT.md section 7.3

// A chunk's nonce (u64 c || u32 0) and associated data (image id 16 || H 32 ||
// u64 c || u32 region || u32 plain length || u64 address || u8 encoded || u8
// last || u16 0), spec/FORMAT.md section 7.3, as codec/aad.ts makes them.
void ChunkNonceAad(const uint8_t* image_id, const uint8_t* header_hash, uint64_t number, uint32_t region,
                   uint32_t plain_length, uint64_t address, bool encoded, bool last, uint8_t nonce[12],
                   uint8_t aad[kChunkAadLength]);

// Seals `plain` with cipher id 1 (AES-256-GCM) or 2 (ChaCha20-Poly1305), a
// 32-byte key and a 12-byte nonce: writes ciphertext (plain_len bytes) then the
// 16-byte tag to `out`. Returns nullptr, or what failed (no key material in it).
const char* AeadSeal(int cipher_id, const uint8_t* key, const uint8_t* nonce,
                     const uint8_t* aad, size_t aad_len, const uint8_t* plain,
                     size_t plain_len, uint8_t* out);

}  // namespace crimg

#endif  // CRIMG_AEAD_H_
