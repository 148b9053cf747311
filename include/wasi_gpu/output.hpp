// printf-style output that writes whole lines with write(2).
//
// Why: each line (the JSON line above all) leaves the guest in one write(2) loop, with no
// stdio buffer whose state could be lost; when wasi-libc's constructors were re-run by
// wasm-ld's export wrappers (see include/wasi_gpu_start.c), buffered printf output was
// observed to lose pieces. The guest must never depend on that buffer again.
// Part of the wasi_gpu::forest library (docs/cpp.md); include <wasi_gpu/forest.hpp>.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>

namespace wasi_gpu::forest {

/// Formats like printf and writes the result to file descriptor `fd` (1 or 2) in full.
void emit(int fd, const char* format, ...) __attribute__((format(printf, 2, 3)));
/// Writes `text` to file descriptor `fd` in full.
void emit_text(int fd, const std::string& text);

}  // namespace wasi_gpu::forest
