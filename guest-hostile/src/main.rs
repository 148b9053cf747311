//! A deliberately hostile `wasi:gpu` guest. Its first argument picks an attack on the
//! host; every attempt prints one line saying what the host answered:
//!
//! ```text
//! <attack>: <step>: rejected <error-kind>: <host message>
//! <attack>: <step>: ok <detail>
//! <attack>: <step>: UNEXPECTED <what went wrong>
//! <attack>: PASS            (or FAIL, then the guest exits 1)
//! ```
//!
//! Non-fatal attacks end with PASS/FAIL and exit 0/1. Fatal attacks (`use-after-drop`,
//! `linear-memory`, `forever`, `forever-gpu`, `endless-predict`) are meant to be stopped by
//! the host (a trap, `--max-memory`, `--timeout`); if they ever return, they print FAIL and
//! exit 1.
//! `tests/tests/hostile.rs` runs each one under the host binary on every backend.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "ml-compute",
    });
}

use bindings::wasi::gpu::compute::{self, Buffer, Error};
use bindings::wasi::gpu::ml_kernels as k;

/// "No node" marker of the kernels (feature of a leaf, finished row, leaf child).
const NONE: u32 = u32::MAX;

/// One attack: runs its steps, reporting each into the [`Report`].
type Attack = fn(&mut Report);

/// The attacks `all` runs in sequence: every one the host must survive with typed errors.
const NON_FATAL: &[(&str, Attack)] = &[
    ("read-past-end", read_past_end),
    ("huge-offset", huge_offset),
    ("huge-sizes", huge_sizes),
    ("zero-sizes", zero_sizes),
    ("aliased", aliased),
    ("undersized", undersized),
    ("bad-params", bad_params),
    ("planted-node-of", planted_node_of),
    ("planted-splits", planted_splits),
    ("planted-nodes", planted_nodes),
    ("planted-bins", planted_bins),
    ("device-memory", device_memory),
    ("max-buffers", max_buffers),
    ("empty-slots", empty_slots),
    ("scratch-hog", scratch_hog),
    ("valid", valid),
];

fn usage() -> ! {
    let names: Vec<&str> = NON_FATAL.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "usage: guest-hostile ATTACK [ARG]\n  non-fatal: {} all\n  fatal: use-after-drop linear-memory forever forever-gpu endless-predict endless-histograms\n  transfers: big-write\n  sandbox: env [NAME] escape write-here net [PORT] stdin",
        names.join(" ")
    );
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(attack) = args.first() else { usage() };
    let extra = args.get(1).map(String::as_str);
    let mut failed = false;
    let mut run = |name: &'static str, f: &dyn Fn(&mut Report)| {
        let mut r = Report { attack: name, failures: 0 };
        f(&mut r);
        failed |= r.finish();
    };
    match attack.as_str() {
        "all" => {
            for (name, f) in NON_FATAL {
                run(name, f);
            }
        }
        "use-after-drop" => run("use-after-drop", &use_after_drop),
        "big-write" => run("big-write", &big_write),
        "linear-memory" => run("linear-memory", &linear_memory),
        "forever" => run("forever", &forever),
        "forever-gpu" => run("forever-gpu", &forever_gpu),
        "endless-predict" => run("endless-predict", &endless_predict),
        "endless-histograms" => run("endless-histograms", &endless_histograms),
        "write-here" => run("write-here", &write_here),
        "stdin" => run("stdin", &stdin),
        "env" => run("env", &|r| env(r, extra)),
        "escape" => run("escape", &escape),
        "net" => run("net", &|r| net(r, extra)),
        other => match NON_FATAL.iter().find(|(n, _)| *n == other) {
            Some((name, f)) => run(name, f),
            None => usage(),
        },
    }
    if failed {
        std::process::exit(1);
    }
}

/// Collects the outcome of one attack's steps and prints each as it happens.
struct Report {
    attack: &'static str,
    failures: u32,
}

/// The WIT error case's name and message.
fn kind(e: &Error) -> (&'static str, &str) {
    match e {
        Error::OutOfMemory(m) => ("out-of-memory", m),
        Error::InvalidArgument(m) => ("invalid-argument", m),
        Error::LimitExceeded(m) => ("limit-exceeded", m),
        Error::KernelFailure(m) => ("kernel-failure", m),
        Error::DeviceLost(m) => ("device-lost", m),
    }
}

impl Report {
    fn line(&self, step: &str, text: &str) {
        println!("{}: {step}: {text}", self.attack);
    }

    fn fail(&mut self, step: &str, why: &str) {
        self.failures += 1;
        self.line(step, &format!("UNEXPECTED {why}"));
    }

    /// The host must refuse `step` with one of `kinds`.
    fn rejected<T>(&mut self, step: &str, r: Result<T, Error>, kinds: &[&str]) {
        match r {
            Ok(_) => self.fail(step, "the host accepted it"),
            Err(e) => {
                let (name, msg) = kind(&e);
                if kinds.contains(&name) && !msg.is_empty() {
                    self.line(step, &format!("rejected {name}: {msg}"));
                } else {
                    self.fail(step, &format!("error {name} (wanted one of {kinds:?}): {msg}"));
                }
            }
        }
    }

    /// The host must accept `step`.
    fn ok<T>(&mut self, step: &str, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => {
                self.line(step, "ok");
                Some(v)
            }
            Err(e) => {
                let (name, msg) = kind(&e);
                self.fail(step, &format!("error {name}: {msg}"));
                None
            }
        }
    }

    /// Either answer is acceptable (e.g. zero-sized buffers); only a trap would be wrong.
    fn either<T>(&mut self, step: &str, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => {
                self.line(step, "ok");
                Some(v)
            }
            Err(e) => {
                let (name, msg) = kind(&e);
                self.line(step, &format!("rejected {name}: {msg}"));
                None
            }
        }
    }

    fn check(&mut self, step: &str, good: bool, detail: String) {
        if good {
            self.line(step, &format!("ok {detail}"));
        } else {
            self.fail(step, &detail);
        }
    }

    /// Prints PASS/FAIL; true when something went wrong.
    fn finish(self) -> bool {
        println!("{}: {}", self.attack, if self.failures == 0 { "PASS" } else { "FAIL" });
        self.failures != 0
    }
}

