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
        "src/write_back.cc",
        "src/scan.cc",
        "src/aead.cc",
        "src/deflate.cc"
      ],
      # node-addon-api's "except" flavour: C++ exceptions on, so a JS exception
      # raised while reading an argument (say a throwing getter on opts)
      # unwinds cleanly instead of needing a status check after every call.
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fvisibility=hidden"]
    }
  ]
}
