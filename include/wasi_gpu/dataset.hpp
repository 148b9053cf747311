// Streaming readers for the guests' tabular input: CSV with a header, and .npy (2-D, <f4/<f8).
// Part of the wasi_gpu::forest library (docs/cpp.md); include <wasi_gpu/forest.hpp>.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "failure.hpp"

namespace wasi_gpu::forest {

/// A loaded table: features as f32 (row-major) and, when present, targets as f64.
struct Dataset {
    std::uint32_t rows = 0;
    std::uint32_t features = 0;
    /// rows * features, row-major, -0.0 stored as +0.0 (a value overflowing f32 is an error).
    std::vector<float> x;
    /// One target per row (-0.0 stored as +0.0); empty when the file has no target column.
    std::vector<double> y;
    bool has_target() const { return !y.empty() || rows == 0; }
};

/// Reads `path` (.npy when the name ends in `.npy`, in any case; else CSV). The last column
/// is the target, unless `features_hint` is non-zero and the file has exactly that many
/// columns (prediction input without targets). Training input needs at least 2 columns and
/// 1 row. A NUL byte in a CSV file and a finite value that overflows f32 are errors.
Expected<Dataset> load_dataset(const std::string& path, std::uint32_t features_hint);

/// The checks load_dataset makes before it reads a single row: the file opens, its .npy
/// header or CSV header line is well formed, and it has `features` or `features + 1` columns.
/// The pipeline makes them on its test file before training, so that a test file it cannot
/// use is refused before the model file is replaced.
Expected<void> check_dataset(const std::string& path, std::uint32_t features);

/// The CSV field grammar of docs/algorithm.md §1, parsed as a correctly rounded f64.
/// Returns false (and leaves `out` alone) for anything else, including overflow to ±inf.
bool parse_number(const char* begin, const char* end, double& out);

/// `v` as Rust's `Display` for f64 writes it (shortest round-trip digits, never an exponent:
/// `1e300` is a 1 and 300 zeros), so that messages quoting a value match the Rust guest's.
std::string rust_display(double v);

}  // namespace wasi_gpu::forest
