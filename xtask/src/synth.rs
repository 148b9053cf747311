//! Deterministic synthetic regression data for the benchmarks: Friedman #1 with 32
//! features, written as little-endian `f32` NumPy `.npy` files (C order, 2-D, the last
//! column is the target — the layout the guests and `bench/run_anchors.py` read).
//!
//! `y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + N(0, 1)`; every `x` is
//! uniform in `[0, 1)`; features 5..32 are pure noise. Every value comes from a
//! counter-based generator keyed by (seed, split, row, column), so a file is a pure
//! function of its parameters: any machine, any run, any chunking gives the same bytes.
//! Files are written row by row through a buffer (never holding the matrix in memory)
//! to `NAME.tmp` and renamed, and are reused when an identical file is already there.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

/// Number of feature columns of every synthetic data set.
pub const FEATURES: usize = 32;

/// Bumped whenever the generated values change; part of every file name, so stale
/// files from an older generator are never reused.
pub const GENERATOR_VERSION: u32 = 1;

/// Standard deviation of the Gaussian noise added to the target.
pub const NOISE_SD: f64 = 1.0;

/// Test sets are 20% of the training rows, capped at this many rows.
pub const MAX_TEST_ROWS: u64 = 200_000;

/// Which half of a data set a stream of random numbers belongs to; the splits use
/// disjoint streams, so test rows are never copies of training rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training rows.
    Train,
    /// Held-out rows.
    Test,
}

