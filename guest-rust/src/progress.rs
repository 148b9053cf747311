//! Training progress on stderr (docs/guests.md): when stderr is a terminal (WASI 0.2's
//! `terminal-stderr` says so), one line redrawn in place with a bar, the trees done, their
//! rate and the time left; otherwise one plain line per level, `trees A-B/T level L slots S`.
//! `--quiet` and small jobs print nothing. The C++ guest prints the same (progress.cpp).

use std::io::Write;
use std::time::{Duration, Instant};

/// Redraws of the bar are at least this far apart.
const REDRAW: Duration = Duration::from_millis(100);
/// Characters of the bar.
const WIDTH: usize = 30;

/// Whether the host says stderr is a terminal.
fn stderr_is_terminal() -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        wasip2::cli::terminal_stderr::get_terminal_stderr().is_some()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::io::IsTerminal::is_terminal(&std::io::stderr())
    }
}

/// The progress of growing trees `first..end` of a forest of `total`.
pub struct Progress {
    enabled: bool,
    terminal: bool,
    first: u32,
    end: u32,
    total: u32,
    /// Levels a tree is expected to take: max_depth + 1, or 32 when unlimited.
    levels: u32,
    start: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    pub fn new(enabled: bool, first: u32, end: u32, total: u32, max_depth: Option<u32>) -> Self {
        let terminal = enabled && stderr_is_terminal();
        let levels = max_depth.map_or(32, |d| d.saturating_add(1)).max(1);
        Progress { enabled, terminal, first, end, total, levels, start: Instant::now(), last_draw: None }
    }

    /// Level `level` of trees `begin..begin + count` starts, with `slots` nodes to decide.
    pub fn level(&mut self, begin: u32, count: u32, level: u32, slots: u32) {
        if !self.enabled {
            return;
        }
        if !self.terminal {
            eprintln!("trees {}-{}/{} level {} slots {}", begin, begin + count - 1, self.total, level, slots);
            return;
        }
        let now = Instant::now();
        if self.last_draw.is_some_and(|t| now - t < REDRAW) {
            return;
        }
        self.last_draw = Some(now);
        let done = f64::from(begin - self.first) + f64::from(count) * f64::from(level.min(self.levels)) / f64::from(self.levels);
        self.draw(done, &format!("trees {}-{} level {level}", begin, begin + count - 1));
    }

    /// Every tree is grown: the bar at 100% and a new line.
    pub fn finish(&mut self) {
        if self.terminal && self.last_draw.is_some() {
            self.draw(f64::from(self.end - self.first), "done");
            eprintln!();
        }
    }

    fn draw(&self, done: f64, what: &str) {
        let all = f64::from((self.end - self.first).max(1));
        let fraction = (done / all).clamp(0.0, 1.0);
        let filled = (fraction * WIDTH as f64).round() as usize;
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { done / elapsed } else { 0.0 };
        let left = if rate > 0.0 { format!("{:.0} s left", (all - done) / rate) } else { "-- s left".into() };
        let line = format!(
            "\r[{}{}] {:3.0}% of {} trees, {:.2} trees/s, {elapsed:.0} s, {left} ({what})\x1b[K",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            fraction * 100.0,
            self.end - self.first,
            rate
        );
        let mut err = std::io::stderr();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
}
