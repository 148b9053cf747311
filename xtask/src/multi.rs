//! `cargo xtask train-multi`: one forest over every GPU of this machine. One host process per
//! device trains a contiguous range of the trees (`run --device N ... train --trees-from A
//! --trees-to B`, docs/algorithm.md §11), all at once; then the guest's `merge` joins the
//! partial forests into the model one `train` would have written, byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask train-multi --train DATA --model OUT [options] [-- GUEST TRAIN OPTIONS]

  --devices N|all     shards, one per device of the backend (default all); with the cpu
                      backend, N processes on the CPU
  --backend B         cuda (default), wgpu or cpu
  --guest G           rust (default), cpp, or a component's path
  --trees T           trees of the whole forest (default 200)
  --host PATH         wasmtime-gpu-host (default target/release/wasmtime-gpu-host)
  --json              print one JSON line instead of the table

Shard i runs `wasmtime-gpu-host run --backend B --device i` (no --device on the cpu backend)
with DATA's directory as the guest's read-only `data` and OUT's directory as its `out`; the
partial forests are written next to OUT (OUT.part-A-B) and removed after the merge. Options
after `--` go to every shard's `train` (e.g. `--max-depth 16 --max-features sqrt`).
";

struct Options {
    train: PathBuf,
    model: PathBuf,
    devices: Option<usize>,
    backend: String,
    guest: PathBuf,
    trees: u32,
    host: PathBuf,
    json: bool,
    extra: Vec<String>,
}

fn parse(root: &Path, args: &[String]) -> Result<Options> {
    let mut o = Options {
        train: PathBuf::new(),
        model: PathBuf::new(),
        devices: None,
        backend: "cuda".into(),
        guest: root.join("target/wasm/guest-rust.wasm"),
        trees: 200,
        host: root.join("target/release/wasmtime-gpu-host"),
        json: false,
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().with_context(|| format!("{a} needs a value\n\n{USAGE}"));
        match a.as_str() {
            "--train" => o.train = value()?.into(),
            "--model" => o.model = value()?.into(),
            "--devices" => {
                o.devices = match value()?.as_str() {
                    "all" => None,
                    n => Some(n.parse().ok().filter(|&n| n > 0).with_context(|| format!("--devices expects all or N >= 1, got {n}"))?),
                }
            }
            "--backend" => o.backend = value()?,
            "--guest" => {
                o.guest = match value()?.as_str() {
                    "rust" => root.join("target/wasm/guest-rust.wasm"),
                    "cpp" => root.join("target/wasm/guest-cpp.wasm"),
                    path => path.into(),
                }
            }
            "--trees" => o.trees = value()?.parse().context("--trees expects a positive integer")?,
            "--host" => o.host = value()?.into(),
            "--json" => o.json = true,
            "--" => o.extra = it.by_ref().cloned().collect(),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if o.train.as_os_str().is_empty() || o.model.as_os_str().is_empty() {
        bail!("--train and --model are required\n\n{USAGE}");
    }
    if !["cuda", "wgpu", "cpu"].contains(&o.backend.as_str()) {
        bail!("--backend must be cuda, wgpu or cpu, not {}", o.backend);
    }
    for reserved in ["--trees", "--trees-from", "--trees-to", "--model", "--train", "--receipt"] {
        if o.extra.iter().any(|e| e == reserved || e.starts_with(&format!("{reserved}="))) {
            bail!("{reserved} is set by train-multi; do not pass it after --");
        }
    }
    Ok(o)
}

/// Devices of `backend` that `wasmtime-gpu-host devices` lists as usable.
fn count_devices(host: &Path, backend: &str) -> Result<usize> {
    let out = Command::new(host).arg("devices").output().with_context(|| format!("running {} devices", host.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut section = "";
    let mut n = 0;
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let l = line.trim();
        n += usize::from(match (section, backend) {
            ("cuda", "cuda") => l.starts_with("available: device "),
            ("wgpu", "wgpu") => l.starts_with("- [") && l.ends_with(": usable") && l.contains(", hardware)"),
            _ => false,
        });
    }
    if n == 0 {
        bail!("`{} devices` lists no usable {backend} device:\n{text}", host.display());
    }
    Ok(n)
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

pub fn command(root: &Path, args: &[String]) -> Result<()> {
    let o = parse(root, args)?;
    for (what, p) in [("host", &o.host), ("guest", &o.guest), ("training data", &o.train)] {
        if !p.is_file() {
            bail!("the {what} {} does not exist (cargo xtask build-all builds the host and guests)", p.display());
        }
    }
    let shards = match (o.devices, o.backend.as_str()) {
        (Some(n), _) => n,
        (None, "cpu") => 1,
        (None, b) => count_devices(&o.host, b)?,
    };
    let shards = u32::try_from(shards).ok().filter(|&s| s <= o.trees).context("more shards than trees")?;
    let (data_dir, data_name) = dir_of(&o.train)?;
    let (out_dir, model_name) = dir_of(&o.model)?;
    let start = Instant::now();
    let mut children: Vec<(u32, u32, usize, Child, Instant)> = Vec::new();
    for (i, (a, b)) in ranges(o.trees, shards).into_iter().enumerate() {
        let mut cmd = Command::new(&o.host);
        cmd.args(["run", "--backend", &o.backend]);
        if o.backend != "cpu" {
            cmd.args(["--device", &i.to_string()]);
        }
        cmd.arg("--dir").arg(format!("{}::data", data_dir.display()));
        cmd.arg("--dir-rw").arg(format!("{}::out", out_dir.display()));
        cmd.arg(&o.guest).arg("--");
        cmd.args(["train", "--train", &format!("data/{data_name}"), "--trees", &o.trees.to_string()]);
        cmd.args(["--trees-from", &a.to_string(), "--trees-to", &b.to_string()]);
        cmd.args(["--model", &format!("out/{model_name}.part-{a}-{b}"), "--json", "--quiet"]).args(&o.extra);
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {}", o.host.display()))?;
        children.push((a, b, i, child, Instant::now()));
    }
    let mut shard_reports = Vec::new();
    let mut parts = Vec::new();
    let mut failed = Vec::new();
    for (a, b, i, child, started) in children {
        let out = child.wait_with_output()?;
        let secs = started.elapsed().as_secs_f64();
        parts.push(format!("out/{model_name}.part-{a}-{b}"));
        if !out.status.success() {
            failed.push(format!("shard {a}..{b} (device {i}): {}", String::from_utf8_lossy(&out.stderr).trim()));
            continue;
        }
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).context("a shard's --json line")?;
        shard_reports.push(serde_json::json!({
            "trees": [a, b], "device_index": if o.backend == "cpu" { 0 } else { i }, "process": i, "device": line["device"], "backend": line["backend"],
            "train_ms": line["train_ms"], "seconds": (secs * 1000.0).round() / 1000.0,
        }));
    }
    let remove_parts = || {
        for p in &parts {
            let _ = std::fs::remove_file(out_dir.join(p.trim_start_matches("out/")));
        }
    };
    if !failed.is_empty() {
        remove_parts();
        bail!("{}", failed.join("\n"));
    }
    let trained = start.elapsed().as_secs_f64();
    let out = Command::new(&o.host)
        .args(["run", "--backend", "cpu", "--dir-rw"])
        .arg(format!("{}::out", out_dir.display()))
        .arg(&o.guest)
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
        "backend": o.backend, "train_s": (trained * 1000.0).round() / 1000.0, "wall_s": (wall * 1000.0).round() / 1000.0,
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
}