impl Split {
    fn stream(self) -> u64 {
        match self {
            Split::Train => 1,
            Split::Test => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// SplitMix64's finalizer: a bijective 64-bit mix with full avalanche.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The counter-based generator: `uniform(col)` is a pure function of
/// (seed, split, row, col).
struct RowRng {
    key: u64,
}

impl RowRng {
    fn new(seed: u64, split: Split, row: u64) -> Self {
        RowRng { key: mix64(mix64(mix64(seed) ^ split.stream()) ^ row) }
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn uniform(&self, col: u64) -> f64 {
        (mix64(self.key ^ mix64(col)) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal by Box–Muller from two further counters.
    fn normal(&self, col: u64) -> f64 {
        let u1 = 1.0 - self.uniform(col); // (0, 1]: ln is finite
        let u2 = self.uniform(col + 1);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Fills `out` (length `FEATURES + 1`) with one row: the features as stored (`f32`),
/// then the target computed from those stored values plus noise.
fn fill_row(seed: u64, split: Split, row: u64, out: &mut [f32]) {
    debug_assert_eq!(out.len(), FEATURES + 1);
    let rng = RowRng::new(seed, split, row);
    for (j, v) in out[..FEATURES].iter_mut().enumerate() {
        *v = rng.uniform(j as u64) as f32;
    }
    let x = |j: usize| f64::from(out[j]);
    let y = 10.0 * (std::f64::consts::PI * x(0) * x(1)).sin()
        + 20.0 * (x(2) - 0.5).powi(2)
        + 10.0 * x(3)
        + 5.0 * x(4)
        + NOISE_SD * rng.normal(FEATURES as u64);
    out[FEATURES] = y as f32;
}

/// The `.npy` v1.0 header for a C-order little-endian `f32` matrix, padded so the data
/// starts on a 64-byte boundary as NumPy does.
pub fn npy_header(rows: u64, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 10 + dict.len() + 1; // magic+version+len, dict, '\n'
    let total = unpadded.div_ceil(64) * 64;
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    let header_len = (total - 10) as u16;
    h.extend_from_slice(&header_len.to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// Size in bytes of a complete file of `rows` rows.
fn expected_len(rows: u64) -> u64 {
    npy_header(rows, FEATURES + 1).len() as u64 + rows * (FEATURES as u64 + 1) * 4
}

/// Whether `path` already holds a complete file with the right header (the name carries
/// the generator version and seed, so a matching header and length means matching data).
fn is_complete(path: &Path, rows: u64) -> bool {
    let Ok(meta) = fs::metadata(path) else { return false };
    if meta.len() != expected_len(rows) {
        return false;
    }
    let want = npy_header(rows, FEATURES + 1);
    let mut got = vec![0u8; want.len()];
    File::open(path).and_then(|mut f| f.read_exact(&mut got)).is_ok() && got == want
}

/// Writes `rows` rows of `split` to `path` (via `path.tmp`, renamed at the end).
pub fn write_npy(path: &Path, seed: u64, split: Split, rows: u64) -> Result<()> {
    ensure!(rows > 0, "a data set needs at least one row");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("npy.tmp");
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&npy_header(rows, FEATURES + 1))?;
    let mut row = [0f32; FEATURES + 1];
    let mut bytes = [0u8; (FEATURES + 1) * 4];
    for r in 0..rows {
        fill_row(seed, split, r, &mut row);
        for (chunk, v) in bytes.chunks_exact_mut(4).zip(row.iter()) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        w.write_all(&bytes).with_context(|| format!("writing {}", tmp.display()))?;
    }
    w.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).with_context(|| format!("flushing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// One generated workload: where its files are and how big they are.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Training rows.
    pub train_rows: u64,
    /// Test rows (20% of the training rows, at most [`MAX_TEST_ROWS`]).
    pub test_rows: u64,
    /// Training file.
    pub train: PathBuf,
    /// Test file.
    pub test: PathBuf,
}

/// Test rows for a training set of `train_rows`.
pub fn test_rows_for(train_rows: u64) -> u64 {
    (train_rows / 5).clamp(1, MAX_TEST_ROWS)
}

/// Creates (or reuses) the train and test files of a `train_rows` x 32 workload in `dir`.
pub fn ensure_dataset(dir: &Path, train_rows: u64, seed: u64) -> Result<Dataset> {
    let test_rows = test_rows_for(train_rows);
    let path = |split: Split| dir.join(format!("friedman1-v{GENERATOR_VERSION}-s{seed}-{train_rows}x{FEATURES}-{}.npy", split.name()));
    let (train, test) = (path(Split::Train), path(Split::Test));
    for (p, split, rows) in [(&train, Split::Train, train_rows), (&test, Split::Test, test_rows)] {
        if is_complete(p, rows) {
            eprintln!("bench: reusing {}", p.display());
            continue;
        }
        let t = std::time::Instant::now();
        write_npy(p, seed, split, rows)?;
        eprintln!("bench: wrote {} ({rows} x {}) in {:.1} s", p.display(), FEATURES + 1, t.elapsed().as_secs_f64());
    }
    Ok(Dataset { train_rows, test_rows, train, test })
}

/// Parses a row count: `100k`, `1m`, `10M`, `250000`, `1.5m`.
pub fn parse_rows(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'b') => (&t[..t.len() - 1], 1e9),
        _ => (&t[..], 1.0),
    };
    let v: f64 = num.parse().with_context(|| format!("`{s}` is not a row count like 100k, 1m, 250000"))?;
    let rows = v * mul;
    if !(1.0..=1e12).contains(&rows) || rows.fract() != 0.0 {
        bail!("`{s}` is not a whole number of rows between 1 and 10^12");
    }
    Ok(rows as u64)
}

/// Options of `cargo xtask gen-data`, which writes the synthetic workloads without running
/// anything (e.g. to inspect them or to pre-generate).
#[derive(Debug, Clone, clap::Args)]
pub struct GenDataArgs {
    /// Training sizes, e.g. 100k,1m (each also gets its test set: 20%, at most 200k rows).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_rows, default_value = "100k", action = clap::ArgAction::Set)]
    pub sizes: Vec<u64>,
    /// Data seed.
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub seed: u64,
    /// Output directory [default: target/bench/data].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `cargo xtask gen-data [--sizes LIST] [--seed N] [--out DIR]`.
pub fn gen_data_command(root: &Path, args: &GenDataArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| root.join("target/bench/data"));
    for &rows in &args.sizes {
        let d = ensure_dataset(&out, rows, args.seed)?;
        println!("{}\n{}", d.train.display(), d.test.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_to_64_and_parsable() {
        for rows in [1u64, 100_000, 10_000_000] {
            let h = npy_header(rows, 33);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
            let dict = std::str::from_utf8(&h[10..]).unwrap();
            assert!(dict.contains(&format!("'shape': ({rows}, 33)")), "{dict}");
            assert!(dict.ends_with('\n'));
        }
    }

    #[test]
    fn rows_are_deterministic_and_splits_differ() {
        let (mut a, mut b, mut c) = ([0f32; 33], [0f32; 33], [0f32; 33]);
        fill_row(42, Split::Train, 7, &mut a);
        fill_row(42, Split::Train, 7, &mut b);
        fill_row(42, Split::Test, 7, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        fill_row(43, Split::Train, 7, &mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn features_uniform_and_target_follows_friedman1() {
        let n = 20_000u64;
        let mut row = [0f32; 33];
        let (mut mean_x, mut resid_sq, mut resid_sum) = (0f64, 0f64, 0f64);
        for r in 0..n {
            fill_row(1, Split::Train, r, &mut row);
            assert!(row[..32].iter().all(|&v| (0.0..1.0).contains(&v)));
            mean_x += f64::from(row[9]);
            let x = |j: usize| f64::from(row[j]);
            let clean = 10.0 * (std::f64::consts::PI * x(0) * x(1)).sin() + 20.0 * (x(2) - 0.5).powi(2) + 10.0 * x(3) + 5.0 * x(4);
            let e = f64::from(row[32]) - clean;
            resid_sum += e;
            resid_sq += e * e;
        }
        let n = n as f64;
        assert!((mean_x / n - 0.5).abs() < 0.01, "feature mean {}", mean_x / n);
        // The residual is the N(0, 1) noise (plus f32 rounding of y).
        assert!((resid_sum / n).abs() < 0.03, "noise mean {}", resid_sum / n);
        assert!((resid_sq / n - 1.0).abs() < 0.05, "noise variance {}", resid_sq / n);
    }

    #[test]
    fn written_file_has_expected_length_and_first_row() {
        let dir = std::env::temp_dir().join(format!("xtask-synth-test-{}", std::process::id()));
        let path = dir.join("t.npy");
        write_npy(&path, 5, Split::Train, 3).unwrap();
        assert!(is_complete(&path, 3));
        assert!(!is_complete(&path, 4));
        let bytes = fs::read(&path).unwrap();
        let h = npy_header(3, 33).len();
        let mut row = [0f32; 33];
        fill_row(5, Split::Train, 0, &mut row);
        let first: Vec<f32> = bytes[h..h + 33 * 4].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(first, row);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_row_counts() {
        assert_eq!(parse_rows("100k").unwrap(), 100_000);
        assert_eq!(parse_rows("1m").unwrap(), 1_000_000);
        assert_eq!(parse_rows("10M").unwrap(), 10_000_000);
        assert_eq!(parse_rows("1.5m").unwrap(), 1_500_000);
        assert_eq!(parse_rows("353").unwrap(), 353);
        assert!(parse_rows("0").is_err());
        assert!(parse_rows("1.5").is_err());
        assert!(parse_rows("abc").is_err());
        assert_eq!(test_rows_for(100_000), 20_000);
        assert_eq!(test_rows_for(10_000_000), MAX_TEST_ROWS);
    }

    #[test]
    fn parses_gen_data_options() {
        use crate::Command;
        use crate::tests::parse;
        let args = |s: &str| match parse(s) {
            Ok(Command::GenData(a)) => a,
            other => panic!("{s}: {other:?}"),
        };
        let a = args("gen-data");
        assert_eq!((a.sizes, a.seed, a.out), (vec![100_000], 42, None));
        let a = args("gen-data --sizes 10k,1m --seed 7 --out /tmp/d");
        assert_eq!((a.sizes, a.seed, a.out), (vec![10_000, 1_000_000], 7, Some(PathBuf::from("/tmp/d"))));
        assert!(parse("gen-data --sizes 10x").is_err());
        assert!(parse("gen-data --seed -1").is_err());
        assert!(parse("gen-data --bogus").is_err());
    }
}
