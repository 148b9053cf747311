#include "receipt.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "model_file.hpp"
#include "sha256.hpp"

namespace guest {

std::string json_str(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"')
            out += "\\\"";
        else if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '\r')
            out += "\\r";
        else if (c == '\t')
            out += "\\t";
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else
            out += char(c);
    }
    return out + "\"";
}

namespace {

std::string json_opt(const std::optional<std::string>& s) { return s ? json_str(*s) : "null"; }

std::optional<std::string> env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
}

/// A receipt value: what a flat JSON object of ours holds.
struct Value {
    enum class Kind { Str, Int, Null } kind = Kind::Null;
    std::string str;
    std::uint64_t num = 0;
};

/// Parses `{ "key": value, ... }` where every value is a string, a non-negative integer or
/// null; anything else is refused, naming the byte offset (like the Rust guest).
class FlatParser {
public:
    explicit FlatParser(const std::string& text) : b_(text) {}

    bool parse(std::vector<std::pair<std::string, Value>>& fields, std::string& error) {
        ws();
        if (!eat('{')) return fail("expected `{`", error);
        ws();
        if (!eat('}')) {
            for (;;) {
                ws();
                std::string key;
                if (!string(key, error)) return false;
                ws();
                if (!eat(':')) return fail("expected `:`", error);
                ws();
                Value v;
                if (i_ < b_.size() && b_[i_] == '"') {
                    v.kind = Value::Kind::Str;
                    if (!string(v.str, error)) return false;
                } else if (i_ < b_.size() && b_[i_] >= '0' && b_[i_] <= '9') {
                    const std::size_t start = i_;
                    v.kind = Value::Kind::Int;
                    for (; i_ < b_.size() && b_[i_] >= '0' && b_[i_] <= '9'; ++i_) {
                        const std::uint64_t d = std::uint64_t(b_[i_] - '0');
                        if (v.num > (UINT64_MAX - d) / 10) return fail_at(start, "an integer above 2^64 - 1", error);
                        v.num = v.num * 10 + d;
                    }
                    if (i_ - start > 1 && b_[start] == '0')
                        return fail_at(start, "a number with a leading zero", error);
                } else if (b_.compare(i_, 4, "null") == 0) {
                    i_ += 4;
                } else {
                    return fail("expected a string, a non-negative integer or null", error);
                }
                for (const auto& f : fields)
                    if (f.first == key) return error = "key `" + key + "` appears twice", false;
                fields.emplace_back(std::move(key), std::move(v));
                ws();
                if (eat(',')) continue;
                if (eat('}')) break;
                return fail("expected `,` or `}`", error);
            }
        }
        ws();
        if (i_ != b_.size()) return fail("unexpected text after the object", error);
        return true;
    }

private:
    void ws() {
        while (i_ < b_.size() && (b_[i_] == ' ' || b_[i_] == '\t' || b_[i_] == '\n' || b_[i_] == '\r')) ++i_;
    }
    bool eat(char c) {
        if (i_ < b_.size() && b_[i_] == c) return ++i_, true;
        return false;
    }
    bool fail(const char* what, std::string& error) { return fail_at(i_, what, error); }
    bool fail_at(std::size_t at, const char* what, std::string& error) {
        error = std::string(what) + " at byte " + std::to_string(at);
        return false;
    }
    bool hex4(std::size_t at, std::uint32_t& out, std::string& error) {
        if (at + 4 > b_.size()) return fail_at(at, "a truncated \\u escape", error);
        out = 0;
        for (std::size_t k = at; k < at + 4; ++k) {
            const char c = b_[k];
            const int d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
            if (d < 0) return fail_at(at, "a bad \\u escape", error);
            out = out * 16 + std::uint32_t(d);
        }
        return true;
    }
    static void utf8(std::uint32_t c, std::string& out) {
        if (c < 0x80)
            out += char(c);
        else if (c < 0x800)
            out += char(0xC0 | (c >> 6)), out += char(0x80 | (c & 0x3F));
        else if (c < 0x10000)
            out += char(0xE0 | (c >> 12)), out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
        else
            out += char(0xF0 | (c >> 18)), out += char(0x80 | ((c >> 12) & 0x3F)),
                out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
    }
    bool string(std::string& out, std::string& error) {
        if (!eat('"')) return fail("expected a string", error);
        for (;;) {
            if (i_ >= b_.size()) return fail("an unterminated string", error);
            const unsigned char c = static_cast<unsigned char>(b_[i_]);
            if (c == '"') return ++i_, true;
            if (c < 0x20) return fail("a control character in a string", error);
            if (c != '\\') {
                out += char(c), ++i_;
                continue;
            }
            const char e = i_ + 1 < b_.size() ? b_[i_ + 1] : '\0';
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    std::uint32_t code = 0, low = 0;
                    if (!hex4(i_ + 2, code, error)) return false;
                    i_ += 4;
                    if (code >= 0xD800 && code < 0xDC00 && b_.compare(i_ + 2, 2, "\\u") == 0) {
                        if (!hex4(i_ + 4, low, error)) return false;
                        if (low >= 0xDC00 && low < 0xE000) {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            i_ += 6;
                        }
                    }
                    if (code >= 0xD800 && code < 0xE000) return fail("a \\u escape that is not a character", error);
                    utf8(code, out);
                    break;
                }
                default: return fail("a bad escape", error);
            }
            i_ += 2;
        }
    }

    const std::string& b_;
    std::size_t i_ = 0;
};

}  // namespace

