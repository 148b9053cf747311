// wasi_gpu::forest: the random-forest regressor of docs/algorithm.md as a library (CMake target
// wasi_gpu::forest; docs/cpp.md): training on the device (GpuTrainer), model file v2
// (Model::save / Model::load), prediction on the device (GpuPredictor), the guests' CSV and
// .npy readers (load_dataset), errors as values (Expected<T> holding a Failure). It writes the
// same model bytes as the Rust guest for the same data, parameters and seed. Sources:
// guest-cpp/src/{forest,model_file,dataset,output,sha256,xxh64}.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataset.hpp"
#include "failure.hpp"
#include "output.hpp"

// The WIT version these declarations and the library are written for. wasi_gpu.hpp has already
// refused a wasi_gpu.h of another version; the symbol below makes a libwasi_gpu_forest.a built
// for another version fail to link (`undefined symbol: wasi_gpu_forest_for_wit_X_Y_Z`).
#if WASI_GPU_WIT_VERSION_MAJOR != 0 || WASI_GPU_WIT_VERSION_MINOR != 1 || WASI_GPU_WIT_VERSION_PATCH != 0
#error \
    "wasi_gpu/forest.hpp is for wasi:gpu@0.1.0, but wasi_gpu.h was generated from another version: use the headers and libraries of one wasi_gpu package"
#endif
#define WASI_GPU_FOREST_SYMBOL_(major, minor, patch) wasi_gpu_forest_for_wit_##major##_##minor##_##patch
#define WASI_GPU_FOREST_SYMBOL(major, minor, patch) WASI_GPU_FOREST_SYMBOL_(major, minor, patch)
#define WASI_GPU_FOREST_VERSION_SYMBOL \
    WASI_GPU_FOREST_SYMBOL(WASI_GPU_WIT_VERSION_MAJOR, WASI_GPU_WIT_VERSION_MINOR, WASI_GPU_WIT_VERSION_PATCH)
extern "C" const char WASI_GPU_FOREST_VERSION_SYMBOL;

namespace wasi_gpu::forest {

namespace detail {
/// Every file that includes this header refers to the library's version symbol.
[[maybe_unused]] __attribute__((used)) static const char* const built_for_wit = &WASI_GPU_FOREST_VERSION_SYMBOL;
}  // namespace detail

/// "No node": a leaf's feature, an unlimited max_depth.
constexpr std::uint32_t NONE = 0xffffffffu;

/// Largest fixed-point target, T = 2^32 - 1 (docs/algorithm.md §5).
constexpr std::uint32_t TARGET_MAX = 0xffffffffu;
/// Largest node value, T * 2^32: a 32.32 fixed-point mean never exceeds T.
constexpr std::uint64_t VALUE_MAX = 0xffffffff00000000ull;

/// One tree node as stored in the model file (§10, 24 + 8 bytes for regression).
struct Node {
    std::uint32_t feature = NONE;  ///< NONE for a leaf
    float threshold = 0.0f;        ///< 0 for leaves
    std::uint32_t left = 0;        ///< 0 for leaves
    std::uint32_t right = 0;       ///< 0 for leaves
    std::uint32_t flags = 0;       ///< reserved (bit 0: missing values go left); always 0 today
    std::uint32_t count = 0;       ///< weighted count n of the node's bootstrap rows
    std::uint64_t value = 0;       ///< 32.32 fixed-point mean target (S * 2^33 + n) / (2n)
};

/// How `--max-features` was given, resolved against the feature count at training time.
struct MaxFeatures {
    enum class Kind { Count, Fraction, Sqrt, Log2 } kind = Kind::Fraction;
    std::uint32_t count = 0;
    double fraction = 1.0;
    /// The number of candidate features per node for `features` features.
    Expected<std::uint32_t> resolve(std::uint32_t features) const;
};

/// Training parameters (the guests' command-line options, docs/guests.md; the defaults are theirs).
struct TrainParams {
    std::uint32_t trees = 200;
    std::uint32_t max_depth = 16;  ///< NONE = unlimited
    std::uint32_t min_samples_split = 2;
    std::uint32_t min_samples_leaf = 1;
    MaxFeatures max_features;
    std::uint32_t bins = 256;
    std::uint64_t seed = 42;
    bool progress = true;  ///< progress lines on stderr for large work
    /// Only trees `tree_from..tree_to` of the `trees` (a partial forest, docs/algorithm.md
    /// §11); `tree_to == NONE`: all of them.
    std::uint32_t tree_from = 0, tree_to = NONE;
};

struct SavedModel;
struct LoadedModel;
struct ModelDigests;

/// A trained forest: the content of a model file.
struct Model {
    std::uint32_t features = 0;
    std::uint64_t seed = 0;
    std::uint32_t max_depth = NONE;
    std::uint32_t min_samples_split = 0;
    std::uint32_t min_samples_leaf = 0;
    std::uint32_t max_features = 0;
    std::uint32_t max_bins = 0;
    std::uint32_t train_rows = 0;
    double y_min = 0.0;
    double scale = 1.0;
    std::vector<std::vector<Node>> trees;

