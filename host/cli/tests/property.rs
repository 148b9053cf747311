//! Property test of the `wasi:gpu` host: thousands of random call sequences through the
//! real host implementation (`HostState`'s `compute` / `ml-kernels` trait impls, the same
//! code a guest reaches), on the CPU backend and on wgpu's software adapter when one opens.
//!
//! The sequences come from `host/cli/fuzz/src/driver.rs` (shared with the cargo-fuzz target
//! `device_calls`) fed by a seeded generator; the driver checks after every call that
//! nothing trapped or failed that should not have, every refusal is a typed error, reads
//! return the modelled bytes and accounting matches; after every sequence it drops
//! everything, checks the device holds 0 bytes, and runs known-answer kernels.
//!
//! Reproduce a failure with the seed it prints: `PROPERTY_SEED=<seed> PROPERTY_CASES=<n>`.

#[path = "../fuzz/src/driver.rs"]
#[allow(dead_code)]
mod driver;

use driver::Harness;

/// SplitMix64: a tiny, seedable generator, so a failing case is reproducible from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `cases` random sequences on one harness (one long-lived guest) and checks that the
/// run really exercised the host: kernels ran, calls were refused, stale handles trapped.
fn run_cases(mut harness: Harness, default_cases: u64, seed_salt: u64) {
    let cases = env_u64("PROPERTY_CASES", default_cases);
    let base = env_u64("PROPERTY_SEED", 0x5eed_0000) ^ seed_salt;
    for case in 0..cases {
        let seed = base.wrapping_add(case);
        let mut rng = SplitMix(seed);
        let len = (rng.next() % 3000) as usize;
        let data = rng.bytes(len);
        if let Err(violation) = harness.run(&data).and_then(|()| harness.finish()) {
            panic!(
                "{} backend, case {case} (reproduce with PROPERTY_SEED={} PROPERTY_CASES={}): {violation}",
                harness.backend(),
                base,
                case + 1
            );
        }
    }
    eprintln!(
        "{} backend: {cases} sequences, {} calls, {} refused with typed errors, {} trapped on stale handles, {} kernels ran",
        harness.backend(),
        harness.calls,
        harness.refused,
        harness.trapped,
        harness.kernels_ran
    );
    if cases >= 100 {
        assert!(
            harness.kernels_ran > cases / 4,
            "too few kernels ran ({}): the generator is not reaching the kernels",
            harness.kernels_ran
        );
        assert!(harness.refused > cases, "too few refusals ({}): the generator is not probing bad input", harness.refused);
        assert!(harness.trapped > cases / 10, "too few stale-handle traps ({})", harness.trapped);
    }
}

#[test]
fn random_call_sequences_on_cpu() {
    run_cases(Harness::new(Box::new(wasi_gpu_backend::CpuBackend::new())), 5000, 0);
}

#[test]
fn random_call_sequences_on_wgpu_software() {
    match wasi_gpu_wgpu::open(true) {
        Ok(backend) => run_cases(Harness::new(backend), 600, 0x9e9e),
        // No Vulkan adapter at all (not even llvmpipe): nothing to test here.
        Err(why) => eprintln!("skipping: no wgpu adapter opens here: {why}"),
    }
}

/// The same on CUDA wherever it opens (`WASI_GPU_REQUIRE=cuda` makes its absence a failure).
#[test]
fn random_call_sequences_on_cuda() {
    match wasi_gpu_cuda::open() {
        Ok(backend) => run_cases(Harness::new(backend), 600, 0xc0da),
        Err(why) => {
            let required = std::env::var("WASI_GPU_REQUIRE").unwrap_or_default();
            assert!(!required.split(',').any(|b| b.trim() == "cuda"), "cuda is required but does not open: {why}");
            eprintln!("skipping: CUDA does not open here: {why}");
        }
    }
}

/// A handful of fixed corner sequences, so the basic properties are checked even with
/// `PROPERTY_CASES=0`: empty input, all-zero and all-0xff bytes.
#[test]
fn fixed_corner_sequences_on_cpu() {
    let mut h = Harness::new(Box::new(wasi_gpu_backend::CpuBackend::new()));
    for data in [vec![], vec![0u8; 4096], vec![0xff; 4096], (0..=255u8).cycle().take(8192).collect()] {
        h.run(&data).and_then(|()| h.finish()).unwrap_or_else(|v| panic!("corner sequence: {v}"));
    }
}
