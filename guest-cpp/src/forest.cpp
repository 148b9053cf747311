#include "forest.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <type_traits>
#include <unistd.h>

#include "output.hpp"
#include "sha256.hpp"

namespace guest {
namespace {

constexpr std::uint8_t MAGIC[8] = {0x57, 0x47, 0x50, 0x55, 0x52, 0x46, 0x00, 0x01};
constexpr std::uint32_t VERSION = 1;
constexpr std::uint32_t TARGET_MAX = (1u << 20) - 1;
constexpr std::uint64_t SAMPLE_ROWS = 200000;
constexpr std::uint32_t PREDICT_DEPTH_LIMIT = 64;
constexpr std::uint64_t PROGRESS_WORK = 20000000;
/// Slots decided per find-splits-rows call (bounds the feature-mask upload).
constexpr std::uint32_t SLOT_BATCH = 1u << 18;

// ---- counter-based random numbers (docs/algorithm.md §2) ----

std::uint32_t mix32(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

std::uint32_t key6(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d, std::uint32_t e,
                   std::uint32_t f) {
    std::uint32_t h = 0x243f6a88u;
    for (std::uint32_t w : {a, b, c, d, e, f}) h = mix32(h ^ w);
    return h;
}

std::uint32_t mulhi(std::uint32_t r, std::uint32_t n) {
    return static_cast<std::uint32_t>((std::uint64_t(r) * n) >> 32);
}

/// Feature mask of node `node` of global tree `tree` (§8), ceil(features/32) words.
void feature_mask(std::uint64_t seed, std::uint32_t tree, std::uint32_t node, std::uint32_t features,
                  std::uint32_t m, std::vector<std::uint32_t>& perm, std::uint32_t* mask) {
    const std::uint32_t lo = static_cast<std::uint32_t>(seed), hi = static_cast<std::uint32_t>(seed >> 32);
    perm.resize(features);
    for (std::uint32_t i = 0; i < features; ++i) perm[i] = i;
    for (std::uint32_t i = 0; i < m; ++i) {
        std::uint32_t p = i + mulhi(key6(lo, hi, 2, tree, node, i), features - i);
        std::swap(perm[i], perm[p]);
    }
    std::fill(mask, mask + (features + 31) / 32, 0u);
    for (std::uint32_t i = 0; i < m; ++i) mask[perm[i] / 32] |= 1u << (perm[i] % 32);
}

// ---- quantile bins (§4) ----

float mid(float a, float b) {
    float m = static_cast<float>((double(a) + double(b)) * 0.5);
    return m >= b ? a : m;
}

/// Exactly max_bins - 1 edges (padded with +inf) from a column that gets sorted here.
void feature_edges(std::vector<float>& s, std::uint32_t max_bins, float* out) {
    std::sort(s.begin(), s.end());
    std::size_t kept = 0;
    auto keep = [&](float c) {
        if (kept == 0 || c > out[kept - 1]) out[kept++] = c;
    };
    std::vector<float> distinct;
    distinct.reserve(s.size());
    for (float v : s)
        if (distinct.empty() || distinct.back() != v) distinct.push_back(v);
    if (distinct.size() <= max_bins) {
        for (std::size_t i = 0; i + 1 < distinct.size(); ++i) keep(mid(distinct[i], distinct[i + 1]));
    } else {
        const std::uint64_t n = s.size();
        for (std::uint64_t j = 1; j < max_bins; ++j) {
            std::uint64_t i = j * n / max_bins;
            if (0 < i && i < n && s[i - 1] < s[i]) keep(mid(s[i - 1], s[i]));
        }
    }
    for (std::size_t i = kept; i < max_bins - 1; ++i) out[i] = INFINITY;
}

// ---- little-endian helpers ----

void put_u32(std::vector<std::uint8_t>& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(std::uint8_t(v >> (8 * i)));
}
void put_u64(std::vector<std::uint8_t>& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(std::uint8_t(v >> (8 * i)));
}
void put_f64(std::vector<std::uint8_t>& b, double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, 8);
    put_u64(b, bits);
}
std::uint32_t f32_bits(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return bits;
}
float bits_f32(std::uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

/// Sequential little-endian reader over model bytes.
struct Reader {
    const std::uint8_t* p;
    std::size_t left;
    bool u32(std::uint32_t& v) {
        if (left < 4) return false;
        v = p[0] | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[3]) << 24);
        p += 4, left -= 4;
        return true;
    }
    bool u64(std::uint64_t& v) {
        std::uint32_t lo, hi;
        if (left < 8) return false;
        u32(lo), u32(hi);
        v = lo | (std::uint64_t(hi) << 32);
        return true;
    }
    bool f64(double& v) {
        std::uint64_t bits;
        if (!u64(bits)) return false;
        std::memcpy(&v, &bits, 8);
        return true;
    }
};

/// Device failures become guest failures.
template <class T>
Expected<T> dev(wasi_gpu::Result<T> r) {
    if (!r) return wasi_gpu::Unexpected<Failure>(device_failure(r.error()));
    if constexpr (std::is_void_v<T>) {
        return {};
    } else {
        return std::move(*r);
    }
}

#define TRY(var, expr)                                              \
    auto var##_r = (expr);                                          \
    if (!var##_r) return wasi_gpu::Unexpected<Failure>(var##_r.error()); \
    auto var = std::move(*var##_r)
#define TRY_VOID(expr)                                                  \
    do {                                                                \
        auto r_ = (expr);                                               \
        if (!r_) return wasi_gpu::Unexpected<Failure>(r_.error());      \
    } while (0)

Expected<wasi_gpu::Buffer> upload(const void* data, std::size_t bytes) {
    TRY(buf, dev(wasi_gpu::Buffer::create(bytes)));
    if (bytes != 0) TRY_VOID(dev(buf.write(0, data, bytes)));
    return buf;
}

/// Bytes one buffer may take: the device's largest buffer, and a quarter of its memory.
std::uint64_t buffer_budget(const wasi_gpu::DeviceInfo& info) {
    std::uint64_t budget = std::min<std::uint64_t>(info.max_buffer_bytes, info.memory_bytes / 4);
    return std::max<std::uint64_t>(budget, 1u << 20);
}

/// Fixed-point value of a node with weighted count n and sum s.
std::uint32_t node_value(std::uint32_t n, std::uint64_t s) {
    if (n == 0) return 0;
    return static_cast<std::uint32_t>((2 * s + n) / (2 * std::uint64_t(n)));
}

/// A device buffer reused across levels, reallocated only when a level needs more.
class Growable {
public:
    /// The buffer, at least `bytes` long.
    Expected<const wasi_gpu::Buffer*> at_least(std::uint64_t bytes) {
        if (!buffer_.valid() || size_ < bytes) {
            buffer_ = wasi_gpu::Buffer();  // free the old one first
            TRY(b, dev(wasi_gpu::Buffer::create(bytes)));
            buffer_ = std::move(b);
            size_ = bytes;
        }
        return &buffer_;
    }

private:
    wasi_gpu::Buffer buffer_;
    std::uint64_t size_ = 0;
};

/// A node of the current level that the kernels are working on.
struct Slot {
    std::uint32_t tree;   ///< local tree index in the batch
    std::uint32_t node;   ///< index in that tree's node list
    std::uint32_t depth;
};

}  // namespace

Expected<std::uint32_t> MaxFeatures::resolve(std::uint32_t features) const {
    switch (kind) {
        case Kind::Count:
            if (count == 0 || count > features)
                return fail("--max-features", "is " + std::to_string(count) + "; it must be between 1 and the " +
                                                  std::to_string(features) + " features");
            return count;
        case Kind::Fraction: {
            double m = std::floor(fraction * features);
            return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(m));
        }
        case Kind::Sqrt:
            return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::floor(std::sqrt(double(features)))));
        case Kind::Log2:
            return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::floor(std::log2(double(features)))));
    }
    return features;
}