    /// Writes the model file (format v2, docs/algorithm.md §10) to `path.tmp`, then renames it
    /// over `path`.
    Expected<SavedModel> save(const std::string& path) const;
    /// Reads and validates a model file (guest-cpp/src/model_file.cpp).
    static Expected<LoadedModel> load(const std::string& path);
    /// The size, checksum and SHA-256 of the file `save` writes, from the forest alone.
    ModelDigests digests() const;
    /// Most steps from a root to a leaf over all trees (what predict-forest gets as max-depth).
    std::uint32_t depth() const;
};

/// What saving a model wrote: its size and checksum, as `model_checksum` reports it
/// (`xxh64:` + 16 hex digits).
struct SavedModel {
    std::uint64_t bytes = 0;
    std::string checksum;
};

/// A model file's size, checksum (`xxh64:` + 16 hex digits) and SHA-256 (64 hex digits).
struct ModelDigests {
    std::uint64_t bytes = 0;
    std::string checksum;
    std::string sha256;
};

/// A model read from a file, with the file's size and checksum (`xxh64:` + 16 hex digits, or
/// `sha256:` + 64 for kind-1 files of earlier releases).
struct LoadedModel {
    Model model;
    std::uint64_t bytes = 0;
    std::string checksum;
    std::uint32_t tree_count = 0;  ///< trees in the file (GpuPredictor::load keeps `model`'s empty)
};

/// Trees `from..to` of a forest of `total` trees (docs/algorithm.md §11), trained on a file
/// with the given fingerprint: what `train --trees-from A --trees-to B` writes.
struct Partial {
    std::uint32_t from = 0, to = 0, total = 0;
    std::uint64_t data_xxh64 = 0;  ///< XXH64 (seed 0) of the training file's bytes
    std::uint64_t data_bytes = 0;  ///< and their count
    Model model;                   ///< the trees from..to and the forest's header fields

    /// Writes the partial forest to `path.tmp`, then renames it over `path`; the size written
    /// and the embedded model's checksum.
    Expected<SavedModel> save(const std::string& path) const;
    /// Reads and checks a partial forest.
    static Expected<Partial> load(const std::string& path);
};

/// XXH64 (seed 0) and size of a file: the data fingerprint of a partial forest.
struct FileFingerprint {
    std::uint64_t xxh64 = 0, bytes = 0;
};
Expected<FileFingerprint> data_fingerprint(const std::string& path);

/// Joins partial forests (path, forest) covering 0..T exactly into the whole forest, or says
/// which file does not fit (docs/algorithm.md §11).
Expected<Model> merge(std::vector<std::pair<std::string, Partial>> parts);

/// Writes `bytes` to `path.tmp`, then renames it over `path`.
Expected<void> write_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes);

/// Grows the forest level by level on the wasi:gpu device.
class GpuTrainer {
public:
    explicit GpuTrainer(TrainParams params) : params_(params) {}
    /// Trains on `train` (which must carry targets). A failure about the data itself (the
    /// target range of §5) has an empty `file`: the caller names the training file.
    Expected<Model> fit(const Dataset& train) const;

private:
    TrainParams params_;
};

/// Runs a model's trees on the device with `predict-forest`.
class GpuPredictor {
public:
    /// Predicts with `model`, which must outlive the predictor; its trees are uploaded by each
    /// predict(), a few MiB at a time.
    explicit GpuPredictor(const Model& model) : model_(&model) {}
    /// Reads a model file straight into device memory, one tree at a time, so the forest is
    /// never whole in the guest's memory; the same checks, order and messages as Model::load.
    /// `info` gets the file's size, checksum, tree count and the model's header fields (its
    /// `model.trees` stays empty).
    static Expected<GpuPredictor> load(const std::string& path, LoadedModel& info);
    /// One prediction per row of `data` (which must have the model's feature count).
    Expected<std::vector<double>> predict(const Dataset& data) const;

    /// A forest in device memory: predict-forest's node table and roots (docs/algorithm.md §9).
    struct DeviceForest {
        wasi_gpu::Buffer nodes, roots;
        std::uint32_t node_count = 0, tree_count = 0, depth = 0, features = 0;
        double y_min = 0.0, scale = 1.0;
    };

private:
    GpuPredictor() = default;
    Expected<std::vector<double>> run(const DeviceForest& f, const Dataset& data) const;
    const Model* model_ = nullptr;
    std::optional<DeviceForest> device_;  ///< set by load()
};

/// `sum over rows in order of (pred - y)^2 / rows`.
double mean_squared_error(const std::vector<double>& pred, const std::vector<double>& y);

}  // namespace wasi_gpu::forest
