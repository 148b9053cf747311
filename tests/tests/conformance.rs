//! Kernel conformance: every backend that opens on this machine must produce exactly the
//! bytes of the CPU reference for every kernel, on random inputs with awkward sizes and
//! garbage indices, and must move bytes identically through write/read/copy at any offset.
//!
//! Backends: `cpu` (reference), `wgpu` (best adapter, software allowed), `wgpu-small-grid`
//! (the same with at most 16 workgroups per grid dimension, so the multi-dispatch path runs
//! on small inputs), `cuda`. A backend that cannot open is skipped with its reason; set
//! `WASI_GPU_REQUIRE=wgpu,cuda` (any subset) to make a skip a failure instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wasi_gpu_backend::*;

/// A named device under test.
struct Dev {
    name: String,
    device: Device,
    time: Duration,
}

fn required(name: &str) -> bool {
    std::env::var("WASI_GPU_REQUIRE").is_ok_and(|v| v.split(',').any(|s| s.trim() == name))
}

fn add(devs: &mut Vec<Dev>, name: &str, opened: Result<Box<dyn Backend>, String>) {
    match opened {
        Ok(b) => {
            let info = b.info();
            eprintln!(
                "{name}: running on {} ({}; hardware: {}; memory {} B; largest buffer {} B)",
                info.name, info.driver, info.hardware, info.memory_bytes, info.max_buffer_bytes
            );
            devs.push(Dev { name: name.into(), device: Device::new(b, Limits::default()), time: Duration::ZERO });
        }
        Err(why) => {
            eprintln!("{name}: skipped: {why}");
            assert!(!required(name), "{name} is required by WASI_GPU_REQUIRE but could not open: {why}");
        }
    }
}

/// The CPU reference first, then every other backend that opens here.
fn backends() -> Vec<Dev> {
    let mut devs = Vec::new();
    add(&mut devs, "cpu", Ok(Box::new(CpuBackend::new())));
    add(&mut devs, "wgpu", wasi_gpu_wgpu::open(true));
    add(&mut devs, "wgpu-small-grid", wasi_gpu_wgpu::open_with_grid_limit(true, 16));
    add(&mut devs, "cuda", wasi_gpu_cuda::open());
    devs
}

fn report(kernel: &str, devs: &[Dev]) {
    let times: Vec<String> = devs.iter().map(|d| format!("{} {:.3}s", d.name, d.time.as_secs_f64())).collect();
    eprintln!("{kernel}: all cases identical on {} backend(s); kernel time: {}", devs.len(), times.join(", "));
}

fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Uploads `bufs` to every backend, runs `kernel`, and requires every buffer (inputs and
/// outputs alike) to read back byte-identical to the CPU reference, and the same result.
fn check(devs: &mut [Dev], label: &str, bufs: &[Vec<u8>], kernel: impl Fn(&mut Device, &[BufferId]) -> Result<(), GpuError>) {
    let mut reference: Option<(String, Vec<Vec<u8>>)> = None;
    for dev in devs.iter_mut() {
        let d = &mut dev.device;
        let ids: Vec<BufferId> = bufs
            .iter()
            .map(|b| {
                let id = d.create_buffer(b.len() as u64).unwrap_or_else(|e| panic!("{}: {label}: alloc: {e}", dev.name));
                d.write(id, 0, b).unwrap_or_else(|e| panic!("{}: {label}: write: {e}", dev.name));
                id
            })
            .collect();
        d.synchronize().unwrap();
        let start = Instant::now();
        let result = kernel(d, &ids);
        d.synchronize().unwrap_or_else(|e| panic!("{}: {label}: synchronize: {e}", dev.name));
        dev.time += start.elapsed();
        let result = format!("{result:?}");
        let out: Vec<Vec<u8>> = ids
            .iter()
            .zip(bufs)
            .map(|(&id, b)| d.read(id, 0, b.len() as u64).unwrap_or_else(|e| panic!("{}: {label}: read: {e}", dev.name)))
            .collect();
        for id in ids {
            d.drop_buffer(id);
        }
        match &reference {
            None => reference = Some((result, out)),
            Some((want_result, want)) => {
                assert_eq!(&result, want_result, "{}: {label}: result differs from the CPU reference", dev.name);
                for (k, (got, want)) in out.iter().zip(want).enumerate() {
                    if got != want {
                        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0) / 4 * 4;
                        let word = |v: &[u8]| u32::from_le_bytes(v[at..at + 4].try_into().unwrap_or([0; 4]));
                        panic!(
                            "{}: {label}: buffer #{k} differs from the CPU reference first at byte {at}: got {:#010x}, want {:#010x}",
                            dev.name,
                            word(got),
                            word(want)
                        );
                    }
                }
            }
        }
    }
}

/// Random words, most in `0..range`, some NONE, some anything.
fn garbage_indices(rng: &mut StdRng, n: usize, range: u32) -> Vec<u32> {
    (0..n)
        .map(|_| match rng.random_range(0..10) {
            0 => NONE,
            1 => rng.random(),
            2 => range.wrapping_add(rng.random_range(0..3)),
            _ => rng.random_range(0..range.max(1)),
        })
        .collect()
}

/// Random f32 bit patterns, including NaNs, infinities, signed zeros and subnormals.
fn awkward_float(rng: &mut StdRng) -> f32 {
    match rng.random_range(0..20) {
        0 => f32::NAN,
        1 => f32::from_bits(0x7f80_0001 | rng.random::<u32>() & 0x807f_ffff),
        2 => f32::INFINITY,
        3 => f32::NEG_INFINITY,
        4 => 0.0,
        5 => -0.0,
        6 => f32::from_bits(rng.random_range(1..0x0080_0000) | (rng.random::<u32>() & 0x8000_0000)),
        7 => f32::from_bits(rng.random()),
        _ => rng.random_range(-100.0f32..100.0),
    }
}