// ---- model file ----

std::vector<std::uint8_t> Model::serialize() const {
    std::vector<std::uint8_t> b(MAGIC, MAGIC + 8);
    put_u32(b, VERSION);
    put_u32(b, features);
    put_u32(b, static_cast<std::uint32_t>(trees.size()));
    put_u64(b, seed);
    put_u32(b, max_depth);
    put_u32(b, min_samples_split);
    put_u32(b, min_samples_leaf);
    put_u32(b, max_features);
    put_u32(b, max_bins);
    put_u32(b, train_rows);
    put_f64(b, y_min);
    put_f64(b, scale);
    for (const auto& tree : trees) {
        put_u32(b, static_cast<std::uint32_t>(tree.size()));
        for (const Node& n : tree) {
            put_u32(b, n.feature);
            put_u32(b, f32_bits(n.threshold));
            put_u32(b, n.left);
            put_u32(b, n.right);
            put_u32(b, n.value);
        }
    }
    auto digest = Sha256::digest(b.data(), b.size());
    b.insert(b.end(), digest.begin(), digest.end());
    return b;
}

Expected<Model> Model::parse(const std::vector<std::uint8_t>& bytes, const std::string& path) {
    const std::size_t header = 8 + 4 * 10 + 8 * 3;
    if (bytes.size() < 8 || std::memcmp(bytes.data(), MAGIC, 8) != 0)
        return fail(path, "not a model file (wrong magic; expected a model.bin written by a wasi:gpu guest)");
    if (bytes.size() < header + 32)
        return fail(path, "truncated: " + std::to_string(bytes.size()) + " bytes is shorter than a model header");
    auto digest = Sha256::digest(bytes.data(), bytes.size() - 32);
    Reader r{bytes.data() + 8, bytes.size() - 8 - 32};
    std::uint32_t version = 0, tree_count = 0;
    Model m;
    r.u32(version);
    if (version != VERSION)
        return fail(path, "model format version " + std::to_string(version) + " (this guest reads version 1)");
    if (std::memcmp(digest.data(), bytes.data() + bytes.size() - 32, 32) != 0)
        return fail(path, "checksum mismatch: the model file is corrupt or truncated");
    r.u32(m.features);
    r.u32(tree_count);
    r.u64(m.seed);
    r.u32(m.max_depth);
    r.u32(m.min_samples_split);
    r.u32(m.min_samples_leaf);
    r.u32(m.max_features);
    r.u32(m.max_bins);
    r.u32(m.train_rows);
    r.f64(m.y_min);
    r.f64(m.scale);
    if (m.features == 0) return fail(path, "model has 0 features");
    if (tree_count == 0) return fail(path, "model has 0 trees");
    if (m.max_bins < 2 || m.max_bins > 256)
        return fail(path, "max_bins " + std::to_string(m.max_bins) + " is outside 2..=256");
    if (m.max_features == 0 || m.max_features > m.features)
        return fail(path, "max_features " + std::to_string(m.max_features) + " is outside 1..=" +
                              std::to_string(m.features));
    if (m.train_rows == 0) return fail(path, "the model was trained on 0 rows");
    if (!std::isfinite(m.y_min) || !std::isfinite(m.scale) || !(m.scale > 0))
        return fail(path, "model has a non-finite y_min or a non-positive scale");
    m.trees.reserve(std::min<std::size_t>(tree_count, r.left / 4));
    for (std::uint32_t t = 0; t < tree_count; ++t) {
        std::uint32_t count = 0;
        if (!r.u32(count)) return fail(path, "truncated in tree " + std::to_string(t));
        if (count == 0) return fail(path, "tree " + std::to_string(t) + " has no nodes");
        if (std::uint64_t(count) * 20 > r.left) return fail(path, "truncated in tree " + std::to_string(t));
        std::vector<Node> nodes(count);
        for (std::uint32_t k = 0; k < count; ++k) {
            Node& n = nodes[k];
            std::uint32_t bits = 0;
            r.u32(n.feature), r.u32(bits), r.u32(n.left), r.u32(n.right), r.u32(n.value);
            n.threshold = bits_f32(bits);
            const std::string where = "tree " + std::to_string(t) + " node " + std::to_string(k);
            if (n.value > TARGET_MAX) return fail(path, where + ": value " + std::to_string(n.value) + " exceeds 1048575");
            if (n.feature == NONE) {
                if (bits != 0 || n.left != 0 || n.right != 0)
                    return fail(path, where + ": a leaf must have threshold 0 and children 0");
                continue;
            }
            if (std::isnan(n.threshold)) return fail(path, where + ": threshold is NaN");
            if (n.feature >= m.features)
                return fail(path, "tree " + std::to_string(t) + " node " + std::to_string(k) + " uses feature " +
                                      std::to_string(n.feature) + " of " + std::to_string(m.features));
            if (n.left <= k || n.right <= k || n.left >= count || n.right >= count)
                return fail(path, "tree " + std::to_string(t) + " node " + std::to_string(k) +
                                      " has a child index out of range or not after it");
        }
        m.trees.push_back(std::move(nodes));
    }
    if (r.left != 0) return fail(path, std::to_string(r.left) + " trailing bytes after the last tree");
    return m;
}

