//! Smoke test and timing of the CUDA backend against the CPU reference on one realistic
//! training level: probe, NVRTC compile time, then bootstrap → bin-features →
//! build-histograms → find-splits → apply-splits → predict-forest on random data, every
//! output compared byte for byte with `CpuBackend`. Then find-splits-rows on a shallow,
//! a middle and a deep level (thousands of slots per tree, masks, min-samples-leaf),
//! against the CPU's find-splits-rows and against the GPU's own build-histograms +
//! find-splits. Exit status 1 on any difference.
//!
//! `cargo run -p wasi-gpu-cuda --release --example cuda_check [rows] [features] [trees]`

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wasi_gpu_backend::*;

/// Bytes per split record.
const RECORD_BYTES: u64 = SPLIT_WORDS as u64 * 4;

fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Every output buffer of a level and the milliseconds of each kernel.
type LevelRun = (Vec<Vec<u8>>, Vec<(&'static str, f64)>);

/// Runs the level on one device; returns every output buffer and the time per kernel.
fn level(d: &mut Device, rows: u32, features: u32, trees: u32, seed: u64) -> Result<LevelRun, GpuError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let max_bins = 64u32;
    let x: Vec<u32> = (0..rows * features).map(|_| rng.random_range(-10.0f32..10.0).to_bits()).collect();
    let mut edges = Vec::new();
    for j in 0..features {
        let mut e: Vec<f32> = (0..max_bins - 1).map(|_| rng.random_range(-10.0f32..10.0)).collect();
        // Feature 1's edges stay unsorted: bin-features must still count the edges below x.
        if j != 1 {
            e.sort_by(|a, b| a.total_cmp(b));
        }
        edges.extend(e.iter().map(|v| v.to_bits()));
    }
    let targets: Vec<u32> = (0..rows).map(|_| rng.random_range(0..=TARGET_MAX)).collect();
    let buf = |d: &mut Device, data: Vec<u8>| -> Result<BufferId, GpuError> {
        let id = d.create_buffer(data.len() as u64)?;
        d.write(id, 0, &data)?;
        Ok(id)
    };
    let bx = buf(d, bytes(&x))?;
    let be = buf(d, bytes(&edges))?;
    let bt = buf(d, bytes(&targets))?;
    let bins = d.create_buffer(bin_matrix_bytes(rows, features)?)?;
    let weights = d.create_buffer(trees as u64 * rows as u64 * 4)?;
    let node_of = d.create_buffer(trees as u64 * rows as u64 * 4)?;
    let hist = d.create_buffer(trees as u64 * features as u64 * max_bins as u64 * HIST_WORDS as u64 * 4)?;
    let splits = d.create_buffer(trees as u64 * RECORD_BYTES)?;
    let next: Vec<u32> = (0..trees * 2).collect();
    let next_slot = buf(d, bytes(&next))?;
    // A depth-1 forest per tree: root splits feature t % features at 0.0.
    let mut nodes = Vec::new();
    for t in 0..trees {
        let base = t * 3;
        nodes.extend([t % features, 0.0f32.to_bits(), base + 1, base + 2]);
        nodes.extend([NONE, 1000 + t, 0, 0, NONE, 2000 + t, 0, 0]);
    }
    let roots: Vec<u32> = (0..trees).map(|t| t * 3).collect();
    let bn = buf(d, bytes(&nodes))?;
    let br = buf(d, bytes(&roots))?;
    let sums = d.create_buffer(rows as u64 * 16)?;

    let mut times = Vec::new();
    let mut timed = |d: &mut Device, name: &'static str, f: &dyn Fn(&mut Device) -> Result<(), GpuError>| {
        d.synchronize()?;
        let t = Instant::now();
        f(d)?;
        d.synchronize()?;
        times.push((name, t.elapsed().as_secs_f64() * 1e3));
        Ok::<(), GpuError>(())
    };
    timed(d, "bootstrap", &|d| {
        d.bootstrap(&BootstrapParams { seed, rows, tree_begin: 0, tree_count: trees, draws: rows }, weights, node_of)
    })?;
    timed(d, "bin-features", &|d| d.bin_features(&BinFeaturesParams { rows, features, max_bins }, bx, be, bins))?;
    let hp = HistogramParams { rows, features, max_bins, tree_count: trees, slot_begin: 0, slot_count: trees };
    timed(d, "build-histograms", &|d| d.build_histograms(&hp, bins, bt, weights, node_of, hist))?;
    let sp = SplitParams { features, max_bins, slot_begin: 0, slot_count: trees, min_samples_leaf: 1, mask_words: 0 };
    timed(d, "find-splits", &|d| d.find_splits(&sp, hist, bins /* unused: mask_words 0 */, splits))?;
    let ap = ApplyParams { rows, features, tree_count: trees, slot_count: trees };
    timed(d, "apply-splits", &|d| d.apply_splits(&ap, bins, splits, next_slot, node_of))?;
    let pp = PredictParams { rows, features, tree_count: trees, node_count: trees * 3, max_depth: 1 };
    timed(d, "predict-forest", &|d| d.predict_forest(&pp, bx, bn, br, sums))?;

    let mut out = Vec::new();
    for id in [bins, weights, node_of, hist, splits, sums] {
        let size = d.buffer_size(id)?;
        out.push(d.read(id, 0, size)?);
    }
    Ok((out, times))
}

