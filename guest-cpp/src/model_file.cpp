// The model file, format version 2 (docs/algorithm.md §10), written and read as streams: a
// tree's nodes lie in memory exactly as in the file (Node is the 32-byte record), so they go
// between the file and the forest's own vectors in whole trees, through the checksum on the
// way; neither saving nor loading holds the whole file in memory beside the forest. The
// checks, and their order (hence which message a damaged file gets), are the Rust guest's
// (guest-rust/src/model_io.rs and Model::validate).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <optional>
#include <type_traits>

#include "model_file.hpp"
#include "sha256.hpp"
#include "wasi_gpu/forest.hpp"
#include "xxh64.hpp"

namespace wasi_gpu::forest {
namespace {

constexpr std::uint8_t MAGIC[8] = {0x57, 0x47, 0x50, 0x55, 0x52, 0x46, 0x00, 0x01};
/// A partial forest's magic `WGPUPF\0\1` (§11), its version and its header bytes (before the
/// header's own XXH64).
constexpr std::uint8_t PARTIAL_MAGIC[8] = {0x57, 0x47, 0x50, 0x55, 0x50, 0x46, 0x00, 0x01};
constexpr std::uint32_t PARTIAL_VERSION = 1;
constexpr std::size_t PARTIAL_HEADER = 40;
constexpr std::uint32_t VERSION = 2;
/// Model file task 0: regression (1, classification, is reserved).
constexpr std::uint32_t TASK_REGRESSION = 0;
/// Model file checksum kind 1: SHA-256 of every preceding byte (read, not written).
constexpr std::uint32_t CHECKSUM_SHA256 = 1;
/// Model file checksum kind 2: XXH64 (seed 0) of every preceding byte, 8 bytes little-endian.
constexpr std::uint32_t CHECKSUM_XXH64 = 2;
/// Bytes of the fixed header, before the label-table length (§10).
constexpr std::size_t HEADER_BYTES = 80;
/// Bytes per node for regression (K = 1): 24 + 8.
constexpr std::size_t NODE_BYTES = 32;
/// Magic, version, task and checksum kind: what is read before the body.
constexpr std::size_t START_BYTES = 20;
/// Staging between the model and the file; a tree's nodes larger than this bypass it.
constexpr std::size_t IO_BUFFER = std::size_t(1) << 20;
/// The reader's answer to a version-1 file (§10).
const char* const V1_MESSAGE =
    "model format version 1 was written by an older release; retrain the model with this one "
    "(training is deterministic: same data, parameters and seed give the same forest)";

// Nodes are copied to and from the file as they lie in memory (WebAssembly is little-endian,
// like the file).
static_assert(sizeof(Node) == NODE_BYTES && offsetof(Node, threshold) == 4 && offsetof(Node, left) == 8 &&
                  offsetof(Node, right) == 12 && offsetof(Node, flags) == 16 && offsetof(Node, count) == 20 &&
                  offsetof(Node, value) == 24 && std::is_trivially_copyable<Node>::value,
              "Node must be the model file's 32-byte record");

std::string errno_text() { return std::strerror(errno); }

/// Writes all of `n` bytes to `fd`; false (with errno set) on failure.
bool write_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w, n -= static_cast<std::size_t>(w);
    }
    return true;
}

/// A file being written through a staging buffer and XXH64.
class Writer {
public:
    explicit Writer(int fd) : fd_(fd) { buf_.reserve(IO_BUFFER); }
    bool write(const void* data, std::size_t n) {
        const auto* p = static_cast<const std::uint8_t*>(data);
        sum_.update(p, n);
        if (buf_.size() + n > IO_BUFFER) {
            if (!flush()) return false;
            if (n >= IO_BUFFER) return write_all(fd_, p, n);
        }
        buf_.insert(buf_.end(), p, p + n);
        return true;
    }
    bool u32(std::uint32_t v) { return write(&v, 4); }
    bool u64(std::uint64_t v) { return write(&v, 8); }
    bool f64(double v) { return write(&v, 8); }
    bool flush() {
        const bool ok = write_all(fd_, buf_.data(), buf_.size());
        buf_.clear();
        return ok;
    }
    std::uint64_t digest() const { return sum_.digest(); }

private:
    int fd_;
    std::vector<std::uint8_t> buf_;
    Xxh64 sum_;
};

