//! Turning measurements into target/bench/results.{json,md} and train_time.svg.

use std::fmt::Write;

use serde_json::{Value, json};

use super::Workload;
use super::run::{Measurement, median};

/// The current time as `YYYY-MM-DD HH:MM UTC` (civil-from-days, no date crate needed).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// One of our rows compared with one anchor on the same workload.
pub struct Ratio {
    /// Our row's label.
    pub ours: String,
    /// The anchor's label.
    pub anchor: String,
    /// Anchor train time / our train time (> 1: we are faster).
    pub train_speedup: Option<f64>,
    /// Anchor predict time / our predict time.
    pub predict_speedup: Option<f64>,
    /// Our MSE / the anchor's MSE (< 1: we are more accurate).
    pub mse_ratio: Option<f64>,
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Every (ours, anchor) pair of a workload where both ran.
pub fn ratios(rows: &[Measurement]) -> Vec<Ratio> {
    let ok = |m: &&Measurement| m.error.is_none() && !m.train_ms.is_empty();
    let mut out = Vec::new();
    for o in rows.iter().filter(|m| !m.system.is_anchor()).filter(ok) {
        for a in rows.iter().filter(|m| m.system.is_anchor()).filter(ok) {
            out.push(Ratio {
                ours: o.system.label(),
                anchor: a.system.label(),
                train_speedup: div(median(&a.train_ms), median(&o.train_ms)),
                predict_speedup: div(median(&a.predict_ms), median(&o.predict_ms)),
                mse_ratio: div(median(&o.mse), median(&a.mse)),
            });
        }
    }
    out
}

fn workload_json(w: &Workload) -> Value {
    json!({
        "name": w.name, "train": w.train, "test": w.test, "train_rows": w.train_rows,
        "test_rows": w.test_rows, "features": w.features, "trees": w.trees,
        "max_depth": w.max_depth, "repeats": w.repeats,
    })
}

fn measurement_json(m: &Measurement) -> Value {
    json!({
        "system": m.system.kind, "guest": m.system.guest, "backend": m.system.backend,
        "label": m.system.label(), "device": m.device,
        "train_ms": m.train_ms, "predict_ms": m.predict_ms, "mse": m.mse,
        "save_ms": m.save_ms, "median_save_ms": median(&m.save_ms), "model_bytes": m.model_bytes,
        "median_train_ms": median(&m.train_ms), "median_predict_ms": median(&m.predict_ms),
        "median_mse": median(&m.mse), "peak_rss_bytes": m.peak_rss_bytes,
        "peak_device_bytes": m.peak_device_bytes, "device_mem_method": m.device_mem_method,
        "params": m.params, "versions": m.versions, "error": m.error,
    })
}

/// The whole run as one JSON document.
pub fn json(machine: &Value, results: &[(Workload, Vec<Measurement>)], notes: &[String]) -> Value {
    let workloads: Vec<Value> = results
        .iter()
        .map(|(w, rows)| {
            let ratios: Vec<Value> = ratios(rows)
                .iter()
                .map(|r| {
                    json!({"ours": r.ours, "anchor": r.anchor, "train_speedup": r.train_speedup,
                           "predict_speedup": r.predict_speedup, "mse_ratio": r.mse_ratio})
                })
                .collect();
            json!({"workload": workload_json(w), "results": rows.iter().map(measurement_json).collect::<Vec<_>>(), "ratios": ratios})
        })
        .collect();
    json!({"machine": machine, "notes": notes, "workloads": workloads})
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") })
}

fn fmt_mib(v: Option<u64>) -> String {
    v.map_or("n/a".into(), |b| format!("{:.1}", b as f64 / (1024.0 * 1024.0)))
}

fn fmt_x(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}×"))
}

