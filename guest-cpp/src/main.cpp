// The C++ wasi:gpu guest: the command line of docs/guests.md over GpuTrainer / GpuPredictor.
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "dataset.hpp"
#include "forest.hpp"
#include "output.hpp"
#include "receipt.hpp"
#include "sha256.hpp"

namespace {

using guest::Expected;
using guest::Failure;

/// Exit codes of docs/guests.md.
constexpr int EXIT_ERROR = 1;
constexpr int EXIT_USAGE = 2;

enum class Command { Pipeline, Train, Predict, Verify, Merge };

/// Everything the command line says.
struct Options {
    Command command = Command::Pipeline;
    std::string train = "data/diabetes_train.csv";
    std::string test = "data/diabetes_test.csv";
    std::string model = "model.bin";
    std::optional<std::string> out;
    guest::TrainParams params;
    bool json = false;
    bool quiet = false;
    std::optional<std::string> receipt;  ///< written by train and pipeline, checked by verify
    bool train_given = false;            ///< verify reads --train instead of the receipt's data path
    std::vector<std::string> parts;      ///< merge: the partial forests to join
};

const char* command_name(Command c) {
    switch (c) {
        case Command::Pipeline: return "pipeline";
        case Command::Train: return "train";
        case Command::Predict: return "predict";
        case Command::Verify: return "verify";
        case Command::Merge: return "merge";
    }
    return "pipeline";
}

const char* backend_name(wasi_gpu::BackendKind b) {
    switch (b) {
        case wasi_gpu::BackendKind::Cpu: return "cpu";
        case wasi_gpu::BackendKind::Wgpu: return "wgpu";
        case wasi_gpu::BackendKind::Cuda: return "cuda";
    }
    return "cpu";
}

/// Printed for --help and after a usage error.
const char* const USAGE =
    "usage: guest-cpp [pipeline|train|predict|verify] [options] | merge --model OUT PART...\n"
    "  --train PATH              training data, .csv or .npy (default data/diabetes_train.csv)\n"
    "  --test PATH               test data (default data/diabetes_test.csv)\n"
    "  --model PATH              model file (default model.bin)\n"
    "  --out PATH                predictions, one per line (predict: default predictions.txt)\n"
    "  --trees N                 number of trees (default 200)\n"
    "  --max-depth N             0 or none = unlimited (default 16)\n"
    "  --min-samples-split N     (default 2)\n"
    "  --min-samples-leaf N      (default 1)\n"
    "  --max-features X          integer, fraction in (0, 1], sqrt or log2 (default 1.0)\n"
    "  --bins N                  bins per feature, 2..=256 (default 256)\n"
    "  --seed N                  u64 (default 42)\n"
    "  --receipt PATH            train, pipeline: write a training receipt (JSON); verify: the\n"
    "                            receipt to train again and check (--train overrides its data path)\n"
    "  --trees-from A            train: grow only trees A..B of --trees and write them to --model\n"
    "  --trees-to B              as a partial forest; merge joins partial forests into the model\n"
    "  --json                    one JSON line on stdout\n"
    "  --quiet                   no progress on stderr\n";

/// A usage problem (exit 2), or a request for --help (exit 0).
struct UsageError {
    bool help = false;
    std::string message;
};

template <class T>
using Parsed = wasi_gpu::Expected<T, UsageError>;

wasi_gpu::Unexpected<UsageError> usage(std::string message) {
    return wasi_gpu::Unexpected<UsageError>(UsageError{false, std::move(message)});
}

/// A decimal integer in [0, max]; digits only, like Rust's `str::parse` for unsigned types
/// (which also accepts a leading '+').
bool parse_unsigned(const std::string& v, std::uint64_t max, std::uint64_t& out) {
    std::size_t i = (!v.empty() && v[0] == '+') ? 1 : 0;
    if (i == v.size()) return false;
    std::uint64_t n = 0;
    for (; i < v.size(); ++i) {
        if (v[i] < '0' || v[i] > '9') return false;
        const std::uint64_t d = std::uint64_t(v[i] - '0');
        if (n > (max - d) / 10) return false;
        n = n * 10 + d;
    }
    out = n;
    return true;
}

Parsed<std::uint64_t> number(const std::string& flag, const std::string& v, std::uint64_t max) {
    std::uint64_t n = 0;
    if (!parse_unsigned(v, max, n)) return usage(flag + " expects a non-negative integer, got `" + v + "`");
    return n;
}

Parsed<std::uint32_t> positive(const std::string& flag, const std::string& v) {
    auto n = number(flag, v, 0xffffffffu);
    if (!n) return wasi_gpu::Unexpected<UsageError>(n.error());
    if (*n == 0) return usage(flag + " must be at least 1");
    return static_cast<std::uint32_t>(*n);
}

Parsed<guest::MaxFeatures> parse_max_features(const std::string& v) {
    auto bad = [&] {
        return usage("--max-features expects an integer, a fraction in (0, 1], sqrt or log2; got `" + v + "`");
    };
    guest::MaxFeatures m;
    if (v == "sqrt") {
        m.kind = guest::MaxFeatures::Kind::Sqrt;
        return m;
    }
    if (v == "log2") {
        m.kind = guest::MaxFeatures::Kind::Log2;
        return m;
    }
    const bool all_digits = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
    if (all_digits) {
        std::uint64_t n = 0;
        if (!parse_unsigned(v, 0xffffffffu, n) || n == 0) return bad();
        m.kind = guest::MaxFeatures::Kind::Count;
        m.count = static_cast<std::uint32_t>(n);
        return m;
    }
    double f = 0;
    if (!guest::parse_number(v.data(), v.data() + v.size(), f) || !(f > 0.0) || f > 1.0) return bad();
    m.kind = guest::MaxFeatures::Kind::Fraction;
    m.fraction = f;
    return m;
}

Parsed<Options> parse_args(const std::vector<std::string>& args) {
    Options o;
    std::size_t i = 0;
    if (!args.empty()) {
        if (args[0] == "pipeline")
            o.command = Command::Pipeline, i = 1;
        else if (args[0] == "train")
            o.command = Command::Train, i = 1;
        else if (args[0] == "predict")
            o.command = Command::Predict, i = 1;
        else if (args[0] == "verify")
            o.command = Command::Verify, i = 1;
        else if (args[0] == "merge")
            o.command = Command::Merge, i = 1;
    }
    static const char* const with_value[] = {"--train",
                                             "--test",
                                             "--model",
                                             "--out",
                                             "--trees",
                                             "--max-depth",
                                             "--min-samples-split",
                                             "--min-samples-leaf",
                                             "--max-features",
                                             "--bins",
                                             "--seed",
                                             "--receipt",
                                             "--trees-from",
                                             "--trees-to"};
    std::optional<std::uint32_t> trees_from, trees_to;
    for (; i < args.size(); ++i) {
        std::string flag = args[i];
        std::optional<std::string> inline_value;
        const std::size_t eq = flag.find('=');
        if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
            inline_value = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
        }
        if (flag == "-h" || flag == "--help") return wasi_gpu::Unexpected<UsageError>(UsageError{true, ""});
        if (flag == "--json") {
            o.json = true;
            continue;
        }
        if (flag == "--quiet") {
            o.quiet = true;
            continue;
        }
        bool known = false;
        for (const char* f : with_value) known = known || flag == f;
        if (!known) {
            if (!flag.empty() && flag[0] == '-') return usage("unknown option `" + flag + "`");
            if (o.command == Command::Merge) {
                o.parts.push_back(flag);
                continue;
            }
            return usage("unexpected argument `" + flag + "` (commands: pipeline, train, predict, verify, merge)");
        }
        std::string v;
        if (inline_value) {
            v = *inline_value;
        } else {
            if (i + 1 >= args.size()) return usage(flag + " needs a value");
            v = args[++i];
        }
        if (flag == "--train")
            o.train = v, o.train_given = true;
        else if (flag == "--receipt")
            o.receipt = v;
        else if (flag == "--trees-from") {
            auto n = number(flag, v, 0xffffffffu);
            if (!n) return wasi_gpu::Unexpected<UsageError>(n.error());
            trees_from = static_cast<std::uint32_t>(*n);
        } else if (flag == "--trees-to") {
            auto n = positive(flag, v);
            if (!n) return wasi_gpu::Unexpected<UsageError>(n.error());
            trees_to = *n;
        } else if (flag == "--test")
            o.test = v;
        else if (flag == "--model")
            o.model = v;
        else if (flag == "--out")
            o.out = v;
        else if (flag == "--trees" || flag == "--min-samples-split" || flag == "--min-samples-leaf") {
            auto n = positive(flag, v);
            if (!n) return wasi_gpu::Unexpected<UsageError>(n.error());
            (flag == "--trees"               ? o.params.trees
             : flag == "--min-samples-split" ? o.params.min_samples_split
                                             : o.params.min_samples_leaf) = *n;
        } else if (flag == "--max-depth") {
            if (v == "none" || v == "0") {
                o.params.max_depth = guest::NONE;
            } else {
                auto n = positive(flag, v);
                if (!n) return wasi_gpu::Unexpected<UsageError>(n.error());
                if (*n == guest::NONE) return usage("--max-depth " + v + " is too large; use none for unlimited");
                o.params.max_depth = *n;
            }
        } else if (flag == "--max-features") {
            auto m = parse_max_features(v);
            if (!m) return wasi_gpu::Unexpected<UsageError>(m.error());
            o.params.max_features = *m;
        } else if (flag == "--bins") {
            auto n = number(flag, v, 0xffffffffu);
            if (!n) return wasi_gpu::Unexpected<UsageError>(n.error());
            if (*n < 2 || *n > 256) return usage("--bins must be between 2 and 256, got " + v);
            o.params.bins = static_cast<std::uint32_t>(*n);
        } else if (flag == "--seed") {
            auto n = number(flag, v, UINT64_MAX);
            if (!n) return wasi_gpu::Unexpected<UsageError>(n.error());
            o.params.seed = *n;
        }
    }
    if (o.command == Command::Verify && !o.receipt) return usage("verify needs --receipt FILE");
    if ((o.command == Command::Predict || o.command == Command::Merge) && o.receipt)
        return usage("--receipt is for train, pipeline and verify");
    if (trees_from.has_value() != trees_to.has_value()) return usage("--trees-from and --trees-to go together");
    if (trees_from) {
        if (o.command != Command::Train || o.receipt)
            return usage("--trees-from/--trees-to are for train, without --receipt");
        if (*trees_from >= *trees_to || *trees_to > o.params.trees)
            return usage("--trees-from " + std::to_string(*trees_from) + " --trees-to " + std::to_string(*trees_to) +
                         " must satisfy 0 <= from < to <= --trees (" + std::to_string(o.params.trees) + ")");
        o.params.tree_from = *trees_from;
        o.params.tree_to = *trees_to;
    }
    if (o.command == Command::Merge && o.parts.empty())
        return usage("merge needs the partial forests to join: merge --model OUT PART...");
    o.params.progress = !o.quiet;
    return o;
}