/// A file read through a staging buffer; reads of a buffer's size or more go straight to
/// their destination.
class Source {
public:
    explicit Source(int fd) : fd_(fd) {}
    /// Fills `n` bytes; false on a read error (errno set) or an early end (errno 0).
    bool read(void* dst, std::size_t n) {
        auto* out = static_cast<std::uint8_t*>(dst);
        const std::size_t have = std::min(n, end_ - at_);
        std::memcpy(out, buf_.data() + at_, have);
        at_ += have, out += have, n -= have;
        if (n == 0) return true;
        if (n >= IO_BUFFER) return fill(out, n);
        buf_.resize(IO_BUFFER);
        at_ = end_ = 0;
        while (end_ < n) {
            const ssize_t r = ::read(fd_, buf_.data() + end_, IO_BUFFER - end_);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return (r == 0 ? errno = 0 : 0), false;
            end_ += static_cast<std::size_t>(r);
        }
        std::memcpy(out, buf_.data(), n);
        at_ = n;
        return true;
    }

private:
    bool fill(std::uint8_t* out, std::size_t n) {
        while (n > 0) {
            const ssize_t r = ::read(fd_, out, n);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return (r == 0 ? errno = 0 : 0), false;
            out += r, n -= static_cast<std::size_t>(r);
        }
        return true;
    }
    int fd_;
    std::vector<std::uint8_t> buf_;
    std::size_t at_ = 0, end_ = 0;
};

/// The running checksum of what was read, of either kind.
class Sum {
public:
    explicit Sum(std::uint32_t kind) : sha_(kind == CHECKSUM_SHA256) {}
    void update(const void* p, std::size_t n) { sha_ ? sha256_.update(p, n) : xxh64_.update(p, n); }
    /// Whether `trailer` is this checksum; `name` gets it as `model_checksum` reports it.
    bool matches(const std::uint8_t* trailer, std::string& name) {
        if (sha_) {
            std::array<std::uint8_t, 32> digest;
            std::memcpy(digest.data(), trailer, 32);
            name = "sha256:" + to_hex(digest);
            return sha256_.finish() == digest;
        }
        std::uint64_t stored;
        std::memcpy(&stored, trailer, 8);
        name = xxh64_name(stored);
        return xxh64_.digest() == stored;
    }

private:
    bool sha_;
    Sha256 sha256_;
    Xxh64 xxh64_;
};

/// The body of the file (`left` bytes remain before the trailer), hashed as it is read. A
/// read failure is remembered (`failed`, `error`) rather than reported as a format error.
struct Body {
    Source& src;
    std::uint64_t left;
    Sum& sum;
    bool failed = false;
    int error = 0;
    /// Fills `n` bytes; false when the body ends first or the read fails.
    bool read(void* dst, std::size_t n) {
        if (n > left) return false;
        if (!src.read(dst, n)) return failed = true, error = errno, false;
        sum.update(dst, n);
        left -= n;
        return true;
    }
    template <class T>
    bool get(T& v) {
        return read(&v, sizeof v);
    }
    /// Hashes whatever of the body the parser did not consume.
    bool drain() {
        std::vector<std::uint8_t> chunk(static_cast<std::size_t>(std::min<std::uint64_t>(left, IO_BUFFER)));
        while (left > 0 && !failed)
            read(chunk.data(), static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk.size())));
        return !failed;
    }
};

