//! Reading training and test data (docs/algorithm.md §1): CSV with a header, or 2-D `.npy`
//! (`<f4`/`<f8`, C order). The last column is the target.
//!
//! Inputs are streamed: feature rows are converted to `f32` and handed to a
//! [`FeatureSink`] (the device buffer, in the guest) a chunk at a time, targets are kept as
//! `f64`, and the quantile-binning sample is gathered on the way, so a large `.npy` file is
//! never held in memory twice.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use crate::bins;
use crate::error::Error;
use crate::gpu::TRANSFER_CHUNK_BYTES;

/// Feature values handed to a [`FeatureSink`] per call (1 MiB of `f32`, converted and uploaded
/// while still in the CPU's cache; the device sink writes them in pieces of at most
/// [`TRANSFER_CHUNK_BYTES`], so normally in one `buffer.write`).
const CHUNK_VALUES: usize = 1 << 18;
/// Largest `.npy` header accepted.
const MAX_NPY_HEADER: usize = 1 << 20;

/// How the columns of a file are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Training data: at least two columns, the last is the target.
    Train,
    /// Data for a model with `features` features: `features` columns (no target) or
    /// `features + 1` (the last is the target, so an MSE can be computed).
    Apply { features: usize },
}

/// Receives the feature matrix row-major as `f32`, in order, in chunks of whole rows.
pub trait FeatureSink {
    /// Called once, before any rows, with the final shape.
    fn begin(&mut self, rows: usize, features: usize) -> Result<(), String>;
    /// `values` holds whole rows starting at row `first_row`.
    fn write_rows(&mut self, first_row: usize, values: &[f32]) -> Result<(), String>;
}

/// A sink that keeps the matrix in memory (tests and small inputs).
#[cfg(test)]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VecSink {
    /// Row-major features.
    pub values: Vec<f32>,
}

#[cfg(test)]
impl FeatureSink for VecSink {
    fn begin(&mut self, rows: usize, features: usize) -> Result<(), String> {
        self.values = Vec::with_capacity(rows.saturating_mul(features));
        Ok(())
    }

    fn write_rows(&mut self, _first_row: usize, values: &[f32]) -> Result<(), String> {
        self.values.extend_from_slice(values);
        Ok(())
    }
}

/// Everything of a data file except the features, which went to the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub rows: usize,
    pub features: usize,
    /// The last column, when the file has one (always for [`Layout::Train`]).
    pub targets: Option<Vec<f64>>,
    /// When requested: per feature, the values of the binning sample rows (§4), in row order
    /// (a row drawn twice appears twice).
    pub sample: Vec<Vec<f32>>,
}

/// Reads `path` (`.npy` by extension, any case; otherwise CSV), streaming the features into
/// `sink`. With `sample_seed`, also gathers the binning sample that seed draws (§4).
pub fn load(path: &str, layout: Layout, sample_seed: Option<u64>, sink: &mut dyn FeatureSink) -> Result<Dataset, Error> {
    if path.to_ascii_lowercase().ends_with(".npy") {
        load_npy(path, layout, sample_seed, sink)
    } else {
        load_csv(path, layout, sample_seed, sink)
    }
}

/// The checks [`load`] makes before it reads a single row: the file opens, its `.npy` header
/// or CSV header line is well formed, and its column count fits `layout`. The pipeline makes
/// them on its test file before training, so that a test file it cannot use is refused before
/// the model file is replaced. (Everything about the rows is checked when they are read.)
pub fn check(path: &str, layout: Layout) -> Result<(), Error> {
    let file = File::open(path).map_err(|e| Error::file(path, read_error(e)))?;
    let mut reader = BufReader::new(file);
    if path.to_ascii_lowercase().ends_with(".npy") {
        let h = read_npy_header(&mut reader).map_err(|e| Error::file(path, e))?;
        shape(layout, h.cols).map_err(|e| Error::file(path, format!("the array {e}")))?;
    } else {
        let mut header = Vec::new();
        reader.read_until(b'\n', &mut header).map_err(|e| Error::file(path, read_error(e)))?;
        let header = header.strip_suffix(b"\n").unwrap_or(&header);
        if is_blank(header) {
            return Err(Error::line(path, 1, "the first line must be a header naming the columns, but it is empty"));
        }
        let cols = header.split(|&b| b == b',').count();
        shape(layout, cols).map_err(|e| Error::line(path, 1, format!("the header {e}")))?;
    }
    Ok(())
}

