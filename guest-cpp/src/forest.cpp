#include "wasi_gpu/forest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <type_traits>

#include "model_file.hpp"
#include "progress.hpp"
#include "sha256.hpp"
#include "transfer.hpp"
#include "xxh64.hpp"

/// The version symbol of wasi_gpu/forest.hpp: this library was built for these bindings.
extern "C" const char WASI_GPU_FOREST_VERSION_SYMBOL = 0;

namespace wasi_gpu::forest {
namespace {

/// u32 words per split record (§7):
/// (feature, bin, nL, dL, SL lo, SL hi, n, d, S lo, S hi, varying, impure).
constexpr std::size_t SPLIT_WORDS = 12;
constexpr std::uint64_t SAMPLE_ROWS = 200000;
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

std::uint32_t key(std::initializer_list<std::uint32_t> words) {
    std::uint32_t h = 0x243f6a88u;
    for (std::uint32_t w : words) h = mix32(h ^ w);
    return h;
}

std::uint32_t mulhi(std::uint32_t r, std::uint32_t n) {
    return static_cast<std::uint32_t>((std::uint64_t(r) * n) >> 32);
}

/// Draws `begin..end` of node `node` of global tree `tree` (§8): the Fisher-Yates shuffle of
/// `candidates` (the non-constant features, ascending) run from draw 0 up to `end`, with
/// the features of draws `begin..end` set in `mask` (`words` words, cleared first).
void feature_mask(std::uint64_t seed, std::uint32_t tree, std::uint32_t node,
                  const std::vector<std::uint32_t>& candidates, std::uint32_t begin, std::uint32_t end,
                  std::vector<std::uint32_t>& perm, std::uint32_t* mask, std::uint32_t words) {
    const std::uint32_t lo = static_cast<std::uint32_t>(seed), hi = static_cast<std::uint32_t>(seed >> 32);
    const std::uint32_t c = static_cast<std::uint32_t>(candidates.size());
    perm.assign(candidates.begin(), candidates.end());
    for (std::uint32_t i = 0; i < end; ++i) {
        std::uint32_t p = i + mulhi(key({lo, hi, 2, tree, node, i}), c - i);
        std::swap(perm[i], perm[p]);
    }
    std::fill(mask, mask + words, 0u);
    for (std::uint32_t i = begin; i < end; ++i) mask[perm[i] / 32] |= 1u << (perm[i] % 32);
}

/// The exact score floor(SL^2 / nL) + floor(SR^2 / nR) of a valid split record (§7), with
/// nR = n - nL and SR = S - SL; below 2^97 once check_record has passed it.
unsigned __int128 split_score(const std::uint32_t* rec) {
    const std::uint32_t nl = rec[2], n = rec[6];
    const std::uint64_t sl = rec[4] | (std::uint64_t(rec[5]) << 32);
    const std::uint64_t sum = rec[8] | (std::uint64_t(rec[9]) << 32);
    const std::uint64_t sr = sum - sl;
    const unsigned __int128 left = static_cast<unsigned __int128>(sl) * sl / nl;
    const unsigned __int128 right = static_cast<unsigned __int128>(sr) * sr / (n - nl);
    return left + right;
}

/// Whether split record `a` beats split record `b` (both splits): the higher score, ties to
/// the lower feature, then the lower bin (§8).
bool better_split(const std::uint32_t* a, const std::uint32_t* b) {
    const unsigned __int128 sa = split_score(a), sb = split_score(b);
    if (sa != sb) return sa > sb;
    if (a[0] != b[0]) return a[0] < b[0];
    return a[1] < b[1];
}

/// Checks one slot's record from a find-splits-rows call (§7) before the guest relies on it.
/// `allowed`: how many features that call allowed the slot; `mask`: the slot's mask words,
/// or null when every feature was allowed; `first`: the slot's record from the level's first
/// round when this is a later one (the slot's totals and `impure` cannot change), else null.
Expected<void> check_record(const std::uint32_t* rec, std::uint32_t slot, std::uint32_t features,
                            std::uint32_t edge_count, std::uint32_t allowed, const std::uint32_t* mask,
                            const std::uint32_t* first) {
    const std::uint32_t feature = rec[0], nl = rec[2], dl = rec[3], n = rec[6], d = rec[7];
    const std::uint64_t sl = rec[4] | (std::uint64_t(rec[5]) << 32);
    const std::uint64_t sum = rec[8] | (std::uint64_t(rec[9]) << 32);
    bool bad = rec[10] > allowed || rec[11] > 1;
    if (first != nullptr) bad = bad || !std::equal(rec + 6, rec + 10, first + 6) || rec[11] != first[11];
    if (feature != NONE) {
        // Every entry weighs at least 1, so dL <= nL and d - dL <= n - nL; every target is
        // at most T, so SL <= nL * T and SR <= nR * T (which also bounds split_score).
        bad = bad || feature >= features || rec[1] >= edge_count || nl >= n || sl > sum || dl == 0 || dl >= d ||
              dl > nl || d - dl > n - nl || sl > std::uint64_t(nl) * TARGET_MAX ||
              sum - sl > std::uint64_t(n - nl) * TARGET_MAX || rec[11] != 1 ||
              (mask != nullptr && (mask[feature / 32] >> (feature % 32) & 1u) == 0);
    }
    if (bad)
        return fail("wasi:gpu", "find-splits returned an invalid split record (feature " + std::to_string(feature) +
                                    ", bin " + std::to_string(rec[1]) + ", left " + std::to_string(nl) + " of " +
                                    std::to_string(n) + ", entries " + std::to_string(dl) + " of " + std::to_string(d) +
                                    ", varying " + std::to_string(rec[10]) + ", impure " + std::to_string(rec[11]) +
                                    ") for slot " + std::to_string(slot));
    return {};
}

// ---- bins (§4) ----

/// The binning sample: every row when rows <= 200000, else the 200000 rows
/// mulhi(key(seed_lo, seed_hi, 3, k), rows) drawn with replacement, sorted ascending
/// (the order does not matter to the edges; sorted, the gather walks the rows forward).
std::vector<std::uint32_t> sample_rows(std::uint64_t seed, std::uint32_t rows) {
    std::vector<std::uint32_t> out;
    if (rows <= SAMPLE_ROWS) {
        out.resize(rows);
        for (std::uint32_t r = 0; r < rows; ++r) out[r] = r;
        return out;
    }
    const std::uint32_t lo = static_cast<std::uint32_t>(seed), hi = static_cast<std::uint32_t>(seed >> 32);
    out.resize(SAMPLE_ROWS);
    for (std::uint32_t k = 0; k < SAMPLE_ROWS; ++k) out[k] = mulhi(key({lo, hi, 3, k}), rows);
    std::sort(out.begin(), out.end());
    return out;
}

float mid(float a, float b) {
    float m = static_cast<float>((double(a) + double(b)) * 0.5);
    return m >= b ? a : m;
}

/// Exactly max_bins - 1 edges (padded with +inf) from a sample column that gets sorted
/// here: every midpoint between runs of equal values when there are at most max_bins
/// runs, else the greedy pass of §4. Returns the number of finite edges (0: constant).
std::size_t feature_edges(std::vector<float>& s, std::uint32_t max_bins, float* out) {
    std::sort(s.begin(), s.end());
    // Runs of equal values: v[0] < ... < v[D-1] with counts c[i].
    std::vector<float> v;
    std::vector<std::uint64_t> c;
    for (float x : s) {
        if (v.empty() || v.back() != x) {
            v.push_back(x);
            c.push_back(1);
        } else {
            ++c.back();
        }
    }
    const std::uint64_t distinct = v.size();
    std::size_t kept = 0;
    if (distinct <= max_bins) {
        for (std::size_t i = 0; i + 1 < v.size(); ++i) out[kept++] = mid(v[i], v[i + 1]);
    } else {
        std::uint64_t left = max_bins, rest = s.size(), cur = 0;
        for (std::uint64_t i = 0; i + 1 < distinct; ++i) {
            cur += c[i];
            if (left == 1) break;
            if (distinct - 1 - i <= left - 1 || (2 * cur + c[i + 1]) * left >= 2 * rest) {
                out[kept++] = mid(v[i], v[i + 1]);
                rest -= cur;
                cur = 0;
                left -= 1;
            }
        }
    }
    for (std::size_t i = kept; i < max_bins - 1; ++i) out[i] = INFINITY;
    return kept;
}

// ---- bit casts ----

std::uint32_t f32_bits(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return bits;
}

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

#define TRY(var, expr)                                                   \
    auto var##_r = (expr);                                               \
    if (!var##_r) return wasi_gpu::Unexpected<Failure>(var##_r.error()); \
    auto var = std::move(*var##_r)
#define TRY_VOID(expr)                                             \
    do {                                                           \
        auto r_ = (expr);                                          \
        if (!r_) return wasi_gpu::Unexpected<Failure>(r_.error()); \
    } while (0)

/// A new buffer holding `bytes` bytes of `data`, written in pieces (transfer.hpp).
Expected<wasi_gpu::Buffer> upload(const void* data, std::size_t bytes) {
    TRY(buf, dev(wasi_gpu::Buffer::create(bytes)));
    TRY_VOID(dev(write_chunked(buf, 0, data, bytes)));
    return buf;
}

/// Bytes one buffer may take: the device's largest buffer, and a quarter of its memory.
std::uint64_t buffer_budget(const wasi_gpu::DeviceInfo& info) {
    std::uint64_t budget = std::min<std::uint64_t>(info.max_buffer_bytes, info.memory_bytes / 4);
    return std::max<std::uint64_t>(budget, 1u << 20);
}

/// The 32.32 fixed-point mean of a node with weighted count n and target sum s (§8):
/// (s * 2^33 + n) / (2n) in 128-bit integers, i.e. s / n * 2^32 rounded half up.
std::uint64_t node_value(std::uint32_t n, std::uint64_t s) {
    if (n == 0) return 0;
    const unsigned __int128 num = (static_cast<unsigned __int128>(s) << 33) + n;
    return static_cast<std::uint64_t>(num / (2 * static_cast<unsigned __int128>(n)));
}

/// pred = y_min + ((f64(sum) / 2^32) / f64(trees)) / scale in this order (§9); the
/// u128 -> double conversion is correctly rounded (compiler-rt's __floatuntidf).
double prediction(unsigned __int128 sum, std::uint32_t trees, double y_min, double scale) {
    return y_min + ((static_cast<double>(sum) / 4294967296.0) / double(trees)) / scale;
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
    std::uint32_t tree;  ///< local tree index in the batch
    std::uint32_t node;  ///< index in that tree's node list
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

// ---- files ----

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

// ---- training ----

Expected<Model> GpuTrainer::fit(const Dataset& train) const {
    const TrainParams& p = params_;
    const std::uint32_t rows = train.rows, features = train.features;
    if (rows == 0 || train.y.size() != rows) return fail("--train", "training data needs rows with a target column");
    if (p.trees == 0) return fail("--trees", "must be at least 1");
    // Trees first..end of the forest (all of them unless this is a shard, §11).
    const std::uint32_t first = p.tree_to == NONE ? 0 : p.tree_from, end = p.tree_to == NONE ? p.trees : p.tree_to;
    if (first >= end || end > p.trees)
        return fail("--trees-from", "trees " + std::to_string(first) + ".." + std::to_string(end) +
                                        " are not a range of the " + std::to_string(p.trees) + " trees");
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

    // Bin edges (§4), from the binning sample; features with no finite edge are constant.
    const std::uint32_t edge_count = p.bins - 1;
    std::vector<float> edges(std::size_t(features) * edge_count);
    std::vector<std::uint32_t> candidates;  // the non-constant features, ascending (§8)
    {
        const std::vector<std::uint32_t> sample = sample_rows(p.seed, rows);
        std::vector<float> column(sample.size());
        for (std::uint32_t j = 0; j < features; ++j) {
            for (std::size_t k = 0; k < sample.size(); ++k) column[k] = train.x[std::size_t(sample[k]) * features + j];
            if (feature_edges(column, p.bins, &edges[std::size_t(j) * edge_count]) != 0) candidates.push_back(j);
        }
    }

    // Fixed-point targets (§5); the loader already made -0.0 targets +0.0.
    double y_min = train.y[0], y_max = train.y[0];
    for (double v : train.y) y_min = std::min(y_min, v), y_max = std::max(y_max, v);
    // Refused, naming both values, when the range or the scale is not finite (§5).
    const double range = y_max - y_min;
    const double scale = y_max > y_min ? double(TARGET_MAX) / range : 1.0;
    if (!std::isfinite(range) || !std::isfinite(scale))
        return fail("",
                    "the targets span " + rust_display(y_min) + " to " + rust_display(y_max) +
                        (!std::isfinite(range)
                             ? ", a range too large to represent; rescale the target column"
                             : ", a range too small to represent in 32-bit fixed point; rescale the target column"));
    model.y_min = y_min;
    model.scale = scale;
    std::vector<std::uint32_t> targets(rows);
    for (std::uint32_t i = 0; i < rows; ++i) {
        double v = std::round((train.y[i] - y_min) * scale);
        targets[i] = v <= 0 ? 0u : v >= double(TARGET_MAX) ? TARGET_MAX : static_cast<std::uint32_t>(v);
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
    const std::uint32_t tree_batch =
        static_cast<std::uint32_t>(std::max<std::uint64_t>(1, std::min<std::uint64_t>(end - first, budget / per_tree)));
    // find-splits-rows needs no histogram memory; slot batches only bound the mask upload
    // (the result does not depend on the batch size).
    const std::uint32_t slot_batch_max = SLOT_BATCH;
    // Candidate features (§8): m drawn from the non-constant ones per node, then more, up to the
    // first one not constant in it, while every draw was constant; or all features
    // (mask-words 0) when m covers them.
    const std::uint32_t candidate_count = static_cast<std::uint32_t>(candidates.size());
    const std::uint32_t m_draw = std::min(m_features, candidate_count);
    const std::uint32_t mask_words = m_draw < candidate_count ? (features + 31) / 32 : 0;
    Progress progress(p.progress && std::uint64_t(rows) * (end - first) > PROGRESS_WORK, first, end, p.trees,
                      p.max_depth);
    const std::uint32_t min_split = std::max<std::uint32_t>(2, p.min_samples_split);

    model.trees.reserve(end - first);
    std::vector<std::uint32_t> perm, mask, split_words, round_words, next_slot, take, drawn, found, step;
    Growable splits_buf, mask_buf, next_buf;
    for (std::uint32_t tb = first; tb < end; tb += tree_batch) {
        const std::uint32_t tc = std::min(tree_batch, end - tb);
        TRY(weights, dev(wasi_gpu::Buffer::create(per_tree * tc)));
        TRY(node_of, dev(wasi_gpu::Buffer::create(per_tree * tc)));
        TRY_VOID(dev(wasi_gpu::kernels::bootstrap({p.seed, rows, tb, tc, rows}, weights, node_of)));
        std::vector<std::vector<Node>> trees(tc, std::vector<Node>(1));
        std::vector<Slot> level(tc);
        for (std::uint32_t t = 0; t < tc; ++t) level[t] = Slot{t, 0, 0};
        for (std::uint32_t depth = 0; !level.empty(); ++depth) {
            const std::uint32_t slots = static_cast<std::uint32_t>(level.size());
            progress.level(tb, tc, depth, slots);
            TRY(splits_p, splits_buf.at_least(std::uint64_t(slots) * SPLIT_WORDS * 4));
            const wasi_gpu::Buffer& splits = *splits_p;
            const std::uint32_t sb_max = std::min(slot_batch_max, slots);
            TRY(mask_p, mask_buf.at_least(mask_words != 0 ? std::uint64_t(sb_max) * mask_words * 4 : 4));
            const wasi_gpu::Buffer& mask_dev = *mask_p;
            // Rounds of find-splits-rows (§8). Round 1 decides every slot on its first m draws
            // (or on all features); while m < len(C), a slot that is impure and found every
            // draw so far constant in it draws more in further rounds, and keeps the best
            // record over its rounds in `split_words`. `take[s]` is slot s's draws this round
            // (0: not taking part). How many a later round draws cannot change the model: a
            // round that finds more than one non-constant feature is undone (`drawn` not
            // advanced) and retried with half as many draws, down to 1; a slot whose draws
            // were mostly constant draws twice as many as its last round (`step`).
            split_words.resize(std::size_t(slots) * SPLIT_WORDS);
            take.assign(slots, mask_words != 0 ? m_draw : 0);
            drawn.assign(slots, 0);
            found.assign(slots, 0);
            step.assign(slots, 0);
            bool merged = false;  // a later round ran: the device's records are no longer the result
            for (bool first = true;; first = false) {
                bool called = false;
                for (std::uint32_t sb = 0; sb < slots; sb += sb_max) {
                    // A later round calls only the span of this batch's slots that take part.
                    std::uint32_t lo = sb, hi = sb + std::min(sb_max, slots - sb);
                    if (!first) {
                        while (lo < hi && take[lo] == 0) ++lo;
                        while (hi > lo && take[hi - 1] == 0) --hi;
                        if (lo == hi) continue;
                    }
                    const std::uint32_t sc = hi - lo;
                    if (mask_words != 0) {
                        // Slots not taking part get an empty mask.
                        mask.assign(std::size_t(sc) * mask_words, 0);
                        for (std::uint32_t k = 0; k < sc; ++k) {
                            const Slot& s = level[lo + k];
                            if (take[lo + k] != 0)
                                feature_mask(p.seed, tb + s.tree, s.node, candidates, drawn[lo + k],
                                             drawn[lo + k] + take[lo + k], perm, &mask[std::size_t(k) * mask_words],
                                             mask_words);
                        }
                        TRY_VOID(dev(write_chunked(mask_dev, 0, mask.data(), mask.size() * 4)));
                    }
                    TRY_VOID(dev(wasi_gpu::kernels::find_splits_rows(
                        {rows, features, p.bins, tc, lo, sc, p.min_samples_leaf, mask_words}, bins, target_buf, weights,
                        node_of, mask_dev, splits)));
                    called = true;
                    round_words.resize(std::size_t(sc) * SPLIT_WORDS);
                    TRY_VOID(dev(read_chunked(splits, std::uint64_t(lo) * SPLIT_WORDS * 4, round_words.data(),
                                              round_words.size() * 4)));
                    for (std::uint32_t k = 0; k < sc; ++k) {
                        const std::uint32_t s = lo + k;
                        if (!first && take[s] == 0) continue;
                        const std::uint32_t* rec = &round_words[std::size_t(k) * SPLIT_WORDS];
                        std::uint32_t* best = &split_words[std::size_t(s) * SPLIT_WORDS];
                        TRY_VOID(check_record(rec, s, features, edge_count, mask_words != 0 ? take[s] : features,
                                              mask_words != 0 ? &mask[std::size_t(k) * mask_words] : nullptr,
                                              first ? nullptr : best));
                        if (!first && rec[10] > 1) {
                            // Overshot: a non-constant feature after the first one was drawn.
                            step[s] = std::max<std::uint32_t>(take[s] / 2, 1);
                            continue;
                        }
                        // The best record over the rounds: the higher exact score, ties to the
                        // lower feature, then the lower bin; NONE only while every round says so.
                        if (first || (rec[0] != NONE && (best[0] == NONE || better_split(rec, best))))
                            std::copy(rec, rec + SPLIT_WORDS, best);
                        found[s] += rec[10];
                        drawn[s] += take[s];
                        step[s] =
                            2 * std::uint64_t(found[s]) >= drawn[s]
                                ? 0
                                : std::uint32_t(std::min<std::uint64_t>(2 * std::uint64_t(take[s]), candidate_count));
                    }
                }
                if (!first && called) merged = true;
                if (mask_words == 0) break;
                // The next round: impure slots whose draws were all constant, drawn < len(C).
                bool more = false;
                for (std::uint32_t s = 0; s < slots; ++s) {
                    const std::uint32_t* best = &split_words[std::size_t(s) * SPLIT_WORDS];
                    take[s] = best[11] == 1 && found[s] == 0 && drawn[s] < candidate_count
                                  ? std::min(std::max<std::uint32_t>(step[s], 1), candidate_count - drawn[s])
                                  : 0;
                    more = more || take[s] != 0;
                }
                if (!more) break;
            }
            // apply-splits reads each slot's feature and bin from the device's records.
            if (merged) TRY_VOID(dev(write_chunked(splits, 0, split_words.data(), split_words.size() * 4)));
            std::vector<Slot> next;
            next_slot.assign(std::size_t(slots) * 2, NONE);
            for (std::uint32_t s = 0; s < slots; ++s) {
                // (feature, bin, nL, dL, SL lo, SL hi, n, d, S lo, S hi, varying, impure), checked above
                const std::uint32_t* rec = &split_words[std::size_t(s) * SPLIT_WORDS];
                const Slot slot = level[s];
                std::vector<Node>& tree = trees[slot.tree];
                const std::uint32_t n = rec[6], d = rec[7];
                const std::uint64_t sum = rec[8] | (std::uint64_t(rec[9]) << 32);
                // A child's count and value were set from its parent's record; the root's come from its own.
                if (depth == 0) {
                    tree[0].count = n;
                    tree[0].value = node_value(n, sum);
                }
                // A root with fewer distinct rows than min_samples_split stays a leaf, like any child.
                if (rec[0] == NONE || (depth == 0 && d < min_split)) continue;
                const std::uint32_t nl = rec[2], dl = rec[3];
                const std::uint64_t sl = rec[4] | (std::uint64_t(rec[5]) << 32);
                const std::uint32_t counts[2] = {nl, n - nl};
                const std::uint32_t entries[2] = {dl, d - dl};
                const std::uint64_t sums[2] = {sl, sum - sl};
                const std::uint32_t left = static_cast<std::uint32_t>(tree.size());
                Node& parent = tree[slot.node];
                parent.feature = rec[0];
                parent.threshold = edges[std::size_t(rec[0]) * edge_count + rec[1]];
                parent.left = left;
                parent.right = left + 1;
                for (int side = 0; side < 2; ++side) {
                    Node child;
                    child.count = counts[side];
                    child.value = node_value(counts[side], sums[side]);
                    const std::uint32_t child_index = static_cast<std::uint32_t>(tree.size());
                    tree.push_back(child);
                    const std::uint32_t k = slot.depth + 1;
                    const bool deeper = p.max_depth == NONE || k < p.max_depth;
                    if (deeper && entries[side] >= min_split) {
                        next_slot[std::size_t(s) * 2 + side] = static_cast<std::uint32_t>(next.size());
                        next.push_back(Slot{slot.tree, child_index, k});
                    }
                }
            }
            if (!next.empty()) {
                TRY(next_p, next_buf.at_least(next_slot.size() * 4));
                TRY_VOID(dev(write_chunked(*next_p, 0, next_slot.data(), next_slot.size() * 4)));
                TRY_VOID(
                    dev(wasi_gpu::kernels::apply_splits({rows, features, tc, slots}, bins, splits, *next_p, node_of)));
            }
            level = std::move(next);
        }
        for (auto& t : trees) model.trees.push_back(std::move(t));
    }
    progress.finish();
    return model;
}

// ---- prediction ----

namespace {

/// Appends tree `tree`'s rows of the node table: (feature, threshold bits, left, right) with
/// forest-wide indices (the tree starts at node `first`), or a leaf's (NONE, value lo, value
/// hi, 0).
void flatten_tree(const std::vector<Node>& tree, std::uint32_t first, std::vector<std::uint32_t>& out) {
    for (const Node& n : tree) {
        if (n.feature == NONE)
            out.insert(out.end(),
                       {NONE, static_cast<std::uint32_t>(n.value), static_cast<std::uint32_t>(n.value >> 32), 0});
        else
            out.insert(out.end(), {n.feature, f32_bits(n.threshold), first + n.left, first + n.right});
    }
}

/// Builds a node table in device memory a few MiB at a time (the table is never whole in
/// the guest's memory).
class TableWriter {
public:
    explicit TableWriter(const wasi_gpu::Buffer& nodes) : nodes_(nodes) { chunk_.reserve(WORDS + 4); }
    Expected<void> tree(const std::vector<Node>& tree) {
        roots.push_back(first);
        flatten_tree(tree, first, chunk_);
        first += static_cast<std::uint32_t>(tree.size());
        return chunk_.size() >= WORDS ? flush() : Expected<void>{};
    }
    Expected<void> flush() {
        TRY_VOID(dev(write_chunked(nodes_, uploaded_, chunk_.data(), chunk_.size() * 4)));
        uploaded_ += chunk_.size() * 4;
        chunk_.clear();
        return {};
    }
    std::uint32_t first = 0;  ///< the next tree's first node
    std::vector<std::uint32_t> roots;

private:
    static constexpr std::size_t WORDS = std::size_t(1) << 20;
    const wasi_gpu::Buffer& nodes_;
    std::vector<std::uint32_t> chunk_;
    std::uint64_t uploaded_ = 0;  ///< bytes
};

}  // namespace

Expected<GpuPredictor> GpuPredictor::load(const std::string& path, LoadedModel& info) {
    GpuPredictor p;
    p.device_.emplace();
    DeviceForest& f = *p.device_;
    std::optional<TableWriter> table;
    std::optional<Failure> failed;
    std::uint64_t file_len = 0;
    std::vector<std::uint32_t> walk;
    const auto tree = [&](const Model&, std::uint32_t, std::vector<Node>&& nodes) -> Expected<void> {
        if (!table) {
            // Sized when the first tree arrives (the header was read and checked): a model file
            // holds at most (its length / 32) nodes.
            const std::uint64_t most = file_len / 32;
            if (most > NONE)
                return fail(path, "the file could hold " + std::to_string(most) +
                                      " nodes; predict-forest addresses fewer than 2^32");
            TRY(nodes_buf, dev(wasi_gpu::Buffer::create(std::max<std::uint64_t>(most, 1) * 16)));
            f.nodes = std::move(nodes_buf);
            table.emplace(f.nodes);
        }
        f.depth = std::max(f.depth, tree_depth(nodes, walk));
        return table->tree(nodes);
    };
    TRY(loaded, read_model_trees(
                    path,
                    [&](const Model& h, std::uint32_t t, std::vector<Node>&& nodes) {
                        if (failed) return;
                        auto r = tree(h, t, std::move(nodes));
                        if (!r) failed = r.error();
                    },
                    [&](std::uint64_t len) { file_len = len; }));
    if (failed) return wasi_gpu::Unexpected<Failure>(*failed);
    TRY_VOID(table->flush());
    TRY(roots, upload(table->roots.data(), table->roots.size() * 4));
    f.roots = std::move(roots);
    f.node_count = table->first;
    f.tree_count = static_cast<std::uint32_t>(table->roots.size());
    f.features = loaded.model.features;
    f.y_min = loaded.model.y_min;
    f.scale = loaded.model.scale;
    info = std::move(loaded);
    return p;
}

Expected<std::vector<double>> GpuPredictor::predict(const Dataset& data) const {
    if (device_) return run(*device_, data);
    const Model& m = *model_;
    std::uint64_t total_nodes = 0;
    for (const auto& tree : m.trees) total_nodes += tree.size();
    if (total_nodes > NONE)
        return fail("--model", "the forest has " + std::to_string(total_nodes) +
                                   " nodes; predict-forest addresses fewer than 2^32");
    DeviceForest f;
    TRY(nodes, dev(wasi_gpu::Buffer::create(std::max<std::uint64_t>(total_nodes, 1) * 16)));
    f.nodes = std::move(nodes);
    TableWriter table(f.nodes);
    for (const auto& tree : m.trees) TRY_VOID(table.tree(tree));
    TRY_VOID(table.flush());
    TRY(roots, upload(table.roots.data(), table.roots.size() * 4));
    f.roots = std::move(roots);
    f.node_count = table.first;
    f.tree_count = static_cast<std::uint32_t>(m.trees.size());
    // The model's deepest path, however deep (§9): --max-depth none trains models this accepts.
    f.depth = m.depth();
    f.features = m.features;
    f.y_min = m.y_min;
    f.scale = m.scale;
    return run(f, data);
}

Expected<std::vector<double>> GpuPredictor::run(const DeviceForest& f, const Dataset& data) const {
    if (data.features != f.features)
        return fail("--test",
                    "has " + std::to_string(data.features) + " features; the model has " + std::to_string(f.features));
    const std::uint64_t budget = buffer_budget(wasi_gpu::info());
    const std::uint64_t per_row = std::uint64_t(f.features) * 4;
    const std::uint32_t batch =
        static_cast<std::uint32_t>(std::max<std::uint64_t>(1, std::min<std::uint64_t>(data.rows, budget / per_row)));
    std::vector<double> out;
    out.reserve(data.rows);
    std::vector<std::uint32_t> sums;
    for (std::uint32_t r0 = 0; r0 < data.rows; r0 += batch) {
        const std::uint32_t rc = std::min(batch, data.rows - r0);
        TRY(x_buf, upload(&data.x[std::size_t(r0) * f.features], std::size_t(rc) * per_row));
        // One wrapping 128-bit sum per row: 4 u32 words, least significant first.
        TRY(sum_buf, dev(wasi_gpu::Buffer::create(std::uint64_t(rc) * 16)));
        TRY_VOID(dev(wasi_gpu::kernels::predict_forest({rc, f.features, f.tree_count, f.node_count, f.depth}, x_buf,
                                                       f.nodes, f.roots, sum_buf)));
        sums.resize(std::size_t(rc) * 4);
        TRY_VOID(dev(read_chunked(sum_buf, 0, sums.data(), sums.size() * 4)));
        for (std::uint32_t i = 0; i < rc; ++i) {
            const std::uint32_t* w = &sums[std::size_t(i) * 4];
            const unsigned __int128 total =
                static_cast<unsigned __int128>(w[0]) | (static_cast<unsigned __int128>(w[1]) << 32) |
                (static_cast<unsigned __int128>(w[2]) << 64) | (static_cast<unsigned __int128>(w[3]) << 96);
            out.push_back(prediction(total, f.tree_count, f.y_min, f.scale));
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

}  // namespace wasi_gpu::forest