/// Everything after the first 20 bytes up to the trailer, as the model's fields.
Expected<Model> parse_body(Body& r, const std::string& path, const TreeSink& sink) {
    const auto truncated = [&] { return fail(path, "truncated: the file ends early"); };
    Model m;
    std::uint32_t tree_count = 0, outputs = 0, labels = 0;
    if (!r.get(m.features) || !r.get(tree_count) || !r.get(m.seed) || !r.get(m.max_depth) ||
        !r.get(m.min_samples_split) || !r.get(m.min_samples_leaf) || !r.get(m.max_features) || !r.get(m.max_bins) ||
        !r.get(m.train_rows) || !r.get(outputs))
        return truncated();
    if (outputs != 1) return fail(path, "a regression model has 1 value per node, not " + std::to_string(outputs));
    if (!r.get(m.y_min) || !r.get(m.scale) || !r.get(labels)) return truncated();
    if (labels != 0)
        return fail(path, "a regression model has an empty label table, not " + std::to_string(labels) + " bytes");
    for (std::uint32_t t = 0; t < tree_count; ++t) {
        std::uint32_t count = 0;
        if (!r.get(count)) return truncated();
        if (count == 0) return fail(path, "tree " + std::to_string(t) + " has no nodes");
        if (count > r.left / NODE_BYTES)
            return fail(path, "truncated: tree " + std::to_string(t) + " claims " + std::to_string(count) +
                                  " nodes but the file ends first");
        std::vector<Node> nodes(count);
        if (!r.read(nodes.data(), std::size_t(count) * NODE_BYTES)) return truncated();
        // Reserved bits are the file's structure: reported while parsing, as they always were.
        for (std::size_t k = 0; k < nodes.size(); ++k) {
            if (nodes[k].flags != 0) {
                char hex[16];
                std::snprintf(hex, sizeof hex, "%#x", nodes[k].flags);
                return fail(path, "tree " + std::to_string(t) + " node " + std::to_string(k) + ": flags " + hex +
                                      " set reserved bits");
            }
        }
        sink(m, t, std::move(nodes));
    }
    if (r.left > 0) return fail(path, std::to_string(r.left) + " unexpected bytes after the last tree");
    return m;
}

/// Every invariant the writer guarantees, so that prediction can trust the forest.
/// The header's part of the checks, for a forest of `trees` trees.
Expected<void> validate_header(const Model& m, std::uint64_t trees, const std::string& path) {
    if (m.features == 0) return fail(path, "the model has 0 features");
    if (trees == 0) return fail(path, "the model has no trees");
    if (m.max_bins < 2 || m.max_bins > 256)
        return fail(path, "max_bins " + std::to_string(m.max_bins) + " is outside 2..=256");
    if (m.max_features == 0 || m.max_features > m.features)
        return fail(path,
                    "max_features " + std::to_string(m.max_features) + " is outside 1..=" + std::to_string(m.features));
    if (m.train_rows == 0) return fail(path, "the model was trained on 0 rows");
    if (!std::isfinite(m.y_min) || !std::isfinite(m.scale) || !(m.scale > 0))
        return fail(path, "y_min " + rust_display(m.y_min) + " / scale " + rust_display(m.scale) +
                              " are not a valid target mapping");
    return {};
}

/// Tree `t`'s part of the checks (the header's fields are `m`'s).
Expected<void> validate_tree(const Model& m, std::uint32_t t, const std::vector<Node>& tree, const std::string& path) {
    const std::uint64_t count = tree.size();
    for (std::size_t k = 0; k < tree.size(); ++k) {
        const Node& n = tree[k];
        // Built only for a message: every node passes through here.
        const auto where = [&] { return "tree " + std::to_string(t) + " node " + std::to_string(k) + ": "; };
        if (n.flags != 0) {
            char hex[16];
            std::snprintf(hex, sizeof hex, "%#x", n.flags);
            return fail(path, where() + "flags " + hex + " set reserved bits");
        }
        if (n.value > VALUE_MAX) {
            char hex[64];
            std::snprintf(hex, sizeof hex, "%#llx exceeds %#llx", static_cast<unsigned long long>(n.value),
                          static_cast<unsigned long long>(VALUE_MAX));
            return fail(path, where() + "value " + hex);
        }
        if (n.feature == NONE) {
            std::uint32_t bits;
            std::memcpy(&bits, &n.threshold, 4);
            if (bits != 0 || n.left != 0 || n.right != 0)
                return fail(path, where() + "a leaf must have threshold 0 and children 0");
            continue;
        }
        if (n.feature >= m.features)
            return fail(path, where() + "feature " + std::to_string(n.feature) + " is not below the model's " +
                                  std::to_string(m.features) + " features");
        if (std::isnan(n.threshold)) return fail(path, where() + "threshold is NaN");
        for (std::uint32_t child : {n.left, n.right}) {
            if (child >= count || child <= k)
                return fail(path, where() + "child " + std::to_string(child) +
                                      " is out of range or not after its parent (" + std::to_string(count) + " nodes)");
        }
    }
    return {};
}