/// Split records and milliseconds of find-splits-rows, and optionally of the dense path.
type RowRun = (Vec<u8>, f64, Option<(Vec<u8>, f64)>);

/// One find-splits-rows batch: `slots_per_tree` slots per tree, each entry of tree t in a
/// random slot of that tree (or finished), bootstrap-like weights 0..=3.
struct RowLevel {
    p: RowSplitParams,
    bins: Vec<u32>,
    targets: Vec<u32>,
    weights: Vec<u32>,
    node_of: Vec<u32>,
    mask: Vec<u32>,
}

impl RowLevel {
    #[allow(clippy::too_many_arguments)]
    fn new(rows: u32, features: u32, max_bins: u32, trees: u32, slots_per_tree: u32, masked: bool, min_leaf: u32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let slot_count = trees * slots_per_tree;
        let mask_words = if masked { features.div_ceil(32) } else { 0 };
        let words = rows.div_ceil(4) as usize;
        let bins =
            (0..features as usize * words).map(|_| (0..4).fold(0u32, |w, lane| w | rng.random_range(0..max_bins) << (lane * 8))).collect();
        let targets = (0..rows).map(|_| rng.random_range(0..=TARGET_MAX)).collect();
        let n = trees as usize * rows as usize;
        let weights = (0..n).map(|_| [0, 0, 1, 1, 1, 2, 2, 3][rng.random_range(0..8)]).collect();
        let node_of = (0..n)
            .map(|i| {
                let t = (i / rows as usize) as u32;
                if rng.random_bool(0.05) { NONE } else { t * slots_per_tree + rng.random_range(0..slots_per_tree) }
            })
            .collect();
        let mask = (0..(slot_count * mask_words).max(1)).map(|_| rng.random::<u32>()).collect();
        let p = RowSplitParams {
            rows,
            features,
            max_bins,
            tree_count: trees,
            slot_begin: 0,
            slot_count,
            min_samples_leaf: min_leaf,
            mask_words,
        };
        RowLevel { p, bins, targets, weights, node_of, mask }
    }

    /// The split records of find-splits-rows (and, with `dense`, of build-histograms +
    /// find-splits) on `d`, with the time of each.
    fn run(&self, d: &mut Device, dense: bool) -> Result<RowRun, GpuError> {
        let buf = |d: &mut Device, data: &[u32]| -> Result<BufferId, GpuError> {
            let id = d.create_buffer(data.len() as u64 * 4)?;
            d.write(id, 0, &bytes(data))?;
            Ok(id)
        };
        let p = self.p;
        let ids = [&self.bins, &self.targets, &self.weights, &self.node_of, &self.mask]
            .into_iter()
            .map(|v| buf(d, v))
            .collect::<Result<Vec<_>, _>>()?;
        let splits = d.create_buffer(p.slot_count as u64 * RECORD_BYTES)?;
        let timed = |d: &mut Device, f: &dyn Fn(&mut Device) -> Result<(), GpuError>| {
            d.synchronize()?;
            let t = Instant::now();
            f(d)?;
            d.synchronize()?;
            Ok::<f64, GpuError>(t.elapsed().as_secs_f64() * 1e3)
        };
        let rows_call = |d: &mut Device| d.find_splits_rows(&p, ids[0], ids[1], ids[2], ids[3], ids[4], splits);
        // The first call also grows the scratch allocation; time the second.
        timed(d, &rows_call)?;
        let t_rows = timed(d, &rows_call)?;
        let got = d.read(splits, 0, p.slot_count as u64 * RECORD_BYTES)?;
        let mut dense_out = None;
        if dense {
            let per_slot = p.features as u64 * p.max_bins as u64 * HIST_WORDS as u64 * 4;
            let hist = d.create_buffer(per_slot * p.slot_count as u64)?;
            let other = d.create_buffer(p.slot_count as u64 * RECORD_BYTES)?;
            let t = timed(d, &|d| {
                d.build_histograms(&p.histogram(), ids[0], ids[1], ids[2], ids[3], hist)?;
                d.find_splits(&p.split(), hist, ids[4], other)
            })?;
            dense_out = Some((d.read(other, 0, p.slot_count as u64 * RECORD_BYTES)?, t));
            d.drop_buffer(hist);
            d.drop_buffer(other);
        }
        for id in ids {
            d.drop_buffer(id);
        }
        d.drop_buffer(splits);
        Ok((got, t_rows, dense_out))
    }
}

