//! `--profile`: per-function call counts and times, and the device-memory high-water mark.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Counters of one host function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Number of calls.
    pub calls: u64,
    /// Time spent inside the host function, summed over the calls.
    pub total: Duration,
}

/// Timings of every `wasi:gpu` host function a guest called, kept for the whole run.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    stats: HashMap<&'static str, CallStats>,
    peak_device_bytes: u64,
}

impl Profile {
    /// Adds one call of `name` that took `elapsed`.
    pub fn record(&mut self, name: &'static str, elapsed: Duration) {
        let s = self.stats.entry(name).or_default();
        s.calls += 1;
        s.total += elapsed;
    }

    /// Updates the high-water mark of device bytes held.
    pub fn observe_device_bytes(&mut self, used: u64) {
        self.peak_device_bytes = self.peak_device_bytes.max(used);
    }

    /// Most device memory the guest held at once, in bytes.
    pub fn peak_device_bytes(&self) -> u64 {
        self.peak_device_bytes
    }

    /// Counters of one function, if it was called.
    pub fn get(&self, name: &str) -> Option<CallStats> {
        self.stats.get(name).copied()
    }

    /// Time spent inside all host functions together.
    pub fn host_time(&self) -> Duration {
        self.stats.values().map(|s| s.total).sum()
    }

    /// The table printed at exit: one row per function (largest total first), then the
    /// run's wall time, the guest's own time, and the device-memory peak.
    pub fn report(&self, wall: Duration, backend: &str) -> String {
        let mut rows: Vec<(&str, CallStats)> = self.stats.iter().map(|(k, v)| (*k, *v)).collect();
        rows.sort_by(|a, b| b.1.total.cmp(&a.1.total).then(a.0.cmp(b.0)));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut out = String::new();
        let _ = writeln!(out, "--- wasi:gpu profile (backend: {backend}) ---");
        let _ = writeln!(out, "{:<20} {:>10} {:>12} {:>10}", "function", "calls", "total ms", "mean ms");
        for (name, s) in &rows {
            let mean = if s.calls == 0 { 0.0 } else { ms(s.total) / s.calls as f64 };
            let _ = writeln!(out, "{name:<20} {:>10} {:>12.3} {:>10.4}", s.calls, ms(s.total), mean);
        }
        let host = self.host_time();
        let _ = writeln!(out, "{:<20} {:>10} {:>12.3}", "all wasi:gpu calls", rows.iter().map(|r| r.1.calls).sum::<u64>(), ms(host));
        let _ = writeln!(out, "total wall time: {:.3} ms", ms(wall));
        let _ = writeln!(out, "guest time outside wasi:gpu calls: {:.3} ms", ms(wall.saturating_sub(host)));
        let _ = writeln!(out, "peak device memory held: {} bytes ({})", self.peak_device_bytes, human_bytes(self.peak_device_bytes));
        out
    }
}

/// Renders a byte count with a binary unit, e.g. `1.50 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{b} B") } else { format!("{v:.2} {}", UNITS[i]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_calls_means_and_guest_time() {
        let mut p = Profile::default();
        p.record("bootstrap", Duration::from_millis(4));
        p.record("bootstrap", Duration::from_millis(2));
        p.record("buffer.create", Duration::from_millis(1));
        p.observe_device_bytes(2048);
        p.observe_device_bytes(1024);
        assert_eq!(p.peak_device_bytes(), 2048);
        assert_eq!(p.get("bootstrap"), Some(CallStats { calls: 2, total: Duration::from_millis(6) }));
        let r = p.report(Duration::from_millis(10), "cpu");
        let boot = r.lines().find(|l| l.starts_with("bootstrap")).unwrap();
        let cols: Vec<&str> = boot.split_whitespace().collect();
        assert_eq!(cols, ["bootstrap", "2", "6.000", "3.0000"]);
        assert!(r.contains("guest time outside wasi:gpu calls: 3.000 ms"), "{r}");
        assert!(r.contains("peak device memory held: 2048 bytes (2.00 KiB)"), "{r}");
        // Largest total first.
        assert!(r.find("bootstrap").unwrap() < r.find("buffer.create").unwrap());
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(8 << 30), "8.00 GiB");
    }
}
