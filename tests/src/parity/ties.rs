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
    fn has_duplicates_and_ties() {
        let text = csv();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        let features: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.rsplit_once(',').unwrap().0).collect();
        let full: std::collections::HashSet<&str> = rows.iter().copied().collect();
        assert!(rows.len() > 2 * features.len(), "{} rows, {} distinct feature rows", rows.len(), features.len());
        assert!(full.len() > features.len(), "some duplicate feature rows must carry different targets");
    }
}
