// Device transfers in bounded pieces: every buffer.write and buffer.read of the C++ guest
// goes through write_chunked / read_chunked, so no single transfer exceeds the piece size
// (docs/guests.md, "Chunked transfers"; the Rust guest does the same in gpu.rs).
#pragma once

#include <algorithm>
#include <cstdint>

#include "wasi_gpu.hpp"

namespace wasi_gpu::forest {

/// Largest piece moved by one buffer.write or buffer.read: 16 MiB, the same in both guests.
/// Also the block size of the .npy reader.
constexpr std::uint64_t TRANSFER_CHUNK_BYTES = std::uint64_t(16) << 20;
/// The smallest piece the guest shrinks to when the host refuses transfers as too large.
constexpr std::uint64_t TRANSFER_MIN_BYTES = 4096;

namespace detail {
/// The current piece size; 0 until the first transfer asks the device.
inline std::uint64_t& transfer_piece_state() {
    static std::uint64_t piece = 0;
    return piece;
}
}  // namespace detail

/// Bytes per transfer: min(TRANSFER_CHUNK_BYTES, info().max-buffer-bytes) in whole 4-byte
/// words, and less once the host refused a piece with `limit-exceeded` (its --max-transfer,
/// which device-info does not report).
inline std::uint64_t transfer_piece() {
    std::uint64_t& piece = detail::transfer_piece_state();
    if (piece == 0) {
        const std::uint64_t most = std::min<std::uint64_t>(TRANSFER_CHUNK_BYTES, wasi_gpu::info().max_buffer_bytes);
        piece = std::max<std::uint64_t>(most & ~std::uint64_t(3), 4);
    }
    return piece;
}

/// Runs `op(done, n)` for consecutive pieces of `bytes` bytes. A piece refused with
/// `limit-exceeded` (the host checks a transfer's length before it moves a byte) is
/// retried at half the size, and that size is kept for every later transfer; below
/// TRANSFER_MIN_BYTES the host's error is returned.
template <class Op>
wasi_gpu::Result<void> in_pieces(std::uint64_t bytes, Op op) {
    std::uint64_t done = 0;
    while (done < bytes) {
        const std::uint64_t n = std::min(transfer_piece(), bytes - done);
        auto r = op(done, n);
        if (!r) {
            const std::uint64_t half = (n / 2) & ~std::uint64_t(3);
            if (r.error().kind != wasi_gpu::ErrorKind::LimitExceeded || half < TRANSFER_MIN_BYTES) return r;
            detail::transfer_piece_state() = half;
            continue;
        }
        done += n;
    }
    return {};
}

/// Writes `bytes` bytes from `data` at byte `offset` of `buf`, in pieces (no copy of `data`).
inline wasi_gpu::Result<void> write_chunked(const wasi_gpu::Buffer& buf, std::uint64_t offset, const void* data,
                                            std::uint64_t bytes) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    return in_pieces(bytes, [&](std::uint64_t done, std::uint64_t n) {
        return buf.write(offset + done, p + done, static_cast<std::size_t>(n));
    });
}

/// Reads `bytes` bytes at byte `offset` of `buf` into `dst`, in pieces (each piece passes
/// through one list of at most the piece size).
inline wasi_gpu::Result<void> read_chunked(const wasi_gpu::Buffer& buf, std::uint64_t offset, void* dst,
                                           std::uint64_t bytes) {
    auto* p = static_cast<std::uint8_t*>(dst);
    return in_pieces(bytes, [&](std::uint64_t done, std::uint64_t n) {
        return buf.read_into(offset + done, p + done, static_cast<std::size_t>(n));
    });
}

}  // namespace wasi_gpu::forest
