#include "progress.hpp"

#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <string>

#include "wasi_gpu/forest.hpp"
#include "wasi_gpu/output.hpp"

namespace wasi_gpu::forest {
namespace {

/// Redraws of the bar are at least this far apart.
constexpr auto REDRAW = std::chrono::milliseconds(100);
/// Characters of the bar.
constexpr int WIDTH = 30;

}  // namespace

Progress::Progress(bool enabled, std::uint32_t first, std::uint32_t end, std::uint32_t total, std::uint32_t max_depth)
    : enabled_(enabled),
      // The preview-1 adapter reports a terminal stderr (WASI 0.2's terminal-stderr) as a
      // character device, which is what isatty checks.
      terminal_(enabled && ::isatty(2) == 1),
      first_(first),
      end_(end),
      total_(total),
      levels_(max_depth == NONE ? 32 : std::max<std::uint32_t>(1, max_depth + 1)),
      start_(std::chrono::steady_clock::now()) {}

void Progress::level(std::uint32_t begin, std::uint32_t count, std::uint32_t level, std::uint32_t slots) {
    if (!enabled_) return;
    if (!terminal_) {
        emit(2, "trees %u-%u/%u level %u slots %u\n", begin, begin + count - 1, total_, level, slots);
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_draw_ < REDRAW) return;
    drawn_ = true, last_draw_ = now;
    const double done = double(begin - first_) + double(count) * double(std::min(level, levels_)) / double(levels_);
    char what[64];
    std::snprintf(what, sizeof what, "trees %u-%u level %u", begin, begin + count - 1, level);
    draw(done, what);
}

void Progress::finish() {
    if (!terminal_ || !drawn_) return;
    draw(double(end_ - first_), "done");
    emit_text(2, "\n");
}

void Progress::draw(double done, const char* what) const {
    const double all = double(std::max<std::uint32_t>(end_ - first_, 1));
    const double fraction = std::clamp(done / all, 0.0, 1.0);
    const int filled = static_cast<int>(fraction * WIDTH + 0.5);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = elapsed > 0 ? done / elapsed : 0.0;
    char left[32];
    if (rate > 0)
        std::snprintf(left, sizeof left, "%.0f s left", (all - done) / rate);
    else
        std::snprintf(left, sizeof left, "-- s left");
    const std::string bar = std::string(filled, '#') + std::string(WIDTH - filled, '-');
    emit(2, "\r[%s] %3.0f%% of %u trees, %.2f trees/s, %.0f s, %s (%s)\x1b[K", bar.c_str(), fraction * 100.0,
         end_ - first_, rate, elapsed, left, what);
}

}  // namespace wasi_gpu::forest
