// Training progress on stderr, as the Rust guest prints it (guest-rust/src/progress.rs): when
// stderr is a terminal, one line redrawn in place with a bar, the rate and the time left;
// otherwise one plain line per level, `trees A-B/T level L slots S`. Disabled: nothing.
#pragma once

#include <chrono>
#include <cstdint>

namespace wasi_gpu::forest {

class Progress {
public:
    /// Trees `first..end` of a forest of `total`; `max_depth` NONE = unlimited.
    Progress(bool enabled, std::uint32_t first, std::uint32_t end, std::uint32_t total, std::uint32_t max_depth);
    /// Level `level` of trees `begin..begin + count` starts, with `slots` nodes to decide.
    void level(std::uint32_t begin, std::uint32_t count, std::uint32_t level, std::uint32_t slots);
    /// Every tree is grown: the bar at 100% and a new line.
    void finish();

private:
    void draw(double done, const char* what) const;
    bool enabled_, terminal_;
    std::uint32_t first_, end_, total_, levels_;
    std::chrono::steady_clock::time_point start_, last_draw_;
    bool drawn_ = false;
};

}  // namespace wasi_gpu::forest
