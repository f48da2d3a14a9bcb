// The addon's JS functions, each defined in the file named beside it;
// addon.cc puts them on the exports object (native-mmap/index.ts types them).
#ifndef CRIMG_BINDINGS_H_
#define CRIMG_BINDINGS_H_

#include <napi.h>

namespace crimg {

// mmap_js.cc: the address space (mmap, mprotect, madvise, munmap).
Napi::Value PageSize(const Napi::CallbackInfo& info);
Napi::Value MapFile(const Napi::CallbackInfo& info);
Napi::Value MapAnonymous(const Napi::CallbackInfo& info);
Napi::Value Reserve(const Napi::CallbackInfo& info);
Napi::Value Unmap(const Napi::CallbackInfo& info);
Napi::Value Protect(const Napi::CallbackInfo& info);
Napi::Value Advise(const Napi::CallbackInfo& info);
Napi::Value AddressOf(const Napi::CallbackInfo& info);
Napi::Value PlaceRuns(const Napi::CallbackInfo& info);
Napi::Value View(const Napi::CallbackInfo& info);

// codec_js.cc: chunk scan and hashes, AEAD seal, deflate batches.
Napi::Value ScanChunksJs(const Napi::CallbackInfo& info);
Napi::Value Xxh64Js(const Napi::CallbackInfo& info);
Napi::Value HashChunksJs(const Napi::CallbackInfo& info);
Napi::Value Xxh64InitJs(const Napi::CallbackInfo& info);
Napi::Value Xxh64UpdateJs(const Napi::CallbackInfo& info);
Napi::Value Xxh64DigestJs(const Napi::CallbackInfo& info);
Napi::Value AeadSealJs(const Napi::CallbackInfo& info);
Napi::Value DeflateBatchJs(const Napi::CallbackInfo& info);
// chunk_decode_js.cc: one chunk through the native decoder (chunk_decode.h).
Napi::Value DecodeChunkJs(const Napi::CallbackInfo& info);

// region_check_js.cc: section 8.1's record checks and region totals, fast engine.
Napi::Value CheckRegionRecordsJs(const Napi::CallbackInfo& info);
Napi::Value CheckRegionTotalsJs(const Napi::CallbackInfo& info);

// zstd_js.cc: zstd encoding of chunks (zstd_encode.h).
Napi::Value ZstdCompressJs(const Napi::CallbackInfo& info);
Napi::Value ZstdBatchJs(const Napi::CallbackInfo& info);

// piece_js.cc: whole pieces of a region encoded in one pool job each.
Napi::Value ZstdPieceJs(const Napi::CallbackInfo& info);
Napi::Value ZstdFilePieceJs(const Napi::CallbackInfo& info);
Napi::Value DeflatePieceJs(const Napi::CallbackInfo& info);
Napi::Value DeflateFilePieceJs(const Napi::CallbackInfo& info);
Napi::Value RawPieceJs(const Napi::CallbackInfo& info);
Napi::Value RawFilePieceJs(const Napi::CallbackInfo& info);

// uffd_js.cc: lazy restore through userfaultfd (uffd.h).
Napi::Value LazyStart(const Napi::CallbackInfo& info);
Napi::Value LazyStop(const Napi::CallbackInfo& info);
Napi::Value LazyClose(const Napi::CallbackInfo& info);
Napi::Value LazyStatsJs(const Napi::CallbackInfo& info);
Napi::Value LazyProfile(const Napi::CallbackInfo& info);
Napi::Value LazyFailureJs(const Napi::CallbackInfo& info);

// batch_decode_js.cc: many chunks decoded on native threads, into place or dropped.
Napi::Value DecodeBatchJs(const Napi::CallbackInfo& info);

// write_back.cc: sync_file_range write-back hints.
Napi::Value WriteBack(const Napi::CallbackInfo& info);

// track_writes.cc: another process's writes, by asynchronous write protection.
Napi::Value TrackWritesOpen(const Napi::CallbackInfo& info);
Napi::Value TrackWritesProtect(const Napi::CallbackInfo& info);
Napi::Value TrackWritesScan(const Napi::CallbackInfo& info);
Napi::Value CloseFd(const Napi::CallbackInfo& info);

}  // namespace crimg

#endif  // CRIMG_BINDINGS_H_