/// Splits `cols` into (features, has target) for the layout, or says what is wrong.
fn shape(layout: Layout, cols: usize) -> Result<(usize, bool), String> {
    match layout {
        Layout::Train if cols >= 2 => Ok((cols - 1, true)),
        Layout::Train => Err(format!("has {cols} column; training data needs at least one feature column and the target (last) column")),
        Layout::Apply { features } if cols == features + 1 => Ok((features, true)),
        Layout::Apply { features } if cols == features => Ok((features, false)),
        Layout::Apply { features } => Err(format!(
            "has {cols} columns but the model was trained on {features} features; expected {features} columns \
             (no target) or {} (features then target)",
            features + 1
        )),
    }
}

/// Converts rows to the sink's `f32` chunks, keeps targets and the binning sample.
struct Collector<'a> {
    file: &'a str,
    rows: usize,
    features: usize,
    has_target: bool,
    sink: &'a mut dyn FeatureSink,
    chunk: Vec<f32>,
    chunk_rows: usize,
    chunk_first_row: usize,
    row: usize,
    targets: Vec<f64>,
    sample: Vec<Vec<f32>>,
    /// The sample's rows, ascending ([`bins::sample_rows`]); `next_sample` indexes it.
    sample_rows: Vec<u32>,
    next_sample: usize,
}

impl<'a> Collector<'a> {
    fn new(
        file: &'a str,
        rows: usize,
        features: usize,
        has_target: bool,
        sample_seed: Option<u64>,
        sink: &'a mut dyn FeatureSink,
    ) -> Result<Self, Error> {
        if rows > u32::MAX as usize || features > u32::MAX as usize {
            return Err(Error::file(
                file,
                format!("{rows} rows x {features} features is more than the device kernels address (2^32 - 1 each)"),
            ));
        }
        sink.begin(rows, features).map_err(|e| Error::file(file, e))?;
        let chunk_rows = (CHUNK_VALUES / features.max(1)).clamp(1, rows.max(1));
        let sample_rows = sample_seed.map_or_else(Vec::new, |seed| bins::sample_rows(rows as u64, seed));
        Ok(Collector {
            file,
            rows,
            features,
            has_target,
            sink,
            chunk: Vec::with_capacity(chunk_rows * features),
            chunk_rows,
            chunk_first_row: 0,
            row: 0,
            targets: if has_target { Vec::with_capacity(rows) } else { Vec::new() },
            sample: (0..if sample_seed.is_some() { features } else { 0 }).map(|_| Vec::with_capacity(sample_rows.len())).collect(),
            sample_rows,
            next_sample: 0,
        })
    }

    /// Takes one row of finite `f64` values (features, then the target if any).
    fn push_row(&mut self, values: &[f64], line: Option<u64>) -> Result<(), Error> {
        debug_assert_eq!(values.len(), self.features + self.has_target as usize);
        let start = self.chunk.len();
        self.chunk.extend(values[..self.features].iter().map(|&v| feature(v as f32)));
        if let Some(j) = self.chunk[start..].iter().position(|f| f.is_infinite()) {
            let v = values[j];
            let what = format!("{}value {v} is too large for f32 (magnitude above 3.4e38)", place(line, self.row, j));
            return Err(self.error(line, what));
        }
        self.end_row(start, values.get(self.features).copied())
    }

