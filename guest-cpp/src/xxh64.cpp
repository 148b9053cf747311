#include "xxh64.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace wasi_gpu::forest {
namespace {

constexpr std::uint64_t P1 = 0x9E3779B185EBCA87ull;
constexpr std::uint64_t P2 = 0xC2B2AE3D27D4EB4Full;
constexpr std::uint64_t P3 = 0x165667B19E3779F9ull;
constexpr std::uint64_t P4 = 0x85EBCA77C2B2AE63ull;
constexpr std::uint64_t P5 = 0x27D4EB2F165667C5ull;

std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/// Little-endian loads (WebAssembly is little-endian; memcpy keeps them unaligned-safe).
std::uint64_t read64(const std::uint8_t* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
std::uint32_t read32(const std::uint8_t* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

std::uint64_t round(std::uint64_t acc, std::uint64_t lane) {
    acc += lane * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

std::uint64_t merge(std::uint64_t acc, std::uint64_t v) {
    acc ^= round(0, v);
    return acc * P1 + P4;
}

/// Runs the four lanes over whole 32-byte stripes from `p`; returns the bytes consumed.
std::size_t stripes(std::uint64_t* v, const std::uint8_t* p, std::size_t len) {
    std::size_t done = 0;
    for (; len - done >= 32; done += 32) {
        v[0] = round(v[0], read64(p + done));
        v[1] = round(v[1], read64(p + done + 8));
        v[2] = round(v[2], read64(p + done + 16));
        v[3] = round(v[3], read64(p + done + 24));
    }
    return done;
}

}  // namespace

void Xxh64::update(const void* data, std::size_t len) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    total_ += len;
    if (buf_len_ > 0) {
        const std::size_t take = std::min(len, sizeof buf_ - buf_len_);
        std::memcpy(buf_ + buf_len_, p, take);
        buf_len_ += take, p += take, len -= take;
        if (buf_len_ < sizeof buf_) return;
        stripes(v_, buf_, sizeof buf_);
        buf_len_ = 0;
    }
    const std::size_t done = stripes(v_, p, len);
    std::memcpy(buf_, p + done, len - done);
    buf_len_ = len - done;
}

std::uint64_t Xxh64::digest() const {
    std::uint64_t h;
    if (total_ >= 32) {
        h = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
        for (std::uint64_t v : v_) h = merge(h, v);
    } else {
        h = P5;
    }
    h += total_;
    const std::uint8_t* p = buf_;
    const std::uint8_t* const end = buf_ + buf_len_;
    while (end - p >= 8) {
        h ^= round(0, read64(p));
        h = rotl(h, 27) * P1 + P4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= static_cast<std::uint64_t>(read32(p)) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= static_cast<std::uint64_t>(*p) * P5;
        h = rotl(h, 11) * P1;
        ++p;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

std::uint64_t xxh64(const void* data, std::size_t len) {
    Xxh64 h;
    h.update(data, len);
    return h.digest();
}

std::string xxh64_name(std::uint64_t sum) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "xxh64:%016llx", static_cast<unsigned long long>(sum));
    return buf;
}

}  // namespace wasi_gpu::forest