/// Reads a model file of `len` bytes from `fd`, handing each valid tree to `on_tree` in order
/// instead of keeping it (the returned model has the header's fields and no trees); every check
/// in the Rust guest's order: the checksum, the structure, the header, then the trees.
Expected<LoadedModel> read_model(int fd, std::uint64_t len, const std::string& path, const TreeSink& on_tree) {
    const auto cannot_read = [&](int error) {
        return fail(path, std::string("cannot read: ") + (error ? std::strerror(error) : "the file ended early"));
    };
    Source src(fd);
    std::uint8_t start[START_BYTES] = {};
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, START_BYTES));
    if (!src.read(start, n)) return cannot_read(errno);
    if (n >= 8 && std::memcmp(start, PARTIAL_MAGIC, 8) == 0)
        return fail(path,
                    "a partial forest, not a model: merge it with the other shards first (merge --model OUT PART...)");
    if (n < 8 || std::memcmp(start, MAGIC, 8) != 0)
        return fail(path, "not a model file (wrong magic; expected a model.bin written by a wasi:gpu guest)");
    if (len < HEADER_BYTES + 8)
        return fail(path, "truncated: " + std::to_string(len) + " bytes is shorter than a model header");
    std::uint32_t version, task, kind;
    std::memcpy(&version, start + 8, 4);
    std::memcpy(&task, start + 12, 4);
    std::memcpy(&kind, start + 16, 4);
    if (version == 1) return fail(path, V1_MESSAGE);
    if (version != VERSION)
        return fail(path, "model format version " + std::to_string(version) +
                              " is not supported (this guest reads version " + std::to_string(VERSION) + ")");
    if (task != TASK_REGRESSION)
        return fail(path, "model task " + std::to_string(task) +
                              " is not supported (this guest reads regression models, task 0)");
    if (kind != CHECKSUM_SHA256 && kind != CHECKSUM_XXH64)
        return fail(path, "checksum kind " + std::to_string(kind) +
                              " is not supported (this guest reads SHA-256, kind 1, and XXH64, kind 2)");
    const std::size_t trailer_len = kind == CHECKSUM_SHA256 ? 32 : 8;
    if (len < HEADER_BYTES + trailer_len)
        return fail(path, "truncated: " + std::to_string(len) + " bytes is shorter than a model header");
    // The checksum is judged first: a damaged file is reported as such, never by what its
    // damage looks like to the parser, so a parse error waits until the whole body was hashed.
    Sum sum(kind);
    sum.update(start, START_BYTES);
    Body body{src, len - trailer_len - START_BYTES, sum};
    // A tree's problem waits too, behind the checksum, the structure and the header.
    std::optional<Failure> bad_tree;
    std::uint32_t trees = 0;
    const TreeSink check = [&](const Model& header, std::uint32_t t, std::vector<Node>&& nodes) {
        ++trees;
        if (bad_tree) return;
        auto valid = validate_tree(header, t, nodes, path);
        if (!valid) return bad_tree.emplace(valid.error()), void();
        on_tree(header, t, std::move(nodes));
    };
    auto parsed = parse_body(body, path, check);
    if (body.failed || !body.drain()) return cannot_read(body.error);
    std::uint8_t trailer[32];
    if (!src.read(trailer, trailer_len)) return cannot_read(errno);
    LoadedModel out;
    if (!sum.matches(trailer, out.checksum))
        return fail(path, "checksum mismatch: the file is corrupt, truncated or was modified");
    if (!parsed) return wasi_gpu::Unexpected<Failure>(parsed.error());
    auto valid = validate_header(*parsed, trees, path);
    if (!valid) return wasi_gpu::Unexpected<Failure>(valid.error());
    if (bad_tree) return wasi_gpu::Unexpected<Failure>(*bad_tree);
    out.model = std::move(*parsed);
    out.bytes = len;
    out.tree_count = trees;
    return out;
}

}  // namespace

