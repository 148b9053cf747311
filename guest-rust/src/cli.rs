//! The command line of docs/guests.md: argument parsing, the five commands
//! (`pipeline`, `train`, `predict`, `verify`, `merge`), the human and `--json` output, and exit codes
//! (0 ok, 1 error naming a file, 2 usage).

use std::time::Instant;

use crate::data::{self, Layout};
use crate::error::Error;
use crate::gpu::{self, DeviceInfo, DeviceSink};
use crate::model::Model;
use crate::predictor::{self, GpuPredictor};
use crate::receipt::{self, Receipt};
use crate::report::{Report, fmt_g17};
use crate::shard::{self, Partial};
use crate::trainer::{GpuTrainer, MaxFeatures, TrainParams};

/// Printed for `--help`.
pub const USAGE: &str = "\
usage: guest-rust [pipeline|train|predict|verify] [options] | merge --model OUT PART...
  --train PATH              training data, .csv or .npy (default data/diabetes_train.csv)
  --test PATH               test data (default data/diabetes_test.csv)
  --model PATH              model file (default model.bin)
  --out PATH                predictions, one per line (predict: default predictions.txt)
  --trees N                 number of trees (default 200)
  --max-depth N             0 or none = unlimited (default 16)
  --min-samples-split N     (default 2)
  --min-samples-leaf N      (default 1)
  --max-features X          integer, fraction in (0, 1], sqrt or log2 (default 1.0)
  --bins N                  bins per feature, 2..=256 (default 256)
  --seed N                  u64 (default 42)
  --receipt PATH            train, pipeline: write a training receipt (JSON); verify: the
                            receipt to train again and check (--train overrides its data path)
  --trees-from A            train: grow only trees A..B of --trees and write them to --model
  --trees-to B              as a partial forest; merge joins partial forests into the model
  --json                    one JSON line on stdout
  --quiet                   no progress on stderr";

/// Which of the three commands runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pipeline,
    Train,
    Predict,
    Verify,
    Merge,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Pipeline => "pipeline",
            Command::Train => "train",
            Command::Predict => "predict",
            Command::Verify => "verify",
            Command::Merge => "merge",
        }
    }
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub command: Command,
    pub train: String,
    pub test: String,
    pub model: String,
    pub out: Option<String>,
    pub params: TrainParams,
    pub json: bool,
    /// `--receipt`: written by train and pipeline, checked by verify.
    pub receipt: Option<String>,
    /// Whether `--train` was given (verify then reads that file instead of the receipt's).
    pub train_given: bool,
    /// `merge`: the partial forests to join.
    pub parts: Vec<String>,
}

/// Why the command line was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// `--help`: print the usage and exit 0.
    Help,
    /// Anything else: print the message as one `error:` line, exit 2.
    Bad(String),
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, UsageError> {
    v.parse().map_err(|_| UsageError::Bad(format!("{flag} expects a non-negative integer, got `{v}`")))
}

fn positive(flag: &str, v: &str) -> Result<u32, UsageError> {
    match number::<u32>(flag, v)? {
        0 => Err(UsageError::Bad(format!("{flag} must be at least 1"))),
        n => Ok(n),
    }
}

