// The model file reader's streaming entry, for the library's own use (GpuPredictor::load).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "wasi_gpu/forest.hpp"

namespace wasi_gpu::forest {

/// Takes one tree of a model being read: the header's fields (no trees), the tree's index, its
/// nodes (already checked).
using TreeSink = std::function<void(const Model&, std::uint32_t, std::vector<Node>&&)>;

/// Reads and checks a model file like Model::load, handing each tree to `on_tree` in order
/// instead of keeping it: the result's model has the header's fields and no trees
/// (`tree_count` says how many were read). After the first problem, no more trees are handed
/// over; the problem is reported once the checksum, the structure and the header were judged.
/// `on_length`, when given, gets the file's size (from the open file) before anything is read.
Expected<LoadedModel> read_model_trees(const std::string& path, const TreeSink& on_tree,
                                       const std::function<void(std::uint64_t)>& on_length = {});

/// Longest root-to-leaf path of one tree, in edges; `depth` is scratch space.
std::uint32_t tree_depth(const std::vector<Node>& tree, std::vector<std::uint32_t>& depth);

/// Reads the file at `path` to its end in 1 MiB pieces, handing each to `piece`; the bytes
/// read (the data fingerprint of partial forests and the receipts' SHA-256 use it).
Expected<std::uint64_t> read_pieces(const std::string& path,
                                    const std::function<void(const std::uint8_t*, std::size_t)>& piece);

}  // namespace wasi_gpu::forest