#[test]
fn bin_features() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(1);
    // (rows, features, max_bins); the last case has more than 65535 workgroups of output.
    let cases = [(0, 3, 2), (1, 1, 2), (3, 2, 256), (67, 5, 256), (1000, 3, 17), (257, 33, 7), (4 * 4_200_000 + 3, 1, 2)];
    for (rows, features, max_bins) in cases {
        let p = BinFeaturesParams { rows, features, max_bins };
        let n = rows as usize * features as usize;
        let x: Vec<f32> = (0..n).map(|_| awkward_float(&mut rng)).collect();
        let mut edges = Vec::new();
        for _ in 0..features {
            // Ascending edges (ties allowed), +inf padded, as the guest builds them.
            let used = rng.random_range(0..max_bins);
            let mut e: Vec<f32> = (0..used)
                .map(|_| {
                    loop {
                        let v = awkward_float(&mut rng);
                        if !v.is_nan() {
                            break v;
                        }
                    }
                })
                .collect();
            e.sort_by(|a, b| a.total_cmp(b));
            e.resize(max_bins as usize - 1, f32::INFINITY);
            edges.extend(e);
        }
        let bins = garbage_indices(&mut rng, (features as usize * rows.div_ceil(4) as usize) + 3, 255);
        let bufs = [
            words_to_bytes(&x.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
            words_to_bytes(&edges.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
            words_to_bytes(&bins),
        ];
        check(&mut devs, &format!("bin-features {p:?}"), &bufs, |d, ids| d.bin_features(&p, ids[0], ids[1], ids[2]));
    }
    report("bin-features", &devs);
}

#[test]
fn bootstrap() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(2);
    // (rows, tree_begin, tree_count, draws); the last has > 65535 workgroups of entries.
    let cases = [(1, 0, 1, 0), (1, 5, 3, 1), (97, 0, 2, 97), (1000, 17, 5, 3000), (65, 0xffff_fff0, 15, 64), (70_001, 3, 64, 70_001)];
    for (rows, tree_begin, tree_count, draws) in cases {
        let p = BootstrapParams { seed: rng.random(), rows, tree_begin, tree_count, draws };
        let n = rows as usize * tree_count as usize + 5;
        let bufs = [words_to_bytes(&garbage_indices(&mut rng, n, 9)), words_to_bytes(&garbage_indices(&mut rng, n + 2, 9))];
        check(&mut devs, &format!("bootstrap {p:?}"), &bufs, |d, ids| d.bootstrap(&p, ids[0], ids[1]));
    }
    report("bootstrap", &devs);
}

#[test]
fn build_histograms() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(3);
    // (rows, features, max_bins, tree_count, slot_begin, slot_count, absurd targets/weights)
    let cases = [
        (0, 2, 4, 3, 0, 2, false),
        (1, 1, 2, 1, 0, 1, false),
        (5, 3, 256, 2, 7, 0, false),
        (131, 4, 16, 3, 5, 7, false),
        (1000, 6, 32, 4, 0, 9, true),
        (2049, 2, 256, 2, 3, 4, true),
        (70_001, 2, 8, 60, 10, 3, false),
    ];
    for (rows, features, max_bins, tree_count, slot_begin, slot_count, absurd) in cases {
        let p = HistogramParams { rows, features, max_bins, tree_count, slot_begin, slot_count };
        let words = rows.div_ceil(4) as usize;
        let bins: Vec<u32> = (0..features as usize * words)
            .map(|_| {
                let mut b = || if rng.random_bool(0.1) { rng.random::<u8>() as u32 } else { rng.random_range(0..max_bins) };
                let mut w = 0u32;
                for lane in 0..4 {
                    w |= b() << (lane * 8);
                }
                w
            })
            .collect();
        let targets: Vec<u32> =
            (0..rows).map(|_| if absurd && rng.random_bool(0.5) { rng.random() } else { rng.random_range(0..=TARGET_MAX) }).collect();
        let n = tree_count as usize * rows as usize;
        let weights: Vec<u32> = (0..n)
            .map(|_| match rng.random_range(0..8) {
                0 => 0,
                1 if absurd => rng.random(),
                _ => rng.random_range(1..4),
            })
            .collect();
        let node_of: Vec<u32> = garbage_indices(&mut rng, n, slot_count + slot_begin)
            .into_iter()
            .map(|v| if v != NONE && v < slot_begin && rng.random_bool(0.5) { v + slot_begin } else { v })
            .collect();
        let hist = garbage_indices(&mut rng, slot_count as usize * features as usize * max_bins as usize * HIST_WORDS as usize + 4, 100);
        let bufs =
            [words_to_bytes(&bins), words_to_bytes(&targets), words_to_bytes(&weights), words_to_bytes(&node_of), words_to_bytes(&hist)];
        check(&mut devs, &format!("build-histograms {p:?}"), &bufs, |d, ids| {
            d.build_histograms(&p, ids[0], ids[1], ids[2], ids[3], ids[4])
        });
    }
    report("build-histograms", &devs);
}

#[test]
fn find_splits() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(4);
    // (features, max_bins, slot_begin, slot_count, min_samples_leaf, masked, kind)
    // kind 0: realistic cells; 1: few entries of targets 0 / 1000 (ties, pure slots,
    // zero-gain splits); 2: absurd words (wrapping, zero counts, min > max);
    // 3: targets near 2^32 - 1 with heavy weights (sums near 2^64).
    let cases = [
        (1, 2, 0, 0, 1, false, 0),
        (1, 2, 0, 1, 0, false, 0),
        (3, 16, 2, 5, 1, true, 0),
        (5, 256, 0, 70, 3, false, 0),
        (40, 8, 1, 67, 1, true, 1),
        (4, 32, 0, 67, 0, false, 1),
        (3, 4, 0, 200, 2, false, 1),
        (3, 64, 5, 40, 1, true, 2),
        (2, 256, 0, 30, 2, false, 2),
        (2, 2, 0, 300, 1, false, 2),
        (4, 16, 1, 50, 2, true, 3),
    ];
    for (features, max_bins, slot_begin, slot_count, min_samples_leaf, masked, kind) in cases {
        let mask_words = if masked { u32::div_ceil(features, 32) } else { 0 };
        let p = SplitParams { features, max_bins, slot_begin, slot_count, min_samples_leaf, mask_words };
        let cells = slot_count as usize * features as usize * max_bins as usize;
        let mut hist = Vec::with_capacity(cells * HIST_WORDS as usize);
        for _ in 0..cells {
            // A cell of `entries` rows of (weight, target) drawn by `row`.
            let cell = |rng: &mut StdRng, entries: u32, row: &dyn Fn(&mut StdRng) -> (u32, u32)| {
                let (mut c, mut s, mut lo, mut hi) = (0u32, 0u64, NONE, 0u32);
                for _ in 0..entries {
                    let (w, t) = row(rng);
                    c = c.wrapping_add(w);
                    s = s.wrapping_add(w as u64 * t as u64);
                    (lo, hi) = (lo.min(t), hi.max(t));
                }
                [c, entries, s as u32, (s >> 32) as u32, lo, hi]
            };
            let words = match kind {
                0 => {
                    let e = if rng.random_bool(0.3) { 0 } else { rng.random_range(1..20) };
                    cell(&mut rng, e, &|r| (r.random_range(1..4), r.random_range(0..=TARGET_MAX)))
                }
                1 => {
                    let e = rng.random_range(0..2);
                    cell(&mut rng, e, &|r| (r.random_range(1..3), r.random_range(0..2) * 1000))
                }
                2 => std::array::from_fn(|_| if rng.random_bool(0.1) { 0 } else { rng.random() }),
                _ => {
                    let e = if rng.random_bool(0.2) { 0 } else { rng.random_range(1..4) };
                    cell(&mut rng, e, &|r| (r.random_range(1..100_000), TARGET_MAX - r.random_range(0..3)))
                }
            };
            hist.extend(words);
        }
        let mask: Vec<u32> = (0..slot_count * mask_words).map(|_| rng.random()).collect();
        let splits = garbage_indices(&mut rng, ((slot_begin + slot_count) * SPLIT_WORDS) as usize + 3, 10);
        let bufs = [words_to_bytes(&hist), words_to_bytes(&mask), words_to_bytes(&splits)];
        check(&mut devs, &format!("find-splits {p:?} kind {kind}"), &bufs, |d, ids| d.find_splits(&p, ids[0], ids[1], ids[2]));
    }
    report("find-splits", &devs);
}