std::uint32_t Model::depth() const {
    std::uint32_t deepest = 0;
    std::vector<std::uint32_t> depth;
    for (const auto& tree : trees) {
        depth.assign(tree.size(), 0);
        // Children come after their parent, so one forward pass sets every depth.
        for (std::size_t k = 0; k < tree.size(); ++k) {
            const Node& n = tree[k];
            if (n.feature == NONE) {
                deepest = std::max(deepest, depth[k]);
                continue;
            }
            depth[n.left] = depth[k] + 1;
            depth[n.right] = depth[k] + 1;
        }
    }
    return deepest;
}

Expected<void> write_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    // open/write/close rather than stdio: every byte is accounted for by write(2)'s result.
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail(tmp, std::string("cannot create: ") + std::strerror(errno));
    const std::uint8_t* p = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int saved = errno;
            ::close(fd);
            std::remove(tmp.c_str());
            return fail(tmp, std::string("write failed: ") + std::strerror(saved));
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) {
        const int saved = errno;
        std::remove(tmp.c_str());
        return fail(tmp, std::string("close failed: ") + std::strerror(saved));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int saved = errno;
        std::remove(tmp.c_str());
        return fail(path, std::string("cannot rename ") + tmp + " over it: " + std::strerror(saved));
    }
    return {};
}

