//! Training progress (docs/guests.md): plain `trees A-B/T level L slots S` lines when stderr is
//! not a terminal, a bar redrawn in place with the rate and the time left when it is (the guest
//! asks WASI 0.2's terminal-stderr; here a pseudo-terminal from util-linux's `script`), nothing
//! with --quiet; the model is the same whatever stderr is. Both guests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasi_gpu_tests::artefacts::{guest_cpp, guest_rust, host, workspace};

/// 200,000 rows x 2 features + target as `.npy` (`<f4`): with 101 trees, just above the
/// 20,000,000 row-trees from which the guests report progress.
fn data(dir: &Path) {
    let rows = 200_000usize;
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, 3), }}");
    let mut h = header.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&h);
    for i in 0..rows {
        let (a, b) = ((i % 1000) as f32, ((i * 7919) % 613) as f32);
        for v in [a, b, a * 0.5 + b] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(dir.join("big.npy"), bytes).unwrap();
}

fn workdir() -> PathBuf {
    let dir = workspace().join("target").join("test-progress").join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    data(&dir);
    dir
}

fn args(guest: &Path, model: &str, quiet: bool) -> Vec<String> {
    let mut a: Vec<String> = ["run", "--backend", "cpu", "--dir-rw", "."].map(String::from).to_vec();
    a.push(guest.display().to_string());
    for s in ["--", "train", "--train", "big.npy", "--trees", "101", "--max-depth", "3", "--model", model] {
        a.push(s.into());
    }
    if quiet {
        a.push("--quiet".into());
    }
    a
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn progress_is_a_bar_on_a_terminal_and_lines_otherwise() {
    let dir = workdir();
    for guest in [guest_rust(), guest_cpp()] {
        let name = guest.file_stem().unwrap().to_string_lossy().into_owned();
        let plain = ok(Command::new(host()).current_dir(&dir).args(args(&guest, "plain.bin", false)).output().unwrap());
        let stderr = String::from_utf8_lossy(&plain.stderr);
        assert!(stderr.starts_with("trees 0-100/101 level 0 slots 101\n"), "{name}: {stderr}");
        assert!(!stderr.contains('\r'), "{name}: no bar when stderr is not a terminal: {stderr:?}");

        let quiet = ok(Command::new(host()).current_dir(&dir).args(args(&guest, "quiet.bin", true)).output().unwrap());
        assert!(quiet.stderr.is_empty(), "{name}: --quiet printed {:?}", String::from_utf8_lossy(&quiet.stderr));

        // A pseudo-terminal: `script` runs the command with stdin/stdout/stderr on a pty and
        // copies what it printed to our stdout.
        let line = args(&guest, "tty.bin", false).iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
        let host = host().display().to_string();
        let tty = ok(Command::new("script")
            .current_dir(&dir)
            .args(["-q", "-e", "-c", &format!("'{host}' {line}"), "/dev/null"])
            .output()
            .expect("util-linux `script` (Debian: bsdutils)"));
        let text = String::from_utf8_lossy(&tty.stdout);
        assert!(text.contains("\r[") && text.contains("% of 101 trees") && text.contains("trees/s"), "{name}: {text:?}");
        assert!(text.contains(" s left (trees 0-100 level "), "{name}: {text:?}");
        assert!(text.contains("] 100% of 101 trees") && text.contains("(done)"), "{name}: {text:?}");
        assert!(!text.contains("trees 0-100/101 level 0 slots"), "{name}: plain lines on a terminal: {text:?}");

        let model = std::fs::read(dir.join("plain.bin")).unwrap();
        for other in ["quiet.bin", "tty.bin"] {
            assert!(std::fs::read(dir.join(other)).unwrap() == model, "{name}: {other} differs from plain.bin");
        }
    }
}
