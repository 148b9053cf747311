// A minimal wasi:gpu guest to copy: upload data, run one kernel, read the result, check it.
// Build: `wasi_gpu_add_guest(example-cpp SOURCES main.cpp)` in the top-level CMakeLists.txt
// (docs/cpp.md; `cargo xtask build-all` runs it); run: wasmtime-gpu-host run target/wasm/example-cpp.wasm
#include <cstdint>
#include <vector>

#include <unistd.h>
#include <string>

#include "wasi_gpu.hpp"

// Whole lines go out with write(2), unbuffered (printf works too; see guest-cpp/src/output.hpp).
static void say(int fd, const std::string& line) {
    std::size_t done = 0;
    while (done < line.size()) {
        ssize_t n = write(fd, line.data() + done, line.size() - done);
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

static int fail(const std::string& what) {
    say(2, "error: " + what + "\n");
    return 1;
}

static int fail(const wasi_gpu::Error& e) { return fail(std::string("wasi:gpu: ") + e.kind_name() + ": " + e.message); }

int main() {
    const wasi_gpu::DeviceInfo device = wasi_gpu::info();
    say(1, "device: " + device.name + " (" + device.driver + ")\n");

    // 8 rows x 1 feature, and 3 bin edges: bin(x) = number of edges < x.
    const std::vector<float> x = {0.5f, 1.0f, 1.5f, 2.0f, 2.5f, 3.0f, 3.5f, 4.0f};
    const std::vector<float> edges = {1.0f, 2.0f, 3.0f};
    const std::uint32_t rows = 8, features = 1, max_bins = 4;

    auto x_buf = wasi_gpu::Buffer::create(x.size() * sizeof(float));
    auto edge_buf = wasi_gpu::Buffer::create(edges.size() * sizeof(float));
    auto bins = wasi_gpu::Buffer::create(features * ((rows + 3) / 4) * 4);  // one byte per row
    if (!x_buf) return fail(x_buf.error());
    if (!edge_buf) return fail(edge_buf.error());
    if (!bins) return fail(bins.error());
    if (auto r = x_buf->write(0, x); !r) return fail(r.error());
    if (auto r = edge_buf->write(0, edges); !r) return fail(r.error());

    if (auto r = wasi_gpu::kernels::bin_features({rows, features, max_bins}, *x_buf, *edge_buf, *bins); !r)
        return fail(r.error());
    auto got = bins->read<std::uint8_t>(0, rows);
    if (!got) return fail(got.error());

    const std::uint8_t expected[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    for (std::uint32_t i = 0; i < rows; ++i) {
        if ((*got)[i] != expected[i])
            return fail("row " + std::to_string(i) + ": bin " + std::to_string((*got)[i]) + ", expected " +
                        std::to_string(expected[i]));
    }
    // A bad request comes back as a value, not a crash: max_bins 1 is invalid.
    auto bad = wasi_gpu::kernels::bin_features({rows, features, 1}, *x_buf, *edge_buf, *bins);
    if (bad || bad.error().kind != wasi_gpu::ErrorKind::InvalidArgument)
        return fail("max_bins 1 was not rejected as invalid-argument");
    say(1, std::string("example: bin-features OK (max_bins 1 rejected: ") + bad.error().kind_name() + ")\n");
    return 0;  // the buffers are freed here by their destructors
}