namespace {

/// Writes the model file's bytes up to the checksum trailer to `w` (a Writer or a HashSink).
template <class Out>
bool write_body(const Model& m, Out& w) {
    bool ok = w.write(MAGIC, 8) && w.u32(VERSION) && w.u32(TASK_REGRESSION) && w.u32(CHECKSUM_XXH64) &&
              w.u32(m.features) && w.u32(static_cast<std::uint32_t>(m.trees.size())) && w.u64(m.seed) &&
              w.u32(m.max_depth) && w.u32(m.min_samples_split) && w.u32(m.min_samples_leaf) && w.u32(m.max_features) &&
              w.u32(m.max_bins) && w.u32(m.train_rows) && w.u32(1) /* values per node: 1 for regression */ &&
              w.f64(m.y_min) && w.f64(m.scale) && w.u32(0) /* no label table for regression */;
    for (std::size_t t = 0; ok && t < m.trees.size(); ++t)
        ok = w.u32(static_cast<std::uint32_t>(m.trees[t].size())) &&
             w.write(m.trees[t].data(), m.trees[t].size() * NODE_BYTES);
    return ok;
}

/// Hashes what would be written, XXH64 (the trailer) and SHA-256 (of the whole file).
struct HashSink {
    Xxh64 xxh64;
    Sha256 sha256;
    std::uint64_t bytes = 0;
    bool write(const void* p, std::size_t n) {
        xxh64.update(p, n);
        sha256.update(p, n);
        bytes += n;
        return true;
    }
    bool u32(std::uint32_t v) { return write(&v, 4); }
    bool u64(std::uint64_t v) { return write(&v, 8); }
    bool f64(double v) { return write(&v, 8); }
};

}  // namespace

ModelDigests Model::digests() const {
    HashSink h;
    write_body(*this, h);
    const std::uint64_t sum = h.xxh64.digest();
    h.sha256.update(&sum, 8);
    return ModelDigests{h.bytes + 8, xxh64_name(sum), to_hex(h.sha256.finish())};
}

namespace {

/// Writes `prefix` (a partial forest's header, or nothing) and `m`'s model file to `path.tmp`,
/// then renames it over `path`.
Expected<SavedModel> save_file(const Model& m, const std::string& path, const std::uint8_t* prefix,
                               std::size_t prefix_len) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail(tmp, "cannot create: " + errno_text());
    Writer w(fd);
    bool ok = write_all(fd, prefix, prefix_len) && write_body(m, w);
    const std::uint64_t sum = w.digest();
    ok = ok && w.flush() && write_all(fd, reinterpret_cast<const std::uint8_t*>(&sum), 8);
    if (!ok) {
        const std::string why = errno_text();
        ::close(fd);
        std::remove(tmp.c_str());
        return fail(tmp, "write failed: " + why);
    }
    if (::close(fd) != 0) {
        const std::string why = errno_text();
        std::remove(tmp.c_str());
        return fail(tmp, "close failed: " + why);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = errno_text();
        std::remove(tmp.c_str());
        return fail(path, "cannot rename " + tmp + " over it: " + why);
    }
    std::uint64_t bytes = prefix_len + HEADER_BYTES + 4 + 8;
    for (const auto& tree : m.trees) bytes += 4 + tree.size() * NODE_BYTES;
    return SavedModel{bytes, xxh64_name(sum)};
}

}  // namespace

Expected<SavedModel> Model::save(const std::string& path) const { return save_file(*this, path, nullptr, 0); }

Expected<SavedModel> Partial::save(const std::string& path) const {
    std::uint8_t h[PARTIAL_HEADER + 8];
    const std::uint32_t words[4] = {PARTIAL_VERSION, from, to, total};
    std::memcpy(h, PARTIAL_MAGIC, 8);
    std::memcpy(h + 8, words, 16);
    std::memcpy(h + 24, &data_xxh64, 8);
    std::memcpy(h + 32, &data_bytes, 8);
    const std::uint64_t sum = xxh64(h, PARTIAL_HEADER);
    std::memcpy(h + PARTIAL_HEADER, &sum, 8);
    return save_file(model, path, h, sizeof h);
}

