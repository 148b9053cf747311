// SHA-256 (FIPS 180-4): the model file checksum kind 1, written by earlier releases and still read
// (a header of the wasi_gpu::forest library's own, not installed; the guest's receipts use it too).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace wasi_gpu::forest {

/// Incremental SHA-256, so the model writer can hash while it serializes.
class Sha256 {
public:
    Sha256();
    /// Feeds `len` bytes.
    void update(const void* data, std::size_t len);
    /// Finishes and returns the 32-byte digest; the object must not be reused.
    std::array<std::uint8_t, 32> finish();
    /// One-shot digest of a byte range.
    static std::array<std::uint8_t, 32> digest(const void* data, std::size_t len);

private:
    void block(const std::uint8_t* p);
    std::array<std::uint32_t, 8> h_;
    std::array<std::uint8_t, 64> buf_{};
    std::size_t buf_len_ = 0;
    std::uint64_t total_ = 0;
};

/// Lower-case hex of a digest, as in `model_checksum` (`sha256:<hex>`).
std::string to_hex(const std::array<std::uint8_t, 32>& digest);

}  // namespace wasi_gpu::forest