Expected<FileDigest> file_sha256(const std::string& path) {
    Sha256 sha;
    auto bytes = read_pieces(path, [&](const std::uint8_t* p, std::size_t n) { sha.update(p, n); });
    if (!bytes) return wasi_gpu::Unexpected<Failure>(bytes.error());
    return FileDigest{*bytes, to_hex(sha.finish())};
}

Expected<Receipt> Receipt::of(const Model& model, const std::string& train, const std::string& model_path,
                              const std::string& backend, const std::string& device) {
    auto data = file_sha256(train);
    if (!data) return wasi_gpu::Unexpected<Failure>(data.error());
    const ModelDigests m = model.digests();
    Receipt r;
    r.guest = "cpp";
    r.guest_version = GUEST_VERSION;
    r.component_sha256 = env("WASI_GPU_COMPONENT_SHA256");
    r.host = env("WASI_GPU_HOST");
    r.backend = backend;
    r.device = device;
    r.train = train;
    r.train_bytes = data->bytes;
    r.train_sha256 = data->sha256;
    r.train_rows = model.train_rows;
    r.features = model.features;
    r.trees = static_cast<std::uint32_t>(model.trees.size());
    r.max_depth = model.max_depth;
    r.min_samples_split = model.min_samples_split;
    r.min_samples_leaf = model.min_samples_leaf;
    r.max_features = model.max_features;
    r.bins = model.max_bins;
    r.seed = model.seed;
    r.model = model_path;
    r.model_bytes = m.bytes;
    r.model_checksum = m.checksum;
    r.model_sha256 = m.sha256;
    return r;
}

TrainParams Receipt::params(bool progress) const {
    TrainParams p;
    p.trees = trees;
    p.max_depth = max_depth;
    p.min_samples_split = min_samples_split;
    p.min_samples_leaf = min_samples_leaf;
    p.max_features.kind = MaxFeatures::Kind::Count;
    p.max_features.count = max_features;
    p.bins = bins;
    p.seed = seed;
    p.progress = progress;
    return p;
}

std::string Receipt::to_json() const {
    const std::pair<const char*, std::string> fields[] = {
        {"receipt", std::to_string(RECEIPT_VERSION)},
        {"guest", json_str(guest)},
        {"guest_version", json_str(guest_version)},
        {"component_sha256", json_opt(component_sha256)},
        {"host", json_opt(host)},
        {"backend", json_str(backend)},
        {"device", json_str(device)},
        {"train", json_str(train)},
        {"train_bytes", std::to_string(train_bytes)},
        {"train_sha256", json_str(train_sha256)},
        {"train_rows", std::to_string(train_rows)},
        {"features", std::to_string(features)},
        {"trees", std::to_string(trees)},
        {"max_depth", max_depth == NONE ? std::string("null") : std::to_string(max_depth)},
        {"min_samples_split", std::to_string(min_samples_split)},
        {"min_samples_leaf", std::to_string(min_samples_leaf)},
        {"max_features", std::to_string(max_features)},
        {"bins", std::to_string(bins)},
        {"seed", std::to_string(seed)},
        {"model", json_str(model)},
        {"model_bytes", std::to_string(model_bytes)},
        {"model_checksum", json_str(model_checksum)},
        {"model_sha256", json_str(model_sha256)},
    };
    std::string out = "{\n";
    bool first = true;
    for (const auto& f : fields) {
        out += first ? "" : ",\n";
        out += std::string("  \"") + f.first + "\": " + f.second;
        first = false;
    }
    return out + "\n}\n";
}

