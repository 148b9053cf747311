//! Running one system on one workload and keeping what it measured.
//!
//! Our rows: the host binary is started once per repeat with `--profile`; the guest's
//! `--json` line gives train/predict milliseconds and the test MSE, the profile's
//! `peak device memory held` line the backend's peak buffer bytes, and `wait4` the
//! child's peak resident set (the whole host process: wasmtime, guest memory, backend).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use super::Workload;

/// Who produced a row: one of our guests on a backend, or an anchor on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct System {
    /// `ours`, `sklearn` or `xgboost`.
    pub kind: String,
    /// `rust` / `cpp` for ours, empty for anchors.
    pub guest: String,
    /// Our backend (`cpu`, `wgpu`, `cuda`) or the anchor's device (`cpu`, `cuda`).
    pub backend: String,
}

impl System {
    /// An anchor row's identity.
    pub fn anchor(name: &str, device: &str) -> Self {
        System { kind: name.to_string(), guest: String::new(), backend: device.to_string() }
    }

    /// The label used in tables and the plot, e.g. `ours rust/cpu`, `xgboost (cuda)`.
    pub fn label(&self) -> String {
        if self.kind == "ours" { format!("ours {}/{}", self.guest, self.backend) } else { format!("{} ({})", self.kind, self.backend) }
    }

    /// Whether this is one of the reference implementations.
    pub fn is_anchor(&self) -> bool {
        self.kind != "ours"
    }
}

/// Everything measured for one system on one workload (all repeats).
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Who ran.
    pub system: System,
    /// Device name as the system reported it.
    pub device: String,
    /// Per-repeat training milliseconds.
    pub train_ms: Vec<f64>,
    /// Per-repeat prediction milliseconds.
    pub predict_ms: Vec<f64>,
    /// Per-repeat test MSE.
    pub mse: Vec<f64>,
    /// Per-repeat milliseconds the guest took to save its model (serialise, checksum, write);
    /// ours only.
    pub save_ms: Vec<f64>,
    /// Bytes of the model file our guest wrote.
    pub model_bytes: Option<u64>,
    /// Largest peak resident set over the repeats, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Largest peak device memory over the repeats, bytes (None: not measurable).
    pub peak_device_bytes: Option<u64>,
    /// How the device peak was measured.
    pub device_mem_method: String,
    /// Why the row is missing or incomplete, if it is.
    pub error: Option<String>,
    /// Exact parameters passed (guest arguments, or the anchor's constructor arguments).
    pub params: Value,
    /// Library versions (anchors).
    pub versions: Value,
}

/// Median of a non-empty list (mean of the middle two for even lengths).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

impl Measurement {
    /// A row that did not run, with the reason.
    pub fn skipped(system: System, why: String) -> Self {
        Measurement {
            system,
            device: String::new(),
            train_ms: Vec::new(),
            predict_ms: Vec::new(),
            mse: Vec::new(),
            save_ms: Vec::new(),
            model_bytes: None,
            peak_rss_bytes: None,
            peak_device_bytes: None,
            device_mem_method: "n/a".into(),
            error: Some(why),
            params: Value::Null,
            versions: Value::Null,
        }
    }