Expected<Partial> Partial::load(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0)
        return fail(path, errno == ENOENT ? std::string("cannot open: no such file") : "cannot read: " + errno_text());
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st;
    if (::fstat(fd, &st) != 0) return fail(path, "cannot read: " + errno_text());
    const std::uint64_t len = static_cast<std::uint64_t>(st.st_size);
    std::uint8_t h[PARTIAL_HEADER + 8];
    if (len < sizeof h)
        return fail(path, "not a partial forest: " + std::to_string(len) + " bytes is shorter than its header");
    for (std::size_t got = 0; got < sizeof h;) {
        const ssize_t r = ::read(fd, h + got, sizeof h - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return fail(path, "cannot read: " + (r == 0 ? std::string("the file ended early") : errno_text()));
        got += static_cast<std::size_t>(r);
    }
    if (std::memcmp(h, PARTIAL_MAGIC, 8) != 0)
        return fail(path, "not a partial forest (wrong magic; `train --trees-from A --trees-to B` writes them)");
    std::uint64_t stored;
    std::memcpy(&stored, h + PARTIAL_HEADER, 8);
    if (stored != xxh64(h, PARTIAL_HEADER))
        return fail(path, "checksum mismatch in the partial forest's header: the file is corrupt or was modified");
    std::uint32_t words[4];
    std::memcpy(words, h + 8, 16);
    if (words[0] != PARTIAL_VERSION)
        return fail(path, "partial forest version " + std::to_string(words[0]) +
                              " is not supported (this guest reads version 1)");
    Partial p;
    p.from = words[1], p.to = words[2], p.total = words[3];
    std::memcpy(&p.data_xxh64, h + 24, 8);
    std::memcpy(&p.data_bytes, h + 32, 8);
    std::vector<std::vector<Node>> forest;
    auto inside = read_model(fd, len - sizeof h, path, [&](const Model&, std::uint32_t, std::vector<Node>&& nodes) {
        forest.push_back(std::move(nodes));
    });
    if (!inside) {
        Failure f = inside.error();
        f.what = "the forest inside: " + f.what;
        return wasi_gpu::Unexpected<Failure>(f);
    }
    p.model = std::move(inside->model);
    p.model.trees = std::move(forest);
    if (p.from >= p.to || p.to > p.total || p.model.trees.size() != std::uint64_t(p.to - p.from))
        return fail(path, "trees " + std::to_string(p.from) + ".." + std::to_string(p.to) + " of " +
                              std::to_string(p.total) + " do not match the " + std::to_string(p.model.trees.size()) +
                              " trees inside");
    return p;
}

Expected<LoadedModel> Model::load(const std::string& path) {
    std::vector<std::vector<Node>> forest;
    auto loaded = read_model_trees(
        path, [&](const Model&, std::uint32_t, std::vector<Node>&& nodes) { forest.push_back(std::move(nodes)); });
    if (loaded) loaded->model.trees = std::move(forest);
    return loaded;
}

Expected<std::uint64_t> read_pieces(const std::string& path,
                                    const std::function<void(const std::uint8_t*, std::size_t)>& piece) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return fail(path, "cannot open: " + errno_text());
    std::vector<std::uint8_t> chunk(IO_BUFFER);
    std::uint64_t bytes = 0;
    for (;;) {
        const ssize_t n = ::read(fd, chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const std::string why = errno_text();
            ::close(fd);
            return fail(path, "cannot read: " + why);
        }
        if (n == 0) break;
        piece(chunk.data(), static_cast<std::size_t>(n));
        bytes += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    return bytes;
}

Expected<LoadedModel> read_model_trees(const std::string& path, const TreeSink& on_tree,
                                       const std::function<void(std::uint64_t)>& on_length) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0)
        return fail(path, errno == ENOENT
                              ? std::string("cannot open: no such file (train a model first, or check --model)")
                              : "cannot read: " + errno_text());
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        const std::string why = errno_text();
        ::close(fd);
        return fail(path, "cannot read: " + why);
    }
    if (on_length) on_length(static_cast<std::uint64_t>(st.st_size));
    auto loaded = read_model(fd, static_cast<std::uint64_t>(st.st_size), path, on_tree);
    ::close(fd);
    return loaded;
}

std::uint32_t tree_depth(const std::vector<Node>& tree, std::vector<std::uint32_t>& depth) {
    depth.assign(tree.size(), 0);
    std::uint32_t deepest = 0;
    // Children come after their parent, so one forward pass sets every depth.
    for (std::size_t k = 0; k < tree.size(); ++k) {
        const Node& n = tree[k];
        if (n.feature != NONE) depth[n.left] = depth[n.right] = depth[k] + 1;
        deepest = std::max(deepest, depth[k]);
    }
    return deepest;
}

std::uint32_t Model::depth() const {
    std::uint32_t deepest = 0;
    std::vector<std::uint32_t> scratch;
    for (const auto& tree : trees) deepest = std::max(deepest, tree_depth(tree, scratch));
    return deepest;
}

}  // namespace wasi_gpu::forest