/// The markdown report (also printed by `bench`).
pub fn markdown(machine: &Value, results: &[(Workload, Vec<Measurement>)], notes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Benchmark results, {}\n", machine["date_utc"].as_str().unwrap_or("?"));
    let _ = writeln!(
        s,
        "Machine: {} ({} cores{}); GPU: {}.",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        machine["hostname"].as_str().filter(|h| !h.is_empty()).map(|h| format!(", host `{h}`")).unwrap_or_default(),
        machine["gpu"].as_str().unwrap_or("none"),
    );
    if let Some(v) = results.iter().flat_map(|(_, r)| r).find_map(|m| m.versions.as_object()) {
        let list: Vec<String> = v.iter().map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?"))).collect();
        let _ = writeln!(s, "Anchors' software: {}.", list.join(", "));
    }
    let _ = writeln!(
        s,
        "Times are medians over the repeats, in milliseconds; train excludes reading the training file; our predict includes reading the test file, the anchors' excludes it (docs/benchmarks.md).\n"
    );
    for n in notes {
        let _ = writeln!(s, "* note: {n}");
    }
    if !notes.is_empty() {
        s.push('\n');
    }
    for (w, rows) in results {
        let depth = if w.max_depth == 0 { "unlimited".to_string() } else { w.max_depth.to_string() };
        let _ = writeln!(
            s,
            "### {}: {} train × {} features, {} test; {} trees, max depth {depth}; {} repeat(s)\n",
            w.name, w.train_rows, w.features, w.test_rows, w.trees, w.repeats
        );
        let _ = writeln!(s, "| system | device | train ms | predict ms | test MSE | peak RSS MiB | peak device MiB |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
        let mut problems = Vec::new();
        for m in rows {
            if let Some(e) = &m.error {
                problems.push(format!("{}: {e}", m.system.label()));
                if m.train_ms.is_empty() {
                    continue;
                }
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                m.system.label(),
                m.device,
                fmt_ms(median(&m.train_ms)),
                fmt_ms(median(&m.predict_ms)),
                median(&m.mse).map_or("—".into(), |v| format!("{v:.4}")),
                fmt_mib(m.peak_rss_bytes),
                fmt_mib(m.peak_device_bytes),
            );
        }
        s.push('\n');
        let r = ratios(rows);
        if !r.is_empty() {
            let _ = writeln!(s, "| ours vs anchor | train speedup | predict speedup | MSE ratio (ours/anchor) |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            for r in &r {
                let _ = writeln!(
                    s,
                    "| {} vs {} | {} | {} | {} |",
                    r.ours,
                    r.anchor,
                    fmt_x(r.train_speedup),
                    fmt_x(r.predict_speedup),
                    r.mse_ratio.map_or("—".into(), |v| format!("{v:.4}"))
                );
            }
            s.push('\n');
        }
        // Saving the model, ours only: serialise, checksum and write, through WASI.
        let saved: Vec<&Measurement> = rows.iter().filter(|m| !m.save_ms.is_empty() && m.model_bytes.is_some()).collect();
        if !saved.is_empty() {
            let _ = writeln!(s, "| model save | model MB | save ms | MB/s |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            for m in saved {
                let bytes = m.model_bytes.unwrap_or(0) as f64;
                let ms = median(&m.save_ms).unwrap_or(f64::NAN);
                let _ = writeln!(s, "| {} | {:.1} | {} | {:.0} |", m.system.label(), bytes / 1e6, fmt_ms(Some(ms)), bytes / 1e3 / ms);
            }
            s.push('\n');
        }
        for p in problems {
            let _ = writeln!(s, "* {p}");
        }
        s.push('\n');
    }
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Log-log plot of median training time against training rows, one line per system.
pub fn svg(results: &[(Workload, Vec<Measurement>)]) -> String {
    // Series in first-seen order: label -> [(rows, ms)].
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (w, rows) in results {
        for m in rows {
            let Some(ms) = median(&m.train_ms).filter(|v| *v > 0.0) else { continue };
            if m.error.is_some() {
                continue;
            }
            let label = m.system.label();
            let point = (w.train_rows as f64, ms);
            match series.iter_mut().find(|(l, _)| *l == label) {
                Some((_, pts)) => pts.push(point),
                None => series.push((label, vec![point])),
            }
        }
    }
    for (_, pts) in &mut series {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let (w, h, left, right, top, bottom) = (760.0, 480.0, 80.0, 220.0, 40.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let range = |vals: Vec<f64>| {
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min).log10().floor();
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max).log10().ceil();
        if lo.is_finite() && hi.is_finite() { (lo, hi.max(lo + 1.0)) } else { (0.0, 1.0) }
    };
    let (x0, x1) = range(all.iter().map(|p| p.0).collect());
    let (y0, y1) = range(all.iter().map(|p| p.1).collect());
    let px = |x: f64| left + (x.log10() - x0) / (x1 - x0) * pw;
    let py = |y: f64| top + ph - (y.log10() - y0) / (y1 - y0) * ph;
    const COLORS: [&str; 10] =
        ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">Random forest training time vs training rows (log-log)</text>"#,
        left + pw / 2.0
    );
    let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##);
    let sup = |e: f64| format!("10<tspan dy=\"-6\" font-size=\"9\">{}</tspan>", e as i64);
    let mut e = x0;
    while e <= x1 + 1e-9 {
        let x = px(10f64.powf(e));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            top + ph,
            top + ph + 18.0,
            sup(e)
        );
        e += 1.0;
    }
    let mut e = y0;
    while e <= y1 + 1e-9 {
        let y = py(10f64.powf(e));
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0,
            sup(e)
        );
        e += 1.0;
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">training rows</text>"#, left + pw / 2.0, h - 15.0);
    let _ = writeln!(
        s,
        r#"<text x="20" y="{}" text-anchor="middle" transform="rotate(-90 20 {})">median train time (ms)</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    for (i, (label, pts)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let _ = writeln!(s, r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#, path.join(" "));
        for &(x, y) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{}: {} rows, {:.1} ms</title></circle>"#,
                px(x),
                py(y),
                esc(label),
                x,
                y
            );
        }
        let ly = top + 10.0 + i as f64 * 20.0;
        let lx = left + pw + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            esc(label)
        );
    }
    if series.is_empty() {
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">no successful runs</text>"#, left + pw / 2.0, top + ph / 2.0);
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::run::System;

    fn row(kind: &str, train: f64, predict: f64, mse: f64) -> Measurement {
        let sys = if kind == "ours" {
            System { kind: "ours".into(), guest: "rust".into(), backend: "cpu".into() }
        } else {
            System::anchor(kind, "cpu")
        };
        let mut m = Measurement::skipped(sys, String::new());
        m.error = None;
        m.train_ms = vec![train, train * 3.0, train];
        m.predict_ms = vec![predict];
        m.mse = vec![mse];
        m
    }

    #[test]
    fn ratios_are_anchor_over_ours_for_time_and_ours_over_anchor_for_mse() {
        let rows = vec![row("ours", 100.0, 10.0, 2.0), row("sklearn", 400.0, 5.0, 4.0)];
        let r = ratios(&rows);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].train_speedup, Some(4.0));
        assert_eq!(r[0].predict_speedup, Some(0.5));
        assert_eq!(r[0].mse_ratio, Some(0.5));
        let failed = Measurement::skipped(System::anchor("xgboost", "cpu"), "boom".into());
        assert_eq!(ratios(&[rows[0].clone(), failed]).len(), 0);
    }

    #[test]
    fn svg_has_one_line_per_system() {
        let w = |n: u64| Workload {
            name: format!("w{n}"),
            train: "a".into(),
            test: "b".into(),
            train_rows: n,
            test_rows: n / 5,
            features: 32,
            trees: 10,
            max_depth: 16,
            repeats: 1,
        };
        let res = vec![
            (w(1000), vec![row("ours", 10.0, 1.0, 1.0), row("sklearn", 20.0, 1.0, 1.0)]),
            (w(100_000), vec![row("ours", 1000.0, 1.0, 1.0), row("sklearn", 3000.0, 1.0, 1.0)]),
        ];
        let s = svg(&res);
        assert_eq!(s.matches("<polyline").count(), 2);
        assert_eq!(s.matches("<circle").count(), 4);
        assert!(s.contains("ours rust/cpu") && s.contains("sklearn (cpu)"));
        let md = markdown(&json!({"date_utc": "d", "cpu": "c", "cores": 2}), &res, &[]);
        assert!(md.contains("| ours rust/cpu vs sklearn (cpu) | 2.00× |"), "{md}");
    }

    #[test]
    fn utc_now_is_well_formed() {
        let t = utc_now();
        assert_eq!(t.len(), "2026-11-25 02:49 UTC".len(), "{t}");
        assert!(t.starts_with("20"));
    }
}
