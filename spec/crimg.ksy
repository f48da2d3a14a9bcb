meta:
  id: crimg
  title: crimg persisted process memory image, format 1.2
  file-extension: img
  license: MIT
  endian: le
  encoding: UTF-8
doc: |
  Byte layout of a crimg image (spec/FORMAT.md, normative; this description follows it and is
  checked against the reference reader by test/kaitai.test.ts on every valid and accepted
  vector of spec/vectors/v1; on each invalid vector of spec section 12 the test finds, from
  this parse alone, the rule the vector breaks).

  The layout only: the rules a reader checks, with their error codes and stages (open, read,
  verify), are spec section 12. Reserved fields (header `reserved1`, `reserved2`, chunk record
  `reserved`, region flag bits 2-15) are written zero and ignored when read.

  An image is read from its end: the footer (last 96 bytes) locates the chunk table and the
  region section (region table + string table). The header and validation block are at the
  start and always in clear text. With a cipher (header cipher_id != 0) the chunk table and
  the region section are sealed AEAD messages: they appear here as opaque byte blobs
  (`chunk_table_sealed`, `region_section_sealed`), and the chunks' stored bytes are ciphertext.

  Checksums are XXH64 (seed 0), which Kaitai cannot compute: they are exposed as 8 raw bytes
  (little-endian u64). 64-bit fields that may exceed 2^53 (feature bit sets, addresses and
  region lengths) are read as two u4 halves (type `u8_halves`: `lo`, `hi`), because some Kaitai
  targets (JavaScript) read u8 as a double. Offsets, counts and lengths are bounded by the file
  length and read as u8.
doc-ref: spec/FORMAT.md
seq:
  - id: header
    type: header
    doc: Section 3.
  - id: validation
    type: validation_block
    size: header.validation_size
    doc: Section 4. Starts at `header.header_size`.
instances:
  data_start:
    value: '(header.header_size + header.validation_size + header.page_size - 1) / header.page_size * header.page_size'
    doc: Section 5. `align(header size + validation size, page size)`; stored chunks lie from here.
  footer:
    pos: _io.size - 96
    type: footer
    doc: Section 8.2. The last 96 bytes.
  is_encrypted:
    value: header.cipher_id != cipher::none
  chunk_table:
    pos: footer.chunk_table_offset
    size: footer.chunk_table_length
    type: chunk_table
    if: not is_encrypted
    doc: Section 5.3, unencrypted images.
  chunk_table_sealed:
    pos: footer.chunk_table_offset
    size: footer.chunk_table_length
    if: is_encrypted
    doc: Section 7.4. Ciphertext of the chunk table then the 16-byte tag.
  region_section:
    pos: footer.region_section_offset
    size: footer.region_section_length
    type: region_section
    if: not is_encrypted
    doc: Section 8.1, unencrypted images.
  region_section_sealed:
    pos: footer.region_section_offset
    size: footer.region_section_length
    if: is_encrypted
    doc: Section 7.4. Ciphertext of region table + string table then the 16-byte tag.
