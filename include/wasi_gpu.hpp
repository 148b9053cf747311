// wasi_gpu.hpp: a thin C++17 layer over the generated C API in wasi_gpu.h.
//
// Why it exists: the generated C API hands out raw resource handles that must be
// dropped by hand and reports errors through out-parameters that own heap strings.
// This header gives C++ teams a move-only RAII `Buffer`, typed kernel parameters and
// errors as values (`Result<T>`), with no exceptions and no RTTI required.
//
// Build: with CMake, `wasi_gpu_add_guest` (docs/cpp.md) does everything; by hand, compile and
// link include/wasi_gpu.c and include/wasi_gpu_component_type.o into the wasm32-wasi core
// module, then componentize it (`wasmtime-gpu-host componentize`; include/README.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "wasi_gpu.h"

// This layer is written for one version of wit/gpu.wit. A wasi_gpu.h generated from another
// (an older or newer copy found first on the include path, say) is refused here rather than
// left to fail at link time, or at run time with a missing import.
#define WASI_GPU_HPP_WIT_PACKAGE "wasi:gpu@0.1.0"
#if !defined(WASI_GPU_WIT_PACKAGE) || WASI_GPU_WIT_VERSION_MAJOR != 0 || WASI_GPU_WIT_VERSION_MINOR != 1 || \
    WASI_GPU_WIT_VERSION_PATCH != 0
#error \
    "wasi_gpu.hpp is for wasi:gpu@0.1.0, but the wasi_gpu.h it found records another WIT version (or none): use the wasi_gpu.h, wasi_gpu.c and wasi_gpu_component_type.o of the same release (`cargo xtask bindgen` regenerates them from wit/)"
#endif

namespace wasi_gpu {

// ---------------------------------------------------------------------------
// Errors as values
// ---------------------------------------------------------------------------

/// Wraps an error so `Expected<T, E>` can be built from it unambiguously.
template <class E>
class Unexpected {
public:
    explicit Unexpected(E error) : error_(std::move(error)) {}
    E& error() & { return error_; }
    E&& error() && { return std::move(error_); }

private:
    E error_;
};

/// A value of type `T` or an error of type `E` (a small `std::expected` for C++17).
/// Accessing the wrong alternative aborts: check `ok()` / `operator bool` first.
template <class T, class E>
class Expected {
public:
    Expected(T&& value) : ok_(true) { new (&value_) T(std::move(value)); }
    Expected(const T& value) : ok_(true) { new (&value_) T(value); }
    Expected(Unexpected<E> error) : ok_(false) { new (&error_) E(std::move(error).error()); }
    Expected(Expected&& other) noexcept : ok_(other.ok_) {
        if (ok_)
            new (&value_) T(std::move(other.value_));
        else
            new (&error_) E(std::move(other.error_));
    }
    Expected& operator=(Expected&& other) noexcept {
        if (this != &other) {
            destroy();
            ok_ = other.ok_;
            if (ok_)
                new (&value_) T(std::move(other.value_));
            else
                new (&error_) E(std::move(other.error_));
        }
        return *this;
    }
    Expected(const Expected&) = delete;
    Expected& operator=(const Expected&) = delete;
    ~Expected() { destroy(); }

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    T& value() & {
        check(ok_);
        return value_;
    }
    const T& value() const& {
        check(ok_);
        return value_;
    }
    T&& value() && {
        check(ok_);
        return std::move(value_);
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const E& error() const {
        check(!ok_);
        return error_;
    }

private:
    static void check(bool cond) {
        if (!cond) std::abort();
    }
    void destroy() {
        if (ok_)
            value_.~T();
        else
            error_.~E();
    }
    bool ok_;
    union {
        T value_;
        E error_;
    };
};

/// `Expected<void, E>`: success or an error.
template <class E>
class Expected<void, E> {
public:
    Expected() : ok_(true) {}
    Expected(Unexpected<E> error) : ok_(false), error_(std::move(error).error()) {}
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const E& error() const {
        if (ok_) std::abort();
        return error_;
    }

private:
    bool ok_;
    E error_{};
};

/// The cases of the WIT `error` variant.
enum class ErrorKind : std::uint8_t {
    OutOfMemory = WASI_GPU_COMPUTE_ERROR_OUT_OF_MEMORY,
    InvalidArgument = WASI_GPU_COMPUTE_ERROR_INVALID_ARGUMENT,
    LimitExceeded = WASI_GPU_COMPUTE_ERROR_LIMIT_EXCEEDED,
    KernelFailure = WASI_GPU_COMPUTE_ERROR_KERNEL_FAILURE,
    DeviceLost = WASI_GPU_COMPUTE_ERROR_DEVICE_LOST,
};

/// A device error: its WIT case and the host's message (which says what to change).
struct Error {
    ErrorKind kind = ErrorKind::KernelFailure;
    std::string message;