#[test]
fn apply_splits() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(5);
    // (rows, features, tree_count, slot_count); the last has > 65535 workgroups of entries.
    let cases = [(0, 1, 3, 2), (1, 1, 1, 0), (1, 2, 1, 1), (133, 3, 5, 17), (1000, 40, 2, 300), (70_001, 2, 64, 30)];
    for (rows, features, tree_count, slot_count) in cases {
        let p = ApplyParams { rows, features, tree_count, slot_count };
        let bins: Vec<u32> = (0..features as usize * rows.div_ceil(4) as usize).map(|_| rng.random()).collect();
        let mut splits = Vec::new();
        for _ in 0..slot_count {
            let feature = if rng.random_bool(0.2) { NONE } else { garbage_indices(&mut rng, 1, features)[0] };
            splits.push(feature);
            splits.push(if rng.random_bool(0.1) { rng.random() } else { rng.random_range(0..256) });
            splits.extend((2..SPLIT_WORDS).map(|_| rng.random::<u32>()));
        }
        let next_slot = garbage_indices(&mut rng, slot_count as usize * 2, slot_count * 2);
        let node_of = garbage_indices(&mut rng, tree_count as usize * rows as usize + 2, slot_count);
        let bufs = [words_to_bytes(&bins), words_to_bytes(&splits), words_to_bytes(&next_slot), words_to_bytes(&node_of)];
        check(&mut devs, &format!("apply-splits {p:?}"), &bufs, |d, ids| d.apply_splits(&p, ids[0], ids[1], ids[2], ids[3]));
    }
    report("apply-splits", &devs);
}

#[test]
fn predict_forest() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(6);
    // (rows, features, tree_count, node_count, max_depth, leaf probability); children mostly
    // point a few nodes ahead (deep walks), some back (must stop) or anywhere. The last case
    // is refused (max-depth > node-count) by every backend alike.
    let cases = [
        (0, 1, 2, 3, 3, 0.3),
        (1, 1, 0, 0, 0, 0.3),
        (1, 2, 1, 1, 0, 0.3),
        (129, 3, 7, 200, 8, 0.3),
        (1000, 5, 30, 2000, 64, 0.3),
        (300, 2, 5, 50, 50, 0.3),
        (257, 4, 11, 3000, 3000, 0.02),
        (70, 2, 3, 10, 11, 0.3),
    ];
    for (rows, features, tree_count, node_count, max_depth, leaf_p) in cases {
        let p = PredictParams { rows, features, tree_count, node_count, max_depth };
        let x: Vec<u32> = (0..rows * features).map(|_| awkward_float(&mut rng).to_bits()).collect();
        let mut nodes = Vec::new();
        for i in 0..node_count {
            if rng.random_bool(leaf_p) {
                // 64-bit leaf values, often near 2^64 so row sums carry into word 2.
                let hi = if rng.random_bool(0.5) { u32::MAX - rng.random_range(0..4) } else { rng.random() };
                nodes.extend([NONE, rng.random(), hi, rng.random()]);
            } else {
                let feature = garbage_indices(&mut rng, 1, features)[0];
                let mut child = || match rng.random_range(0..10) {
                    0 => garbage_indices(&mut rng, 1, node_count)[0],
                    1 => rng.random_range(0..=i),
                    _ => i.saturating_add(rng.random_range(1..5)),
                };
                let (left, right) = (child(), child());
                nodes.extend([feature, awkward_float(&mut rng).to_bits(), left, right]);
            }
        }
        let roots = garbage_indices(&mut rng, tree_count as usize, node_count);
        let sums = garbage_indices(&mut rng, rows as usize * 4 + 1, 5);
        let bufs = [words_to_bytes(&x), words_to_bytes(&nodes), words_to_bytes(&roots), words_to_bytes(&sums)];
        check(&mut devs, &format!("predict-forest {p:?}"), &bufs, |d, ids| d.predict_forest(&p, ids[0], ids[1], ids[2], ids[3]));
        // The same call split into many launches (row blocks, tree blocks, single walks).
        let steps = [1, (p.max_depth as u64 + 1) * 3, (p.max_depth as u64 + 1) * p.rows as u64 + 1][rng.random_range(0..3)];
        check(&mut devs, &format!("predict-forest {p:?} in launches of {steps} steps"), &bufs, |d, ids| {
            d.set_predict_steps_per_launch(Some(steps));
            let r = d.predict_forest(&p, ids[0], ids[1], ids[2], ids[3]);
            d.set_predict_steps_per_launch(None);
            r
        });
    }

    // Hand-built forests whose CPU answer is asserted before the backends are compared.
    let mut planted = |label: &str, p: PredictParams, x: &[f32], nodes: &[u32], roots: &[u32], want: &[u128]| {
        let mut got = vec![0u32; p.rows as usize * 4];
        kernels::predict_forest(&p, x, nodes, roots, &mut got);
        let want: Vec<u32> = want.iter().flat_map(|&v| (0..4).map(move |i| (v >> (32 * i)) as u32)).collect();
        assert_eq!(got, want, "{label}: CPU reference");
        let x: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
        let bufs = [words_to_bytes(&x), words_to_bytes(nodes), words_to_bytes(roots), words_to_bytes(&vec![0xeeee_eeee; got.len()])];
        check(&mut devs, &format!("predict-forest {label} {p:?}"), &bufs, |d, ids| d.predict_forest(&p, ids[0], ids[1], ids[2], ids[3]));
    };

    // 64-bit leaves whose sum carries into word 2: 2^64 - 6 three times plus 0x20.
    let big = u64::MAX - 5;
    let nodes = [0, 0.0f32.to_bits(), 1, 2, NONE, big as u32, (big >> 32) as u32, 0, NONE, u32::MAX, u32::MAX, 0, NONE, 0x20, 0, 0];
    let p = PredictParams { rows: 3, features: 1, tree_count: 4, node_count: 4, max_depth: 1 };
    let (low, high) = (3 * big as u128 + 0x20, 3 * u64::MAX as u128 + 0x20);
    planted("carry into word 2", p, &[-1.0, 1.0, f32::NAN], &nodes, &[0, 0, 3, 0], &[low, high, high]);

    // Cycles and back-edges add nothing: node 1 is a self-loop, node 3 jumps back to the
    // leaf at node 2 (which tree 2 reaches directly), node 4 goes back to the root.
    let nodes = [
        0,
        0.0f32.to_bits(),
        1,
        3, //
        0,
        f32::INFINITY.to_bits(),
        1,
        1, //
        NONE,
        9,
        0,
        0, //
        0,
        f32::INFINITY.to_bits(),
        2,
        4, //
        0,
        0.0f32.to_bits(),
        0,
        0, //
    ];
    let p = PredictParams { rows: 3, features: 1, tree_count: 3, node_count: 5, max_depth: 5 };
    planted("back-edges", p, &[-1.0, 1.0, f32::NAN], &nodes, &[0, 3, 2], &[9, 9, 9]);

    // A chain of 300 internal nodes then a leaf at depth 300 (well past the old 64-level cap):
    // reached with max-depth 300, not with 299. Even nodes test feature 0 and send the right
    // child out of range; odd nodes test feature 1 and send both children down the chain.
    let depth = 300u32;
    let mut nodes = Vec::new();
    for i in 0..depth {
        let right = if i % 2 == 0 { NONE } else { i + 1 };
        nodes.extend([i % 2, 100.0f32.to_bits(), i + 1, right]);
    }
    nodes.extend([NONE, 0xdead_beef, 0x8000_0000, 0]);
    let leaf = 0x8000_0000_dead_beefu128;
    let x = [1.0f32, 2.0, 1.0, 200.0, 200.0, 1.0, f32::NAN, f32::NAN];
    for (max_depth, reach) in [(depth, true), (depth - 1, false), (depth + 1, true)] {
        let p = PredictParams { rows: 4, features: 2, tree_count: 3, node_count: depth + 1, max_depth };
        let full = if reach { 3 * leaf } else { 0 };
        // Row 1 goes right on feature 1 (the next node, still the chain); rows 2 and 3 go
        // right on feature 0 at the root (NONE: out of range).
        planted("deep chain", p, &x, &nodes, &[0, 0, 0], &[full, full, 0, 0]);
    }
    report("predict-forest", &devs);
}

