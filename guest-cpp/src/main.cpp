// The C++ wasi:gpu guest: the command line of docs/guests.md over GpuTrainer / GpuPredictor.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "dataset.hpp"
#include "forest.hpp"
#include "output.hpp"
#include "sha256.hpp"

namespace {

using guest::Expected;
using guest::Failure;

/// Exit codes of docs/guests.md.
constexpr int EXIT_ERROR = 1;
constexpr int EXIT_USAGE = 2;

enum class Command { Pipeline, Train, Predict };

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
};

const char* command_name(Command c) {
    switch (c) {
        case Command::Pipeline: return "pipeline";
        case Command::Train: return "train";
        case Command::Predict: return "predict";
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

Expected<std::uint64_t> parse_u64(const std::string& flag, const std::string& v, std::uint64_t max) {
    if (v.empty() || v.size() > 20) return guest::fail(flag, "`" + v + "` is not a non-negative integer");
    std::uint64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return guest::fail(flag, "`" + v + "` is not a non-negative integer");
        const std::uint64_t d = std::uint64_t(c - '0');
        if (n > (UINT64_MAX - d) / 10) return guest::fail(flag, "`" + v + "` is too large");
        n = n * 10 + d;
    }
    if (n > max) return guest::fail(flag, "`" + v + "` is too large (at most " + std::to_string(max) + ")");
    return n;
}

Expected<std::uint32_t> parse_u32(const std::string& flag, const std::string& v) {
    auto n = parse_u64(flag, v, 0xfffffffeu);
    if (!n) return wasi_gpu::Unexpected<Failure>(n.error());
    return static_cast<std::uint32_t>(*n);
}

Expected<guest::MaxFeatures> parse_max_features(const std::string& v) {
    guest::MaxFeatures m;
    if (v == "sqrt") {
        m.kind = guest::MaxFeatures::Kind::Sqrt;
        return m;
    }
    if (v == "log2") {
        m.kind = guest::MaxFeatures::Kind::Log2;
        return m;
    }
    if (v.find_first_of(".eE") == std::string::npos) {
        auto n = parse_u32("--max-features", v);
        if (!n) return guest::fail("--max-features", "`" + v + "` is not an integer, a fraction in (0, 1], sqrt or log2");
        if (*n == 0) return guest::fail("--max-features", "must be at least 1");
        m.kind = guest::MaxFeatures::Kind::Count;
        m.count = *n;
        return m;
    }
    double f = 0;
    if (!guest::parse_number(v.data(), v.data() + v.size(), f) || !(f > 0.0) || f > 1.0)
        return guest::fail("--max-features", "`" + v + "` is not an integer, a fraction in (0, 1], sqrt or log2");
    m.kind = guest::MaxFeatures::Kind::Fraction;
    m.fraction = f;
    return m;
}

Expected<Options> parse_args(const std::vector<std::string>& args) {
    Options o;
    std::size_t i = 0;
    if (!args.empty() && args[0].rfind("--", 0) != 0) {
        if (args[0] == "pipeline") o.command = Command::Pipeline;
        else if (args[0] == "train") o.command = Command::Train;
        else if (args[0] == "predict") o.command = Command::Predict;
        else return guest::fail(args[0], "unknown subcommand (expected pipeline, train or predict)");
        i = 1;
    }
    for (; i < args.size(); ++i) {
        const std::string& flag = args[i];
        if (flag == "--json") { o.json = true; continue; }
        if (flag == "--quiet") { o.quiet = true; continue; }
        static const char* with_value[] = {"--train", "--test", "--model", "--out", "--trees", "--max-depth",
                                           "--min-samples-split", "--min-samples-leaf", "--max-features",
                                           "--bins", "--seed"};
        bool known = false;
        for (const char* f : with_value) known = known || flag == f;
        if (!known) return guest::fail(flag, "unknown option (see docs/guests.md)");
        if (i + 1 >= args.size()) return guest::fail(flag, "needs a value");
        const std::string& v = args[++i];
        if (flag == "--train") o.train = v;
        else if (flag == "--test") o.test = v;
        else if (flag == "--model") o.model = v;
        else if (flag == "--out") o.out = v;
        else if (flag == "--trees") {
            auto n = parse_u32(flag, v);
            if (!n) return wasi_gpu::Unexpected<Failure>(n.error());
            if (*n == 0) return guest::fail(flag, "must be at least 1");
            o.params.trees = *n;
        } else if (flag == "--max-depth") {
            if (v == "none" || v == "0") {
                o.params.max_depth = guest::NONE;
            } else {
                auto n = parse_u32(flag, v);
                if (!n) return guest::fail(flag, "`" + v + "` is not a depth (an integer, or 0 / none for unlimited)");
                o.params.max_depth = *n;
            }
        } else if (flag == "--min-samples-split") {
            auto n = parse_u32(flag, v);
            if (!n) return wasi_gpu::Unexpected<Failure>(n.error());
            o.params.min_samples_split = *n;
        } else if (flag == "--min-samples-leaf") {
            auto n = parse_u32(flag, v);
            if (!n) return wasi_gpu::Unexpected<Failure>(n.error());
            o.params.min_samples_leaf = *n;
        } else if (flag == "--max-features") {
            auto m = parse_max_features(v);
            if (!m) return wasi_gpu::Unexpected<Failure>(m.error());
            o.params.max_features = *m;
        } else if (flag == "--bins") {
            auto n = parse_u32(flag, v);
            if (!n) return wasi_gpu::Unexpected<Failure>(n.error());
            if (*n < 2 || *n > 256) return guest::fail(flag, "is " + v + "; it must be between 2 and 256");
            o.params.bins = *n;
        } else if (flag == "--seed") {
            auto n = parse_u64(flag, v, UINT64_MAX);
            if (!n) return wasi_gpu::Unexpected<Failure>(n.error());
            o.params.seed = *n;
        }
    }
    o.params.progress = !o.quiet;
    return o;
}

/// Milliseconds since `start`.
double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += char(c);
    }
    return out + "\"";
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
    std::string model_sha256;
    std::uint64_t model_bytes = 0;

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
    line += ",\"device\":" + json_string(info.name);
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
    line += ",\"model_sha256\":" + (r.model_sha256.empty() ? std::string("null") : json_string(r.model_sha256));
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

