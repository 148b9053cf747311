// Streaming readers for the guests' tabular input: CSV with a header, and .npy (2-D, <f4/<f8).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "error.hpp"

namespace guest {

/// A loaded table: features as f32 (row-major) and, when present, targets as f64.
struct Dataset {
    std::uint32_t rows = 0;
    std::uint32_t features = 0;
    /// rows * features, row-major, -0.0 stored as +0.0.
    std::vector<float> x;
    /// One target per row; empty when the file has no target column.
    std::vector<double> y;
    bool has_target() const { return !y.empty() || rows == 0; }
};

/// Reads `path` (.npy by extension, else CSV). The last column is the target, unless
/// `features_hint` is non-zero and the file has exactly that many columns (prediction input
/// without targets). Training input needs at least 2 columns and 1 row.
Expected<Dataset> load_dataset(const std::string& path, std::uint32_t features_hint);

/// The CSV field grammar of docs/algorithm.md §1, parsed as a correctly rounded f64.
/// Returns false (and leaves `out` alone) for anything else, including overflow to ±inf.
bool parse_number(const char* begin, const char* end, double& out);

}  // namespace guest