/// Random writes, reads and copies (same-buffer and cross-buffer) at unaligned offsets
/// and lengths; every read and the final contents must agree with the CPU backend.
#[test]
fn buffer_transfers() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(7);
    let sizes = [0u64, 1, 2, 3, 5, 8, 13, 64, 1027, 4099];
    let mut ops = Vec::new();
    for _ in 0..300 {
        let a = rng.random_range(0..sizes.len());
        let b = rng.random_range(0..sizes.len());
        let (sa, sb) = (sizes[a], sizes[b]);
        let kind = rng.random_range(0..3);
        let len = rng.random_range(0..=sa.min(sb));
        let oa = rng.random_range(0..=sa - len);
        let ob = rng.random_range(0..=sb - len);
        let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        ops.push((kind, a, b, oa, ob, len, data));
    }
    let mut results: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for dev in devs.iter_mut() {
        let d = &mut dev.device;
        let start = Instant::now();
        let ids: Vec<BufferId> = sizes.iter().map(|&s| d.create_buffer(s).unwrap()).collect();
        let mut seen = Vec::new();
        for (kind, a, b, oa, ob, len, data) in &ops {
            match kind {
                0 => d.write(ids[*a], *oa, data).unwrap(),
                1 => seen.push(d.read(ids[*a], *oa, *len).unwrap()),
                _ => {
                    let r = d.copy(ids[*a], *oa, ids[*b], *ob, *len);
                    seen.push(format!("{r:?}").into_bytes());
                }
            }
        }
        for (&id, &s) in ids.iter().zip(&sizes) {
            seen.push(d.read(id, 0, s).unwrap());
        }
        dev.time += start.elapsed();
        results.insert(dev.name.clone(), seen);
    }
    let want = &results["cpu"];
    for (name, got) in &results {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "{name}: transfer step {i} differs from the CPU reference");
        }
        assert_eq!(got.len(), want.len());
    }
    report("buffer transfers", &devs);
}

/// Every backend refuses a buffer larger than it says it can hold, with `LimitExceeded`,
/// and still works afterwards.
#[test]
fn oversized_buffers_are_refused() {
    for mut dev in backends() {
        let d = &mut dev.device;
        let max = d.info().max_buffer_bytes;
        match d.create_buffer(max.saturating_add(1)) {
            Err(GpuError::LimitExceeded(msg)) => eprintln!("{}: {} B refused: {msg}", dev.name, max.saturating_add(1)),
            other => panic!("{}: a buffer of {} bytes was not refused with LimitExceeded: {other:?}", dev.name, max.saturating_add(1)),
        }
        let id = d.create_buffer(7).unwrap();
        d.write(id, 3, &[1, 2, 3]).unwrap();
        assert_eq!(d.read(id, 0, 7).unwrap(), [0, 0, 0, 1, 2, 3, 0], "{}", dev.name);
    }
}

/// When the wgpu backend opens, the adapter list names at least one usable adapter.
#[test]
fn wgpu_adapters_are_reported() {
    let adapters = wasi_gpu_wgpu::list_adapters();
    for a in &adapters {
        eprintln!(
            "adapter {} ({}, {}, hardware {}): {}",
            a.name,
            a.api,
            a.device_type,
            a.hardware,
            a.unusable.as_deref().unwrap_or("usable")
        );
    }
    match wasi_gpu_wgpu::open(true) {
        Ok(_) => assert!(adapters.iter().any(|a| a.unusable.is_none()), "wgpu opened, yet no adapter is listed as usable"),
        Err(e) => {
            eprintln!("wgpu: skipped: {e}");
            assert!(!required("wgpu"), "wgpu is required by WASI_GPU_REQUIRE but could not open: {e}");
        }
    }
}