/// Parses `--max-features`: an integer count, a fraction in (0, 1] (has a `.` or exponent),
/// `sqrt` or `log2`.
pub fn parse_max_features(v: &str) -> Result<MaxFeatures, UsageError> {
    let bad = || UsageError::Bad(format!("--max-features expects an integer, a fraction in (0, 1], sqrt or log2; got `{v}`"));
    match v {
        "sqrt" => Ok(MaxFeatures::Sqrt),
        "log2" => Ok(MaxFeatures::Log2),
        _ if v.bytes().all(|b| b.is_ascii_digit()) => match v.parse::<u32>() {
            Ok(0) | Err(_) => Err(bad()),
            Ok(n) => Ok(MaxFeatures::Count(n)),
        },
        _ => match v.parse::<f64>() {
            Ok(x) if x > 0.0 && x <= 1.0 => Ok(MaxFeatures::Fraction(x)),
            _ => Err(bad()),
        },
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Options, UsageError> {
    let mut o = Options {
        command: Command::Pipeline,
        train: "data/diabetes_train.csv".into(),
        test: "data/diabetes_test.csv".into(),
        model: "model.bin".into(),
        out: None,
        params: TrainParams {
            trees: 200,
            max_depth: Some(16),
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Fraction(1.0),
            bins: 256,
            seed: 42,
            progress: true,
            shard: None,
        },
        json: false,
        receipt: None,
        train_given: false,
        parts: Vec::new(),
    };
    let (mut trees_from, mut trees_to) = (None, None);
    let mut rest = args;
    if let Some(first) = args.first() {
        let command = match first.as_str() {
            "pipeline" => Some(Command::Pipeline),
            "train" => Some(Command::Train),
            "predict" => Some(Command::Predict),
            "verify" => Some(Command::Verify),
            "merge" => Some(Command::Merge),
            _ => None,
        };
        if let Some(c) = command {
            o.command = c;
            rest = &args[1..];
        }
    }
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "-h" | "--help" => return Err(UsageError::Help),
            "--json" => o.json = true,
            "--quiet" => o.params.progress = false,
            "--train"
            | "--test"
            | "--model"
            | "--out"
            | "--trees"
            | "--max-depth"
            | "--min-samples-split"
            | "--min-samples-leaf"
            | "--max-features"
            | "--bins"
            | "--seed"
            | "--receipt"
            | "--trees-from"
            | "--trees-to" => {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| UsageError::Bad(format!("{flag} needs a value")))?,
                };
                match flag {
                    "--train" => (o.train, o.train_given) = (v, true),
                    "--receipt" => o.receipt = Some(v),
                    "--trees-from" => trees_from = Some(number::<u32>(flag, &v)?),
                    "--trees-to" => trees_to = Some(positive(flag, &v)?),
                    "--test" => o.test = v,
                    "--model" => o.model = v,
                    "--out" => o.out = Some(v),
                    "--trees" => o.params.trees = positive(flag, &v)?,
                    "--max-depth" => {
                        o.params.max_depth = match v.as_str() {
                            "none" | "0" => None,
                            _ => Some(positive(flag, &v)?),
                        }
                    }
                    "--min-samples-split" => o.params.min_samples_split = positive(flag, &v)?,
                    "--min-samples-leaf" => o.params.min_samples_leaf = positive(flag, &v)?,
                    "--max-features" => o.params.max_features = parse_max_features(&v)?,
                    "--bins" => {
                        o.params.bins = number(flag, &v)?;
                        if !(2..=256).contains(&o.params.bins) {
                            return Err(UsageError::Bad(format!("--bins must be between 2 and 256, got {v}")));
                        }
                    }
                    "--seed" => o.params.seed = number(flag, &v)?,
                    _ => unreachable!("listed above"),
                }
            }
            other if other.starts_with('-') => return Err(UsageError::Bad(format!("unknown option `{other}`"))),
            other if o.command == Command::Merge => o.parts.push(other.to_string()),
            other => {
                return Err(UsageError::Bad(format!("unexpected argument `{other}` (commands: pipeline, train, predict, verify, merge)")));
            }
        }
    }
    match (o.command, &o.receipt) {
        (Command::Verify, None) => return Err(UsageError::Bad("verify needs --receipt FILE".into())),
        (Command::Predict | Command::Merge, Some(_)) => return Err(UsageError::Bad("--receipt is for train, pipeline and verify".into())),
        _ => {}
    }
    match (trees_from, trees_to) {
        (None, None) => {}
        (Some(a), Some(b)) if o.command == Command::Train && o.receipt.is_none() => {
            if a >= b || b > o.params.trees {
                let t = o.params.trees;
                return Err(UsageError::Bad(format!("--trees-from {a} --trees-to {b} must satisfy 0 <= from < to <= --trees ({t})")));
            }
            o.params.shard = Some((a, b));
        }
        (Some(_), Some(_)) => return Err(UsageError::Bad("--trees-from/--trees-to are for train, without --receipt".into())),
        _ => return Err(UsageError::Bad("--trees-from and --trees-to go together".into())),
    }
    if o.command == Command::Merge && o.parts.is_empty() {
        return Err(UsageError::Bad("merge needs the partial forests to join: merge --model OUT PART...".into()));
    }
    Ok(o)
}