types:
  u8_halves:
    doc: A u64 read as two u4 halves (value = hi * 2^32 + lo), exact in every target.
    seq:
      - id: lo
        type: u4
      - id: hi
        type: u4
  header:
    doc: Section 3. `header_size` bytes (128 in v1.0); the checksum is its last 8 bytes.
    seq:
      - id: magic
        contents: [0x89, 0x43, 0x52, 0x49, 0x0d, 0x0a, 0x1a, 0x0a]  # 0
      - id: major_version
        type: u2                                  # 8
      - id: minor_version
        type: u2                                  # 10
      - id: header_size
        type: u4                                  # 12
      - id: required_features
        type: u8_halves                           # 16; bit 0 CODEC, bit 1 CIPHER, bit 2 PARENT (section 8.3)
      - id: optional_features
        type: u8_halves                           # 24; bit 0 MAPPABLE, bit 1 SPARSE
      - id: page_size
        type: u4                                  # 32
      - id: chunk_size
        type: u4                                  # 36
      - id: image_id
        size: 16                                  # 40
      - id: created
        type: u8                                  # 56; ms since the epoch
      - id: validation_size
        type: u4                                  # 64
      - id: codec_id
        type: u1                                  # 68
        enum: codec
      - id: codec_level
        type: u1                                  # 69
      - id: cipher_id
        type: u1                                  # 70
        enum: cipher
      - id: kdf_id
        type: u1                                  # 71
        enum: kdf
      - id: scrypt_log2_n
        type: u1                                  # 72
      - id: scrypt_r
        type: u1                                  # 73
      - id: scrypt_p
        type: u1                                  # 74
      - id: reserved1
        size: 5                                   # 75
      - id: salt
        size: 16                                  # 80
      - id: key_check
        size: 16                                  # 96
      - id: reserved2
        size: 8                                   # 112
      - id: extension
        size: header_size - 128
        doc: Fields of a later minor version (a longer header); none in v1.0.
      - id: checksum
        size: 8                                   # header_size - 8: XXH64 of [0, header_size - 8)
  validation_block:
    doc: Section 4. Restore constraints and identity; readable without a key.
    seq:
      - id: magic
        contents: CRVB                            # 0
      - id: record_count
        type: u4                                  # 4
      - id: records
        type: validation_record                   # 8
        repeat: expr
        repeat-expr: record_count
    instances:
      checksum:
        pos: _io.size - 8
        size: 8
        doc: XXH64 of bytes [0, size - 8) of the block.
      records_end:
        value: _io.size - 8
        doc: The records end exactly here (section 4).
  validation_record:
    seq:
      - id: type
        type: u2                                  # 0
        enum: record_type
      - id: flags
        type: u2                                  # 2; bit 0 CRITICAL
      - id: payload_length
        type: u4                                  # 4
      - id: payload
        size: payload_length                      # 8
        type:
          switch-on: type
          cases:
            'record_type::producer_name': text_payload
            'record_type::producer_version': text_payload
            'record_type::architecture': text_payload
            'record_type::page_size': page_size_payload
            'record_type::label': label_payload
            'record_type::bitmap': bitmap_payload
            'record_type::metric': metric_payload
            'record_type::parent': parent_payload
      - id: padding
        size: (8 - payload_length % 8) % 8
        doc: Zero bytes up to a multiple of 8.
    instances:
      is_critical:
        value: (flags & 1) != 0
  text_payload:
    seq:
      - id: value
        type: str
        size-eos: true
  page_size_payload:
    seq:
      - id: value
        type: u4
  label_payload:
    seq:
      - id: key_length
        type: u2
      - id: key
        type: str
        size: key_length
      - id: value
        type: str
        size-eos: true
  bitmap_payload:
    doc: Bit i is bit (i mod 8) of byte (i div 8).
    seq:
      - id: key_length
        type: u2
      - id: key
        type: str
        size: key_length
      - id: bits
        size-eos: true
  metric_payload:
    seq:
      - id: key_length
        type: u2
      - id: key
        type: str
        size: key_length
      - id: value
        type: f8
  parent_payload:
    doc: |
      Section 8.3: the parent of a child image (record type 8, written CRITICAL, with the
      required feature PARENT). The child's IN_PARENT chunks hold the parent's bytes.
    seq:
      - id: parent_image_id
        size: 16                                  # 0; the parent's header image id
      - id: index_hash
        size: 32                                  # 16; SHA-256 of the parent's header, validation block, and bytes from its chunk table offset to its end
      - id: depth
        type: u4                                  # 48; 1 when the parent has no parent; at most 32 (section 9)
      - id: reserved
        type: u4                                  # 52; written zero, ignored
      - id: hint
        type: str
        size-eos: true                            # 56; where the parent was, relative to the child's directory (informational)
  footer:
    doc: Section 8.2.
    seq:
      - id: image_id
        size: 16                                  # 0; equals header.image_id
      - id: chunk_table_offset
        type: u8                                  # 16
      - id: chunk_count
        type: u8                                  # 24
      - id: chunk_table_length
        type: u8                                  # 32; 24 * chunk_count (+ 16 with a cipher)
      - id: region_section_offset
        type: u8                                  # 40
      - id: region_count
        type: u4                                  # 48
      - id: string_table_length
        type: u4                                  # 52
      - id: region_section_length
        type: u8                                  # 56; 64 * region_count + string_table_length (+ 16)
      - id: chunk_table_checksum
        size: 8                                   # 64; XXH64 of the stored chunk table
      - id: region_section_checksum
        size: 8                                   # 72; XXH64 of the stored region section
      - id: footer_checksum
        size: 8                                   # 80; XXH64 of footer bytes [0, 80)
      - id: end_magic
        contents: [0x89, 0x45, 0x4e, 0x44, 0x0d, 0x0a, 0x1a, 0x0a]  # 88
  chunk_table:
    doc: Section 5.3. Record i is chunk number i.
    seq:
      - id: records
        type: chunk_record
        repeat: expr
        repeat-expr: _root.footer.chunk_count
  chunk_record:
    seq:
      - id: offset
        type: u8                                  # 0; 0 for a zero chunk
      - id: stored_length
        type: u4                                  # 8; 0 for a zero chunk
      - id: flags
        type: u2                                  # 12
      - id: reserved
        type: u2                                  # 14
      - id: checksum
        size: 8                                   # 16; XXH64 of the stored bytes; zero for a zero chunk
    instances:
      is_zero:
        value: (flags & 1) != 0
      is_raw:
        value: (flags & 2) != 0
      is_encoded:
        value: (flags & 4) != 0
      is_encrypted:
        value: (flags & 8) != 0
      is_in_parent:
        value: (flags & 16) != 0
        doc: Section 8.3, a child image's chunk held by its parent (same address, same plain length); nothing stored.
      stored:
        io: _root._io
        pos: offset
        size: stored_length
        if: stored_length != 0
        doc: The stored bytes in the data area (raw, raw DEFLATE, one zstd frame, or ciphertext + tag).
  region_section:
    doc: Section 8.1. The region table, then the string table.
    seq:
      - id: regions
        type: region_record
        repeat: expr
        repeat-expr: _root.footer.region_count
      - id: string_table
        size: _root.footer.string_table_length
  region_record:
    seq:
      - id: address
        type: u8_halves                           # 0; page-aligned
      - id: length
        type: u8_halves                           # 8
      - id: first_chunk
        type: u8                                  # 16
      - id: chunk_count
        type: u8                                  # 24; 0 for a gap
      - id: stored_bytes
        type: u8                                  # 32
      - id: zero_chunks
        type: u8                                  # 40
      - id: name_offset
        type: u4                                  # 48; into the string table
      - id: name_length
        type: u4                                  # 52
      - id: prot
        type: u1                                  # 56; bit 0 read, 1 write, 2 execute
      - id: kind
        type: u1                                  # 57
        enum: region_kind
      - id: flags
        type: u2                                  # 58; bit 0 SHARED, bit 1 FILE_OFFSET (1.2); others ignored
      - id: file_page
        type: u4                                  # 60; with FILE_OFFSET the file offset in pages, else ignored
    instances:
      is_shared:
        value: (flags & 1) != 0
        doc: The mapping was shared (MAP_SHARED).
      has_file_offset:
        value: (flags & 2) != 0
        doc: |
          file_page holds the mapping's file offset (spec section 8.1, format 1.2): the offset
          in bytes of the region's first byte is file_page * header.page_size, up to 2^48
          (compute it in 64 bits: the product of two u4 overflows 32).
      name:
        io: _parent._io
        pos: _root.footer.region_count * 64 + name_offset
        size: name_length
        type: str
        doc: UTF-8, from the string table (which follows the region table in the same section).
enums:
  codec:
    0: none
    1: deflate
    2: zstd
  cipher:
    0: none
    1: aes_256_gcm
    2: chacha20_poly1305
  kdf:
    0: raw_key
    1: scrypt
  record_type:
    1: producer_name
    2: producer_version
    3: architecture
    4: page_size
    5: label
    6: bitmap
    7: metric
    8: parent
  region_kind:
    0: anonymous
    1: heap
    2: stack
    3: code
    4: metadata
    5: file
    6: gap
