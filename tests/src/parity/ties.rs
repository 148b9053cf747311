//! The synthetic data set `data/synthetic_ties.csv`: many duplicate rows and tied feature
//! values, the inputs where a backend or guest that breaks ties differently (split
//! candidates with equal scores, equal thresholds, equal features) would diverge.
//!
//! The file is committed; [`csv`] regenerates it byte for byte (a test checks that), so it
//! can be rebuilt or audited without trusting the checked-in copy.

/// The committed file's path relative to the workspace root.
pub const PATH: &str = "data/synthetic_ties.csv";

/// Distinct base rows before duplication.
const BASE_ROWS: u64 = 96;

/// SplitMix64: a tiny, fully specified generator, so the file depends on nothing external.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n small, the modulo bias is irrelevant to a fixed data set).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The CSV text: header `f0..f7,target`, then rows.
///
/// Features (every value is exactly representable in `f32`, so parsing cannot differ):
/// * `f0`: 3 levels `{0, 1, 2}`; `f1`: 2 levels `{-1, 1}`;
/// * `f2`: an exact copy of `f0` (equal-score splits on two features: the lower feature wins);
/// * `f3`: constant `0.5` (never splittable);
/// * `f4`: 5 levels in quarter steps; `f5`: `f0 + f1` (ties across features at other cuts);
/// * `f6`: 9 levels, mostly `0` (a heavy point mass); `f7`: 40 levels (many candidates).
///
/// Target: a step function of `f0`, `f1`, `f4`, `f6` plus noise rounded to 0.5, so many
/// targets tie too. Each base row is written 1 to 5 times; about a third of the copies get a
/// different noise value, so identical feature rows carry different targets (leaves that can
/// never become pure), and the rest are exact duplicates.
pub fn csv() -> String {
    let mut rng = SplitMix64(0x7469_6573_2d64_6174); // "ties-dat"
    let mut out = String::from("f0,f1,f2,f3,f4,f5,f6,f7,target\n");
    for _ in 0..BASE_ROWS {
        let f0 = rng.below(3) as f64;
        let f1 = if rng.below(2) == 0 { -1.0 } else { 1.0 };
        let f4 = rng.below(5) as f64 * 0.25;
        let f6 = if rng.below(3) == 0 { rng.below(9) as f64 - 4.0 } else { 0.0 };
        let f7 = rng.below(40) as f64 * 0.125;
        let base = 10.0 * f0 + 4.0 * f1 + if f4 > 0.5 { 6.0 } else { 0.0 } + if f6 < 0.0 { -3.0 } else { 1.0 };
        let copies = 1 + rng.below(5);
        let mut noise = rng.below(7) as f64 * 0.5 - 1.5;
        for _ in 0..copies {
            if rng.below(3) == 0 {
                noise = rng.below(7) as f64 * 0.5 - 1.5;
            }
            let row = [f0, f1, f0, 0.5, f4, f0 + f1, f6, f7, base + noise];
            let fields: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

/// The second committed file, `data/wide_ties.csv`: the shapes of real tables that a
/// 10-feature continuous set hides (docs/algorithm.md §4-§5, §8).
pub const WIDE_PATH: &str = "data/wide_ties.csv";

/// Rows of [`wide_csv`].
const WIDE_ROWS: u64 = 1500;

/// The CSV text: header `f0..f8,target`, then rows. Features:
/// * `f0`: integers 0..999 (more distinct values than bins, ~1.5 copies each);
/// * `f1`: years 1950..2020 (heavy ties); `f2`: a zero-heavy count (80% zeros, else 1..50);
/// * `f3`: constant `7` (never a candidate); `f4`: near-constant (one row differs);
/// * `f5..f7`: a one-hot block of a 3-level category; `f8`: `f0` rounded to hundreds.
///
/// Target: a smooth function of `f0`, `f1`, `f2` and the category plus noise in quarter
/// steps; 1% of the rows get `+1e6` (outliers that 20-bit targets used to swallow).
pub fn wide_csv() -> String {
    let mut rng = SplitMix64(0x7769_6465_2d74_6965); // "wide-tie"
    let mut out = String::from("f0,f1,f2,f3,f4,f5,f6,f7,f8,target\n");
    for row in 0..WIDE_ROWS {
        let f0 = rng.below(1000) as f64;
        let f1 = 1950.0 + rng.below(71) as f64;
        let f2 = if rng.below(5) == 0 { 1.0 + rng.below(50) as f64 } else { 0.0 };
        let f4 = if row == 700 { 1.0 } else { 0.0 };
        let cat = rng.below(3);
        let onehot = [0, 1, 2].map(|c| if c == cat { 1.0 } else { 0.0 });
        let f8 = (f0 / 100.0).round() * 100.0;
        let noise = rng.below(9) as f64 * 0.25 - 1.0;
        let outlier = if rng.below(100) == 0 { 1e6 } else { 0.0 };
        let target = f0 / 50.0 + (f1 - 1950.0) / 7.0 + if f2 > 0.0 { 5.0 } else { 0.0 } + 4.0 * cat as f64 + noise + outlier;
        let values = [f0, f1, f2, 7.0, f4, onehot[0], onehot[1], onehot[2], f8, target];
        let fields: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_file_matches_the_generator() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let committed = std::fs::read_to_string(root.join(PATH))
            .unwrap_or_else(|e| panic!("{PATH}: {e}; regenerate it with `parity --write-ties-data`"));
        assert!(committed == csv(), "{PATH} differs from parity::ties::csv(); regenerate it with `parity --write-ties-data`");
    }

    #[test]
    fn committed_wide_file_matches_the_generator() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let committed = std::fs::read_to_string(root.join(WIDE_PATH))
            .unwrap_or_else(|e| panic!("{WIDE_PATH}: {e}; regenerate it with `parity --write-ties-data`"));
        assert!(
            committed == wide_csv(),
            "{WIDE_PATH} differs from parity::ties::wide_csv(); regenerate it with `parity --write-ties-data`"
        );
    }

    #[test]
    fn wide_file_has_many_tied_values_and_outliers() {
        let text = wide_csv();
        let rows: Vec<Vec<f64>> = text.lines().skip(1).map(|r| r.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        let distinct: std::collections::BTreeSet<u64> = rows.iter().map(|r| r[0] as u64).collect();
        assert!(distinct.len() > 256 && distinct.len() < rows.len(), "{} distinct f0 values", distinct.len());
        assert!(rows.iter().filter(|r| r[9] > 1e5).count() >= 5);
        assert!(rows.iter().all(|r| r[3] == 7.0));
        assert_eq!(rows.iter().filter(|r| r[4] != 0.0).count(), 1);
    }

    #[test]
    fn has_duplicates_and_ties() {
        let text = csv();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        let features: std::collections::HashSet<&str> = rows.iter().map(|r| r.rsplit_once(',').unwrap().0).collect();
        let full: std::collections::HashSet<&str> = rows.iter().copied().collect();
        assert!(rows.len() > 2 * features.len(), "{} rows, {} distinct feature rows", rows.len(), features.len());
        assert!(full.len() > features.len(), "some duplicate feature rows must carry different targets");
    }
}