    /// Takes one row of a `<f4` file as its little-endian bytes, every value finite.
    fn push_f4_row(&mut self, raw: &[u8]) -> Result<(), Error> {
        debug_assert_eq!(raw.len(), (self.features + self.has_target as usize) * 4);
        let start = self.chunk.len();
        let (x, y) = raw.split_at(self.features * 4);
        self.chunk.extend(x.chunks_exact(4).map(|b| feature(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))));
        self.end_row(start, (y.len() == 4).then(|| f64::from(f32::from_le_bytes([y[0], y[1], y[2], y[3]]))))
    }

    /// Completes a row whose features are `chunk[start..]`: the binning sample, the target,
    /// and a full chunk to the sink.
    fn end_row(&mut self, start: usize, target: Option<f64>) -> Result<(), Error> {
        // How many times this row was drawn into the binning sample.
        let drawn = self.sample_rows[self.next_sample..].iter().take_while(|&&r| r as usize == self.row).count();
        for _ in 0..drawn {
            for (column, &f) in self.sample.iter_mut().zip(&self.chunk[start..]) {
                column.push(f);
            }
        }
        self.next_sample += drawn;
        if let Some(y) = target {
            // -0.0 becomes +0.0 here too, so that the targets' minimum is never -0.0 (§5).
            self.targets.push(if y == 0.0 { 0.0 } else { y });
        }
        self.row += 1;
        if self.chunk.len() >= self.chunk_rows * self.features {
            self.flush()?;
        }
        Ok(())
    }

    fn error(&self, line: Option<u64>, what: String) -> Error {
        match line {
            Some(l) => Error::line(self.file, l, what),
            None => Error::file(self.file, what),
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        if !self.chunk.is_empty() {
            self.sink.write_rows(self.chunk_first_row, &self.chunk).map_err(|e| Error::file(self.file, e))?;
            self.chunk.clear();
        }
        self.chunk_first_row = self.row;
        Ok(())
    }

    fn finish(mut self) -> Result<Dataset, Error> {
        self.flush()?;
        debug_assert_eq!(self.row, self.rows);
        Ok(Dataset { rows: self.rows, features: self.features, targets: self.has_target.then_some(self.targets), sample: self.sample })
    }
}

/// A feature as stored: -0.0 becomes +0.0, so that equal values bin and compare identically
/// everywhere.
fn feature(f: f32) -> f32 {
    if f == 0.0 { 0.0 } else { f }
}

/// "row R, column C: " for binary inputs (CSV errors carry the line instead).
fn place(line: Option<u64>, row: usize, col: usize) -> String {
    match line {
        Some(_) => format!("field {}: ", col + 1),
        None => format!("row {}, column {}: ", row + 1, col + 1),
    }
}

fn read_error(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "cannot open: no such file (paths are relative to the directory given with --dir)".to_string(),
        _ => format!("cannot read: {e}"),
    }
}

// ---------------------------------------------------------------------------------- CSV