fn elapsed(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Loads training data into a device buffer and trains. With `then_test` (the pipeline),
/// that file's columns are checked against the training data before training, so that a test
/// file the run cannot use never costs a training nor replaces the model file.
fn fit(o: &Options, device: &DeviceInfo, report: &mut Report, then_test: Option<&str>) -> Result<Model, Error> {
    let t = Instant::now();
    let mut sink = DeviceSink::default();
    let data = data::load(&o.train, Layout::Train, Some(o.params.seed), &mut sink)?;
    if let Some(test) = then_test {
        data::check(test, Layout::Apply { features: data.features })?;
    }
    let x = sink.buffer.take().ok_or_else(|| Error::file(&o.train, "no feature matrix was produced"))?;
    report.train_rows = Some(data.rows);
    report.load_ms = Some(elapsed(t));
    let t = Instant::now();
    let model = GpuTrainer::new(device.clone(), o.params.clone()).train(x, data).map_err(|e| Error::file(&o.train, e))?;
    report.train_ms = Some(elapsed(t));
    report.describe_model(&model, model.trees.len() as u32);
    Ok(model)
}

/// Trains ([`fit`]), saves the model and, with `--receipt`, writes the receipt.
fn train(o: &Options, device: &DeviceInfo, report: &mut Report, then_test: Option<&str>) -> Result<Model, Error> {
    // A shard's data fingerprint is taken before the data is loaded, and the file must be the
    // same one (size, modification time) once training is done (docs/algorithm.md §11).
    let stamp = |path: &str| {
        std::fs::metadata(path).map(|m| (m.len(), m.modified().ok())).map_err(|e| Error::file(path, format!("cannot read: {e}")))
    };
    let fingerprint = match o.params.shard {
        Some(_) => Some((stamp(&o.train)?, shard::data_fingerprint(&o.train)?)),
        None => None,
    };
    let mut model = fit(o, device, report, then_test)?;
    let t = Instant::now();
    let (bytes, sha) = match (o.params.shard, fingerprint) {
        (Some((from, to)), Some((before, (data_xxh64, data_bytes)))) => {
            if stamp(&o.train)? != before {
                return Err(Error::file(&o.train, "the file changed while this shard trained; train the shard again"));
            }
            let partial = Partial { from, to, total: o.params.trees, data_xxh64, data_bytes, model };
            let saved = partial.save(&o.model)?;
            model = partial.model;
            saved
        }
        _ => model.save(&o.model)?,
    };
    report.save_ms = Some(elapsed(t));
    report.model_bytes = Some(bytes);
    report.model_checksum = Some(sha);
    if let Some(path) = &o.receipt {
        Receipt::new(&model, &o.train, &o.model, device)?.save(path)?;
        report.receipt = Some(path.clone());
    }
    Ok(model)
}

/// `verify`: the receipt's data must be the file read now (SHA-256), and training with the
/// receipt's parameters must give the receipt's model (its checksum and SHA-256).
fn verify(o: &Options, path: &str, device: &DeviceInfo, report: &mut Report) -> Result<(), Error> {
    let r = Receipt::load(path)?;
    let train = if o.train_given { o.train.clone() } else { r.train.clone() };
    let (bytes, sha) = receipt::file_sha256(&train)?;
    if sha != r.train_sha256 {
        return Err(Error::file(
            &train,
            format!(
                "its SHA-256 is {sha} ({bytes} bytes), but {path} records {} ({} bytes): not the data the model was trained on",
                r.train_sha256, r.train_bytes
            ),
        ));
    }
    let again = Options { train, params: r.params(o.params.progress), ..o.clone() };
    let model = fit(&again, device, report, None)?;
    let (bytes, checksum, sha) = receipt::model_digests(&model);
    if checksum != r.model_checksum || sha != r.model_sha256 {
        return Err(Error::file(
            path,
            format!(
                "the model trained here ({checksum}, sha256 {sha}) is not the receipt's ({}, sha256 {}): not verified",
                r.model_checksum, r.model_sha256
            ),
        ));
    }
    report.model_bytes = Some(bytes as usize);
    report.model_checksum = Some(checksum);
    report.receipt = Some(path.to_string());
    Ok(())
}

/// Predicts the test data with `trained` (the pipeline's model, just saved), else with the
/// model file; computes the MSE and writes `out` if given.
fn predict(o: &Options, out: Option<&str>, trained: Option<Model>, report: &mut Report) -> Result<(), Error> {
    // The trained forest is uploaded from memory; a model file goes to the device one tree at
    // a time, never whole in the guest's memory.
    let (predictor, header) = match trained {
        Some(m) => (GpuPredictor::new(&m).map_err(|e| Error::file(&o.model, e))?, Model { trees: Vec::new(), ..m }),
        None => {
            let (p, header, trees, sum) = GpuPredictor::load(&o.model)?;
            report.describe_model(&header, trees);
            report.train_rows = Some(header.train_rows as usize);
            report.model_bytes = std::fs::metadata(&o.model).map(|m| m.len() as usize).ok();
            report.model_checksum = Some(sum);
            (p, header)
        }
    };
    let mut sink = DeviceSink::default();
    let data = data::load(&o.test, Layout::Apply { features: header.features as usize }, None, &mut sink)?;
    let x = sink.buffer.take().ok_or_else(|| Error::file(&o.test, "no feature matrix was produced"))?;
    let preds = predictor.predict(&x, data.rows).map_err(|e| Error::file(&o.test, e))?;
    report.test_rows = Some(data.rows);
    report.mse = data.targets.as_ref().map(|y| predictor::mse(&preds, y));
    if let Some(path) = out {
        let mut text = String::with_capacity(preds.len() * 24);
        for p in &preds {
            text += &fmt_g17(*p);
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| Error::file(path, format!("cannot write: {e}")))?;
    }
    Ok(())
}

/// Runs one parsed command; the report is printed by the caller.
fn run(o: &Options, device: &DeviceInfo) -> Result<Report, Error> {
    let start = Instant::now();
    let mut report = Report::default();
    match o.command {
        Command::Train => {
            train(o, device, &mut report, None)?;
        }
        Command::Pipeline => {
            // The forest just trained predicts; the file it was saved to is not parsed again.
            let model = train(o, device, &mut report, Some(&o.test))?;
            let t = Instant::now();
            predict(o, o.out.as_deref(), Some(model), &mut report)?;
            report.predict_ms = Some(elapsed(t));
        }
        Command::Predict => {
            let t = Instant::now();
            let out = o.out.clone().unwrap_or_else(|| "predictions.txt".into());
            predict(o, Some(&out), None, &mut report)?;
            report.load_ms = None;
            report.predict_ms = Some(elapsed(t));
        }
        Command::Verify => verify(o, o.receipt.as_deref().expect("parse requires --receipt"), device, &mut report)?,
        Command::Merge => {
            let t = Instant::now();
            let parts = o.parts.iter().map(|p| Partial::load(p).map(|part| (p.clone(), part))).collect::<Result<Vec<_>, _>>()?;
            report.load_ms = Some(elapsed(t));
            let model = shard::merge(parts)?;
            report.describe_model(&model, model.trees.len() as u32);
            report.train_rows = Some(model.train_rows as usize);
            let t = Instant::now();
            let (bytes, sum) = model.save(&o.model)?;
            report.save_ms = Some(elapsed(t));
            (report.model_bytes, report.model_checksum) = (Some(bytes), Some(sum));
        }
    }
    report.total_ms = elapsed(start);
    Ok(report)
}

/// The whole program: parses `args` (without the program name) and returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(UsageError::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Err(UsageError::Bad(msg)) => {
            eprintln!("error: {msg} (--help shows the usage)");
            return 2;
        }
    };
    let device = gpu::info();
    match run(&o, &device) {
        Ok(report) => {
            if o.json {
                println!("{}", report.json(o.command, &device));
            } else {
                print!("{}", report.human(&o, &device));
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn g17_matches_printf() {
        // Values checked against C printf("%.17g").
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_g17(1.0), "1");
        assert_eq!(fmt_g17(-2.5), "-2.5");
        assert_eq!(fmt_g17(3052.1234), "3052.1233999999999");
        assert_eq!(fmt_g17(1e17), "1e+17");
        assert_eq!(fmt_g17(1e16), "10000000000000000");
        assert_eq!(fmt_g17(1.5e-5), "1.5e-05");
        assert_eq!(fmt_g17(2.3e-7), "2.2999999999999999e-07");
        assert_eq!(fmt_g17(0.0001), "0.0001");
        assert_eq!(fmt_g17(1e-300), "1e-300");
        assert_eq!(fmt_g17(2.0f64.powi(70)), "1.1805916207174113e+21");
        assert_eq!(fmt_g17(0.0), "0");
        assert_eq!(fmt_g17(123456789.0), "123456789");
    }

    #[test]
    fn parses_commands_and_options() {
        let o = parse(&args("")).unwrap();
        assert_eq!((o.command, o.params.trees, o.params.max_depth, o.params.bins), (Command::Pipeline, 200, Some(16), 256));
        let o = parse(&args("train --trees 5 --max-depth none --seed=7 --json --quiet --max-features sqrt")).unwrap();
        assert_eq!(o.command, Command::Train);
        assert_eq!((o.params.trees, o.params.max_depth, o.params.seed), (5, None, 7));
        assert_eq!(o.params.max_features, MaxFeatures::Sqrt);
        assert!(o.json && !o.params.progress);
        assert_eq!(parse(&args("--max-depth 0")).unwrap().params.max_depth, None);
        assert_eq!(parse(&args("--max-features 3")).unwrap().params.max_features, MaxFeatures::Count(3));
        assert_eq!(parse(&args("--max-features 0.5")).unwrap().params.max_features, MaxFeatures::Fraction(0.5));
    }

    #[test]
    fn rejects_bad_usage() {
        for bad in [
            "--bins 1",
            "--bins 257",
            "--trees 0",
            "--trees x",
            "--nope",
            "extra",
            "--model",
            "--max-features 1.5",
            "--max-features 0",
            "--seed -1",
            "verify",
            "predict --receipt r.json",
            "train --trees 10 --trees-from 3",
            "train --trees 10 --trees-from 3 --trees-to 3",
            "train --trees 10 --trees-from 3 --trees-to 11",
            "pipeline --trees 10 --trees-from 0 --trees-to 5",
            "train --trees 10 --trees-from 0 --trees-to 5 --receipt r.json",
            "merge --model m.bin",
            "train a.bin",
        ] {
            assert!(matches!(parse(&args(bad)), Err(UsageError::Bad(_))), "{bad}");
        }
        assert_eq!(parse(&args("--help")), Err(UsageError::Help));
    }

    #[test]
    fn json_has_fields_in_order() {
        let device = DeviceInfo { name: "CPU \"x\"".into(), backend: "cpu", driver: "d".into(), memory_bytes: 1, max_buffer_bytes: 1 };
        let r = Report { train_rows: Some(3), mse: Some(0.1), load_ms: Some(1.0), ..Default::default() };
        let j = r.json(Command::Train, &device);
        assert!(j.starts_with("{\"guest\":\"rust\",\"command\":\"train\",\"backend\":\"cpu\",\"device\":\"CPU \\\"x\\\"\",\"train_rows\":3,\"test_rows\":null"), "{j}");
        assert!(j.contains("\"load_ms\":1.000000,\"train_ms\":null"), "{j}");
        assert!(j.ends_with("\"mse\":0.10000000000000001,\"model_checksum\":null,\"receipt\":null}"), "{j}");
    }
}