#[test]
fn find_splits_rows() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(8);
    // (rows, features, max_bins, tree_count, slot_begin, slot_count, min_leaf, masked, kind)
    // kind Full: targets over the whole 32-bit range, weights 0..4 (duplicated bootstrap
    // rows: weighted counts and entries differ); Absurd: also random targets and weights
    // (wrapping sums); Few: targets 0, 2^31 and 2^32 - 1 only (pure slots with several
    // bins); Heavy: targets near 2^32 - 1 with weights up to 2^20 (sums near 2^64);
    // Xor: bins of features 0 and 1 are bits of the row, the target their XOR (impure
    // slots whose best split gains nothing must still split); Varying: features constant
    // in a slot, or in the last bin only, among varying ones, every other slot pure (the
    // records' `varying` and `impure` words are checked against the rows); Gaps: every bin
    // one of 1, 5, max_bins / 2 and the last, so the records' bins lie in the middle of wide
    // gaps (across workgroup threads' bins, and up to the last bin).
    use Targets::*;
    let cases = [
        (0, 2, 4, 3, 0, 2, 1, false, Full),
        (1, 1, 2, 1, 0, 1, 0, false, Full),
        (5, 3, 256, 2, 7, 0, 1, true, Full),
        (131, 4, 16, 3, 5, 7, 2, true, Full),
        (1000, 6, 32, 4, 0, 9, 1, false, Absurd),
        (2049, 33, 256, 2, 3, 40, 1, true, Full),
        (3000, 5, 256, 20, 0, 5000, 1, false, Full),
        (70_001, 3, 64, 6, 1, 3, 5, false, Full),
        // More than 65535 slots: a three-level scan and a multi-dispatch grid of slots.
        (20_000, 2, 8, 8, 2, 70_000, 1, true, Full),
        // Few large slots (backends may take a dense-histogram path), wrapping sums, masks.
        (5_000, 35, 16, 2, 3, 4, 1, true, Absurd),
        // Many slots of a handful of entries each, wrapping sums, masks.
        (600, 5, 64, 3, 0, 200, 1, true, Absurd),
        // min-samples-leaf above 1 counts distinct rows, small and large slots.
        (400, 4, 16, 3, 0, 60, 3, false, Full),
        (3000, 3, 32, 2, 1, 6, 4, true, Full),
        (20_000, 3, 8, 1, 0, 3, 2, false, Full),
        // Pure slots over several bins, small slots and large ones, dense path too.
        (300, 3, 16, 2, 0, 40, 1, false, Few),
        (4000, 3, 16, 3, 0, 12, 1, false, Few),
        (40_000, 2, 8, 1, 0, 2, 2, false, Few),
        // Sums near 2^64 and scores near 2^96.
        (700, 3, 64, 2, 0, 30, 1, true, Heavy),
        (20_000, 2, 32, 2, 0, 3, 1, false, Heavy),
        // Zero-gain splits of impure slots: one invocation, one workgroup and dense.
        (256, 2, 4, 2, 0, 16, 1, false, Xor),
        (1024, 2, 4, 2, 0, 4, 1, false, Xor),
        (8192, 2, 4, 1, 0, 2, 2, false, Xor),
        // Varying counts: one invocation, one workgroup (16 and 256 bins) and dense; the
        // last two with min-samples-leaf above any slot's size (leaves whose features vary).
        (300, 6, 8, 2, 0, 40, 1, true, Varying),
        (2000, 6, 16, 2, 1, 20, 1, true, Varying),
        (3000, 7, 256, 2, 0, 6, 2, true, Varying),
        (20_000, 5, 8, 1, 0, 2, 1, false, Varying),
        (300, 6, 4, 2, 0, 40, 100, false, Varying),
        (4000, 6, 16, 2, 0, 8, 5000, true, Varying),
        // Thresholds in the middle of gaps: one invocation, one workgroup (16 and 256 bins)
        // and dense; min-samples-leaf above 1 too.
        (600, 3, 256, 2, 0, 100, 1, false, Gaps),
        (3000, 3, 256, 2, 0, 40, 1, true, Gaps),
        (3000, 4, 16, 2, 1, 40, 3, false, Gaps),
        (20_000, 3, 256, 2, 0, 6, 1, false, Gaps),
        (20_000, 2, 16, 1, 0, 3, 2, false, Gaps),
    ];
    for (rows, features, max_bins, tree_count, slot_begin, slot_count, min_leaf, masked, kind) in cases {
        let mask_words = if masked { u32::div_ceil(features, 32) } else { 0 };
        let p = RowSplitParams { rows, features, max_bins, tree_count, slot_begin, slot_count, min_samples_leaf: min_leaf, mask_words };
        let words = rows.div_ceil(4) as usize;
        // Few distinct bins per feature so that ties between bins and features are common.
        let distinct = rng.random_range(2..=max_bins);
        let mut bins: Vec<u32> = (0..features as usize * words)
            .map(|_| {
                let mut b = || if rng.random_bool(0.05) { rng.random::<u8>() as u32 } else { rng.random_range(0..distinct) };
                let mut w = 0u32;
                for lane in 0..4 {
                    w |= b() << (lane * 8);
                }
                w
            })
            .collect();
        let xor_bit = |r: u32, j: u32| (r >> j) & 1;
        if kind == Xor {
            // Features 0 and 1: bits 0 and 1 of the row.
            bins[..2 * words].fill(0);
            for r in 0..rows {
                for j in 0..2 {
                    bins[j as usize * words + r as usize / 4] |= xor_bit(r, j) << ((r % 4) * 8);
                }
            }
        }
        // Few, Xor and Varying: slots per tree (see node_of).
        let per_tree = slot_count / tree_count.max(1);
        if kind == Varying {
            // Features 0 and 4..: any in-range bin (4.. one bin in every third slot);
            // 1: one bin per slot (constant in the slot, not globally); 2: the last bin
            // only (never a candidate); 3: bin 0 or the last bin.
            bins.fill(0);
            for r in 0..rows {
                let q = r % per_tree;
                for j in 0..features {
                    let b = match j {
                        1 => q % max_bins,
                        2 => max_bins - 1,
                        3 if rng.random_bool(0.5) => 0,
                        3 => max_bins - 1,
                        4.. if q % 3 == 0 => (q + j) % max_bins,
                        _ => rng.random_range(0..max_bins),
                    };
                    bins[j as usize * words + r as usize / 4] |= b << ((r % 4) * 8);
                }
            }
        }
        let spots = [1, 5, max_bins / 2, max_bins - 1];
        if kind == Gaps {
            bins.fill(0);
            for r in 0..rows {
                for j in 0..features {
                    let b = spots[rng.random_range(0..4)];
                    bins[j as usize * words + r as usize / 4] |= b << ((r % 4) * 8);
                }
            }
        }
        let targets: Vec<u32> = (0..rows)
            .map(|r| match kind {
                Absurd if rng.random_bool(0.5) => rng.random(),
                // Rows r in the even slots of their tree (r % per_tree even) share one target.
                Few if (r % per_tree).is_multiple_of(2) => [0, 1 << 31, TARGET_MAX][(r % per_tree / 2 % 3) as usize],
                Few => [0, 1 << 31, TARGET_MAX][rng.random_range(0..3)],
                Varying if (r % per_tree).is_multiple_of(2) => 7 * (r % per_tree),
                Heavy => TARGET_MAX - rng.random_range(0..4),
                Xor => (xor_bit(r, 0) ^ xor_bit(r, 1)) * TARGET_MAX,
                _ => rng.random_range(0..=TARGET_MAX),
            })
            .collect();
        let n = tree_count as usize * rows as usize;
        let weights: Vec<u32> = (0..n)
            .map(|_| match (kind, rng.random_range(0..8)) {
                (Xor, _) => 1,
                (_, 0) => 0,
                (Absurd, 1) => rng.random(),
                (Heavy, _) => rng.random_range(1..=1 << 20),
                _ => rng.random_range(1..4),
            })
            .collect();
        let node_of = if kind == Xor {
            // Each tree has its own slots, each holding whole groups of four rows (every
            // combination of the two bits once): every split gains nothing.
            (0..n as u32).map(|i| slot_begin + i / rows * per_tree + (i % rows) / 4 % per_tree).collect()
        } else if kind == Few || kind == Varying {
            // Each tree has its own slots; every other slot is pure.
            (0..n as u32).map(|i| slot_begin + i / rows * per_tree + (i % rows) % per_tree).collect()
        } else {
            garbage_indices(&mut rng, n, slot_count + slot_begin)
        };
        let mask: Vec<u32> = (0..(slot_count * mask_words).max(1)).map(|_| rng.random::<u32>() | 1).collect();
        let splits = garbage_indices(&mut rng, ((slot_begin + slot_count) * SPLIT_WORDS) as usize + 3, 100);
        // The cases cover what they claim (on the CPU reference, which the others equal).
        let mut records = splits.clone();
        kernels::find_splits_rows(&p, &bins, &targets, &weights, &node_of, &mask, &mut records);
        let records: Vec<&[u32]> =
            records[(slot_begin * SPLIT_WORDS) as usize..].chunks_exact(SPLIT_WORDS as usize).take(slot_count as usize).collect();
        match kind {
            Xor => assert!(records.iter().all(|r| r[..4] == [0, 0, r[7] / 2, r[7] / 2]), "zero-gain impure slots split"),
            Few => {
                let pure = records.iter().enumerate().filter(|(k, _)| (*k as u32 % per_tree).is_multiple_of(2));
                assert!(pure.clone().all(|(_, r)| r[0] == NONE), "pure slots are leaves");
                assert!(pure.clone().any(|(_, r)| r[7] >= 10), "pure slots of many rows");
                assert!(records.iter().any(|r| r[0] != NONE), "some slots split");
            }
            Varying => {
                // From the rows alone: a feature varies in an impure slot iff its entries'
                // bins differ and the lowest is a candidate (every bin is in range here).
                let bin = |j: u32, r: u32| bins[j as usize * words + r as usize / 4] >> ((r % 4) * 8) & 0xff;
                for (k, r) in records.iter().enumerate() {
                    let mine: Vec<u32> =
                        (0..n).filter(|&i| weights[i] != 0 && node_of[i] == slot_begin + k as u32).map(|i| i as u32 % rows).collect();
                    // An empty slot counts as pure.
                    let impure = mine.iter().any(|&x| targets[x as usize] != targets[mine[0] as usize]);
                    let allowed = |j: u32| mask_words == 0 || mask[(k as u32 * mask_words + j / 32) as usize] >> (j % 32) & 1 == 1;
                    let varies = |j: u32| {
                        let lo = mine.iter().map(|&x| bin(j, x)).min().unwrap_or(0);
                        let hi = mine.iter().map(|&x| bin(j, x)).max().unwrap_or(0);
                        lo < max_bins - 1 && lo != hi
                    };
                    let varying = if impure { (0..features).filter(|&j| allowed(j) && varies(j)).count() as u32 } else { 0 };
                    assert_eq!(r[10..], [varying, impure as u32], "slot {k}: varying, impure");
                }
                assert!(records.iter().any(|r| r[11] == 0 && r[7] >= 10), "pure slots of many rows");
                assert!(records.iter().any(|r| r[11] == 1 && r[10] > 1), "impure slots with varying features");
                if min_leaf > rows / per_tree {
                    assert!(records.iter().all(|r| r[0] == NONE), "no valid candidate");
                } else {
                    assert!(records.iter().any(|r| r[0] != NONE), "some slots split");
                }
            }
            Gaps => {
                let split = || records.iter().filter(|r| r[0] != NONE);
                assert!(split().any(|r| !spots.contains(&r[1])), "bins in gaps");
                assert!(split().any(|r| r[1] > spots[2]), "bins in the gap before the last bin");
            }
            Full if min_leaf > 1 && slot_count > 0 => {
                assert!(records.iter().any(|r| r[0] != NONE && r[2] != r[3]), "weighted counts differ from entries")
            }
            _ => {}
        }
        let bufs = [
            words_to_bytes(&bins),
            words_to_bytes(&targets),
            words_to_bytes(&weights),
            words_to_bytes(&node_of),
            words_to_bytes(&mask),
            words_to_bytes(&splits),
        ];
        check(&mut devs, &format!("find-splits-rows {p:?} {kind:?}"), &bufs, |d, ids| {
            d.find_splits_rows(&p, ids[0], ids[1], ids[2], ids[3], ids[4], ids[5])
        });
    }
    report("find-splits-rows", &devs);
}