/// find-splits-rows at several depths; true when CUDA matches the CPU everywhere.
fn row_levels(cuda: &mut Device, cpu: &mut Device, rows: u32, features: u32, trees: u32) -> bool {
    let mut ok = true;
    // (slots per tree, max bins, masked, min-samples-leaf)
    let levels = [
        (1, 64, false, 1),
        (8, 64, true, 1),
        (64, 64, false, 5),
        (512, 64, true, 1),
        (4096, 64, false, 1),
        (4096, 64, true, 3),
        (4096, 256, false, 1),
        (8192, 256, true, 1),
    ];
    for (spt, max_bins, masked, min_leaf) in levels {
        let level = RowLevel::new(rows, features, max_bins, trees, spt, masked, min_leaf, 7 + spt as u64);
        let (want, t_cpu, _) = level.run(cpu, false).expect("cpu find-splits-rows");
        match level.run(cuda, true) {
            Ok((got, t_cuda, dense)) => {
                let (dense_got, t_dense) = dense.expect("dense run requested");
                let same = got == want && dense_got == want;
                ok &= same;
                let rec = RECORD_BYTES as usize;
                let splitting = want.chunks_exact(rec).filter(|r| r[..4] != NONE.to_le_bytes()).count();
                println!(
                    "find-splits-rows {:>6} slots ({spt:>5}/tree, {max_bins:>3} bins, mask {masked:>5}, min-leaf {min_leaf}): cpu {t_cpu:9.2} ms   cuda {t_cuda:8.3} ms   cuda build+find {t_dense:8.3} ms   {splitting} splits   {}",
                    level.p.slot_count,
                    if same { "identical" } else { "DIFFERENT" }
                );
                if !same {
                    let first = (0..want.len() / rec).find(|&k| got[k * rec..][..rec] != want[k * rec..][..rec]);
                    if let Some(k) = first {
                        println!("  first differing slot {k}: cpu {:?} cuda {:?}", &want[k * rec..][..rec], &got[k * rec..][..rec]);
                    }
                }
            }
            Err(e) => {
                println!("cuda find-splits-rows failed at {spt} slots/tree: {e}");
                ok = false;
            }
        }
    }
    ok
}

fn main() {
    let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rows = args.first().copied().unwrap_or(1_000_000);
    let features = args.get(1).copied().unwrap_or(16);
    let trees = args.get(2).copied().unwrap_or(8);
    println!("probe: {:?}", wasi_gpu_cuda::probe());
    let t = Instant::now();
    let backend = match wasi_gpu_cuda::open() {
        Ok(b) => b,
        Err(e) => {
            println!("open failed: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "open: {:.1} ms (NVRTC compile {:?}); info: {:?}",
        t.elapsed().as_secs_f64() * 1e3,
        wasi_gpu_cuda::kernel_compile_time(),
        backend.info()
    );
    let mut cuda = Device::new(backend, Limits::default());
    let mut cpu = Device::new(Box::new(CpuBackend::new()), Limits::default());
    println!("level: rows {rows}, features {features}, trees {trees}");
    let (want, cpu_times) = level(&mut cpu, rows, features, trees, 42).expect("cpu run");
    let (got, cuda_times) = match level(&mut cuda, rows, features, trees, 42) {
        Ok(r) => r,
        Err(e) => {
            println!("cuda run failed: {e}");
            std::process::exit(1);
        }
    };
    for ((name, c), (_, g)) in cpu_times.iter().zip(&cuda_times) {
        println!("{name:>17}: cpu {c:9.2} ms   cuda {g:9.3} ms");
    }
    let names = ["bins", "weights", "node-of", "hist", "splits", "sums"];
    let mut ok = true;
    for ((name, g), w) in names.iter().zip(&got).zip(&want) {
        let same = g == w;
        ok &= same;
        println!("{name:>9}: {}", if same { "identical" } else { "DIFFERENT" });
    }
    ok &= row_levels(&mut cuda, &mut cpu, rows, args.get(3).copied().unwrap_or(32), trees);
    // A second backend in the same process reuses the compiled kernels.
    let t = Instant::now();
    let second = wasi_gpu_cuda::open().map(|_| ());
    println!("second open: {:?} in {:.1} ms", second, t.elapsed().as_secs_f64() * 1e3);
    std::process::exit(if ok { 0 } else { 1 });
}
