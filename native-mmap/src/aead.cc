// AEAD sealing for the image writer's node engine: AES-256-GCM and
// ChaCha20-Poly1305 through the OpenSSL that Node itself links and exports
// (the same library node:crypto uses, so the same bits). node:crypto costs
// about 10 us of object set-up per createCipheriv; a chunk of 16 KiB is sealed
// in about 4 us, so per-chunk sealing spent most of its time in set-up. Here a
// context is made, used and freed (which cleanses the key schedule) per call.
#include "aead.h"

#include <string.h>

#include <openssl/evp.h>

namespace crimg {
namespace {

void PutLe(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

void ChunkNonceAad(const uint8_t* image_id, const uint8_t* header_hash, uint64_t number, uint32_t region,
                   uint32_t plain_length, uint64_t address, bool encoded, bool last, uint8_t nonce[12],
                   uint8_t aad[kChunkAadLength]) {
  memset(nonce, 0, 12);
  PutLe(nonce, number, 8);
  memcpy(aad, image_id, 16);
  memcpy(aad + 16, header_hash, 32);
  PutLe(aad + 48, number, 8);
  PutLe(aad + 56, region, 4);
  PutLe(aad + 60, plain_length, 4);
  PutLe(aad + 64, address, 8);
  aad[72] = encoded ? 1 : 0;
  aad[73] = last ? 1 : 0;
  aad[74] = aad[75] = 0;
}

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
