//! The one error type of the guest: every failure names the file it concerns and,
//! for text inputs, the 1-based line, so `main` can print `error: <file>[:<line>]: <what>`.

use std::fmt;

/// A failure tied to a file (input data, model or output), reported to the user as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The path as the user gave it.
    pub file: String,
    /// 1-based line for CSV inputs, when the problem is on one line.
    pub line: Option<u64>,
    /// What went wrong and, where useful, what to change.
    pub what: String,
}

impl Error {
    /// An error about a whole file.
    pub fn file(file: &str, what: impl Into<String>) -> Self {
        Error { file: file.to_string(), line: None, what: what.into() }
    }

    /// An error about one line of a text file.
    pub fn line(file: &str, line: u64, what: impl Into<String>) -> Self {
        Error { file: file.to_string(), line: Some(line), what: what.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.what),
            None => write!(f, "{}: {}", self.file, self.what),
        }
    }
}

impl std::error::Error for Error {}