/// Target patterns of the `find_splits_rows` cases.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Targets {
    Full,
    Absurd,
    Few,
    Heavy,
    Xor,
    Varying,
    Gaps,
}

// ---- Long loops in one invocation ----
//
// llvmpipe (Mesa's software Vulkan, the wgpu backend's adapter in CI) silently ends the loops
// of a kernel invocation once they have made 65535 passes in all (host/wgpu/src/loops.rs).
// Each case below makes some kernel invocation loop longer than that unless the backend
// spreads the work: on llvmpipe, before the backend bounded its launches, every one of them
// differed from the CPU reference.

/// Inputs of `find-splits-rows` whose slots are laid out by `slot_of(tree, row)` (NONE: in
/// no slot), with weights 0..4, targets over the whole range and `distinct` bins per feature
/// (some out of range); the mask (when `masked`) allows feature 0 and random others.
fn rows_inputs(rng: &mut StdRng, p: &RowSplitParams, distinct: u32, slot_of: &dyn Fn(u32, u32) -> u32) -> [Vec<u8>; 6] {
    let words = p.rows.div_ceil(4) as usize;
    let bins: Vec<u32> = (0..p.features as usize * words)
        .map(|_| {
            let mut w = 0u32;
            for lane in 0..4 {
                let b = if rng.random_bool(0.02) { rng.random::<u8>() as u32 } else { rng.random_range(0..distinct) };
                w |= b << (lane * 8);
            }
            w
        })
        .collect();
    let targets: Vec<u32> = (0..p.rows).map(|_| rng.random_range(0..=TARGET_MAX)).collect();
    let n = p.tree_count as usize * p.rows as usize;
    let weights: Vec<u32> = (0..n).map(|_| if rng.random_range(0..8) == 0 { 0 } else { rng.random_range(1..4) }).collect();
    let node_of: Vec<u32> = (0..n as u32).map(|i| slot_of(i / p.rows.max(1), i % p.rows.max(1))).collect();
    let mask: Vec<u32> = (0..(p.slot_count * p.mask_words).max(1)).map(|_| rng.random::<u32>() | 1).collect();
    let splits = garbage_indices(rng, ((p.slot_begin + p.slot_count) * SPLIT_WORDS) as usize + 3, 100);
    [&bins, &targets, &weights, &node_of, &mask, &splits].map(|v| words_to_bytes(v))
}