Expected<void> run(const Options& o) {
    const auto info = wasi_gpu::info();
    const auto t0 = std::chrono::steady_clock::now();
    Report r;
    if (o.command == Command::Pipeline || o.command == Command::Train) {
        const auto tl = std::chrono::steady_clock::now();
        TRY(train, guest::load_dataset(o.train, 0));
        std::optional<guest::Dataset> test;
        if (o.command == Command::Pipeline) {
            TRY(t, guest::load_dataset(o.test, train.features));
            if (!t.has_target()) return guest::fail(o.test, "needs the target column to compute the test MSE");
            test = std::move(t);
        }
        r.load_ms = ms_since(tl);
        r.train_rows = train.rows;
        if (test) r.test_rows = test->rows;

        const auto tt = std::chrono::steady_clock::now();
        TRY(model, guest::GpuTrainer(o.params).fit(train));
        r.train_ms = ms_since(tt);
        r.from_model(model);

        const auto ts = std::chrono::steady_clock::now();
        const auto bytes = model.serialize();
        auto saved = guest::write_atomically(o.model, bytes);
        if (!saved) return wasi_gpu::Unexpected<Failure>(saved.error());
        r.save_ms = ms_since(ts);
        r.model_bytes = bytes.size();
        r.model_sha256 = guest::to_hex(guest::Sha256::digest(bytes.data(), bytes.size()));

        if (o.command == Command::Pipeline) {
            const auto tp = std::chrono::steady_clock::now();
            TRY(file, guest::read_file(o.model));
            TRY(loaded, guest::Model::parse(file, o.model));
            TRY(pred, guest::GpuPredictor(loaded).predict(*test));
            r.mse = guest::mean_squared_error(pred, test->y);
            if (o.out) {
                auto w = write_predictions(*o.out, pred);
                if (!w) return wasi_gpu::Unexpected<Failure>(w.error());
            }
            r.predict_ms = ms_since(tp);
        }
        if (o.json) {
            print_json(o, info, r);
            return {};
        }
        guest::emit(1, "device: %s (%s, %s)\n", info.name.c_str(), backend_name(info.backend), info.driver.c_str());
        if (test)
            guest::emit(1, "train: %u rows x %u features; test: %u rows\n", train.rows, train.features, test->rows);
        else
            guest::emit(1, "train: %u rows x %u features\n", train.rows, train.features);
        guest::emit(1, "model: %s (%" PRIu64 " bytes, sha256 %s)\n", o.model.c_str(), r.model_bytes,
                    r.model_sha256.c_str());
        if (r.mse) guest::emit(1, "test MSE: %.6f\n", *r.mse);
    } else {
        const auto tl = std::chrono::steady_clock::now();
        TRY(file, guest::read_file(o.model));
        TRY(model, guest::Model::parse(file, o.model));
        TRY(test, guest::load_dataset(o.test, model.features));
        r.load_ms = ms_since(tl);
        r.from_model(model);
        r.train_rows = model.train_rows;
        r.test_rows = test.rows;
        r.model_bytes = file.size();
        r.model_sha256 = guest::to_hex(guest::Sha256::digest(file.data(), file.size()));
        const auto tp = std::chrono::steady_clock::now();
        TRY(pred, guest::GpuPredictor(model).predict(test));
        if (!test.y.empty()) r.mse = guest::mean_squared_error(pred, test.y);
        auto w = write_predictions(o.out.value_or("predictions.txt"), pred);
        if (!w) return wasi_gpu::Unexpected<Failure>(w.error());
        r.predict_ms = ms_since(tp);
        if (o.json) {
            print_json(o, info, r);
            return {};
        }
        guest::emit(1, "device: %s (%s, %s)\n", info.name.c_str(), backend_name(info.backend), info.driver.c_str());
        guest::emit(1, "model: %s (%" PRIu64 " bytes, sha256 %s)\n", o.model.c_str(), r.model_bytes,
                    r.model_sha256.c_str());
        guest::emit(1, "test: %u rows; predictions: %s\n", test.rows, o.out.value_or("predictions.txt").c_str());
        if (r.mse) guest::emit(1, "test MSE: %.6f\n", *r.mse);
    }
    const double total = ms_since(t0);
    guest::emit(1, "phase      ms\n");
    if (r.load_ms) guest::emit(1, "load     %.3f\n", *r.load_ms);
    if (r.train_ms) guest::emit(1, "train    %.3f\n", *r.train_ms);
    if (r.save_ms) guest::emit(1, "save     %.3f\n", *r.save_ms);
    if (r.predict_ms) guest::emit(1, "predict  %.3f\n", *r.predict_ms);
    guest::emit(1, "total    %.3f\n", total);
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
    auto options = parse_args(args);
    if (!options) {
        guest::emit(2, "error: %s\n", options.error().describe().c_str());
        return EXIT_USAGE;
    }
    auto result = run(*options);
    if (!result) {
        guest::emit(2, "error: %s\n", result.error().describe().c_str());
        return EXIT_ERROR;
    }
    return 0;
}