fn trim(field: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
    let start = field.iter().position(|b| !is_space(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !is_space(b)).map_or(start, |e| e + 1);
    &field[start..end]
}

/// `[+-]?digits[.digits][(e|E)[+-]?digits]`, where either side of the `.` may be empty
/// but not both.
pub fn is_number(s: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < s.len() && matches!(s[i], b'+' | b'-') {
        i += 1;
    }
    let mut mantissa = digits(&mut i);
    if i < s.len() && s[i] == b'.' {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if i < s.len() && matches!(s[i], b'e' | b'E') {
        i += 1;
        if i < s.len() && matches!(s[i], b'+' | b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

/// Shows a field in a message, shortened if long.
fn show(field: &[u8]) -> String {
    let text = String::from_utf8_lossy(field);
    if text.chars().count() > 40 { format!("{}...", text.chars().take(40).collect::<String>()) } else { text.into_owned() }
}

fn is_blank(line: &[u8]) -> bool {
    trim(line).is_empty()
}

fn load_csv(path: &str, layout: Layout, sample_seed: Option<u64>, sink: &mut dyn FeatureSink) -> Result<Dataset, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, read_error(e)))?;
    // `contains` on bytes is core's word-at-a-time memchr; the position only on a hit.
    if let Some(at) = bytes.contains(&0).then(|| bytes.iter().position(|&b| b == 0)).flatten() {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        return Err(Error::line(path, line, "contains a NUL byte; a CSV file must be text"));
    }
    let mut lines = bytes.split(|&b| b == b'\n');
    let header = lines.next().unwrap_or(&[]);
    if is_blank(header) {
        return Err(Error::line(path, 1, "the first line must be a header naming the columns, but it is empty"));
    }
    let names: Vec<String> = header.split(|&b| b == b',').map(|f| String::from_utf8_lossy(trim(f)).into_owned()).collect();
    let cols = names.len();
    let (features, has_target) = shape(layout, cols).map_err(|e| Error::line(path, 1, format!("the header {e}")))?;
    let rows = bytes.split(|&b| b == b'\n').skip(1).filter(|l| !is_blank(l)).count();
    if rows == 0 {
        return Err(Error::file(path, "has no data rows (only a header); it needs at least one row"));
    }
    let mut collector = Collector::new(path, rows, features, has_target, sample_seed, sink)?;
    let mut values = Vec::with_capacity(cols);
    for (index, line) in lines.enumerate() {
        let number = index as u64 + 2;
        if is_blank(line) {
            continue;
        }
        let found = line.split(|&b| b == b',').count();
        if found != cols {
            return Err(Error::line(path, number, format!("has {found} fields but the header has {cols}; every row needs {cols}")));
        }
        values.clear();
        for (k, field) in line.split(|&b| b == b',').enumerate() {
            let field = trim(field);
            let column = &names[k];
            if !is_number(field) {
                let what = if field.is_empty() {
                    format!("field {} (column `{column}`) is empty; every field must be a number", k + 1)
                } else {
                    format!("field {} (column `{column}`) is `{}`, not a number (NaN and inf are not allowed)", k + 1, show(field))
                };
                return Err(Error::line(path, number, what));
            }
            // is_number guarantees ASCII, so this is valid UTF-8.
            let text = std::str::from_utf8(field).unwrap_or_default();
            let v: f64 = text.parse().map_err(|_| Error::line(path, number, format!("field {} (`{text}`) is not a number", k + 1)))?;
            if !v.is_finite() {
                return Err(Error::line(path, number, format!("field {} (column `{column}`) `{text}` overflows f64", k + 1)));
            }
            values.push(v);
        }
        collector.push_row(&values, Some(number))?;
    }
    collector.finish()
}

// ---------------------------------------------------------------------------------- NPY

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NpyHeader {
    /// Bytes per value: 4 (`<f4`) or 8 (`<f8`).
    width: usize,
    rows: usize,
    cols: usize,
    /// Offset of the first data byte.
    data_offset: u64,
}

/// The value of `key` in a Python dict literal, as raw text up to the next top-level `,` or `}`.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

fn parse_npy_header(bytes: &[u8], data_offset: u64) -> Result<NpyHeader, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the .npy header is not text".to_string())?;
    let descr = dict_value(text, "descr").ok_or("the .npy header has no `descr`")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let width = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(format!("dtype `{other}` is not supported; save the array as little-endian float32 or float64 (`<f4` or `<f8`)"));
        }
    };
    match dict_value(text, "fortran_order") {
        Some("False") => {}
        Some("True") => return Err("the array is in Fortran order; save it in C order (np.ascontiguousarray)".into()),
        _ => return Err("the .npy header has no valid `fortran_order`".into()),
    }
    let shape = dict_value(text, "shape").ok_or("the .npy header has no `shape`")?;
    let dims: Vec<&str> = shape
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("the .npy `shape` is not a tuple")?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if dims.len() != 2 {
        return Err(format!("the array has {} dimensions; it must be 2-D (rows x columns, target last)", dims.len()));
    }
    let dim = |s: &str| s.parse::<usize>().map_err(|_| format!("the .npy shape entry `{s}` is not a size"));
    Ok(NpyHeader { width, rows: dim(dims[0])?, cols: dim(dims[1])?, data_offset })
}