#[test]
fn find_splits_rows_long_loops() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(9);
    // (rows, features, max_bins, trees, slot_begin, slot_count, min_leaf, masked, rows per
    // slot (0: garbage node-of), first slot's rows): slots of `per` consecutive rows of each
    // tree, round robin over the slots after the first `big` rows, which all go to slot 0.
    let cases = [
        // split_small: ~30 entries a slot, 64 and 100 features (stopped after ~24).
        (3000, 64, 256, 1, 0, 100, 1, false, 30, 0),
        (3000, 100, 64, 1, 3, 100, 2, true, 30, 0),
        (3000, 160, 256, 2, 0, 300, 1, false, 0, 0),
        // split_small: 2^16 features of 4 slots of 16 rows (its `varying` stopped at 142).
        (64, 1 << 16, 256, 1, 0, 4, 1, false, 16, 0),
        // split_slots: ~45 entries a slot and 5000 features; one slot of 80,000 rows and 64
        // features (1024 slots, so the grouped path), and the 600,000-row case.
        (200, 5000, 16, 1, 0, 4, 1, true, 50, 0),
        (80_000, 64, 256, 1, 0, 1024, 1, false, 0, 80_000),
        (600_000, 8, 256, 1, 0, 1024, 3, false, 0, 600_000),
        // More entries in one slot than one workgroup can take a feature at a time, beside
        // slots of ~35 and of ~10 entries.
        (2_400_000, 3, 16, 1, 1, 1100, 1, false, 40, 2_380_000),
        // build-histograms + find-splits (few large slots) over 300 features of 256 bins.
        (4000, 300, 256, 1, 0, 2, 1, false, 2000, 0),
    ];
    for (rows, features, max_bins, tree_count, slot_begin, slot_count, min_leaf, masked, per, big) in cases {
        let mask_words = if masked { u32::div_ceil(features, 32) } else { 0 };
        let p = RowSplitParams { rows, features, max_bins, tree_count, slot_begin, slot_count, min_samples_leaf: min_leaf, mask_words };
        let layout = move |t: u32, r: u32| -> u32 {
            if per == 0 && big == 0 {
                // Garbage: any slot, some outside the batch.
                let h = (t.wrapping_mul(0x9e37_79b9) ^ r).wrapping_mul(0x85eb_ca6b);
                return if h.is_multiple_of(11) { NONE } else { slot_begin + h % (slot_count + 2) };
            }
            if r < big {
                return slot_begin;
            }
            let first = (big > 0) as u32;
            let r = r - big;
            let per = per.max(1);
            slot_begin + first + (t * (rows / per + 1) + r / per) % (slot_count - first)
        };
        let distinct = if features > 1000 { max_bins } else { (max_bins / 3).max(2) };
        let bufs = rows_inputs(&mut rng, &p, distinct, &layout);
        if features == 1 << 16 {
            // Every feature varies in every slot (rows of random bins), all 2^16 of them.
            let words: Vec<u32> = bufs[5].chunks(4).map(|w| u32::from_le_bytes(w.try_into().unwrap())).collect();
            let mut records = words.clone();
            let w = |b: &Vec<u8>| b.chunks(4).map(|w| u32::from_le_bytes(w.try_into().unwrap())).collect::<Vec<u32>>();
            kernels::find_splits_rows(&p, &w(&bufs[0]), &w(&bufs[1]), &w(&bufs[2]), &w(&bufs[3]), &w(&bufs[4]), &mut records);
            for k in 0..slot_count as usize {
                let r = &records[(slot_begin as usize + k) * SPLIT_WORDS as usize..][..SPLIT_WORDS as usize];
                assert_eq!(r[10..], [1 << 16, 1], "slot {k}: CPU reference's varying, impure");
            }
        }
        check(&mut devs, &format!("find-splits-rows long loops {p:?}"), &bufs, |d, ids| {
            d.find_splits_rows(&p, ids[0], ids[1], ids[2], ids[3], ids[4], ids[5])
        });
    }
    report("find-splits-rows long loops", &devs);
}