/// Milliseconds since `start`.
double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::string fmt(const char* format, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

/// Optional numbers print as JSON null.
std::string num_or_null(const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : "null"; }
std::string ms_or_null(const std::optional<double>& v) { return v ? fmt("%.6f", *v) : "null"; }

/// What a run measured, for the human and the JSON output.
struct Report {
    std::optional<std::uint64_t> train_rows, test_rows;
    std::uint32_t features = 0, trees = 0;
    std::uint32_t max_depth = guest::NONE;
    std::uint32_t min_samples_split = 0, min_samples_leaf = 0, max_features = 0, bins = 0;
    std::uint64_t seed = 0;
    std::optional<double> load_ms, train_ms, save_ms, predict_ms, mse;
    std::string model_checksum;
    std::uint64_t model_bytes = 0;
    std::optional<std::string> receipt;  ///< the receipt written (train, pipeline) or verified

    void from_model(const guest::Model& m) {
        features = m.features;
        trees = static_cast<std::uint32_t>(m.trees.size());
        max_depth = m.max_depth;
        min_samples_split = m.min_samples_split;
        min_samples_leaf = m.min_samples_leaf;
        max_features = m.max_features;
        bins = m.max_bins;
        seed = m.seed;
    }
};

void print_json(const Options& o, const wasi_gpu::DeviceInfo& info, const Report& r) {
    std::string line = "{\"guest\":\"cpp\",\"command\":\"" + std::string(command_name(o.command)) + "\"";
    line += ",\"backend\":\"" + std::string(backend_name(info.backend)) + "\"";
    line += ",\"device\":" + guest::json_str(info.name);
    line += ",\"train_rows\":" + num_or_null(r.train_rows);
    line += ",\"test_rows\":" + num_or_null(r.test_rows);
    line += ",\"features\":" + std::to_string(r.features);
    line += ",\"trees\":" + std::to_string(r.trees);
    line += ",\"max_depth\":" + (r.max_depth == guest::NONE ? std::string("null") : std::to_string(r.max_depth));
    line += ",\"min_samples_split\":" + std::to_string(r.min_samples_split);
    line += ",\"min_samples_leaf\":" + std::to_string(r.min_samples_leaf);
    line += ",\"max_features\":" + std::to_string(r.max_features);
    line += ",\"bins\":" + std::to_string(r.bins);
    line += ",\"seed\":" + std::to_string(r.seed);
    line += ",\"load_ms\":" + ms_or_null(r.load_ms);
    line += ",\"train_ms\":" + ms_or_null(r.train_ms);
    line += ",\"save_ms\":" + ms_or_null(r.save_ms);
    line += ",\"predict_ms\":" + ms_or_null(r.predict_ms);
    line += ",\"mse\":" + (r.mse ? fmt("%.17g", *r.mse) : std::string("null"));
    line +=
        ",\"model_checksum\":" + (r.model_checksum.empty() ? std::string("null") : guest::json_str(r.model_checksum));
    line += ",\"receipt\":" + (r.receipt ? guest::json_str(*r.receipt) : std::string("null"));
    guest::emit_text(1, line + "}\n");
}

Expected<void> write_predictions(const std::string& path, const std::vector<double>& pred) {
    std::vector<std::uint8_t> text;
    text.reserve(pred.size() * 20);
    char buf[64];
    for (double v : pred) {
        int n = std::snprintf(buf, sizeof buf, "%.17g\n", v);
        text.insert(text.end(), buf, buf + n);
    }
    return guest::write_atomically(path, text);
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

/// Re-labels a failure with `file` (the input the step was working on) unless it
/// already names a file of its own; a failure with no file at all is about `file`.
template <class T>
Expected<T> about(const std::string& file, Expected<T> r) {
    if (r) return r;
    Failure f = r.error();
    if (f.file.empty()) {
        f.file = file;
        f.line = 0;
    } else if (f.file.rfind("--", 0) == 0 || f.file == "wasi:gpu") {
        f.what = (f.file.rfind("--", 0) == 0 ? f.file + " " : f.file + ": ") + f.what;
        f.file = file;
        f.line = 0;
    }
    return wasi_gpu::Unexpected<Failure>(f);
}

/// Loads --train and fits. With `then_test` (the pipeline), that file's columns are checked
/// against the training data before training.
Expected<guest::Model> do_fit(const Options& o, Report& r, const std::string* then_test) {
    const auto tl = std::chrono::steady_clock::now();
    TRY(train, guest::load_dataset(o.train, 0));
    if (then_test) TRY_VOID(guest::check_dataset(*then_test, train.features));
    r.train_rows = train.rows;
    r.load_ms = ms_since(tl);
    const auto tt = std::chrono::steady_clock::now();
    TRY(model, about(o.train, guest::GpuTrainer(o.params).fit(train)));
    r.train_ms = ms_since(tt);
    r.from_model(model);
    r.features = model.features;
    return model;
}

/// `train`: fit, save --model and, with --receipt, write the receipt; the model, for the
/// pipeline's prediction.
Expected<guest::Model> do_train(const Options& o, const wasi_gpu::DeviceInfo& info, Report& r,
                                const std::string* then_test) {
    // A shard's data fingerprint is taken before the data is loaded, and the file must be the
    // same one (size, modification time) once training is done (docs/algorithm.md §11).
    const bool shard = o.params.tree_to != guest::NONE;
    const auto stamp = [&]() -> Expected<std::pair<std::uint64_t, std::uint64_t>> {
        struct stat st;
        if (::stat(o.train.c_str(), &st) != 0)
            return guest::fail(o.train, std::string("cannot read: ") + std::strerror(errno));
        return std::make_pair(std::uint64_t(st.st_size),
                              std::uint64_t(st.st_mtim.tv_sec) * 1000000000u + std::uint64_t(st.st_mtim.tv_nsec));
    };
    std::pair<std::uint64_t, std::uint64_t> before{};
    guest::FileFingerprint fingerprint;
    if (shard) {
        TRY(s, stamp());
        TRY(f, guest::data_fingerprint(o.train));
        before = s, fingerprint = f;
    }
    TRY(model, do_fit(o, r, then_test));
    const auto ts = std::chrono::steady_clock::now();
    guest::Partial partial;
    if (shard) {
        TRY(after, stamp());
        if (after != before)
            return guest::fail(o.train, "the file changed while this shard trained; train the shard again");
        partial.from = o.params.tree_from, partial.to = o.params.tree_to, partial.total = o.params.trees;
        partial.data_xxh64 = fingerprint.xxh64, partial.data_bytes = fingerprint.bytes;
        partial.model = std::move(model);
    }
    TRY(saved, o.params.tree_to != guest::NONE ? partial.save(o.model) : model.save(o.model));
    if (o.params.tree_to != guest::NONE) model = std::move(partial.model);
    r.save_ms = ms_since(ts);
    r.model_bytes = saved.bytes;
    r.model_checksum = saved.checksum;
    if (o.receipt) {
        TRY(receipt, guest::Receipt::of(model, o.train, o.model, backend_name(info.backend), info.name));
        TRY_VOID(receipt.save(*o.receipt));
        r.receipt = o.receipt;
    }
    return model;
}

/// `verify`: the receipt's data must be the file read now (SHA-256), and training with the
/// receipt's parameters must give the receipt's model (its checksum and SHA-256).
Expected<void> do_verify(const Options& o, Report& r) {
    const std::string& path = *o.receipt;
    TRY(receipt, guest::Receipt::load(path));
    Options again = o;
    again.train = o.train_given ? o.train : receipt.train;
    TRY(data, guest::file_sha256(again.train));
    if (data.sha256 != receipt.train_sha256)
        return guest::fail(again.train, "its SHA-256 is " + data.sha256 + " (" + std::to_string(data.bytes) +
                                            " bytes), but " + path + " records " + receipt.train_sha256 + " (" +
                                            std::to_string(receipt.train_bytes) +
                                            " bytes): not the data the model was trained on");
    again.params = receipt.params(o.params.progress);
    TRY(model, do_fit(again, r, nullptr));
    const guest::ModelDigests d = model.digests();
    if (d.checksum != receipt.model_checksum || d.sha256 != receipt.model_sha256)
        return guest::fail(path, "the model trained here (" + d.checksum + ", sha256 " + d.sha256 +
                                     ") is not the receipt's (" + receipt.model_checksum + ", sha256 " +
                                     receipt.model_sha256 + "): not verified");
    r.model_bytes = d.bytes;
    r.model_checksum = d.checksum;
    r.receipt = path;
    return {};
}

/// `predict`: load --test, predict with `trained` (the pipeline's model, just saved) or else
/// the --model file, write `out` when given.
Expected<void> do_predict(const Options& o, const std::optional<std::string>& out, const guest::Model* trained,
                          Report& r) {
    // The trained forest is uploaded from memory; a model file goes to the device one tree at
    // a time, never whole in the guest's memory.
    guest::LoadedModel loaded;
    std::optional<guest::GpuPredictor> predictor;
    if (trained) {
        predictor.emplace(*trained);
    } else {
        TRY(streamed, about(o.model, guest::GpuPredictor::load(o.model, loaded)));
        predictor.emplace(std::move(streamed));
        r.from_model(loaded.model);
        r.trees = loaded.tree_count;
        r.train_rows = loaded.model.train_rows;
        r.model_bytes = loaded.bytes;
        r.model_checksum = loaded.checksum;
    }
    const guest::Model& model = trained ? *trained : loaded.model;
    TRY(test, guest::load_dataset(o.test, model.features));
    TRY(pred, about(o.test, predictor->predict(test)));
    r.test_rows = test.rows;
    if (!test.y.empty()) r.mse = guest::mean_squared_error(pred, test.y);
    if (out) TRY_VOID(write_predictions(*out, pred));
    return {};
}

/// `merge`: join the partial forests given into --model.
Expected<void> do_merge(const Options& o, Report& r) {
    const auto tl = std::chrono::steady_clock::now();
    std::vector<std::pair<std::string, guest::Partial>> parts;
    for (const std::string& path : o.parts) {
        TRY(part, guest::Partial::load(path));
        parts.emplace_back(path, std::move(part));
    }
    r.load_ms = ms_since(tl);
    TRY(model, guest::merge(std::move(parts)));
    r.from_model(model);
    r.train_rows = model.train_rows;
    const auto ts = std::chrono::steady_clock::now();
    TRY(saved, model.save(o.model));
    r.save_ms = ms_since(ts);
    r.model_bytes = saved.bytes;
    r.model_checksum = saved.checksum;
    return {};
}

void print_human(const Options& o, const wasi_gpu::DeviceInfo& info, const Report& r, double total) {
    guest::emit(1, "device: %s (%s, %s)\n", info.name.c_str(), backend_name(info.backend), info.driver.c_str());
    if (o.command == Command::Pipeline && r.train_rows && r.test_rows)
        guest::emit(1, "train: %" PRIu64 " rows x %u features; test: %" PRIu64 " rows\n", *r.train_rows, r.features,
                    *r.test_rows);
    else if (r.train_rows && !r.test_rows)
        guest::emit(1, "train: %" PRIu64 " rows x %u features\n", *r.train_rows, r.features);
    else if (r.test_rows)
        guest::emit(1, "test: %" PRIu64 " rows x %u features\n", *r.test_rows, r.features);
    if (o.command == Command::Verify && !r.model_checksum.empty() && r.receipt) {
        guest::emit(1, "verified: %s: the model trained here (%" PRIu64 " bytes, %s) is the receipt's\n",
                    r.receipt->c_str(), r.model_bytes, r.model_checksum.c_str());
    } else if (!r.model_checksum.empty()) {
        guest::emit(1, "model: %s (%" PRIu64 " bytes, %s)\n", o.model.c_str(), r.model_bytes, r.model_checksum.c_str());
        if (r.receipt) guest::emit(1, "receipt: %s\n", r.receipt->c_str());
    }
    if (o.command != Command::Train && o.command != Command::Verify && o.command != Command::Merge) {
        if (r.mse)
            guest::emit(1, "test MSE: %.6f\n", *r.mse);
        else
            guest::emit(1, "test MSE: n/a (the test data has no target column)\n");
    }
    if (o.command == Command::Predict)
        guest::emit(1, "predictions: %s\n", o.out.value_or("predictions.txt").c_str());
    else if (o.out)
        guest::emit(1, "predictions: %s\n", o.out->c_str());
    guest::emit(1, "phase      ms\n");
    if (r.load_ms) guest::emit(1, "load     %.3f\n", *r.load_ms);
    if (r.train_ms) guest::emit(1, "train    %.3f\n", *r.train_ms);
    if (r.save_ms) guest::emit(1, "save     %.3f\n", *r.save_ms);
    if (r.predict_ms) guest::emit(1, "predict  %.3f\n", *r.predict_ms);
    guest::emit(1, "total    %.3f\n", total);
}

Expected<void> run(const Options& o) {
    const auto info = wasi_gpu::info();
    const auto start = std::chrono::steady_clock::now();
    Report r;
    switch (o.command) {
        case Command::Train: {
            TRY(model, do_train(o, info, r, nullptr));
            (void)model;
            break;
        }
        case Command::Pipeline: {
            // The forest just trained predicts; the file it was saved to is not parsed again.
            TRY(model, do_train(o, info, r, &o.test));
            const auto tp = std::chrono::steady_clock::now();
            TRY_VOID(do_predict(o, o.out, &model, r));
            r.predict_ms = ms_since(tp);
            break;
        }
        case Command::Predict: {
            const auto tp = std::chrono::steady_clock::now();
            TRY_VOID(do_predict(o, std::optional<std::string>(o.out.value_or("predictions.txt")), nullptr, r));
            r.predict_ms = ms_since(tp);
            break;
        }
        case Command::Verify: TRY_VOID(do_verify(o, r)); break;
        case Command::Merge: TRY_VOID(do_merge(o, r)); break;
    }
    const double total = ms_since(start);
    if (o.json)
        print_json(o, info, r);
    else
        print_human(o, info, r, total);
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
    auto options = parse_args(args);
    if (!options) {
        if (options.error().help) {
            guest::emit(1, "%s", USAGE);
            return 0;
        }
        guest::emit(2, "error: %s\n%s", options.error().message.c_str(), USAGE);
        return EXIT_USAGE;
    }
    auto result = run(*options);
    if (!result) {
        guest::emit(2, "error: %s\n", result.error().describe().c_str());
        return EXIT_ERROR;
    }
    return 0;
}
