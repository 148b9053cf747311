// Partial forests (docs/algorithm.md §11): the training file's fingerprint and merging; the
// file format itself is in model_file.cpp. The checks, their order and their messages are the
// Rust guest's (guest-rust/src/shard.rs).
#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "model_file.hpp"
#include "wasi_gpu/forest.hpp"
#include "xxh64.hpp"

namespace wasi_gpu::forest {

Expected<FileFingerprint> data_fingerprint(const std::string& path) {
    Xxh64 sum;
    auto bytes = read_pieces(path, [&](const std::uint8_t* p, std::size_t n) { sum.update(p, n); });
    if (!bytes) return wasi_gpu::Unexpected<Failure>(bytes.error());
    return FileFingerprint{sum.digest(), *bytes};
}

Expected<Model> merge(std::vector<std::pair<std::string, Partial>> parts) {
    if (parts.empty()) return fail("merge", "no partial forests given");
    // Every header field but `trees`; the target mapping by its bits.
    const auto header = [](const Model& m) {
        std::uint64_t y_min, scale;
        std::memcpy(&y_min, &m.y_min, 8);
        std::memcpy(&scale, &m.scale, 8);
        return std::make_tuple(m.features, m.seed, m.max_depth, m.min_samples_split, m.min_samples_leaf, m.max_features,
                               m.max_bins, m.train_rows, y_min, scale);
    };
    const std::string& first_path = parts[0].first;
    const Partial& first = parts[0].second;
    for (std::size_t i = 1; i < parts.size(); ++i) {
        const std::string& path = parts[i].first;
        const Partial& p = parts[i].second;
        const auto differs = [&](const std::string& what) {
            return fail(path, what + " differs from " + first_path + "'s: these shards are not of one forest");
        };
        if (p.data_xxh64 != first.data_xxh64 || p.data_bytes != first.data_bytes)
            return differs("the training data (its XXH64 and size)");
        if (p.total != first.total)
            return differs("the forest's tree count (" + std::to_string(p.total) + " against " +
                           std::to_string(first.total) + ")");
        if (header(p.model) != header(first.model)) return differs("a parameter or the target mapping");
    }
    const std::uint32_t total = first.total;
    std::stable_sort(parts.begin(), parts.end(),
                     [](const auto& a, const auto& b) { return a.second.from < b.second.from; });
    std::uint32_t next = 0;
    for (const auto& [path, p] : parts) {
        if (p.from > next)
            return fail(path, "starts at tree " + std::to_string(p.from) + " but trees " + std::to_string(next) + ".." +
                                  std::to_string(p.from) + " are missing");
        if (p.from < next)
            return fail(path, "trees " + std::to_string(p.from) + ".." + std::to_string(std::min(p.to, next)) +
                                  " overlap trees given by another shard");
        next = p.to;
    }
    if (next != total)
        return fail(parts.back().first,
                    "ends at tree " + std::to_string(next) + " but the forest has " + std::to_string(total) + " trees");
    Model model = std::move(parts[0].second.model);
    for (std::size_t i = 1; i < parts.size(); ++i)
        for (auto& tree : parts[i].second.model.trees) model.trees.push_back(std::move(tree));
    return model;
}

}  // namespace wasi_gpu::forest