/// find-splits, build-histograms, bootstrap and predict-forest (one test, so that the
/// backends are opened once).
#[test]
fn kernels_long_loops() {
    let mut devs = backends();
    let mut rng = StdRng::seed_from_u64(10);
    // find-splits (features, max_bins, slot_begin, slot_count, min_leaf, masked): more than
    // 232 features of 256 bins loop more than 65535 times in one slot's invocation.
    let cases = [(300, 256, 0, 3, 1, false), (500, 200, 2, 5, 2, true), (3000, 32, 0, 2, 1, true)];
    for (features, max_bins, slot_begin, slot_count, min_samples_leaf, masked) in cases {
        let mask_words = if masked { u32::div_ceil(features, 32) } else { 0 };
        let p = SplitParams { features, max_bins, slot_begin, slot_count, min_samples_leaf, mask_words };
        let mut hist = Vec::new();
        for _ in 0..slot_count as usize * features as usize * max_bins as usize {
            // Cells of 0..6 entries of weights 1..4 and targets over the whole range.
            let e = if rng.random_bool(0.6) { 0 } else { rng.random_range(1..6) };
            let (mut c, mut s, mut lo, mut hi) = (0u32, 0u64, NONE, 0u32);
            for _ in 0..e {
                let (w, t) = (rng.random_range(1..4u32), rng.random_range(0..=TARGET_MAX));
                c += w;
                s += w as u64 * t as u64;
                (lo, hi) = (lo.min(t), hi.max(t));
            }
            hist.extend([c, e, s as u32, (s >> 32) as u32, lo, hi]);
        }
        let mask: Vec<u32> = (0..(slot_count * mask_words).max(1)).map(|_| rng.random::<u32>() | 1).collect();
        let splits = garbage_indices(&mut rng, ((slot_begin + slot_count) * SPLIT_WORDS) as usize + 3, 10);
        let bufs = [words_to_bytes(&hist), words_to_bytes(&mask), words_to_bytes(&splits)];
        check(&mut devs, &format!("find-splits long loops {p:?}"), &bufs, |d, ids| d.find_splits(&p, ids[0], ids[1], ids[2]));
    }
    // build-histograms: an entry's invocation loops over every feature.
    for (rows, features, max_bins, tree_count, slot_begin, slot_count) in [(9, 70_000, 2, 2, 1, 2), (4, 140_000, 3, 1, 0, 1)] {
        let p = HistogramParams { rows, features, max_bins, tree_count, slot_begin, slot_count };
        let bins: Vec<u32> = (0..features as usize * rows.div_ceil(4) as usize).map(|_| rng.random::<u32>() & 0x0303_0303).collect();
        let targets: Vec<u32> = (0..rows).map(|_| rng.random()).collect();
        let n = tree_count as usize * rows as usize;
        let weights: Vec<u32> = (0..n).map(|_| rng.random_range(0..3)).collect();
        let node_of = garbage_indices(&mut rng, n, slot_begin + slot_count);
        let hist = garbage_indices(&mut rng, (slot_count * features * max_bins * HIST_WORDS) as usize, 5);
        let bufs =
            [words_to_bytes(&bins), words_to_bytes(&targets), words_to_bytes(&weights), words_to_bytes(&node_of), words_to_bytes(&hist)];
        check(&mut devs, &format!("build-histograms long loops {p:?}"), &bufs, |d, ids| {
            d.build_histograms(&p, ids[0], ids[1], ids[2], ids[3], ids[4])
        });
    }
    // bootstrap: a draw's invocation loops over every tree.
    for (rows, tree_begin, tree_count, draws) in [(1, 0, 70_000, 1), (3, 5, 150_000, 2)] {
        let p = BootstrapParams { seed: rng.random(), rows, tree_begin, tree_count, draws };
        let n = rows as usize * tree_count as usize;
        let bufs = [words_to_bytes(&garbage_indices(&mut rng, n, 9)), words_to_bytes(&garbage_indices(&mut rng, n, 9))];
        check(&mut devs, &format!("bootstrap long loops {p:?}"), &bufs, |d, ids| d.bootstrap(&p, ids[0], ids[1]));
    }
    // predict-forest: one row, max-depth 1 and trees whose walks run out of steps (two internal nodes on
    // the way to a leaf: each tree costs its invocation 4 loop passes), every 1000th tree
    // rooted at the leaf: 21845 trees fit one launch of 65535 walk steps a row.
    let nodes = [0, 0.5f32.to_bits(), 1, 1, 0, 0.5f32.to_bits(), 2, 2, NONE, 1, 0, 0];
    for (tree_count, max_depth) in [(21_845u32, 1u32), (30_000, 0), (9000, 5)] {
        let p = PredictParams { rows: 1, features: 1, tree_count, node_count: 3, max_depth };
        let roots: Vec<u32> = (0..tree_count).map(|t| if t % 1000 == 999 { 2 } else { 0 }).collect();
        let mut want = vec![0u32; 4];
        kernels::predict_forest(&p, &[0.0], &nodes, &roots, &mut want);
        let leaves = if max_depth >= 2 { tree_count } else { tree_count / 1000 };
        assert_eq!(want, [leaves, 0, 0, 0], "CPU reference");
        let bufs = [words_to_bytes(&[0]), words_to_bytes(&nodes), words_to_bytes(&roots), words_to_bytes(&[7, 7, 7, 7])];
        check(&mut devs, &format!("predict-forest long loops {p:?}"), &bufs, |d, ids| d.predict_forest(&p, ids[0], ids[1], ids[2], ids[3]));
    }
    // One walk longer than an invocation may loop: chains of 70,000 internal nodes before
    // a leaf of value 2^32 + 5, reached with max-depth 70,000 and not with 69,999.
    let depth = 70_000u32;
    let mut nodes: Vec<u32> = (0..depth).flat_map(|i| [0, 0.5f32.to_bits(), i + 1, i + 1]).collect();
    nodes.extend([NONE, 5, 1, 0]);
    for (max_depth, want) in [(depth, [10, 2, 0, 0]), (depth - 1, [0; 4])] {
        let p = PredictParams { rows: 2, features: 1, tree_count: 2, node_count: depth + 1, max_depth };
        let mut sums = vec![7u32; 8];
        kernels::predict_forest(&p, &[0.0, 1.0], &nodes, &[0, 0], &mut sums);
        assert_eq!(sums, want.repeat(2), "CPU reference");
        let bufs = [words_to_bytes(&[0, 1.0f32.to_bits()]), words_to_bytes(&nodes), words_to_bytes(&[0, 0]), words_to_bytes(&[7; 8])];
        check(&mut devs, &format!("predict-forest long walks {p:?}"), &bufs, |d, ids| d.predict_forest(&p, ids[0], ids[1], ids[2], ids[3]));
    }
    report("find-splits, build-histograms, bootstrap and predict-forest long loops", &devs);
}
