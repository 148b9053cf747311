//! Guest/backend parity under `cargo test` (the same check as `cargo xtask parity`; the
//! logic lives in `wasi_gpu_tests::parity`).
//!
//! Runs every configuration on {rust, cpp} x {cpu, wgpu, cuda}: cells whose backend cannot
//! run here are skipped with the reason (CI has no GPU: cuda is skipped, wgpu runs on
//! lavapipe). Every cell that ran must match the configuration's insta snapshot in
//! tests/snapshots/, every other cell, and the other guest's predictions from its model.
//!
//! The artefacts come from `cargo xtask test` (WASI_GPU_HOST, GUEST_RUST_WASM,
//! GUEST_CPP_WASM) or the default paths of `cargo xtask build-all`; a missing artefact is a
//! failure with instructions, never a skip. PARITY_BACKENDS (e.g. `cpu`) narrows the
//! backends; PARITY_REQUIRE (e.g. `cuda,wgpu`) makes skipping those backends a failure.

use wasi_gpu_tests::parity::{self, Backend, Options, Outcome};

#[test]
fn both_guests_match_the_snapshots_on_every_backend() {
    let root = parity::build_workspace_root();
    let mut opts = Options::for_root(&root);
    opts.work_dir = root.join("target/parity-test");
    if let Ok(list) = std::env::var("PARITY_BACKENDS") {
        opts.backends = Backend::parse_list(&list).unwrap_or_else(|e| panic!("PARITY_BACKENDS: {e}"));
    }
    if let Ok(list) = std::env::var("PARITY_REQUIRE") {
        opts.require = Backend::parse_list(&list).unwrap_or_else(|e| panic!("PARITY_REQUIRE: {e}"));
    }
    if let Err(e) = opts.check() {
        panic!("parity cannot run:\n{e}\n(run `cargo xtask test`, or `cargo xtask build-all` first)");
    }
    let report = parity::run(&opts).unwrap_or_else(|e| panic!("parity: {e}"));
    eprintln!("{report}");

    // insta owns the snapshot files: every cell of a configuration is asserted against the
    // one named snapshot, so `cargo insta review` / INSTA_UPDATE work as usual.
    let mut ran = 0;
    for config in &report.configs {
        for cell in &config.cells {
            if let Outcome::Ran(produced) = &cell.outcome {
                ran += 1;
                let text = &produced.body;
                eprintln!("insta: {} {}", config.config.name, cell.label());
                insta::with_settings!({ snapshot_path => "../snapshots" }, {
                    insta::assert_snapshot!(config.config.name, text);
                });
            }
        }
    }
    assert!(ran > 0, "no cell ran at all:\n{report}");
    assert!(
        report.configs.iter().all(|c| c.cells.iter().any(|cell| cell.backend == Backend::Cpu && matches!(cell.outcome, Outcome::Ran(_))))
            || !opts.backends.contains(&Backend::Cpu),
        "the CPU backend must always run:\n{report}"
    );
    let failures = report.failures(false);
    assert!(failures.is_empty(), "parity failures:\n  {}\n\n{report}", failures.join("\n  "));
}