fn read_npy_header(reader: &mut impl Read) -> Result<NpyHeader, String> {
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic).map_err(|_| "too short for a .npy file".to_string())?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (len, prefix) = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b).map_err(|_| "truncated .npy header".to_string())?;
            (u16::from_le_bytes(b) as usize, 10u64)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            reader.read_exact(&mut b).map_err(|_| "truncated .npy header".to_string())?;
            (u32::from_le_bytes(b) as usize, 12u64)
        }
        v => return Err(format!(".npy format version {v} is not supported (1, 2 or 3)")),
    };
    if len > MAX_NPY_HEADER {
        return Err(format!("the .npy header claims {len} bytes; at most {MAX_NPY_HEADER} are accepted"));
    }
    let mut header = vec![0u8; len];
    reader.read_exact(&mut header).map_err(|_| "truncated .npy header".to_string())?;
    parse_npy_header(&header, prefix + len as u64)
}

fn load_npy(path: &str, layout: Layout, sample_seed: Option<u64>, sink: &mut dyn FeatureSink) -> Result<Dataset, Error> {
    let file = File::open(path).map_err(|e| Error::file(path, read_error(e)))?;
    let file_len = file.metadata().map_err(|e| Error::file(path, read_error(e)))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let h = read_npy_header(&mut reader).map_err(|e| Error::file(path, e))?;
    let (features, has_target) = shape(layout, h.cols).map_err(|e| Error::file(path, format!("the array {e}")))?;
    if h.rows == 0 {
        return Err(Error::file(path, "has no data rows (shape has 0 rows); it needs at least one row"));
    }
    let data_bytes = (h.rows as u64)
        .checked_mul(h.cols as u64)
        .and_then(|n| n.checked_mul(h.width as u64))
        .ok_or_else(|| Error::file(path, "the .npy shape is too large"))?;
    let have = file_len.saturating_sub(h.data_offset);
    if have < data_bytes {
        return Err(Error::file(path, format!("truncated: the shape needs {data_bytes} data bytes but the file has {have}")));
    }
    if have > data_bytes {
        return Err(Error::file(path, format!("has {} bytes after the array data; the file is corrupt", have - data_bytes)));
    }
    let mut collector = Collector::new(path, h.rows, features, has_target, sample_seed, sink)?;
    let row_bytes = h.cols * h.width;
    // Whole rows are read a block at a time (at most TRANSFER_CHUNK_BYTES, one `read_exact`).
    let block_rows = (TRANSFER_CHUNK_BYTES / row_bytes.max(1)).clamp(1, h.rows);
    let mut block = vec![0u8; block_rows * row_bytes];
    let mut values = vec![0f64; h.cols];
    let mut row = 0;
    while row < h.rows {
        let n = block_rows.min(h.rows - row);
        let raw = &mut block[..n * row_bytes];
        reader.read_exact(raw).map_err(|e| Error::file(path, format!("cannot read rows {}-{}: {e}", row + 1, row + n)))?;
        for raw_row in raw.chunks_exact(row_bytes) {
            // The common case: `<f4` values, all finite (no exponent of all ones).
            if h.width == 4 && raw_row.chunks_exact(4).all(|b| b[3] & 0x7f != 0x7f || b[2] & 0x80 == 0) {
                collector.push_f4_row(raw_row)?;
                row += 1;
                continue;
            }
            for (c, (v, b)) in values.iter_mut().zip(raw_row.chunks_exact(h.width)).enumerate() {
                *v = if h.width == 4 {
                    f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                } else {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                };
                if v.is_nan() {
                    return Err(Error::file(path, format!("row {}, column {}: NaN is not allowed", row + 1, c + 1)));
                }
                if v.is_infinite() {
                    return Err(Error::file(path, format!("row {}, column {}: infinite values are not allowed", row + 1, c + 1)));
                }
            }
            collector.push_row(&values, None)?;
            row += 1;
        }
    }
    collector.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> String {
        let dir = std::env::temp_dir().join(format!("guest-rust-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn csv(name: &str, text: &str, layout: Layout) -> Result<(Dataset, Vec<f32>), Error> {
        let p = temp(name, text.as_bytes());
        let mut sink = VecSink::default();
        load(&p, layout, Some(42), &mut sink).map(|d| (d, sink.values))
    }

    #[test]
    fn number_syntax() {
        for ok in ["1", "-1", "+1.5", ".5", "5.", "1e5", "1E-5", "-.5e+3", "007"] {
            assert!(is_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", ".", "+", "e5", "1e", "1e+", "nan", "NaN", "inf", "-inf", "0x10", "1.2.3", "1 2", "1,", "--1"] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn reads_csv_with_target_last() {
        let (d, x) = csv("ok.csv", "a,b,y\n1, 2 ,3\r\n\n-0.0,.5,6\n", Layout::Train).unwrap();
        assert_eq!((d.rows, d.features), (2, 2));
        assert_eq!(x, vec![1.0, 2.0, 0.0, 0.5]);
        assert!(x[2].is_sign_positive());
        assert_eq!(d.targets, Some(vec![3.0, 6.0]));
        assert_eq!(d.sample, vec![vec![1.0, 0.0], vec![2.0, 0.5]]);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let e = csv("ragged.csv", "a,b,y\n1,2,3\n1,2\n", Layout::Train).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.what.contains("2 fields"), "{}", e.what);
        let e = csv("nan.csv", "a,b,y\n1,2,3\n\n1,nan,3\n", Layout::Train).unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.what.contains("`nan`"), "{}", e.what);
        let e = csv("word.csv", "a,b,y\n1,abc,3\n", Layout::Train).unwrap_err();
        assert_eq!((e.line, e.file.ends_with("word.csv")), (Some(2), true));
        let e = csv("empty_field.csv", "a,b,y\n1,,3\n", Layout::Train).unwrap_err();
        assert!(e.what.contains("empty"), "{}", e.what);
        let e = csv("overflow.csv", "a,b,y\n1,1e400,3\n", Layout::Train).unwrap_err();
        assert!(e.what.contains("overflows"), "{}", e.what);
        let e = csv("f32.csv", "a,b,y\n1,1e300,3\n", Layout::Train).unwrap_err();
        assert!(e.what.contains("f32"), "{}", e.what);
        let e = csv("long.csv", "a,b,y\n1,2,3,4\n", Layout::Train).unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = csv("nul.csv", "a,b,y\n1,2,3\n1,2\x003,4\n", Layout::Train).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.what.contains("NUL"), "{}", e.what);
    }

    #[test]
    fn negative_zero_target_becomes_positive() {
        let (d, _) = csv("negzero.csv", "a,y\n1,-0.0\n2,5\n", Layout::Train).unwrap();
        let y = d.targets.unwrap();
        assert!(y[0] == 0.0 && y[0].is_sign_positive());
    }

    #[test]
    fn empty_inputs_are_rejected() {
        assert!(csv("e1.csv", "", Layout::Train).unwrap_err().what.contains("header"));
        assert!(csv("e2.csv", "a,b,y\n\n\n", Layout::Train).unwrap_err().what.contains("no data rows"));
        assert!(csv("e3.csv", "y\n1\n", Layout::Train).unwrap_err().what.contains("at least one feature"));
        let missing = std::env::temp_dir().join("guest-rust-definitely-missing.csv");
        let e = load(missing.to_str().unwrap(), Layout::Train, None, &mut VecSink::default()).unwrap_err();
        assert!(e.what.contains("no such file"), "{}", e.what);
    }

    #[test]
    fn apply_layout_accepts_with_and_without_target() {
        let (d, _) = csv("t1.csv", "a,b\n1,2\n", Layout::Apply { features: 2 }).unwrap();
        assert_eq!(d.targets, None);
        let (d, _) = csv("t2.csv", "a,b,y\n1,2,3\n", Layout::Apply { features: 2 }).unwrap();
        assert_eq!(d.targets, Some(vec![3.0]));
        let e = csv("t3.csv", "a,b,c,d\n1,2,3,4\n", Layout::Apply { features: 2 }).unwrap_err();
        assert!(e.what.contains("trained on 2 features"), "{}", e.what);
    }

    fn npy(descr: &str, shape: &str, data: &[u8], version: u8) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let prefix = if version == 1 { 10 } else { 12 };
        while (prefix + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY".to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_npy_f8_and_f4() {
        let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = temp("a.npy", &npy("<f8", "(2, 3)", &data, 1));
        let mut sink = VecSink::default();
        let d = load(&p, Layout::Train, Some(42), &mut sink).unwrap();
        assert_eq!((d.rows, d.features), (2, 2));
        assert_eq!(sink.values, vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(d.targets, Some(vec![3.0, 6.0]));

        let data: Vec<u8> = [1.5f32, -0.0, 7.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = temp("b.npy", &npy("<f4", "(1, 3)", &data, 2));
        let mut sink = VecSink::default();
        let d = load(&p, Layout::Train, None, &mut sink).unwrap();
        assert_eq!(sink.values, vec![1.5, 0.0]);
        assert!(sink.values[1].is_sign_positive());
        assert_eq!(d.targets, Some(vec![7.0]));
        assert!(d.sample.is_empty());
    }

    #[test]
    fn npy_errors() {
        let nan: Vec<u8> = [1.0f64, f64::NAN, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = temp("nan.npy", &npy("<f8", "(1, 3)", &nan, 1));
        let e = load(&p, Layout::Train, None, &mut VecSink::default()).unwrap_err();
        assert!(e.what.contains("row 1, column 2: NaN"), "{}", e.what);

        // `<f4` rows take the fast path unless a value is NaN or infinite.
        for (bad, what) in [(f32::INFINITY, "row 2, column 1: infinite"), (f32::NAN, "row 2, column 1: NaN")] {
            let data: Vec<u8> = [1.0f32, 2.0, 3.0, bad, f32::NEG_INFINITY, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
            let p = temp("bad-f4.npy", &npy("<f4", "(2, 3)", &data, 1));
            let e = load(&p, Layout::Train, None, &mut VecSink::default()).unwrap_err();
            assert!(e.what.contains(what), "{}", e.what);
        }

        let short = &npy("<f8", "(2, 3)", &nan, 1);
        let p = temp("short.npy", short);
        assert!(load(&p, Layout::Train, None, &mut VecSink::default()).unwrap_err().what.contains("truncated"));

        let p = temp("i8.npy", &npy("<i8", "(1, 3)", &nan, 1));
        assert!(load(&p, Layout::Train, None, &mut VecSink::default()).unwrap_err().what.contains("not supported"));

        let p = temp("3d.npy", &npy("<f8", "(1, 3, 1)", &nan, 1));
        assert!(load(&p, Layout::Train, None, &mut VecSink::default()).unwrap_err().what.contains("2-D"));

        let p = temp("bad.npy", b"hello");
        assert!(load(&p, Layout::Train, None, &mut VecSink::default()).unwrap_err().what.contains(".npy"));
    }

    #[test]
    fn sink_gets_whole_row_chunks_in_order() {
        struct Check(usize, usize);
        impl FeatureSink for Check {
            fn begin(&mut self, _rows: usize, features: usize) -> Result<(), String> {
                self.1 = features;
                Ok(())
            }
            fn write_rows(&mut self, first_row: usize, values: &[f32]) -> Result<(), String> {
                assert_eq!(first_row, self.0);
                assert_eq!(values.len() % self.1, 0);
                self.0 += values.len() / self.1;
                Ok(())
            }
        }
        let rows = 70_000usize;
        let mut text = String::from("a,b,c,d,y\n");
        for r in 0..rows {
            text.push_str(&format!("{r},1,2,3,4\n"));
        }
        let p = temp("big.csv", text.as_bytes());
        let mut check = Check(0, 0);
        let d = load(&p, Layout::Train, None, &mut check).unwrap();
        assert_eq!((check.0, d.rows), (rows, rows));
    }
}
