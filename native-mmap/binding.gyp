# Builds crimg_mmap.node, the native restore shim's low layer (Linux only:
# MAP_FIXED_NOREPLACE, MAP_POPULATE and the madvise set are Linux API).
# Run through native-mmap/install.mjs, which tolerates a failed build except in
# CI or with CRIMG_REQUIRE_NATIVE=1.
{
  "targets": [
    {
      "target_name": "crimg_mmap",
      "sources": [
        "src/addon.cc",
        "src/args.cc",
        "src/errors.cc",
        "src/address_space.cc",
        "src/placement.cc",
        "src/buffers.cc",
        "src/views.cc",
        "src/mmap_js.cc",
        "src/codec_js.cc",
        "src/region_check_js.cc",
        "src/write_back.cc",
        "src/scan.cc",
        "src/aead.cc",
        "src/deflate.cc",
        "src/chunk_decode.cc",
        "src/chunk_decode_js.cc",
        "src/zstd_encode.cc",
        "src/zstd_js.cc",
        "src/encode_common.cc",
        "src/piece_js.cc",
        "src/batch_decode.cc",
        "src/batch_decode_js.cc",
        "src/provision.cc",
        "src/uffd.cc",
        "src/uffd_open.cc",
        "src/uffd_threads.cc",
        "src/uffd_spans.cc",
        "src/uffd_js.cc",
        "src/track_writes.cc"
      ],
      # node-addon-api's "except" flavour: C++ exceptions on, so a JS exception
      # raised while reading an argument (say a throwing getter on opts)
      # unwinds cleanly instead of needing a status check after every call.
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
        "zstd"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fvisibility=hidden"]
    },
    # zstd 1.5.7's library, vendored unmodified in deps/zstd (see its VERSION):
    # codec id 2 (spec/FORMAT.md section 6.2), compressed on the encoder pool
    # and decoded by src/chunk_decode.cc on any thread. Single-threaded (each
    # crimg thread has its own context), no legacy formats, no dictionary
    # builder; symbols hidden so that nothing clashes with the host process.
    {
      "target_name": "zstd",
      "type": "static_library",
      # zstd.h marks its API visibility("default") unless told otherwise: the
      # empty ZSTD*_VISIBLE keep it out of the addon's dynamic symbols (so no
      # other zstd in the process, e.g. a newer Node's, can interpose).
      "defines": ["ZSTD_LEGACY_SUPPORT=0", "ZSTD_NO_TRACE", "ZSTDLIB_VISIBLE=", "ZSTDERRORLIB_VISIBLE=", "ZDICTLIB_VISIBLE="],
      "direct_dependent_settings": {
        "defines": ["ZSTDLIB_VISIBLE=", "ZSTDERRORLIB_VISIBLE="]
      },
      "cflags": ["-O3", "-fvisibility=hidden", "-fPIC"],
      "sources": [
        "deps/zstd/lib/common/debug.c",
        "deps/zstd/lib/common/entropy_common.c",
        "deps/zstd/lib/common/error_private.c",
        "deps/zstd/lib/common/fse_decompress.c",
        "deps/zstd/lib/common/pool.c",
        "deps/zstd/lib/common/threading.c",
        "deps/zstd/lib/common/xxhash.c",
        "deps/zstd/lib/common/zstd_common.c",
        "deps/zstd/lib/compress/fse_compress.c",
        "deps/zstd/lib/compress/hist.c",
        "deps/zstd/lib/compress/huf_compress.c",
        "deps/zstd/lib/compress/zstd_compress.c",
        "deps/zstd/lib/compress/zstd_compress_literals.c",
        "deps/zstd/lib/compress/zstd_compress_sequences.c",
        "deps/zstd/lib/compress/zstd_compress_superblock.c",
        "deps/zstd/lib/compress/zstd_double_fast.c",
        "deps/zstd/lib/compress/zstd_fast.c",
        "deps/zstd/lib/compress/zstd_lazy.c",
        "deps/zstd/lib/compress/zstd_ldm.c",
        "deps/zstd/lib/compress/zstd_opt.c",
        "deps/zstd/lib/compress/zstd_preSplit.c",
        "deps/zstd/lib/decompress/huf_decompress.c",
        "deps/zstd/lib/decompress/huf_decompress_amd64.S",
        "deps/zstd/lib/decompress/zstd_ddict.c",
        "deps/zstd/lib/decompress/zstd_decompress.c",
        "deps/zstd/lib/decompress/zstd_decompress_block.c"
      ]
    }
  ]
}