fn words(data: &[u32]) -> Vec<u8> {
    data.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn floats(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn to_words(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A buffer holding `data`, or None after reporting why not.
fn filled(r: &mut Report, step: &str, data: &[u8]) -> Option<Buffer> {
    let b = r.ok(&format!("{step} create"), Buffer::create(data.len() as u64))?;
    r.ok(&format!("{step} write"), b.write(0, data))?;
    Some(b)
}

/// Reads a whole buffer back as u32 words.
fn read_words(r: &mut Report, step: &str, b: &Buffer) -> Option<Vec<u32>> {
    r.ok(step, b.read(0, b.size())).map(|v| to_words(&v))
}

/// One 200 MiB write and read: more than wasmtime's default per-call allowance (128 MiB).
/// Within --max-transfer it must work; beyond it the answer is `limit-exceeded`, never a trap.
fn big_write(r: &mut Report) {
    const SIZE: usize = 200 << 20;
    let Some(b) = r.either("create 200 MiB", Buffer::create(SIZE as u64)) else { return };
    let data = vec![0x5au8; SIZE];
    if r.either("write 200 MiB in one call", b.write(0, &data)).is_some()
        && let Some(v) = r.either("read 200 MiB in one call", b.read(0, SIZE as u64))
    {
        r.check("contents", v.len() == SIZE && v.iter().all(|&x| x == 0x5a), format!("{} bytes", v.len()));
    }
}

fn read_past_end(r: &mut Report) {
    let Some(b) = r.ok("create 16 bytes", Buffer::create(16)) else { return };
    r.rejected("read 16 bytes at offset 8", b.read(8, 16), &["invalid-argument"]);
    r.rejected("read 1 byte at offset 16", b.read(16, 1), &["invalid-argument"]);
    r.rejected("read 17 bytes at offset 0", b.read(0, 17), &["invalid-argument"]);
    r.rejected("write 8 bytes at offset 12", b.write(12, &[7; 8]), &["invalid-argument"]);
    let Some(src) = r.ok("create 8-byte source", Buffer::create(8)) else { return };
    r.rejected("copy 8 bytes into offset 12", b.copy_from(&src, 0, 12, 8), &["invalid-argument"]);
    r.rejected("copy 16 bytes out of an 8-byte source", b.copy_from(&src, 0, 0, 16), &["invalid-argument"]);
    // The buffer is intact and still usable.
    if let Some(v) = r.ok("read the whole buffer", b.read(0, 16)) {
        r.check("contents untouched", v == [0; 16], format!("{v:?}"));
    }
}

fn huge_offset(r: &mut Report) {
    let Some(b) = r.ok("create 64 bytes", Buffer::create(64)) else { return };
    r.rejected("write at offset u64::MAX-2", b.write(u64::MAX - 2, &[1, 2, 3, 4]), &["invalid-argument"]);
    r.rejected("write empty data at offset u64::MAX", b.write(u64::MAX, &[]), &["invalid-argument"]);
    r.rejected("read 4 bytes at offset u64::MAX-1", b.read(u64::MAX - 1, 4), &["invalid-argument"]);
    r.rejected("read at offset 2^63", b.read(1 << 63, 1), &["invalid-argument"]);
    let Some(src) = r.ok("create 64-byte source", Buffer::create(64)) else { return };
    r.rejected("copy from src offset u64::MAX", b.copy_from(&src, u64::MAX, 0, 1), &["invalid-argument"]);
    r.rejected("copy to dst offset u64::MAX", b.copy_from(&src, 0, u64::MAX, 1), &["invalid-argument"]);
    r.rejected("copy with offsets and len that wrap to 0", b.copy_from(&src, u64::MAX - 3, u64::MAX - 3, 4), &["invalid-argument"]);
}

fn huge_sizes(r: &mut Report) {
    r.rejected("create u64::MAX bytes", Buffer::create(u64::MAX), &["limit-exceeded", "out-of-memory"]);
    r.rejected("create 2^63 bytes", Buffer::create(1 << 63), &["limit-exceeded", "out-of-memory"]);
    let info = compute::info();
    r.rejected(
        "create max-buffer-bytes + 1",
        Buffer::create(info.max_buffer_bytes.saturating_add(1)),
        &["limit-exceeded", "out-of-memory"],
    );
    let Some(b) = r.ok("create 32 bytes", Buffer::create(32)) else { return };
    r.rejected("read u64::MAX bytes", b.read(0, u64::MAX), &["limit-exceeded", "invalid-argument"]);
    let Some(src) = r.ok("create 32-byte source", Buffer::create(32)) else { return };
    r.rejected("copy u64::MAX bytes", b.copy_from(&src, 0, 0, u64::MAX), &["limit-exceeded", "invalid-argument"]);
}

fn zero_sizes(r: &mut Report) {
    // Zero-sized requests may be allowed or refused; they must not trap or corrupt anything.
    if let Some(z) = r.either("create 0 bytes", Buffer::create(0)) {
        r.either("read 0 bytes of it", z.read(0, 0));
        r.either("write 0 bytes to it", z.write(0, &[]));
        r.rejected("read 1 byte of it", z.read(0, 1), &["invalid-argument"]);
        if let Some(other) = r.ok("create 4 bytes", Buffer::create(4)) {
            r.either("copy 0 bytes into it", z.copy_from(&other, 0, 0, 0));
            r.either("copy 0 bytes out of it", other.copy_from(&z, 0, 4, 0));
        }
    }
    let Some(b) = r.ok("create 4 bytes", Buffer::create(4)) else { return };
    r.either("read 0 bytes at the end", b.read(4, 0));
    r.either("copy 0 bytes within one buffer", b.copy_from(&b, 0, 0, 0));
    let Some(bins) = r.ok("create 4 bytes", Buffer::create(4)) else { return };
    let Some(edges) = r.ok("create 4 bytes", Buffer::create(4)) else { return };
    r.either("bin-features with 0 rows", k::bin_features(k::BinFeaturesParams { rows: 0, features: 1, max_bins: 2 }, &b, &edges, &bins));
    let Some(sums) = r.ok("create 16 bytes", Buffer::create(16)) else { return };
    r.either(
        "predict-forest with 0 trees and 0 nodes",
        k::predict_forest(k::PredictParams { rows: 1, features: 1, tree_count: 0, node_count: 0, max_depth: 0 }, &b, &edges, &bins, &sums),
    );
}

fn aliased(r: &mut Report) {
    let Some(a) = r.ok("create 4096 bytes", Buffer::create(4096)) else { return };
    let Some(b) = r.ok("create 4096 bytes", Buffer::create(4096)) else { return };
    let p = k::BinFeaturesParams { rows: 4, features: 1, max_bins: 4 };
    r.rejected("bin-features with x = edges = bins", k::bin_features(p, &a, &a, &a), &["invalid-argument"]);
    r.rejected("bin-features with x = bins", k::bin_features(p, &a, &b, &a), &["invalid-argument"]);
    let bp = k::BootstrapParams { seed: 1, rows: 4, tree_begin: 0, tree_count: 1, draws: 4 };
    r.rejected("bootstrap with weights = node-of", k::bootstrap(bp, &a, &a), &["invalid-argument"]);
    let pp = k::PredictParams { rows: 1, features: 1, tree_count: 1, node_count: 1, max_depth: 1 };
    r.rejected("predict-forest with nodes = sums", k::predict_forest(pp, &a, &b, &a, &b), &["invalid-argument"]);
    r.rejected("copy within one buffer, overlapping", a.copy_from(&a, 0, 8, 16), &["invalid-argument"]);
    r.ok("copy within one buffer, disjoint", a.copy_from(&a, 0, 16, 16));
}

fn undersized(r: &mut Report) {
    let Some(small) = r.ok("create 8 bytes", Buffer::create(8)) else { return };
    let Some(s2) = r.ok("create 8 bytes", Buffer::create(8)) else { return };
    let Some(s3) = r.ok("create 8 bytes", Buffer::create(8)) else { return };
    let Some(s4) = r.ok("create 8 bytes", Buffer::create(8)) else { return };
    let Some(s5) = r.ok("create 8 bytes", Buffer::create(8)) else { return };
    let Some(s6) = r.ok("create 8 bytes", Buffer::create(8)) else { return };
    let inv = &["invalid-argument"];
    r.rejected(
        "bin-features 1000 rows into 8-byte buffers",
        k::bin_features(k::BinFeaturesParams { rows: 1000, features: 3, max_bins: 16 }, &small, &s2, &s3),
        inv,
    );
    r.rejected(
        "bootstrap 1000 rows x 10 trees into 8-byte buffers",
        k::bootstrap(k::BootstrapParams { seed: 7, rows: 1000, tree_begin: 0, tree_count: 10, draws: 1000 }, &small, &s2),
        inv,
    );
    r.rejected(
        "build-histograms with 8-byte buffers",
        k::build_histograms(
            k::HistogramParams { rows: 100, features: 2, max_bins: 8, tree_count: 1, slot_begin: 0, slot_count: 1 },
            &small,
            &s2,
            &s3,
            &s4,
            &s5,
        ),
        inv,
    );
    r.rejected(
        "find-splits with 8-byte buffers",
        k::find_splits(
            k::SplitParams { features: 2, max_bins: 8, slot_begin: 0, slot_count: 4, min_samples_leaf: 1, mask_words: 0 },
            &small,
            &s2,
            &s3,
        ),
        inv,
    );
    r.rejected(
        "find-splits-rows with 8-byte buffers",
        k::find_splits_rows(
            k::RowSplitParams {
                rows: 100,
                features: 2,
                max_bins: 8,
                tree_count: 1,
                slot_begin: 0,
                slot_count: 1,
                min_samples_leaf: 1,
                mask_words: 0,
            },
            &small,
            &s2,
            &s3,
            &s4,
            &s5,
            &s6,
        ),
        inv,
    );
    r.rejected(
        "apply-splits with 8-byte buffers",
        k::apply_splits(k::ApplyParams { rows: 100, features: 2, tree_count: 1, slot_count: 4 }, &small, &s2, &s3, &s4),
        inv,
    );
    r.rejected(
        "predict-forest with 8-byte buffers",
        k::predict_forest(k::PredictParams { rows: 100, features: 2, tree_count: 3, node_count: 10, max_depth: 8 }, &small, &s2, &s3, &s4),
        inv,
    );
    // Sizes that overflow 64 bits when multiplied out.
    r.rejected(
        "build-histograms whose hist size overflows",
        k::build_histograms(
            k::HistogramParams {
                rows: u32::MAX,
                features: u32::MAX,
                max_bins: 256,
                tree_count: u32::MAX,
                slot_begin: 0,
                slot_count: u32::MAX,
            },
            &small,
            &s2,
            &s3,
            &s4,
            &s5,
        ),
        inv,
    );
}

fn bad_params(r: &mut Report) {
    let bufs: Vec<Buffer> = (0..6).filter_map(|_| Buffer::create(1 << 16).ok()).collect();
    if bufs.len() != 6 {
        r.fail("create six 64 KiB buffers", "allocation failed");
        return;
    }
    let b = &bufs;
    let inv = &["invalid-argument"];
    for max_bins in [0, 1, 257, u32::MAX] {
        r.rejected(
            &format!("bin-features with max-bins {max_bins}"),
            k::bin_features(k::BinFeaturesParams { rows: 4, features: 1, max_bins }, &b[0], &b[1], &b[2]),
            inv,
        );
    }
    r.rejected(
        "bin-features with 0 features",
        k::bin_features(k::BinFeaturesParams { rows: 4, features: 0, max_bins: 4 }, &b[0], &b[1], &b[2]),
        inv,
    );
    r.rejected(
        "bootstrap with draws > rows",
        k::bootstrap(k::BootstrapParams { seed: 0, rows: 4, tree_begin: 0, tree_count: 1, draws: 5 }, &b[0], &b[1]),
        inv,
    );
    r.rejected(
        "bootstrap with tree-begin + tree-count overflowing",
        k::bootstrap(k::BootstrapParams { seed: 0, rows: 4, tree_begin: u32::MAX, tree_count: 2, draws: 4 }, &b[0], &b[1]),
        inv,
    );
    r.rejected(
        "find-splits with slot-begin + slot-count overflowing",
        k::find_splits(
            k::SplitParams { features: 1, max_bins: 4, slot_begin: u32::MAX, slot_count: 2, min_samples_leaf: 1, mask_words: 0 },
            &b[0],
            &b[1],
            &b[2],
        ),
        inv,
    );
    r.rejected(
        "find-splits with mask-words 7 for 3 features",
        k::find_splits(
            k::SplitParams { features: 3, max_bins: 4, slot_begin: 0, slot_count: 1, min_samples_leaf: 1, mask_words: 7 },
            &b[0],
            &b[1],
            &b[2],
        ),
        inv,
    );
    r.rejected(
        "predict-forest with max-depth 1000 above node-count 1",
        k::predict_forest(
            k::PredictParams { rows: 1, features: 1, tree_count: 1, node_count: 1, max_depth: 1000 },
            &b[0],
            &b[1],
            &b[2],
            &b[3],
        ),
        inv,
    );
}

/// Rows, features and max-bins of the small problems the planted-index attacks use.
const ROWS: u32 = 64;
const FEATURES: u32 = 3;
const MAX_BINS: u32 = 8;
/// u32 words per histogram cell: count, entries, sum lo, sum hi, min target, max target.
const HIST_WORDS: u64 = 6;
/// u32 words per split record: feature, bin, nL, dL, SL lo, SL hi, n, d, S lo, S hi,
/// varying, impure.
const SPLIT_WORDS: u64 = 12;

/// Cells of a histogram that some entry reached (not (0, 0, 0, 0, NONE, 0)).
fn non_empty(h: &[u32]) -> usize {
    h.chunks(HIST_WORDS as usize).filter(|c| *c != [0, 0, 0, 0, NONE, 0]).count()
}

/// Whether a histogram holds only cells no entry reached.
fn all_empty(h: &[u32]) -> bool {
    non_empty(h) == 0
}

/// A valid packed bin matrix for ROWS x FEATURES: bin (row + feature) % MAX_BINS.
fn valid_bins() -> Vec<u8> {
    let per_feature = ROWS.div_ceil(4) as usize * 4;
    let mut out = vec![0u8; per_feature * FEATURES as usize];
    for j in 0..FEATURES as usize {
        for row in 0..ROWS as usize {
            out[j * per_feature + row] = ((row + j) % MAX_BINS as usize) as u8;
        }
    }
    out
}

fn planted_node_of(r: &mut Report) {
    let Some(bins) = filled(r, "bins", &valid_bins()) else { return };
    let Some(targets) = filled(r, "targets", &words(&vec![1000; ROWS as usize])) else { return };
    let Some(weights) = filled(r, "weights", &words(&vec![1; ROWS as usize])) else { return };
    // Slot ids far outside [slot-begin, slot-begin + slot-count), NONE and values near u32::MAX.
    let garbage: Vec<u32> = (0..ROWS).map(|i| [0xdead_beef, NONE, NONE - 1, 1 << 31, 5][i as usize % 5]).collect();
    let Some(node_of) = filled(r, "node-of", &words(&garbage)) else { return };
    let hist_bytes = 2 * FEATURES as u64 * MAX_BINS as u64 * HIST_WORDS * 4;
    let Some(hist) = r.ok("hist create", Buffer::create(hist_bytes)) else { return };
    let Some(mask) = r.ok("mask create", Buffer::create(4)) else { return };
    let Some(splits) = r.ok("splits create", Buffer::create(2 * SPLIT_WORDS * 4)) else { return };
    let hp = k::HistogramParams { rows: ROWS, features: FEATURES, max_bins: MAX_BINS, tree_count: 1, slot_begin: 0, slot_count: 2 };
    if r.ok("build-histograms with garbage node-of", k::build_histograms(hp, &bins, &targets, &weights, &node_of, &hist)).is_some()
        && let Some(h) = read_words(r, "read hist", &hist)
    {
        r.check("every garbage row skipped", all_empty(&h), format!("{} cells reached", non_empty(&h)));
    }
    let rp = k::RowSplitParams {
        rows: ROWS,
        features: FEATURES,
        max_bins: MAX_BINS,
        tree_count: 1,
        slot_begin: 0,
        slot_count: 2,
        min_samples_leaf: 1,
        mask_words: 0,
    };
    if r.ok("find-splits-rows with garbage node-of", k::find_splits_rows(rp, &bins, &targets, &weights, &node_of, &mask, &splits)).is_some()
        && let Some(s) = read_words(r, "read splits", &splits)
    {
        let second = SPLIT_WORDS as usize;
        r.check("no split for empty slots", s[0] == NONE && s[second] == NONE, format!("features {:#x}, {:#x}", s[0], s[second]));
    }
}

fn planted_splits(r: &mut Report) {
    let Some(bins) = filled(r, "bins", &valid_bins()) else { return };
    // Slot 0: feature 999 (out of range). Slot 1: feature 0 with bin u32::MAX.
    let second = SPLIT_WORDS as usize;
    let mut recs = vec![0u32; 2 * second];
    recs[0] = 999;
    recs[second] = 0;
    recs[second + 1] = u32::MAX;
    let Some(splits) = filled(r, "splits", &words(&recs)) else { return };
    // Next-level slots that point far away.
    let Some(next) = filled(r, "next-slot", &words(&[0xffff_fff0, 0x7fff_ffff, 1 << 30, NONE - 1])) else { return };
    // Rows in slot 0, slot 1, and slots out of range.
    let node_of_init: Vec<u32> = (0..ROWS).map(|i| [0, 1, 2, 0xdead_beef][i as usize % 4]).collect();
    let Some(node_of) = filled(r, "node-of", &words(&node_of_init)) else { return };
    let p = k::ApplyParams { rows: ROWS, features: FEATURES, tree_count: 1, slot_count: 2 };
    if r.ok("apply-splits with planted feature, bin and next-slot", k::apply_splits(p, &bins, &splits, &next, &node_of)).is_some()
        && let Some(n) = read_words(r, "read node-of", &node_of)
    {
        let bad_slot_rows_done = n.iter().enumerate().filter(|(i, _)| i % 4 >= 2).all(|(_, &v)| v == NONE);
        let bad_feature_rows_done = n.iter().enumerate().filter(|(i, _)| i % 4 == 0).all(|(_, &v)| v == NONE);
        r.check(
            "rows in out-of-range slots and bad-feature slots finish",
            bad_slot_rows_done && bad_feature_rows_done,
            format!("node-of[0..4] = {:x?}", &n[..4]),
        );
    }
}

fn planted_nodes(r: &mut Report) {
    let rows = 4u32;
    let Some(x) = filled(r, "x", &floats(&[0.0, 1.0, 2.0, 3.0])) else { return };
    // node 0: feature 7 (out of range); node 1: children past the end; node 2: loops to itself;
    // node 3: threshold NaN bits, children out of range; node 4: a leaf of 2^64 - 1 that no
    // root names; node 5: x <= 1.5 goes on to node 6, else back to that leaf (a child before
    // its parent); node 6: back to node 5, a 5 <-> 6 cycle if back-edges were followed.
    let nodes = [
        7,
        0,
        0,
        0, //
        0,
        0.5f32.to_bits(),
        1000,
        NONE - 3, //
        0,
        10f32.to_bits(),
        2,
        2, //
        0,
        0x7fc0_0000,
        NONE,
        NONE, //
        NONE,
        NONE,
        NONE,
        NONE, //
        0,
        1.5f32.to_bits(),
        6,
        4, //
        0,
        f32::INFINITY.to_bits(),
        5,
        5, //
    ];
    let Some(nodes_b) = filled(r, "nodes", &words(&nodes)) else { return };
    let Some(roots) = filled(r, "roots", &words(&[0, 1, 2, 3, 5, 6, 7, 1 << 31, NONE])) else { return };
    let Some(sums) = r.ok("sums create", Buffer::create(rows as u64 * 16)) else { return };
    let p = k::PredictParams { rows, features: 1, tree_count: 9, node_count: 7, max_depth: 7 };
    if r.ok("predict-forest with planted nodes and roots", k::predict_forest(p, &x, &nodes_b, &roots, &sums)).is_some()
        && let Some(s) = read_words(r, "read sums", &sums)
    {
        r.check("no walk reached a leaf", s.iter().all(|&w| w == 0), format!("sums {s:?}"));
    }
}

fn planted_bins(r: &mut Report) {
    // Every bin byte is >= max-bins.
    let per_feature = ROWS.div_ceil(4) as usize * 4;
    let bytes: Vec<u8> = (0..per_feature * FEATURES as usize).map(|i| (MAX_BINS as usize + i % 200) as u8).collect();
    let Some(bins) = filled(r, "bins", &bytes) else { return };
    let Some(targets) = filled(r, "targets", &words(&vec![5; ROWS as usize])) else { return };
    let Some(weights) = filled(r, "weights", &words(&vec![1; ROWS as usize])) else { return };
    let Some(node_of) = filled(r, "node-of", &words(&vec![0; ROWS as usize])) else { return };
    let Some(hist) = r.ok("hist create", Buffer::create(FEATURES as u64 * MAX_BINS as u64 * HIST_WORDS * 4)) else { return };
    let hp = k::HistogramParams { rows: ROWS, features: FEATURES, max_bins: MAX_BINS, tree_count: 1, slot_begin: 0, slot_count: 1 };
    if r.ok("build-histograms with bins >= max-bins", k::build_histograms(hp, &bins, &targets, &weights, &node_of, &hist)).is_some()
        && let Some(h) = read_words(r, "read hist", &hist)
    {
        r.check("every out-of-range bin skipped", all_empty(&h), format!("{} cells reached", non_empty(&h)));
    }
    let Some(mask) = r.ok("mask create", Buffer::create(4)) else { return };
    let Some(splits) = r.ok("splits create", Buffer::create(SPLIT_WORDS * 4)) else { return };
    let rp = k::RowSplitParams {
        rows: ROWS,
        features: FEATURES,
        max_bins: MAX_BINS,
        tree_count: 1,
        slot_begin: 0,
        slot_count: 1,
        min_samples_leaf: 1,
        mask_words: 0,
    };
    if r.ok("find-splits-rows with bins >= max-bins", k::find_splits_rows(rp, &bins, &targets, &weights, &node_of, &mask, &splits))
        .is_some()
        && let Some(s) = read_words(r, "read splits", &splits)
    {
        r.check("no split chosen", s[0] == NONE, format!("split record {s:?}"));
    }
    let Some(next) = filled(r, "next-slot", &words(&[3, 4])) else { return };
    let rec = words(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    if r.ok("write a split on feature 0", splits.write(0, &rec)).is_some() {
        r.ok(
            "apply-splits with bins >= max-bins",
            k::apply_splits(
                k::ApplyParams { rows: ROWS, features: FEATURES, tree_count: 1, slot_count: 1 },
                &bins,
                &splits,
                &next,
                &node_of,
            ),
        );
    }
}

fn device_memory(r: &mut Report) {
    let info = compute::info();
    // Big enough to reach any sane limit quickly, small enough for one buffer.
    let chunk = (info.memory_bytes / 8).clamp(1 << 20, info.max_buffer_bytes.max(1)).min(1 << 30);
    let mut held = Vec::new();
    let err = loop {
        match Buffer::create(chunk) {
            Ok(b) => held.push(b),
            Err(e) => break e,
        }
        if held.len() > 100_000 {
            r.fail("allocate until refused", "100000 buffers and still no limit");
            return;
        }
    };
    let total = held.len() as u64 * chunk;
    r.line("allocate until refused", &format!("held {} buffers of {chunk} bytes ({total} bytes)", held.len()));
    r.rejected("the next allocation", Err::<(), _>(err), &["limit-exceeded", "out-of-memory"]);
    r.check("the limit matches device-info memory-bytes", total <= info.memory_bytes, format!("{total} <= {}", info.memory_bytes));
    drop(held);
    r.ok("allocate again after dropping everything", Buffer::create(chunk));
}

fn max_buffers(r: &mut Report) {
    let mut held = Vec::new();
    let err = loop {
        match Buffer::create(1) {
            Ok(b) => held.push(b),
            Err(e) => break e,
        }
        if held.len() > 1_000_000 {
            r.fail("create 1-byte buffers until refused", "a million buffers and still no limit");
            return;
        }
    };
    r.line("create 1-byte buffers until refused", &format!("held {} buffers", held.len()));
    r.rejected("the next buffer", Err::<(), _>(err), &["limit-exceeded"]);
    drop(held);
    r.ok("create again after dropping everything", Buffer::create(1));
}

/// Known-answer computations: bin-features and predict-forest give exactly the right bytes.
fn valid(r: &mut Report) {
    let Some(x) = filled(r, "x", &floats(&[0.0, 1.5, 3.0, -1.0, 2.0])) else { return };
    let Some(edges) = filled(r, "edges", &floats(&[1.0, 2.0, f32::INFINITY])) else { return };
    let Some(bins) = r.ok("bins create", Buffer::create(8)) else { return };
    let p = k::BinFeaturesParams { rows: 5, features: 1, max_bins: 4 };
    if r.ok("bin-features", k::bin_features(p, &x, &edges, &bins)).is_some()
        && let Some(v) = r.ok("read bins", bins.read(0, 5))
    {
        r.check("bins are [0, 1, 2, 0, 1]", v == [0, 1, 2, 0, 1], format!("{v:?}"));
    }
    let Some(px) = filled(r, "x", &floats(&[0.0, 1.0])) else { return };
    // Leaves of 10 and 2^63 + 20 (64-bit values): row 1's sum carries into word 2.
    let nodes = [0, 0.5f32.to_bits(), 1, 2, NONE, 10, 0, 0, NONE, 20, 0x8000_0000, 0];
    let Some(nodes_b) = filled(r, "nodes", &words(&nodes)) else { return };
    let Some(roots) = filled(r, "roots", &words(&[0, 0])) else { return };
    let Some(sums) = r.ok("sums create", Buffer::create(32)) else { return };
    let pp = k::PredictParams { rows: 2, features: 1, tree_count: 2, node_count: 3, max_depth: 3 };
    if r.ok("predict-forest", k::predict_forest(pp, &px, &nodes_b, &roots, &sums)).is_some()
        && let Some(s) = read_words(r, "read sums", &sums)
    {
        r.check("sums are [20, 2^64 + 40]", s == [20, 0, 0, 0, 40, 0, 1, 0], format!("{s:?}"));
    }
    r.ok("synchronize", compute::synchronize());
}

fn use_after_drop(r: &mut Report) {
    let Some(b) = r.ok("create 16 bytes", Buffer::create(16)) else { return };
    let handle = b.handle();
    drop(b);
    r.line("drop", &format!("dropped handle {handle}; now calling size() and read() through it"));
    // SAFETY (of the guest only): deliberately forges a handle that no longer exists; the
    // canonical ABI / host must refuse it with a trap. The forged value is never dropped.
    let stale = unsafe { Buffer::from_handle(handle) };
    let size = stale.size();
    let read = stale.read(0, 16);
    std::mem::forget(stale);
    r.fail("use after drop", &format!("the host answered size {size} and read {:?}", read.map(|v| v.len())));
}

fn linear_memory(r: &mut Report) {
    // Grows a Vec of 16 MiB chunks, touching every page, until the allocator is refused
    // memory (`memory.grow` returns -1 under --max-memory), then traps like std's
    // out-of-memory abort does, without std's message about RUST_BACKTRACE.
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if let Err(e) = chunk.try_reserve_exact(16 << 20) {
            eprintln!("linear-memory: refused after {} MiB ({e}); trapping", hoard.len() * 16);
            trap();
        }
        chunk.resize(16 << 20, 0xa5);
        hoard.push(chunk);
        eprintln!("linear-memory: holding {} MiB", hoard.len() * 16);
        if hoard.len() >= 4096 {
            r.fail("grow until trap", "64 GiB of linear memory and still no trap");
            return;
        }
    }
}

/// Executes `unreachable`: the way a guest dies when it has no memory left.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn forever(r: &mut Report) {
    r.line("spin", "busy loop without host calls");
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        if x == 42 && std::hint::black_box(false) {
            break;
        }
    }
    r.fail("spin", "the loop ended");
}

fn forever_gpu(r: &mut Report) {
    r.line("spin", "loop of wasi:gpu calls");
    let b = Buffer::create(16);
    loop {
        let _ = compute::synchronize();
        if let Ok(b) = &b {
            let _ = std::hint::black_box(b.read(0, 16));
        }
        if std::hint::black_box(false) {
            break;
        }
    }
    r.fail("spin", "the loop ended");
}

/// One `predict-forest` call whose work is far beyond its buffers: 2^20 rows x 2^24 trees
/// (every root a leaf), about 2^44 steps, hours on any device, from 100 MiB of buffers that
/// need no writes (zero-filled roots all name node 0). Only `--timeout` can stop it; the
/// host must stop it between launches, not by killing itself after the grace period.
fn endless_predict(r: &mut Report) {
    const ROWS: u32 = 1 << 20;
    const TREES: u32 = 1 << 24;
    let p = k::PredictParams { rows: ROWS, features: 1, tree_count: TREES, node_count: 1, max_depth: 1 };
    let Some(x) = r.ok("create x", Buffer::create(ROWS as u64 * 4)) else { return };
    let Some(nodes) = filled(r, "nodes", &words(&[NONE, 1, 0, 0])) else { return };
    let Some(roots) = r.ok("create roots", Buffer::create(TREES as u64 * 4)) else { return };
    let Some(sums) = r.ok("create sums", Buffer::create(ROWS as u64 * 16)) else { return };
    r.line("predict", "2^20 rows x 2^24 trees");
    let result = k::predict_forest(p, &x, &nodes, &roots, &sums);
    r.fail("predict", &format!("the call returned ({:?})", result.map_err(|e| kind(&e).0)));
}

/// One `build-histograms` call of 2^9 trees x 2^16 rows x 2^11 features (2^36 steps) from
/// 400 MiB of buffers: minutes on a CPU. `--timeout` must still end the run.
fn endless_histograms(r: &mut Report) {
    const ROWS: u32 = 1 << 16;
    const FEATURES: u32 = 1 << 11;
    const TREES: u32 = 1 << 9;
    let p = k::HistogramParams { rows: ROWS, features: FEATURES, max_bins: 256, tree_count: TREES, slot_begin: 0, slot_count: 1 };
    let Some(bins) = r.ok("create bins", Buffer::create(FEATURES as u64 * ROWS as u64)) else { return };
    let Some(targets) = r.ok("create targets", Buffer::create(ROWS as u64 * 4)) else { return };
    let entries = TREES as u64 * ROWS as u64;
    let Some(weights) = r.ok("create weights", Buffer::create(entries * 4)) else { return };
    let ones = words(&vec![1u32; 1 << 22]);
    for chunk in 0..entries * 4 / ones.len() as u64 {
        if r.ok("write weights", weights.write(chunk * ones.len() as u64, &ones)).is_none() {
            return;
        }
    }
    // Zero-filled: every entry in slot 0.
    let Some(node_of) = r.ok("create node-of", Buffer::create(entries * 4)) else { return };
    let Some(hist) = r.ok("create hist", Buffer::create(FEATURES as u64 * 256 * 6 * 4)) else { return };
    r.line("build-histograms", "2^36 steps");
    let result = k::build_histograms(p, &bins, &targets, &weights, &node_of, &hist);
    r.fail("build-histograms", &format!("the call returned ({:?})", result.map_err(|e| kind(&e).0)));
}

/// `find-splits-rows` with no rows, 2^28 features and 4 slots: 192 bytes of buffers. Its
/// work must scale with those buffers (empty slots cost nothing per feature), so it
/// answers at once.
fn empty_slots(r: &mut Report) {
    let p = k::RowSplitParams {
        rows: 0,
        features: 1 << 28,
        max_bins: 256,
        tree_count: 1,
        slot_begin: 0,
        slot_count: 4,
        min_samples_leaf: 1,
        mask_words: 0,
    };
    let empty: Vec<Buffer> = (0..5).filter_map(|i| r.ok(&format!("create empty buffer {i}"), Buffer::create(0))).collect();
    let Some(splits) = r.ok("create splits", Buffer::create(4 * 12 * 4)) else { return };
    if empty.len() < 5 {
        return;
    }
    let res = k::find_splits_rows(p, &empty[0], &empty[1], &empty[2], &empty[3], &empty[4], &splits);
    if r.either("find-splits-rows, 0 rows x 2^28 features x 4 slots", res).is_some()
        && let Some(s) = read_words(r, "read splits", &splits)
    {
        let leaves = s.chunks_exact(12).all(|rec| rec[0] == NONE && rec[4] == 0 && rec[8] == 0);
        r.check("every slot is an empty leaf", leaves, format!("{:?}", &s[..12]));
    }
}

/// `find-splits-rows` over 2^16 features and 4 slots of 64 rows: a dense histogram of
/// these slots would take 1.5 GiB of scratch, far over the 64 MiB the tests grant. The
/// backend must stay within the guest's --max-device-memory (a sparser path, smaller
/// batches) or refuse with `limit-exceeded`; `--profile`'s peak shows what it held.
fn scratch_hog(r: &mut Report) {
    const ROWS: u32 = 64;
    const FEATURES: u32 = 1 << 16;
    let p = k::RowSplitParams {
        rows: ROWS,
        features: FEATURES,
        max_bins: 256,
        tree_count: 1,
        slot_begin: 0,
        slot_count: 4,
        min_samples_leaf: 1,
        mask_words: 0,
    };
    // Bin byte of row i in every feature: i * 4 (64 distinct bins); targets vary.
    let column: Vec<u32> = (0..ROWS / 4).map(|w| (0..4).map(|b| ((w * 4 + b) * 4) << (8 * b)).sum()).collect();
    let bins: Vec<u32> = (0..FEATURES).flat_map(|_| column.iter().copied()).collect();
    let targets: Vec<u32> = (0..ROWS).map(|i| i * 1000).collect();
    let weights = vec![1u32; ROWS as usize];
    let node_of: Vec<u32> = (0..ROWS).map(|i| i % 4).collect();
    let (Some(bins), Some(targets), Some(weights), Some(node_of)) = (
        filled(r, "bins", &words(&bins)),
        filled(r, "targets", &words(&targets)),
        filled(r, "weights", &words(&weights)),
        filled(r, "node-of", &words(&node_of)),
    ) else {
        return;
    };
    let Some(mask) = r.ok("create mask", Buffer::create(0)) else { return };
    let Some(splits) = r.ok("create splits", Buffer::create(4 * 12 * 4)) else { return };
    let res = k::find_splits_rows(p, &bins, &targets, &weights, &node_of, &mask, &splits);
    match res {
        Ok(()) => {
            if let Some(s) = read_words(r, "read splits", &splits) {
                // Slot 0 holds rows 0, 4, .., 60 (bins 0, 16, .., 240): the best cut is between
                // its 8th and 9th row, in the middle of the empty bins 113..127; every feature
                // varies, every slot is impure (docs/algorithm.md §7).
                let slot0 = [0, 119, 8, 8, 112_000, 0, 16, 16, 480_000, 0, FEATURES, 1];
                let varying = s.chunks_exact(12).all(|rec| rec[6] == 16 && rec[10] == FEATURES && rec[11] == 1);
                r.check("find-splits-rows within the limit: slot 0's record", s[..12] == slot0, format!("{:?}", &s[..12]));
                r.check("every slot has 16 rows and 2^16 varying features", varying, format!("{s:?}"));
            }
        }
        Err(e) => r.rejected("find-splits-rows over the limit", Err::<(), _>(e), &["limit-exceeded"]),
    }
}

/// Tries to create a file in the current directory (a preopen): only `--dir-rw` allows it.
fn write_here(r: &mut Report) {
    match std::fs::write("written-by-guest-hostile", b"x") {
        Ok(()) => r.line("create ./written-by-guest-hostile", "ok wrote"),
        Err(e) => r.line("create ./written-by-guest-hostile", &format!("blocked: {e}")),
    }
    match std::fs::OpenOptions::new().append(true).open("inside.txt") {
        Ok(_) => r.line("open ./inside.txt for writing", "ok opened"),
        Err(e) => r.line("open ./inside.txt for writing", &format!("blocked: {e}")),
    }
}

/// Reads standard input to the end: closed unless the host passes `--stdin`.
fn stdin(r: &mut Report) {
    use std::io::Read as _;
    let mut text = String::new();
    match std::io::stdin().read_to_string(&mut text) {
        Ok(n) => r.line("read", &format!("{n} bytes: {:?}", text.trim())),
        Err(e) => r.line("read", &format!("failed: {e}")),
    }
}

/// Lists the visible environment; with NAME, also says whether NAME is visible.
fn env(r: &mut Report, name: Option<&str>) {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    r.line("visible variables", &format!("{}", vars.len()));
    for (k, v) in &vars {
        r.line("variable", &format!("{k}={v}"));
    }
    if let Some(name) = name {
        match std::env::var(name) {
            Ok(v) => r.line("lookup", &format!("{name} is visible: {v}")),
            Err(_) => r.line("lookup", &format!("{name} is not visible")),
        }
    }
}

/// Tries to reach host files outside the preopened directories; each attempt must fail.
fn escape(r: &mut Report) {
    fn blocked(r: &mut Report, step: &str, res: std::io::Result<String>) {
        match res {
            Ok(what) => r.fail(step, &format!("it worked: {what}")),
            Err(e) => r.line(step, &format!("blocked: {e}")),
        }
    }
    let read = |p: &str| std::fs::read(p).map(|v| format!("read {} bytes", v.len()));
    let list = |p: &str| std::fs::read_dir(p).map(|d| format!("listed {} entries", d.count()));
    blocked(r, "read /etc/passwd", read("/etc/passwd"));
    blocked(r, "read ../etc/passwd", read("../etc/passwd"));
    blocked(r, "read ../../../../../../etc/passwd", read("../../../../../../etc/passwd"));
    blocked(r, "read ./../../etc/passwd", read("./../../etc/passwd"));
    // wasi-libc resolves "/" against the preopens, so it may show the preopen itself;
    // anything beyond the preopen's own entries would be the host's root.
    let names = |p: &str| -> std::io::Result<Vec<String>> {
        let mut v: Vec<String> =
            std::fs::read_dir(p)?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        Ok(v)
    };
    match (names("/"), names(".")) {
        (Err(e), _) => r.line("list /", &format!("blocked: {e}")),
        (Ok(root), Ok(here)) if root == here => r.line("list /", &format!("ok shows only the preopen: {root:?}")),
        (Ok(root), _) => r.fail("list /", &format!("listed the host root: {root:?}")),
    }
    blocked(r, "list ..", list(".."));
    blocked(r, "list /proc/self", list("/proc/self"));
    blocked(r, "create ../escaped-by-guest-hostile", std::fs::write("../escaped-by-guest-hostile", b"x").map(|_| "wrote".into()));
    blocked(r, "create /tmp/escaped-by-guest-hostile", std::fs::write("/tmp/escaped-by-guest-hostile", b"x").map(|_| "wrote".into()));
    // Inside the preopen (if any) things work, so the checks above are not vacuous.
    match std::fs::read_dir(".") {
        Ok(d) => r.line("list . (the preopen)", &format!("ok {} entries", d.count())),
        Err(e) => r.line("list . (the preopen)", &format!("failed: {e} (no --dir given?)")),
    }
}

/// Tries TCP, UDP and name lookup; each must fail.
fn net(r: &mut Report, port: Option<&str>) {
    use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
    let port: u16 = port.and_then(|p| p.parse().ok()).unwrap_or(80);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)) {
        Ok(_) => r.fail(&format!("tcp connect 127.0.0.1:{port}"), "connected"),
        Err(e) => r.line(&format!("tcp connect 127.0.0.1:{port}"), &format!("blocked: {e}")),
    }
    match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => r.fail("tcp listen", &format!("listening on {:?}", l.local_addr())),
        Err(e) => r.line("tcp listen", &format!("blocked: {e}")),
    }
    match UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"hostile", addr)) {
        Ok(n) => r.fail("udp send", &format!("sent {n} bytes")),
        Err(e) => r.line("udp send", &format!("blocked: {e}")),
    }
    match ("localhost", port).to_socket_addrs() {
        Ok(a) => r.fail("name lookup of localhost", &format!("resolved {:?}", a.collect::<Vec<_>>())),
        Err(e) => r.line("name lookup of localhost", &format!("blocked: {e}")),
    }
}
