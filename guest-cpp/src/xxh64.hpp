// XXH64 (seed 0), the model file's checksum kind 2 (docs/algorithm.md §10): the algorithm of
// xxHash's specification (doc/xxhash_spec.md in Cyan4973/xxHash), written out here so the
// guest needs no third-party code. The Rust guest uses the xxhash-rust crate; both write the
// same model bytes, which the parity tests compare.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace wasi_gpu::forest {

/// Incremental XXH64 (seed 0), so the model file is hashed as it is written or read.
class Xxh64 {
public:
    /// Feeds `len` bytes.
    void update(const void* data, std::size_t len);
    /// The hash of everything fed so far (more may be fed afterwards).
    std::uint64_t digest() const;

private:
    std::uint64_t v_[4] = {0x9E3779B185EBCA87ull + 0xC2B2AE3D27D4EB4Full, 0xC2B2AE3D27D4EB4Full, 0,
                           0 - 0x9E3779B185EBCA87ull};
    std::uint8_t buf_[32] = {};
    std::size_t buf_len_ = 0;
    std::uint64_t total_ = 0;
};

/// XXH64 of `len` bytes with seed 0.
std::uint64_t xxh64(const void* data, std::size_t len);

/// `xxh64:` and the 16 lower-case hex digits of `sum`, as reported in `model_checksum`.
std::string xxh64_name(std::uint64_t sum);

}  // namespace wasi_gpu::forest