Expected<void> Receipt::save(const std::string& path) const {
    const std::string text = to_json();
    return write_atomically(path, std::vector<std::uint8_t>(text.begin(), text.end()));
}

Expected<Receipt> Receipt::load(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0)
        return fail(path, errno == ENOENT ? std::string("cannot open: no such file")
                                          : std::string("cannot read: ") + std::strerror(errno));
    std::string text;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int saved = errno;
            ::close(fd);
            return fail(path, std::string("cannot read: ") + std::strerror(saved));
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return parse(text, path);
}

namespace {

/// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
bool utf8(const std::string& s) {
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        std::uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (std::size_t k = 1; k < len; ++k) {
            const unsigned char d = static_cast<unsigned char>(s[i + k]);
            if ((d >> 6) != 0x2) return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return false;
        i += len;
    }
    return true;
}

}  // namespace

Expected<Receipt> Receipt::parse(const std::string& text, const std::string& path) {
    if (!utf8(text)) return fail(path, "not a receipt: the file is not UTF-8 text");
    std::vector<std::pair<std::string, Value>> fields;
    std::string error;
    if (!FlatParser(text).parse(fields, error)) return fail(path, "not a receipt: " + error);
    const auto get = [&](const char* key) -> const Value* {
        for (const auto& f : fields)
            if (f.first == key) return &f.second;
        return nullptr;
    };
    Receipt r;
    std::string bad;
    const auto text_of = [&](const char* key, std::string& out) {
        const Value* v = get(key);
        if (v && v->kind == Value::Kind::Str) return out = v->str, true;
        if (bad.empty()) bad = std::string("receipt key `") + key + "` must be a string";
        return false;
    };
    const auto text_or_null = [&](const char* key, std::optional<std::string>& out) {
        const Value* v = get(key);
        if (!v || v->kind == Value::Kind::Null) return out.reset(), true;
        if (v->kind == Value::Kind::Str) return out = v->str, true;
        if (bad.empty()) bad = std::string("receipt key `") + key + "` must be a string or null";
        return false;
    };
    const auto int_of = [&](const char* key, std::uint64_t& out) {
        const Value* v = get(key);
        if (v && v->kind == Value::Kind::Int) return out = v->num, true;
        if (bad.empty()) bad = std::string("receipt key `") + key + "` must be a non-negative integer";
        return false;
    };
    const auto int32_of = [&](const char* key, std::uint32_t& out) {
        std::uint64_t n = 0;
        if (!int_of(key, n)) return false;
        if (n > 0xffffffffu) {
            if (bad.empty())
                bad = std::string("receipt key `") + key + "` is " + std::to_string(n) + ", above 2^32 - 1";
            return false;
        }
        return out = static_cast<std::uint32_t>(n), true;
    };
    std::uint64_t version = 0;
    if (!int_of("receipt", version)) return fail(path, bad);
    if (version != RECEIPT_VERSION)
        return fail(path, "receipt version " + std::to_string(version) +
                              " is not supported (this guest reads version " + std::to_string(RECEIPT_VERSION) + ")");
    const Value* depth = get("max_depth");
    const bool ok =
        text_of("guest", r.guest) && text_of("guest_version", r.guest_version) &&
        text_or_null("component_sha256", r.component_sha256) && text_or_null("host", r.host) &&
        text_of("backend", r.backend) && text_of("device", r.device) && text_of("train", r.train) &&
        int_of("train_bytes", r.train_bytes) && text_of("train_sha256", r.train_sha256) &&
        int_of("train_rows", r.train_rows) && int_of("features", r.features) && int32_of("trees", r.trees) &&
        (depth && depth->kind == Value::Kind::Null ? (r.max_depth = NONE, true) : int32_of("max_depth", r.max_depth)) &&
        int32_of("min_samples_split", r.min_samples_split) && int32_of("min_samples_leaf", r.min_samples_leaf) &&
        int32_of("max_features", r.max_features) && int32_of("bins", r.bins) && int_of("seed", r.seed) &&
        text_of("model", r.model) && int_of("model_bytes", r.model_bytes) &&
        text_of("model_checksum", r.model_checksum) && text_of("model_sha256", r.model_sha256);
    if (!ok) return fail(path, bad);
    return r;
}

}  // namespace guest
