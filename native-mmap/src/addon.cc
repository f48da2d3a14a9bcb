// The crimg_mmap module: every JS function of the addon, in one list. Keep
// it in step with the NativeMmap interface of native-mmap/index.ts, which
// refuses a build lacking any of them or with another kAbiVersion.
#include <napi.h>

#include "bindings.h"
#include "buffers.h"

namespace crimg {
namespace {

// The bindings' meaning, as a number: bump it whenever a binding's meaning
// changes (arguments, numbering, result) while its name stays, and set
// ABI_VERSION in native-mmap/index.ts to match. A stale build keeps every
// name, so only this number tells it apart. 2: aeadSeal takes the format's
// cipher ids 1/2 (1 had 0/1).
constexpr int kAbiVersion = 2;

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitWindows(env);
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("mapFile", Napi::Function::New(env, MapFile, "mapFile"));
  exports.Set("mapAnonymous",
              Napi::Function::New(env, MapAnonymous, "mapAnonymous"));
  exports.Set("reserve", Napi::Function::New(env, Reserve, "reserve"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  exports.Set("protect", Napi::Function::New(env, Protect, "protect"));
  exports.Set("advise", Napi::Function::New(env, Advise, "advise"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  exports.Set("placeRuns", Napi::Function::New(env, PlaceRuns, "placeRuns"));
  exports.Set("view", Napi::Function::New(env, View, "view"));
  exports.Set("scanChunks", Napi::Function::New(env, ScanChunksJs, "scanChunks"));
  exports.Set("xxh64", Napi::Function::New(env, Xxh64Js, "xxh64"));
  exports.Set("hashChunks", Napi::Function::New(env, HashChunksJs, "hashChunks"));
  exports.Set("xxh64Init", Napi::Function::New(env, Xxh64InitJs, "xxh64Init"));
  exports.Set("xxh64Update", Napi::Function::New(env, Xxh64UpdateJs, "xxh64Update"));
  exports.Set("xxh64Digest", Napi::Function::New(env, Xxh64DigestJs, "xxh64Digest"));
  exports.Set("checkRegionRecords", Napi::Function::New(env, CheckRegionRecordsJs, "checkRegionRecords"));
  exports.Set("checkRegionTotals", Napi::Function::New(env, CheckRegionTotalsJs, "checkRegionTotals"));
  exports.Set("aeadSeal", Napi::Function::New(env, AeadSealJs, "aeadSeal"));
  exports.Set("writeBack", Napi::Function::New(env, WriteBack, "writeBack"));
  exports.Set("deflateBatch", Napi::Function::New(env, DeflateBatchJs, "deflateBatch"));
  exports.Set("decodeChunk", Napi::Function::New(env, DecodeChunkJs, "decodeChunk"));
  exports.Set("zstdCompress", Napi::Function::New(env, ZstdCompressJs, "zstdCompress"));
  exports.Set("zstdBatch", Napi::Function::New(env, ZstdBatchJs, "zstdBatch"));
  exports.Set("zstdPiece", Napi::Function::New(env, ZstdPieceJs, "zstdPiece"));
  exports.Set("zstdFilePiece", Napi::Function::New(env, ZstdFilePieceJs, "zstdFilePiece"));
  exports.Set("deflatePiece", Napi::Function::New(env, DeflatePieceJs, "deflatePiece"));
  exports.Set("deflateFilePiece", Napi::Function::New(env, DeflateFilePieceJs, "deflateFilePiece"));
  exports.Set("rawPiece", Napi::Function::New(env, RawPieceJs, "rawPiece"));
  exports.Set("rawFilePiece", Napi::Function::New(env, RawFilePieceJs, "rawFilePiece"));
  exports.Set("decodeBatch", Napi::Function::New(env, DecodeBatchJs, "decodeBatch"));
  exports.Set("lazyStart", Napi::Function::New(env, LazyStart, "lazyStart"));
  exports.Set("lazyStop", Napi::Function::New(env, LazyStop, "lazyStop"));
  exports.Set("lazyClose", Napi::Function::New(env, LazyClose, "lazyClose"));
  exports.Set("lazyStats", Napi::Function::New(env, LazyStatsJs, "lazyStats"));
  exports.Set("lazyProfile", Napi::Function::New(env, LazyProfile, "lazyProfile"));
  exports.Set("lazyFailure", Napi::Function::New(env, LazyFailureJs, "lazyFailure"));
  exports.Set("trackWritesOpen", Napi::Function::New(env, TrackWritesOpen, "trackWritesOpen"));
  exports.Set("trackWritesProtect", Napi::Function::New(env, TrackWritesProtect, "trackWritesProtect"));
  exports.Set("trackWritesScan", Napi::Function::New(env, TrackWritesScan, "trackWritesScan"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  // Whether view() buffers escape V8's external-memory accounting (see
  // buffers.h); informational.
  exports.Set("unaccountedViews",
              Napi::Boolean::New(env, UnaccountedViews(env)));
  return exports;
}

}  // namespace
}  // namespace crimg

// NODE_API_MODULE pastes the name into an identifier, so it must be unqualified.
static Napi::Object InitCrimgMmap(Napi::Env env, Napi::Object exports) {
  return crimg::Init(env, exports);
}
NODE_API_MODULE(crimg_mmap, InitCrimgMmap)
