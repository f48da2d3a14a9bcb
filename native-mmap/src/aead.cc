// AEAD sealing for the image writer's node engine: AES-256-GCM and
// ChaCha20-Poly1305 through the OpenSSL that Node itself links and exports
// (the same library node:crypto uses, so the same bits). node:crypto costs
// about 10 us of object set-up per createCipheriv; a chunk of 16 KiB is sealed
// in about 4 us, so per-chunk sealing spent most of its time in set-up. Here a
// context is made, used and freed (which cleanses the key schedule) per call.
#include "aead.h"

#include <openssl/evp.h>

namespace crimg {

const char* AeadSeal(int cipher_id, const uint8_t* key, const uint8_t* nonce,
                     const uint8_t* aad, size_t aad_len, const uint8_t* plain,
                     size_t plain_len, uint8_t* out) {
  if (plain_len > 0x7fffffff || aad_len > 0x7fffffff) return "message too long";
  // OpenSSL 3 looks a cipher up by name on every init from EVP_aes_256_gcm();
  // fetched once here, it is not (thread-safe static initialisation).
  static EVP_CIPHER* const kAes = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static EVP_CIPHER* const kChacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  if (cipher_id != kCipherAes256Gcm && cipher_id != kCipherChacha20Poly1305) return "unknown cipher id";
  const EVP_CIPHER* cipher = cipher_id == kCipherAes256Gcm ? kAes : kChacha;
  if (cipher == nullptr) return "the cipher is not available in this OpenSSL";
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return "EVP_CIPHER_CTX_new failed";
  const char* failed = nullptr;
  int n = 0;
  if (EVP_EncryptInit_ex(ctx, cipher, nullptr, nullptr, nullptr) != 1) {
    failed = "EVP_EncryptInit_ex failed";
  } else if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) != 1) {
    failed = "setting the nonce length failed";
  } else if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, key, nonce) != 1) {
    failed = "setting key and nonce failed";
  } else if (aad_len > 0 &&
             EVP_EncryptUpdate(ctx, nullptr, &n, aad, static_cast<int>(aad_len)) != 1) {
    failed = "EVP_EncryptUpdate (associated data) failed";
  } else if (plain_len > 0 &&
             EVP_EncryptUpdate(ctx, out, &n, plain, static_cast<int>(plain_len)) != 1) {
    failed = "EVP_EncryptUpdate failed";
  } else if (EVP_EncryptFinal_ex(ctx, out + (plain_len > 0 ? n : 0), &n) != 1) {
    failed = "EVP_EncryptFinal_ex failed";
  } else if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + plain_len) != 1) {
    failed = "reading the tag failed";
  }
  EVP_CIPHER_CTX_free(ctx);
  return failed;
}

}  // namespace crimg