Expected<std::vector<std::uint8_t>> read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return fail(path, std::string("cannot open: ") + std::strerror(errno));
    std::vector<std::uint8_t> out;
    std::uint8_t chunk[65536];
    std::size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) out.insert(out.end(), chunk, chunk + n);
    bool err = std::ferror(f) != 0;
    std::fclose(f);
    if (err) return fail(path, "read error");
    return out;
}

// ---- training ----

Expected<Model> GpuTrainer::fit(const Dataset& train) const {
    const TrainParams& p = params_;
    const std::uint32_t rows = train.rows, features = train.features;
    if (rows == 0 || train.y.size() != rows) return fail("--train", "training data needs rows with a target column");
    if (p.trees == 0) return fail("--trees", "must be at least 1");
    if (p.bins < 2 || p.bins > 256) return fail("--bins", "is " + std::to_string(p.bins) + "; it must be 2..=256");
    TRY(m_features, p.max_features.resolve(features));
    const auto info = wasi_gpu::info();
    const std::uint64_t budget = buffer_budget(info);

    Model model;
    model.features = features;
    model.seed = p.seed;
    model.max_depth = p.max_depth;
    model.min_samples_split = p.min_samples_split;
    model.min_samples_leaf = p.min_samples_leaf;
    model.max_features = m_features;
    model.max_bins = p.bins;
    model.train_rows = rows;

    // Bin edges (§4), from the column or its fixed sample.
    const std::uint32_t edge_count = p.bins - 1;
    std::vector<float> edges(std::size_t(features) * edge_count);
    {
        const std::uint64_t n = std::min<std::uint64_t>(rows, SAMPLE_ROWS);
        std::vector<float> column(n);
        for (std::uint32_t j = 0; j < features; ++j) {
            for (std::uint64_t k = 0; k < n; ++k) {
                std::uint64_t row = rows > SAMPLE_ROWS ? k * rows / SAMPLE_ROWS : k;
                column[k] = train.x[row * features + j];
            }
            feature_edges(column, p.bins, &edges[std::size_t(j) * edge_count]);
        }
    }

    // Fixed-point targets (§5).
    double y_min = train.y[0], y_max = train.y[0];
    for (double v : train.y) y_min = std::min(y_min, v), y_max = std::max(y_max, v);
    if (!std::isfinite(y_max - y_min))
        return fail("--train", "the targets span a range too large to represent");
    const double scale = y_max > y_min ? 1048575.0 / (y_max - y_min) : 1.0;
    model.y_min = y_min;
    model.scale = scale;
    std::vector<std::uint32_t> targets(rows);
    for (std::uint32_t i = 0; i < rows; ++i) {
        double v = std::round((train.y[i] - y_min) * scale);
        targets[i] = v <= 0 ? 0u : v >= TARGET_MAX ? TARGET_MAX : static_cast<std::uint32_t>(v);
    }

    // Device inputs: features, edges, bins, targets.
    std::uint32_t words = (rows + 3) / 4;
    TRY(bins, dev(wasi_gpu::Buffer::create(std::uint64_t(features) * words * 4)));
    {
        TRY(x_buf, upload(train.x.data(), train.x.size() * 4));
        TRY(edge_buf, upload(edges.data(), edges.size() * 4));
        TRY_VOID(dev(wasi_gpu::kernels::bin_features({rows, features, p.bins}, x_buf, edge_buf, bins)));
    }
    TRY(target_buf, upload(targets.data(), targets.size() * 4));

    // Tree batches: weights + node-of per tree.
    const std::uint64_t per_tree = std::uint64_t(rows) * 4;
    const std::uint32_t tree_batch = static_cast<std::uint32_t>(
        std::max<std::uint64_t>(1, std::min<std::uint64_t>(p.trees, budget / per_tree)));
    // find-splits-rows needs no histogram memory; slot batches only bound the mask upload
    // (the result does not depend on the batch size).
    const std::uint32_t slot_batch_max = SLOT_BATCH;
    const std::uint32_t mask_words = m_features < features ? (features + 31) / 32 : 0;
    const bool progress = p.progress && std::uint64_t(rows) * p.trees > PROGRESS_WORK;
    const std::uint32_t min_split = std::max<std::uint32_t>(2, p.min_samples_split);

    model.trees.reserve(p.trees);
    std::vector<std::uint32_t> perm, mask, split_words, next_slot;
    Growable splits_buf, mask_buf, next_buf;
    for (std::uint32_t tb = 0; tb < p.trees; tb += tree_batch) {
        const std::uint32_t tc = std::min(tree_batch, p.trees - tb);
        TRY(weights, dev(wasi_gpu::Buffer::create(per_tree * tc)));
        TRY(node_of, dev(wasi_gpu::Buffer::create(per_tree * tc)));
        TRY_VOID(dev(wasi_gpu::kernels::bootstrap({p.seed, rows, tb, tc, rows}, weights, node_of)));
        std::vector<std::vector<Node>> trees(tc, std::vector<Node>(1));
        std::vector<Slot> level(tc);
        for (std::uint32_t t = 0; t < tc; ++t) level[t] = Slot{t, 0, 0};
        for (std::uint32_t depth = 0; !level.empty(); ++depth) {
            const std::uint32_t slots = static_cast<std::uint32_t>(level.size());
            if (progress)
                guest::emit(2, "trees %u-%u/%u level %u slots %u\n", tb, tb + tc - 1, p.trees, depth, slots);
            TRY(splits_p, splits_buf.at_least(std::uint64_t(slots) * 8 * 4));
            const wasi_gpu::Buffer& splits = *splits_p;
            const std::uint32_t sb_max = std::min(slot_batch_max, slots);
            TRY(mask_p, mask_buf.at_least(mask_words != 0 ? std::uint64_t(sb_max) * mask_words * 4 : 4));
            const wasi_gpu::Buffer& mask_dev = *mask_p;
            for (std::uint32_t sb = 0; sb < slots; sb += sb_max) {
                const std::uint32_t sc = std::min(sb_max, slots - sb);
                if (mask_words != 0) {
                    mask.assign(std::size_t(sc) * mask_words, 0);
                    for (std::uint32_t k = 0; k < sc; ++k) {
                        const Slot& s = level[sb + k];
                        feature_mask(p.seed, tb + s.tree, s.node, features, m_features, perm,
                                     &mask[std::size_t(k) * mask_words]);
                    }
                    TRY_VOID(dev(mask_dev.write(0, mask.data(), mask.size() * 4)));
                }
                TRY_VOID(dev(wasi_gpu::kernels::find_splits_rows(
                    {rows, features, p.bins, tc, sb, sc, p.min_samples_leaf, mask_words}, bins, target_buf, weights,
                    node_of, mask_dev, splits)));
            }
            split_words.resize(std::size_t(slots) * 8);
            TRY_VOID(dev(splits.read_into(0, split_words.data(), split_words.size() * 4)));
            std::vector<Slot> next;
            next_slot.assign(std::size_t(slots) * 2, NONE);
            for (std::uint32_t s = 0; s < slots; ++s) {
                const std::uint32_t* rec = &split_words[std::size_t(s) * 8];
                const Slot slot = level[s];
                std::vector<Node>& tree = trees[slot.tree];
                const std::uint32_t n = rec[5];
                const std::uint64_t sum = rec[6] | (std::uint64_t(rec[7]) << 32);
                // A child's value was set from its parent's record; the root's comes from its own.
                if (depth == 0) tree[0].value = node_value(n, sum);
                // A root with fewer rows than min_samples_split stays a leaf, like any child.
                if (rec[0] == NONE || (depth == 0 && n < min_split)) continue;
                const std::uint32_t nl = rec[2];
                const std::uint64_t sl = rec[3] | (std::uint64_t(rec[4]) << 32);
                if (rec[0] >= features || rec[1] >= edge_count || nl == 0 || nl >= n || sl > sum)
                    return fail("wasi:gpu", "find-splits returned an invalid split record (feature " +
                                                std::to_string(rec[0]) + ", bin " + std::to_string(rec[1]) +
                                                ", left " + std::to_string(nl) + " of " + std::to_string(n) +
                                                ") for slot " + std::to_string(s));
                const std::uint32_t counts[2] = {nl, n - nl};
                const std::uint64_t sums[2] = {sl, sum - sl};
                const std::uint32_t left = static_cast<std::uint32_t>(tree.size());
                Node& parent = tree[slot.node];
                parent.feature = rec[0];
                parent.threshold = edges[std::size_t(rec[0]) * edge_count + rec[1]];
                parent.left = left;
                parent.right = left + 1;
                for (int side = 0; side < 2; ++side) {
                    Node child;
                    child.value = node_value(counts[side], sums[side]);
                    const std::uint32_t child_index = static_cast<std::uint32_t>(tree.size());
                    tree.push_back(child);
                    const std::uint32_t d = slot.depth + 1;
                    const bool deeper = p.max_depth == NONE || d < p.max_depth;
                    if (deeper && counts[side] >= min_split) {
                        next_slot[std::size_t(s) * 2 + side] = static_cast<std::uint32_t>(next.size());
                        next.push_back(Slot{slot.tree, child_index, d});
                    }
                }
            }
            if (!next.empty()) {
                TRY(next_p, next_buf.at_least(next_slot.size() * 4));
                TRY_VOID(dev(next_p->write(0, next_slot.data(), next_slot.size() * 4)));
                TRY_VOID(dev(wasi_gpu::kernels::apply_splits({rows, features, tc, slots}, bins, splits, *next_p,
                                                             node_of)));
            }
            level = std::move(next);
        }
        for (auto& t : trees) model.trees.push_back(std::move(t));
    }
    return model;
}

