//! `cargo xtask train-multi`: one forest over every GPU of this machine. One host process per
//! device trains a contiguous range of the trees (`run --device N ... train --trees-from A
//! --trees-to B`, docs/algorithm.md §11), all at once; then the guest's `merge` joins the
//! partial forests into the model one `train` would have written, byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::Backend;

/// Options of `cargo xtask train-multi`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Shard i runs `wasmtime-gpu-host run --backend B --device i` (no --device on the cpu backend) with DATA's \
                        directory as the guest's read-only `data` and OUT's directory as its `out`; the partial forests are written \
                        next to OUT (OUT.part-A-B) and removed after the merge.")]
pub struct Options {
    /// Training data (a file the guest's `train --train` reads).
    #[arg(long, value_name = "DATA")]
    train: PathBuf,
    /// Where to write the merged model.
    #[arg(long, value_name = "OUT")]
    model: PathBuf,
    /// Shards, one per device of the backend; with the cpu backend, N processes on the CPU.
    #[arg(long, value_name = "N|all", value_parser = parse_devices, default_value = "all")]
    devices: Devices,
    /// Backend of every shard.
    #[arg(long, value_name = "B", value_enum, default_value_t = Backend::Cuda)]
    backend: Backend,
    /// The guest: rust, cpp, or a component's path.
    #[arg(long, value_name = "G", value_parser = parse_guest, default_value = "rust")]
    guest: Guest,
    /// Trees of the whole forest.
    #[arg(long, value_name = "T", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    trees: u32,
    /// wasmtime-gpu-host [default: target/release/wasmtime-gpu-host].
    #[arg(long, value_name = "PATH")]
    host: Option<PathBuf>,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    json: bool,
    /// Options for every shard's `train`, after `--` (e.g. `-- --max-depth 16 --max-features sqrt`).
    #[arg(last = true, value_name = "GUEST TRAIN OPTIONS", value_parser = guest_option)]
    extra: Vec<String>,
}

/// `--devices`: every usable device of the backend, or a number of shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Devices {
    All,
    Count(usize),
}

fn parse_devices(s: &str) -> Result<Devices, String> {
    match s {
        "all" => Ok(Devices::All),
        n => n.parse().ok().filter(|&n| n > 0).map(Devices::Count).ok_or_else(|| "expected all or N >= 1".to_string()),
    }
}

/// `--guest`: one of our built guests, or a component's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Guest {
    Rust,
    Cpp,
    Path(PathBuf),
}

impl Guest {
    fn path(&self, root: &Path) -> PathBuf {
        match self {
            Guest::Rust => root.join("target/wasm/guest-rust.wasm"),
            Guest::Cpp => root.join("target/wasm/guest-cpp.wasm"),
            Guest::Path(path) => path.clone(),
        }
    }
}

fn parse_guest(s: &str) -> Result<Guest, std::convert::Infallible> {
    Ok(match s {
        "rust" => Guest::Rust,
        "cpp" => Guest::Cpp,
        path => Guest::Path(path.into()),
    })
}

/// Options train-multi sets itself for every shard.
const RESERVED: [&str; 6] = ["--trees", "--trees-from", "--trees-to", "--model", "--train", "--receipt"];

/// One option after `--`: anything but [`RESERVED`].
fn guest_option(s: &str) -> Result<String, String> {
    match RESERVED.iter().find(|r| s == **r || s.starts_with(&format!("{r}="))) {
        Some(reserved) => Err(format!("{reserved} is set by train-multi; do not pass it after --")),
        None => Ok(s.to_string()),
    }
}

