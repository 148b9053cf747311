// wasi_gpu::forest's one failure type: every error names the file (or "wasi:gpu") it concerns
// and, for CSV input, the 1-based line, so a guest prints `error: <file>[:<line>]: <what>`.
// Part of the wasi_gpu::forest library (docs/cpp.md); include <wasi_gpu/forest.hpp>.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "../wasi_gpu.hpp"

namespace wasi_gpu::forest {

/// A failure tied to a file, reported to the user as one line on stderr.
struct Failure {
    /// The path as the user gave it (or "wasi:gpu" for device errors).
    std::string file;
    /// 1-based line for CSV input; 0 when the problem is not on one line.
    std::uint64_t line = 0;
    /// What went wrong and, where useful, what to change.
    std::string what;

    /// The text after `error: `.
    std::string describe() const {
        std::string s = file;
        if (line != 0) s += ":" + std::to_string(line);
        return s + ": " + what;
    }
};

/// Value-or-Failure, the return type of every fallible function of the library.
template <class T>
using Expected = wasi_gpu::Expected<T, Failure>;

/// Builds an error `Expected` for a whole file.
inline wasi_gpu::Unexpected<Failure> fail(std::string file, std::string what) {
    return wasi_gpu::Unexpected<Failure>(Failure{std::move(file), 0, std::move(what)});
}

/// Builds an error `Expected` for one line of a file.
inline wasi_gpu::Unexpected<Failure> fail_line(std::string file, std::uint64_t line, std::string what) {
    return wasi_gpu::Unexpected<Failure>(Failure{std::move(file), line, std::move(what)});
}

/// Turns a device error into a guest failure.
inline Failure device_failure(const wasi_gpu::Error& e) {
    return Failure{"wasi:gpu", 0, std::string(e.kind_name()) + ": " + e.message};
}

}  // namespace wasi_gpu::forest