// ---- prediction ----

Expected<std::vector<double>> GpuPredictor::predict(const Dataset& data) const {
    const Model& m = model_;
    if (data.features != m.features)
        return fail("--test", "has " + std::to_string(data.features) + " features; the model has " +
                                  std::to_string(m.features));
    const std::uint32_t depth = m.depth();
    if (depth > PREDICT_DEPTH_LIMIT)
        return fail("--model", "trees are " + std::to_string(depth) + " levels deep; predict-forest walks at most " +
                                   std::to_string(PREDICT_DEPTH_LIMIT) + " (train with --max-depth 64 or less)");
    // Flatten the forest: (feature, threshold bits or leaf value, left, right), global indices.
    std::vector<std::uint32_t> nodes, roots;
    roots.reserve(m.trees.size());
    for (const auto& tree : m.trees) {
        const std::uint32_t base = static_cast<std::uint32_t>(nodes.size() / 4);
        roots.push_back(base);
        for (const Node& n : tree) {
            if (n.feature == NONE) {
                nodes.insert(nodes.end(), {NONE, n.value, 0, 0});
            } else {
                nodes.insert(nodes.end(), {n.feature, f32_bits(n.threshold), base + n.left, base + n.right});
            }
        }
    }
    const std::uint32_t node_count = static_cast<std::uint32_t>(nodes.size() / 4);
    const std::uint32_t tree_count = static_cast<std::uint32_t>(m.trees.size());
    TRY(node_buf, upload(nodes.data(), nodes.size() * 4));
    TRY(root_buf, upload(roots.data(), roots.size() * 4));
    const std::uint64_t budget = buffer_budget(wasi_gpu::info());
    const std::uint64_t per_row = std::uint64_t(m.features) * 4;
    const std::uint32_t batch = static_cast<std::uint32_t>(
        std::max<std::uint64_t>(1, std::min<std::uint64_t>(data.rows, budget / per_row)));
    std::vector<double> out;
    out.reserve(data.rows);
    std::vector<std::uint32_t> sums;
    for (std::uint32_t r0 = 0; r0 < data.rows; r0 += batch) {
        const std::uint32_t rc = std::min(batch, data.rows - r0);
        TRY(x_buf, upload(&data.x[std::size_t(r0) * m.features], std::size_t(rc) * per_row));
        TRY(sum_buf, dev(wasi_gpu::Buffer::create(std::uint64_t(rc) * 8)));
        TRY_VOID(dev(wasi_gpu::kernels::predict_forest({rc, m.features, tree_count, node_count, depth}, x_buf, node_buf,
                                                       root_buf, sum_buf)));
        sums.resize(std::size_t(rc) * 2);
        TRY_VOID(dev(sum_buf.read_into(0, sums.data(), sums.size() * 4)));
        for (std::uint32_t i = 0; i < rc; ++i) {
            const std::uint64_t total = sums[2 * i] | (std::uint64_t(sums[2 * i + 1]) << 32);
            out.push_back(m.y_min + (double(total) / double(tree_count)) / m.scale);
        }
    }
    return out;
}

double mean_squared_error(const std::vector<double>& pred, const std::vector<double>& y) {
    double sum = 0.0;
    for (std::size_t i = 0; i < pred.size(); ++i) {
        const double d = pred[i] - y[i];
        sum += d * d;
    }
    return pred.empty() ? 0.0 : sum / double(pred.size());
}

}  // namespace guest
