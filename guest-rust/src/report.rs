//! What a command reports: the human table and the one `--json` line of docs/guests.md.

use crate::cli::{Command, Options};
use crate::gpu::DeviceInfo;
use crate::model::Model;
use crate::receipt::json_str;

/// `printf("%.17g", v)`: 17 significant digits, trailing zeros removed, exponent form
/// when the exponent is below -4 or at least 17.
pub fn fmt_g17(v: f64) -> String {
    const P: i32 = 17;
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.*e}", (P - 1) as usize, v);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let x: i32 = exp.parse().expect("integer exponent");
    let strip =
        |s: &str| -> String { if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() } };
    if !(-4..P).contains(&x) {
        format!("{}e{}{:02}", strip(mantissa), if x < 0 { '-' } else { '+' }, x.abs())
    } else {
        strip(&format!("{:.*}", (P - 1 - x) as usize, v))
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.6}"))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

/// What a command measured and produced, for the human or JSON report.
#[derive(Debug, Default)]
pub struct Report {
    pub train_rows: Option<usize>,
    pub test_rows: Option<usize>,
    pub features: Option<u32>,
    pub trees: Option<u32>,
    pub max_depth: Option<Option<u32>>,
    pub min_samples_split: Option<u32>,
    pub min_samples_leaf: Option<u32>,
    pub max_features: Option<u32>,
    pub bins: Option<u32>,
    pub seed: Option<u64>,
    pub load_ms: Option<f64>,
    pub train_ms: Option<f64>,
    pub save_ms: Option<f64>,
    pub predict_ms: Option<f64>,
    pub mse: Option<f64>,
    pub model_bytes: Option<usize>,
    pub model_checksum: Option<String>,
    /// The receipt written (train, pipeline) or verified.
    pub receipt: Option<String>,
    pub total_ms: f64,
}

impl Report {
    /// The model's parameters; `trees` is its tree count (`m` may hold the header alone).
    pub fn describe_model(&mut self, m: &Model, trees: u32) {
        self.features = Some(m.features);
        self.trees = Some(trees);
        self.max_depth = Some(m.max_depth);
        self.min_samples_split = Some(m.min_samples_split);
        self.min_samples_leaf = Some(m.min_samples_leaf);
        self.max_features = Some(m.max_features);
        self.bins = Some(m.max_bins);
        self.seed = Some(m.seed);
    }

    pub fn json(&self, command: Command, device: &DeviceInfo) -> String {
        let max_depth = match self.max_depth {
            Some(Some(d)) => d.to_string(),
            _ => "null".into(),
        };
        format!(
            concat!(
                "{{\"guest\":\"rust\",\"command\":\"{}\",\"backend\":\"{}\",\"device\":{},",
                "\"train_rows\":{},\"test_rows\":{},\"features\":{},\"trees\":{},\"max_depth\":{},",
                "\"min_samples_split\":{},\"min_samples_leaf\":{},\"max_features\":{},\"bins\":{},\"seed\":{},",
                "\"load_ms\":{},\"train_ms\":{},\"save_ms\":{},\"predict_ms\":{},\"mse\":{},\"model_checksum\":{},\"receipt\":{}}}"
            ),
            command.name(),
            device.backend,
            json_str(&device.name),
            opt(self.train_rows),
            opt(self.test_rows),
            opt(self.features),
            opt(self.trees),
            max_depth,
            opt(self.min_samples_split),
            opt(self.min_samples_leaf),
            opt(self.max_features),
            opt(self.bins),
            opt(self.seed),
            ms(self.load_ms),
            ms(self.train_ms),
            ms(self.save_ms),
            ms(self.predict_ms),
            self.mse.map_or("null".into(), fmt_g17),
            self.model_checksum.as_deref().map_or("null".into(), json_str),
            self.receipt.as_deref().map_or("null".into(), json_str),
        )
    }

    pub fn human(&self, o: &Options, device: &DeviceInfo) -> String {
        let mut s = format!("device: {} ({}, {})\n", device.name, device.backend, device.driver);
        match (o.command, self.train_rows, self.test_rows) {
            (Command::Pipeline, Some(tr), Some(te)) => {
                s += &format!("train: {tr} rows x {} features; test: {te} rows\n", self.features.unwrap_or(0))
            }
            (_, Some(tr), None) => s += &format!("train: {tr} rows x {} features\n", self.features.unwrap_or(0)),
            (_, _, Some(te)) => s += &format!("test: {te} rows x {} features\n", self.features.unwrap_or(0)),
            _ => {}
        }
        match (o.command, self.model_bytes, &self.model_checksum, &self.receipt) {
            (Command::Verify, Some(bytes), Some(sum), Some(receipt)) => {
                s += &format!("verified: {receipt}: the model trained here ({bytes} bytes, {sum}) is the receipt's\n")
            }
            (_, Some(bytes), Some(sum), receipt) => {
                s += &format!("model: {} ({bytes} bytes, {sum})\n", o.model);
                if let Some(receipt) = receipt {
                    s += &format!("receipt: {receipt}\n");
                }
            }
            _ => {}
        }
        match (o.command, self.mse) {
            (Command::Train | Command::Verify | Command::Merge, _) => {}
            (_, Some(mse)) => s += &format!("test MSE: {mse:.6}\n"),
            (_, None) => s += "test MSE: n/a (the test data has no target column)\n",
        }
        if o.command == Command::Predict {
            s += &format!("predictions: {}\n", o.out.as_deref().unwrap_or("predictions.txt"));
        } else if let Some(out) = &o.out {
            s += &format!("predictions: {out}\n");
        }
        s += "phase      ms\n";
        for (name, v) in [("load", self.load_ms), ("train", self.train_ms), ("save", self.save_ms), ("predict", self.predict_ms)] {
            if let Some(v) = v {
                s += &format!("{name:<8} {v:.3}\n");
            }
        }
        s += &format!("{:<8} {:.3}\n", "total", self.total_ms);
        s
    }
}