/// The numbers (for `run --device`) of the devices of `backend` that `wasmtime-gpu-host
/// devices` lists as usable: every CUDA device; the usable hardware wgpu adapters, by their
/// `[N]` (software and unusable adapters have numbers too, and are skipped).
fn usable_devices(host: &Path, backend: &str) -> Result<Vec<usize>> {
    let out = Command::new(host).arg("devices").output().with_context(|| format!("running {} devices", host.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut section = "";
    let mut found = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let l = line.trim();
        let number = match (section, backend) {
            ("cuda", "cuda") => l.strip_prefix("available: device ").and_then(|r| r.split(':').next()),
            ("wgpu", "wgpu") if l.ends_with(": usable") && l.contains(", hardware)") => {
                l.strip_prefix("- [").and_then(|r| r.split(']').next())
            }
            _ => None,
        };
        if let Some(n) = number.and_then(|n| n.parse().ok()) {
            found.push(n);
        }
    }
    if found.is_empty() {
        bail!("`{} devices` lists no usable {backend} device:\n{text}", host.display());
    }
    Ok(found)
}

/// Contiguous ranges covering `0..trees`, sizes differing by at most one.
fn ranges(trees: u32, shards: u32) -> Vec<(u32, u32)> {
    let (base, extra) = (trees / shards, trees % shards);
    let mut a = 0;
    (0..shards)
        .map(|i| {
            let b = a + base + u32::from(i < extra);
            let r = (a, b);
            a = b;
            r
        })
        .collect()
}

fn dir_of(path: &Path) -> Result<(PathBuf, String)> {
    let abs = std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    let name = abs.file_name().with_context(|| format!("{} names no file", path.display()))?.to_string_lossy().into_owned();
    Ok((abs.parent().map(Path::to_path_buf).unwrap_or_else(|| "/".into()), name))
}

pub fn command(root: &Path, o: &Options) -> Result<()> {
    let host = o.host.clone().unwrap_or_else(|| root.join("target/release/wasmtime-gpu-host"));
    let guest = o.guest.path(root);
    let backend = o.backend.as_str();
    for (what, p) in [("host", &host), ("guest", &guest), ("training data", &o.train)] {
        if !p.is_file() {
            bail!("the {what} {} does not exist (cargo xtask build-all builds the host and guests)", p.display());
        }
    }
    // The device of each shard: the usable ones in turn (several shards share a device when
    // --devices asks for more shards than there are devices); the CPU backend has device 0.
    let devices = if o.backend == Backend::Cpu { vec![0] } else { usable_devices(&host, backend)? };
    let shards = match o.devices {
        Devices::Count(n) => n,
        Devices::All => devices.len(),
    };
    let shards = u32::try_from(shards).ok().filter(|&s| s <= o.trees).context("more shards than trees")?;
    let (data_dir, data_name) = dir_of(&o.train)?;
    let (out_dir, model_name) = dir_of(&o.model)?;
    let start = Instant::now();
    let mut children: Vec<(u32, u32, usize, Child, Instant)> = Vec::new();
    for (i, (a, b)) in ranges(o.trees, shards).into_iter().enumerate() {
        let device = devices[i % devices.len()];
        let mut cmd = Command::new(&host);
        cmd.args(["run", "--backend", backend, "--device", &device.to_string()]);
        cmd.arg("--dir").arg(format!("{}::data", data_dir.display()));
        cmd.arg("--dir-rw").arg(format!("{}::out", out_dir.display()));
        cmd.arg(&guest).arg("--");
        cmd.args(["train", "--train", &format!("data/{data_name}"), "--trees", &o.trees.to_string()]);
        cmd.args(["--trees-from", &a.to_string(), "--trees-to", &b.to_string()]);
        cmd.args(["--model", &format!("out/{model_name}.part-{a}-{b}"), "--json", "--quiet"]).args(&o.extra);
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {}", host.display()))?;
        children.push((a, b, device, child, Instant::now()));
    }
    let mut shard_reports = Vec::new();
    let mut parts = Vec::new();
    let mut failed = Vec::new();
    // Every shard is waited for before anything is judged, so none outlives a failure.
    for (i, (a, b, device, child, started)) in children.into_iter().enumerate() {
        let out = child.wait_with_output();
        let secs = started.elapsed().as_secs_f64();
        parts.push(format!("out/{model_name}.part-{a}-{b}"));
        let out = match out {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                failed.push(format!("shard {a}..{b} (device {device}): {}", String::from_utf8_lossy(&out.stderr).trim()));
                continue;
            }
            Err(e) => {
                failed.push(format!("shard {a}..{b} (device {device}): {e}"));
                continue;
            }
        };
        match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            Ok(line) => shard_reports.push(serde_json::json!({
                "trees": [a, b], "device_index": device, "process": i, "device": line["device"], "backend": line["backend"],
                "train_ms": line["train_ms"], "seconds": (secs * 1000.0).round() / 1000.0,
            })),
            Err(e) => failed.push(format!("shard {a}..{b} (device {device}): its --json line: {e}")),
        }
    }
    // The partial forests, and the temporary file of a shard that was stopped while writing.
    let remove_parts = || {
        for p in &parts {
            let file = out_dir.join(p.trim_start_matches("out/"));
            let _ = std::fs::remove_file(&file);
            let mut tmp = file.into_os_string();
            tmp.push(".tmp");
            let _ = std::fs::remove_file(tmp);
        }
    };
    if !failed.is_empty() {
        remove_parts();
        bail!("{}", failed.join("\n"));
    }
    let trained = start.elapsed().as_secs_f64();
    let out = Command::new(&host)
        .args(["run", "--backend", "cpu", "--dir-rw"])
        .arg(format!("{}::out", out_dir.display()))
        .arg(&guest)
        .args(["--", "merge", "--model", &format!("out/{model_name}"), "--json", "--quiet"])
        .args(&parts)
        .output()?;
    remove_parts();
    if !out.status.success() {
        bail!("merge failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let merged: serde_json::Value = serde_json::from_slice(&out.stdout).context("merge's --json line")?;
    let wall = start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "model": o.model, "model_checksum": merged["model_checksum"], "trees": o.trees, "shards": shard_reports,
        "backend": backend, "train_s": (trained * 1000.0).round() / 1000.0, "wall_s": (wall * 1000.0).round() / 1000.0,
    });
    if o.json {
        println!("{summary}");
    } else {
        for s in summary["shards"].as_array().into_iter().flatten() {
            println!(
                "shard trees {}: process {}, device {} ({}), {:.1} s",
                s["trees"],
                s["process"],
                s["device_index"],
                s["device"].as_str().unwrap_or(""),
                s["seconds"]
            );
        }
        println!(
            "model: {} ({}), {} trees from {shards} shards; shards {trained:.1} s, wall {wall:.1} s",
            o.model.display(),
            merged["model_checksum"].as_str().unwrap_or(""),
            o.trees
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_forest() {
        assert_eq!(ranges(10, 3), vec![(0, 4), (4, 7), (7, 10)]);
        assert_eq!(ranges(4, 4), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(ranges(200, 1), vec![(0, 200)]);
    }

    fn parse(args: &str) -> Result<Options, clap::Error> {
        match crate::tests::parse(&format!("train-multi {args}"))? {
            crate::Command::TrainMulti(o) => Ok(o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_options() {
        // As tests/tests/shards.rs calls it.
        let o = parse(
            "--backend cpu --devices 3 --trees 13 --json --host H --guest G --train F --model M -- --max-depth 6 --max-features sqrt",
        )
        .unwrap();
        assert_eq!((o.backend, o.devices, o.trees, o.json), (Backend::Cpu, Devices::Count(3), 13, true));
        assert_eq!((o.host, o.guest), (Some(PathBuf::from("H")), Guest::Path(PathBuf::from("G"))));
        assert_eq!((o.train, o.model), (PathBuf::from("F"), PathBuf::from("M")));
        assert_eq!(o.extra, ["--max-depth", "6", "--max-features", "sqrt"]);

        let o = parse("--train F --model M").unwrap();
        assert_eq!((o.backend, o.devices, o.trees, o.json, o.host), (Backend::Cuda, Devices::All, 200, false, None));
        assert_eq!(o.guest.path(Path::new("/r")), PathBuf::from("/r/target/wasm/guest-rust.wasm"));
        assert!(o.extra.is_empty());
        assert_eq!(parse("--train F --model M --guest cpp").unwrap().guest, Guest::Cpp);
        assert_eq!(parse("--train F --model M --devices all").unwrap().devices, Devices::All);
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            "--model M",
            "--train F",
            "--train F --model M --devices 0",
            "--train F --model M --devices some",
            "--train F --model M --backend tpu",
            "--train F --model M --trees 0",
            "--train F --model M --max-depth 6",
            "--train F --model M -- --trees 5",
            "--train F --model M -- --max-depth 6 --model=x",
            "--train F --model M stray",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