    /// The WIT case name, e.g. "invalid-argument".
    const char* kind_name() const {
        switch (kind) {
            case ErrorKind::OutOfMemory: return "out-of-memory";
            case ErrorKind::InvalidArgument: return "invalid-argument";
            case ErrorKind::LimitExceeded: return "limit-exceeded";
            case ErrorKind::KernelFailure: return "kernel-failure";
            case ErrorKind::DeviceLost: return "device-lost";
        }
        return "unknown";
    }
};

/// The result of every device call.
template <class T>
using Result = Expected<T, Error>;

namespace detail {

inline std::string take_string(wasi_gpu_string_t& s) {
    std::string out(reinterpret_cast<const char*>(s.ptr), s.len);
    return out;
}

/// Converts (and frees) a C error value.
inline Unexpected<Error> take_error(wasi_gpu_compute_error_t& e) {
    Error out;
    out.kind = static_cast<ErrorKind>(e.tag);
    switch (e.tag) {
        case WASI_GPU_COMPUTE_ERROR_OUT_OF_MEMORY: out.message = take_string(e.val.out_of_memory); break;
        case WASI_GPU_COMPUTE_ERROR_INVALID_ARGUMENT: out.message = take_string(e.val.invalid_argument); break;
        case WASI_GPU_COMPUTE_ERROR_LIMIT_EXCEEDED: out.message = take_string(e.val.limit_exceeded); break;
        case WASI_GPU_COMPUTE_ERROR_KERNEL_FAILURE: out.message = take_string(e.val.kernel_failure); break;
        case WASI_GPU_COMPUTE_ERROR_DEVICE_LOST: out.message = take_string(e.val.device_lost); break;
        default:
            out.kind = ErrorKind::KernelFailure;
            out.message = "unknown error case";
            break;
    }
    wasi_gpu_compute_error_free(&e);
    return Unexpected<Error>(std::move(out));
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Device
// ---------------------------------------------------------------------------

/// Which implementation runs the kernels.
enum class BackendKind : std::uint8_t {
    Cpu = WASI_GPU_COMPUTE_BACKEND_KIND_CPU,
    Wgpu = WASI_GPU_COMPUTE_BACKEND_KIND_WGPU,
    Cuda = WASI_GPU_COMPUTE_BACKEND_KIND_CUDA,
};

/// What the guest needs to size its work and to report where it ran.
struct DeviceInfo {
    std::string name;
    BackendKind backend = BackendKind::Cpu;
    std::uint64_t memory_bytes = 0;
    bool hardware = false;
    std::string driver;
    std::uint64_t max_buffer_bytes = 0;
};

/// The device this guest runs on.
inline DeviceInfo info() {
    wasi_gpu_compute_device_info_t raw;
    wasi_gpu_compute_info(&raw);
    DeviceInfo out;
    out.name = detail::take_string(raw.name);
    out.backend = static_cast<BackendKind>(raw.backend);
    out.memory_bytes = raw.memory_bytes;
    out.hardware = raw.hardware;
    out.driver = detail::take_string(raw.driver);
    out.max_buffer_bytes = raw.max_buffer_bytes;
    wasi_gpu_compute_device_info_free(&raw);
    return out;
}

/// Waits until every submitted kernel and copy has finished.
inline Result<void> synchronize() {
    wasi_gpu_compute_error_t err;
    if (!wasi_gpu_compute_synchronize(&err)) return detail::take_error(err);
    return {};
}

// ---------------------------------------------------------------------------
// Buffer
// ---------------------------------------------------------------------------

/// A block of device memory; move-only, freed when it goes out of scope.
class Buffer {
public:
    /// An empty handle (owns nothing); only useful as a move target.
    Buffer() = default;
    Buffer(Buffer&& other) noexcept : handle_(other.handle_), valid_(other.valid_) { other.valid_ = false; }
    Buffer& operator=(Buffer&& other) noexcept {
        if (this != &other) {
            reset();
            handle_ = other.handle_;
            valid_ = other.valid_;
            other.valid_ = false;
        }
        return *this;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { reset(); }

    /// Allocates `size` zero-filled bytes on the device.
    static Result<Buffer> create(std::uint64_t size) {
        wasi_gpu_compute_own_buffer_t handle;
        wasi_gpu_compute_error_t err;
        if (!wasi_gpu_compute_static_buffer_create(size, &handle, &err)) return detail::take_error(err);
        return Buffer(handle);
    }

    /// True when this object owns a device buffer.
    bool valid() const { return valid_; }

    /// Size in bytes (0 for an empty handle).
    std::uint64_t size() const { return valid_ ? wasi_gpu_compute_method_buffer_size(borrow()) : 0; }

    /// Copies `len` bytes from `data` into the buffer at byte `offset`.
    Result<void> write(std::uint64_t offset, const void* data, std::size_t len) const {
        wasi_gpu_list_u8_t list;
        list.ptr = const_cast<std::uint8_t*>(static_cast<const std::uint8_t*>(data));
        list.len = len;
        wasi_gpu_compute_error_t err;
        if (!wasi_gpu_compute_method_buffer_write(borrow(), offset, &list, &err)) return detail::take_error(err);
        return {};
    }

    /// Copies a vector of trivially copyable values into the buffer at byte `offset`.
    template <class T>
    Result<void> write(std::uint64_t offset, const std::vector<T>& values) const {
        static_assert(std::is_trivially_copyable_v<T>, "device data must be trivially copyable");
        return write(offset, values.data(), values.size() * sizeof(T));
    }

    /// Reads `len` bytes at byte `offset` into `dst` (waits for pending kernels).
    Result<void> read_into(std::uint64_t offset, void* dst, std::size_t len) const {
        wasi_gpu_list_u8_t list;
        wasi_gpu_compute_error_t err;
        if (!wasi_gpu_compute_method_buffer_read(borrow(), offset, len, &list, &err)) return detail::take_error(err);
        if (list.len != len) {
            wasi_gpu_list_u8_free(&list);
            return Unexpected<Error>(Error{ErrorKind::KernelFailure, "read returned " + std::to_string(list.len) +
                                                                         " bytes instead of " + std::to_string(len)});
        }
        if (len != 0) std::memcpy(dst, list.ptr, len);
        wasi_gpu_list_u8_free(&list);
        return {};
    }

    /// Reads `count` values of `T` at byte `offset`.
    template <class T>
    Result<std::vector<T>> read(std::uint64_t offset, std::size_t count) const {
        static_assert(std::is_trivially_copyable_v<T>, "device data must be trivially copyable");
        std::vector<T> out(count);
        auto r = read_into(offset, out.data(), count * sizeof(T));
        if (!r) return Unexpected<Error>(r.error());
        return out;
    }

    /// Copies `len` bytes from `src` at `src_offset` into this buffer at `dst_offset`.
    Result<void> copy_from(const Buffer& src, std::uint64_t src_offset, std::uint64_t dst_offset,
                           std::uint64_t len) const {
        wasi_gpu_compute_error_t err;
        if (!wasi_gpu_compute_method_buffer_copy_from(borrow(), src.borrow(), src_offset, dst_offset, len, &err))
            return detail::take_error(err);
        return {};
    }

    /// The borrowed handle the C API takes; only valid while this object lives.
    wasi_gpu_compute_borrow_buffer_t borrow() const { return wasi_gpu_compute_borrow_buffer(handle_); }

private:
    explicit Buffer(wasi_gpu_compute_own_buffer_t handle) : handle_(handle), valid_(true) {}
    void reset() {
        if (valid_) wasi_gpu_compute_buffer_drop_own(handle_);
        valid_ = false;
    }
    wasi_gpu_compute_own_buffer_t handle_{};
    bool valid_ = false;
};

// ---------------------------------------------------------------------------
// Kernels (interface ml-kernels); the parameter structs mirror the WIT records.
// ---------------------------------------------------------------------------

namespace kernels {

/// `bin-features-params`.
struct BinFeaturesParams {
    std::uint32_t rows, features, max_bins;
};
/// `bootstrap-params`.
struct BootstrapParams {
    std::uint64_t seed;
    std::uint32_t rows, tree_begin, tree_count, draws;
};
/// `histogram-params`.
struct HistogramParams {
    std::uint32_t rows, features, max_bins, tree_count, slot_begin, slot_count;
};
/// `split-params`.
struct SplitParams {
    std::uint32_t features, max_bins, slot_begin, slot_count, min_samples_leaf, mask_words;
};
/// `row-split-params`.
struct RowSplitParams {
    std::uint32_t rows, features, max_bins, tree_count, slot_begin, slot_count, min_samples_leaf, mask_words;
};
/// `apply-params`.
struct ApplyParams {
    std::uint32_t rows, features, tree_count, slot_count;
};
/// `predict-params`.
struct PredictParams {
    std::uint32_t rows, features, tree_count, node_count, max_depth;
};

namespace detail {
inline Result<void> done(bool ok, wasi_gpu_ml_kernels_error_t& err) {
    if (!ok) return wasi_gpu::detail::take_error(err);
    return {};
}
}  // namespace detail

/// Quantizes `x` (rows*features f32) into one byte per row and feature using `edges`.
inline Result<void> bin_features(const BinFeaturesParams& p, const Buffer& x, const Buffer& edges, const Buffer& bins) {
    wasi_gpu_ml_kernels_bin_features_params_t c{p.rows, p.features, p.max_bins};
    wasi_gpu_ml_kernels_error_t err;
    return detail::done(wasi_gpu_ml_kernels_bin_features(&c, x.borrow(), edges.borrow(), bins.borrow(), &err), err);
}

/// Draws the bootstrap sample of trees [tree_begin, tree_begin + tree_count).
inline Result<void> bootstrap(const BootstrapParams& p, const Buffer& weights, const Buffer& node_of) {
    wasi_gpu_ml_kernels_bootstrap_params_t c{p.seed, p.rows, p.tree_begin, p.tree_count, p.draws};
    wasi_gpu_ml_kernels_error_t err;
    return detail::done(wasi_gpu_ml_kernels_bootstrap(&c, weights.borrow(), node_of.borrow(), &err), err);
}

/// Builds histograms of the slots [slot_begin, slot_begin + slot_count): 6 u32 per cell =
/// (count, entries, sum lo, sum hi, min target, max target).
inline Result<void> build_histograms(const HistogramParams& p, const Buffer& bins, const Buffer& targets,
                                     const Buffer& weights, const Buffer& node_of, const Buffer& hist) {
    wasi_gpu_ml_kernels_histogram_params_t c{p.rows, p.features, p.max_bins, p.tree_count, p.slot_begin, p.slot_count};
    wasi_gpu_ml_kernels_error_t err;
    return detail::done(wasi_gpu_ml_kernels_build_histograms(&c, bins.borrow(), targets.borrow(), weights.borrow(),
                                                             node_of.borrow(), hist.borrow(), &err),
                        err);
}

/// Finds the best split of every slot (12 u32 records: feature, bin, nL, dL, SL lo, SL hi, n, d,
/// S lo, S hi, varying, impure); `feature_mask` is ignored when `mask_words` is 0.
inline Result<void> find_splits(const SplitParams& p, const Buffer& hist, const Buffer& feature_mask,
                                const Buffer& splits) {
    wasi_gpu_ml_kernels_split_params_t c{p.features,   p.max_bins,         p.slot_begin,
                                         p.slot_count, p.min_samples_leaf, p.mask_words};
    wasi_gpu_ml_kernels_error_t err;
    return detail::done(
        wasi_gpu_ml_kernels_find_splits(&c, hist.borrow(), feature_mask.borrow(), splits.borrow(), &err), err);
}

/// Split records straight from each slot's rows (same records as build-histograms + find-splits).
inline Result<void> find_splits_rows(const RowSplitParams& p, const Buffer& bins, const Buffer& targets,
                                     const Buffer& weights, const Buffer& node_of, const Buffer& feature_mask,
                                     const Buffer& splits) {
    wasi_gpu_ml_kernels_row_split_params_t c{p.rows,       p.features,   p.max_bins,         p.tree_count,
                                             p.slot_begin, p.slot_count, p.min_samples_leaf, p.mask_words};
    wasi_gpu_ml_kernels_error_t err;
    return detail::done(
        wasi_gpu_ml_kernels_find_splits_rows(&c, bins.borrow(), targets.borrow(), weights.borrow(), node_of.borrow(),
                                             feature_mask.borrow(), splits.borrow(), &err),
        err);
}

/// Moves every (tree, row) to its child's next-level slot.
inline Result<void> apply_splits(const ApplyParams& p, const Buffer& bins, const Buffer& splits,
                                 const Buffer& next_slot, const Buffer& node_of) {
    wasi_gpu_ml_kernels_apply_params_t c{p.rows, p.features, p.tree_count, p.slot_count};
    wasi_gpu_ml_kernels_error_t err;
    return detail::done(wasi_gpu_ml_kernels_apply_splits(&c, bins.borrow(), splits.borrow(), next_slot.borrow(),
                                                         node_of.borrow(), &err),
                        err);
}

/// Sums every tree's 64-bit leaf value for every row of `x` (`nodes`: 4 u32 per node, a leaf
/// is `(0xffffffff, value lo, value hi, 0)`; `sums`: a wrapping 128-bit sum per row, 4 u32
/// words, least significant first; `max_depth` at most `node_count`).
inline Result<void> predict_forest(const PredictParams& p, const Buffer& x, const Buffer& nodes, const Buffer& roots,
                                   const Buffer& sums) {
    wasi_gpu_ml_kernels_predict_params_t c{p.rows, p.features, p.tree_count, p.node_count, p.max_depth};
    wasi_gpu_ml_kernels_error_t err;
    return detail::done(
        wasi_gpu_ml_kernels_predict_forest(&c, x.borrow(), nodes.borrow(), roots.borrow(), sums.borrow(), &err), err);
}

}  // namespace kernels
}  // namespace wasi_gpu
