//! A successful run prints nothing that looks like an error (issue 20): the diabetes pipeline
//! of `./x run` (the host and the Rust guest, `--backend auto`, which probes CUDA and Vulkan
//! first) and the same on the software Vulkan adapter, with `XDG_RUNTIME_DIR` unset as on a
//! fresh CI machine (Mesa's Wayland probe printed `error: XDG_RUNTIME_DIR is invalid or not set`
//! there), and `devices`. Any stderr line containing "error", in any case, fails.

use std::process::Command;

use wasi_gpu_tests::artefacts::{guest_rust, host, workspace};

fn no_error_lines(what: &str, cmd: &mut Command) {
    let out = cmd.env_remove("XDG_RUNTIME_DIR").output().expect("starting the host");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed ({}):\n{stderr}", out.status);
    let bad: Vec<&str> = stderr.lines().filter(|l| l.to_ascii_lowercase().contains("error")).collect();
    assert!(bad.is_empty(), "{what}: a successful run printed error-like lines:\n{}", bad.join("\n"));
}

#[test]
fn successful_runs_print_no_error_lines() {
    let out = workspace().join("target").join("test-quiet-run").join(std::process::id().to_string());
    std::fs::create_dir_all(&out).unwrap();
    for backend in ["auto", "wgpu"] {
        no_error_lines(
            &format!("run --backend {backend}"),
            Command::new(host())
                .current_dir(workspace())
                .args(["run", "--backend", backend, "--dir", "data", "--dir-rw"])
                .arg(format!("{}::out", out.display()))
                .arg(guest_rust())
                .args(["--", "--model", "out/model.bin", "--trees", "20"]),
        );
    }
    no_error_lines("devices", Command::new(host()).arg("devices"));
}
