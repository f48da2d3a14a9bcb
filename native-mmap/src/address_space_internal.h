// Helpers shared by address_space.cc and placement.cc; not part of the
// layer's interface.
#ifndef CRIMG_ADDRESS_SPACE_INTERNAL_H_
#define CRIMG_ADDRESS_SPACE_INTERNAL_H_

#include <sys/stat.h>

#include <cstdint>

namespace crimg {
namespace internal {

inline void* Ptr(uintptr_t address) { return reinterpret_cast<void*>(address); }
inline uintptr_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// "a directory", "a pipe", ...: what a file that cannot be mapped is.
inline const char* FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "a special file";
}

}  // namespace internal
}  // namespace crimg

#endif  // CRIMG_ADDRESS_SPACE_INTERNAL_H_