    /// Reads one entry of run_anchors.py's `results`.
    pub fn from_anchor(r: &Value, versions: &Value) -> Self {
        let name = r["system"].as_str().unwrap_or("?");
        let device = r["device"].as_str().unwrap_or("?");
        let floats = |k: &str| -> Vec<f64> { r[k].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default() };
        let mut m = Measurement::skipped(System::anchor(name, device), String::new());
        m.error = r["error"].as_str().map(String::from);
        m.device = match device {
            "cuda" => "CUDA (XGBoost)".into(),
            _ => format!("CPU, {} threads", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
        };
        m.train_ms = floats("train_ms");
        m.predict_ms = floats("predict_ms");
        m.mse = floats("mse");
        m.peak_rss_bytes = r["peak_rss_bytes"].as_u64();
        m.peak_device_bytes = r["peak_gpu_bytes"].as_u64();
        m.device_mem_method = r["gpu_mem_method"].as_str().unwrap_or("n/a").to_string();
        m.params = r["params"].clone();
        m.versions = versions.clone();
        if m.error.is_none() && m.train_ms.is_empty() {
            m.error = Some("no measurements".into());
        }
        m
    }
}

/// What one child process did.
struct ChildOutcome {
    /// Exit code, or None if killed by a signal.
    code: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_bytes: u64,
}

/// Runs `cmd` to completion, collecting its output and its own peak RSS via `wait4`
/// (exact per child, unlike `getrusage(RUSAGE_CHILDREN)`, which keeps the maximum over
/// every child ever waited for).
fn run_child(cmd: &mut Command) -> std::io::Result<ChildOutcome> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = loop {
        // SAFETY: `pid` is our own un-reaped child (std has not waited for it); the
        // pointers are to live, writable locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    if waited != pid {
        let err = std::io::Error::last_os_error();
        let _ = child.kill();
        let _ = child.wait();
        return Err(err);
    }
    // `child` is reaped: dropping it neither waits nor kills.
    drop(child);
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let code = if libc::WIFEXITED(status) { Some(libc::WEXITSTATUS(status)) } else { None };
    // Linux reports ru_maxrss in KiB.
    Ok(ChildOutcome { code, stdout, stderr, max_rss_bytes: usage.ru_maxrss.max(0) as u64 * 1024 })
}

/// The byte count of the host profile's `peak device memory held: N bytes (...)` line.
pub fn parse_peak_device_bytes(stderr: &str) -> Option<u64> {
    stderr.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("peak device memory held:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The guest's `--json` line (the last stdout line that parses as a JSON object).
pub fn parse_guest_json(stdout: &str) -> Option<Value> {
    stdout
        .lines()
        .rev()
        .filter(|l| l.trim_start().starts_with('{'))
        .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(Value::is_object))
}

/// The line of a failed run's stderr that explains it: the guest's first `error:` line
/// (its one-line failure report, docs/guests.md), else the last non-empty line (a host
/// error or a trap). The host's `--profile` summary follows the guest's error on stderr,
/// so the last line alone would be the profile's `startup (...)` line.
fn failure_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| l.starts_with("error:"))
        .or_else(|| s.lines().rev().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("(no output)")
        .to_string()
}

/// Runs one guest on one backend `w.repeats` times.
#[allow(clippy::too_many_arguments)]
pub fn ours(
    root: &Path,
    host: &Path,
    guest: &str,
    wasm: &Path,
    backend: &str,
    w: &Workload,
    seed: u64,
    timeout: Option<f64>,
) -> Measurement {
    let system = System { kind: "ours".into(), guest: guest.into(), backend: backend.into() };
    let mut m = Measurement::skipped(system, String::new());
    m.error = None;
    m.device_mem_method = "host --profile: peak wasi:gpu buffer bytes held".into();
    let model = format!("target/bench/model-{guest}-{backend}.bin");
    let model_file = root.join(&model);
    let guest_args: Vec<String> = vec![
        "--train".into(),
        w.train.display().to_string(),
        "--test".into(),
        w.test.display().to_string(),
        "--trees".into(),
        w.trees.to_string(),
        "--max-depth".into(),
        w.max_depth.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--model".into(),
        model,
        "--json".into(),
        "--quiet".into(),
    ];
    m.params = serde_json::json!(guest_args);
    for rep in 0..w.repeats {
        let mut cmd = Command::new(host);
        // The guest reads its two data files' directories and writes only target/bench.
        cmd.current_dir(root).args(["run", "--backend", backend, "--profile"]);
        for dir in data_dirs(&[&w.train, &w.test]) {
            cmd.args(["--dir", &format!("{dir}::{dir}")]);
        }
        cmd.args(["--dir-rw", "target/bench::target/bench"]);
        if let Some(t) = timeout {
            cmd.args(["--timeout", &t.to_string()]);
        }
        cmd.arg(wasm).arg("--").args(&guest_args);
        super::progress(&format!("{} {}: repeat {}/{} running", w.name, m.system.label(), rep + 1, w.repeats));
        let t0 = Instant::now();
        let outcome = match run_child(&mut cmd) {
            Ok(o) => o,
            Err(e) => {
                m.error = Some(format!("could not run {}: {e}", host.display()));
                break;
            }
        };
        let wall = t0.elapsed().as_secs_f64();
        if outcome.code != Some(0) {
            let how = outcome.code.map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
            m.error = Some(format!("{how}: {}", failure_line(&outcome.stderr)));
            break;
        }
        let Some(j) = parse_guest_json(&outcome.stdout) else {
            m.error = Some(format!("no JSON line on stdout (stderr: {})", failure_line(&outcome.stderr)));
            break;
        };
        let (Some(train), Some(predict)) = (j["train_ms"].as_f64(), j["predict_ms"].as_f64()) else {
            m.error = Some(format!("JSON line lacks train_ms/predict_ms: {j}"));
            break;
        };
        m.train_ms.push(train);
        m.predict_ms.push(predict);
        if let Some(save) = j["save_ms"].as_f64() {
            m.save_ms.push(save);
        }
        m.model_bytes = std::fs::metadata(&model_file).ok().map(|f| f.len());
        if let Some(mse) = j["mse"].as_f64() {
            m.mse.push(mse);
        }
        m.device = j["device"].as_str().unwrap_or("?").to_string();
        m.peak_rss_bytes = m.peak_rss_bytes.max(Some(outcome.max_rss_bytes));
        if let Some(b) = parse_peak_device_bytes(&outcome.stderr) {
            m.peak_device_bytes = m.peak_device_bytes.max(Some(b));
        }
        super::progress(&format!(
            "{} {}: repeat {}/{}: train {train:.1} ms, predict {predict:.1} ms, mse {}, wall {wall:.1} s",
            w.name,
            m.system.label(),
            rep + 1,
            w.repeats,
            j["mse"],
        ));
    }
    if m.peak_device_bytes.is_none() {
        m.device_mem_method = "n/a (no `peak device memory held` line from the host)".into();
    }
    m
}

