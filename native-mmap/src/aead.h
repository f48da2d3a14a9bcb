// AEAD sealing through Node's OpenSSL (see aead.cc).
#ifndef CRIMG_AEAD_H_
#define CRIMG_AEAD_H_

#include <stddef.h>
#include <stdint.h>

namespace crimg {

// The format's cipher ids (spec/FORMAT.md section 7, format/constants.ts CIPHERS).
constexpr int kCipherAes256Gcm = 1;
constexpr int kCipherChacha20Poly1305 = 2;

// Seals `plain` with cipher id 1 (AES-256-GCM) or 2 (ChaCha20-Poly1305), a
// 32-byte key and a 12-byte nonce: writes ciphertext (plain_len bytes) then the
// 16-byte tag to `out`. Returns nullptr, or what failed (no key material in it).
const char* AeadSeal(int cipher_id, const uint8_t* key, const uint8_t* nonce,
                     const uint8_t* aad, size_t aad_len, const uint8_t* plain,
                     size_t plain_len, uint8_t* out);

}  // namespace crimg

#endif  // CRIMG_AEAD_H_
