// Training receipts (docs/guests.md, "Receipts"): `train --receipt FILE` records what a model
// was made from and its hashes; `verify --receipt FILE` trains again from it and says whether
// the same model comes out. The file is the Rust guest's byte for byte (guest-rust/src/receipt.rs):
// a flat JSON object, one key per line, in a fixed order; each guest reads the other's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "error.hpp"
#include "forest.hpp"

namespace guest {

/// The receipt format written and read.
constexpr std::uint64_t RECEIPT_VERSION = 1;
/// This guest's version: the workspace's (Cargo.toml), which the Rust guest reports.
constexpr const char* GUEST_VERSION = "0.1.0";

/// Everything a receipt records.
struct Receipt {
    std::string guest, guest_version;
    std::optional<std::string> component_sha256;  ///< the host's WASI_GPU_COMPONENT_SHA256
    std::optional<std::string> host;              ///< the host's WASI_GPU_HOST
    std::string backend, device, train;
    std::uint64_t train_bytes = 0;
    std::string train_sha256;
    std::uint64_t train_rows = 0, features = 0;
    std::uint32_t trees = 0, max_depth = NONE, min_samples_split = 0, min_samples_leaf = 0, max_features = 0, bins = 0;
    std::uint64_t seed = 0;
    std::string model;
    std::uint64_t model_bytes = 0;
    std::string model_checksum, model_sha256;

    /// The receipt of `model`, trained on `train` and saved to `model_path`.
    static Expected<Receipt> of(const Model& model, const std::string& train, const std::string& model_path,
                                const std::string& backend, const std::string& device);
    /// The training parameters that reproduce the receipt's model.
    TrainParams params(bool progress) const;
    /// The file's text.
    std::string to_json() const;
    /// Writes the receipt to `path.tmp`, then renames it over `path`.
    Expected<void> save(const std::string& path) const;
    /// Reads a receipt file; unknown keys are ignored, a missing or mistyped one is named.
    static Expected<Receipt> load(const std::string& path);
    static Expected<Receipt> parse(const std::string& text, const std::string& path);
};

/// A JSON string literal, escaped as the Rust guest escapes it (`\"`, `\\`, `\n`, `\r`, `\t`,
/// other control characters as `\u00xx`): the receipts' and the `--json` line's strings.
std::string json_str(const std::string& s);

/// The size and lower-case hex SHA-256 of a file.
struct FileDigest {
    std::uint64_t bytes = 0;
    std::string sha256;
};
Expected<FileDigest> file_sha256(const std::string& path);

}  // namespace guest