/// The directories (relative to the repository root, as the guest names them) holding
/// `files`, each once; `.` for a file in the root.
fn data_dirs(files: &[&std::path::Path]) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let dir = f.parent().map(|p| p.display().to_string()).filter(|p| !p.is_empty()).unwrap_or_else(|| ".".into());
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn parses_profile_peak() {
        let err = "--- wasi:gpu profile (backend: cpu) ---\ntotal wall time: 3.000 ms\npeak device memory held: 2048 bytes (2.00 KiB)\n";
        assert_eq!(parse_peak_device_bytes(err), Some(2048));
        assert_eq!(parse_peak_device_bytes("nothing here"), None);
    }

    #[test]
    fn parses_guest_json_line() {
        let out = "noise\n{\"guest\":\"rust\",\"train_ms\":1.5,\"predict_ms\":0.25,\"mse\":3000.5}\n";
        let j = parse_guest_json(out).unwrap();
        assert_eq!(j["train_ms"].as_f64(), Some(1.5));
        assert!(parse_guest_json("{not json\n").is_none());
    }

    #[test]
    fn failure_line_is_the_guest_error_not_the_profile() {
        let err = "trees 0-99/100 level 0 slots 100\n\
                   error: train.npy: wasi:gpu: limit-exceeded: write of 1280000000 bytes exceeds the transfer limit\n\
                   --- wasi:gpu profile (backend: cuda) ---\n\
                   peak device memory held: 2048 bytes (2.00 KiB)\n\
                   startup (read, open backend, compile): 9.047 ms\n";
        assert_eq!(failure_line(err), "error: train.npy: wasi:gpu: limit-exceeded: write of 1280000000 bytes exceeds the transfer limit");
        // Only the first `error:` line; without one, the last non-empty line (a trap, say).
        assert_eq!(failure_line("error: first\nerror: second\n"), "error: first");
        assert_eq!(failure_line("wasm trap: out of bounds\n\n"), "wasm trap: out of bounds");
        assert_eq!(failure_line(""), "(no output)");
    }

    #[test]
    fn child_rss_and_status_are_measured() {
        // A child that touches ~64 MiB must report at least that much peak RSS.
        let mut cmd = Command::new("python3");
        cmd.args(["-c", "import sys; b = bytearray(64 << 20); print('ok'); sys.exit(3)"]);
        let o = run_child(&mut cmd).expect("python3 runs");
        assert_eq!(o.code, Some(3));
        assert_eq!(o.stdout.trim(), "ok");
        assert!(o.max_rss_bytes >= 64 << 20, "{}", o.max_rss_bytes);
    }
}
