//! The Rust `wasi:gpu` guest: a random-forest regressor that trains and predicts on the
//! host's GPU through the `wasi:gpu` interfaces, following docs/algorithm.md bit for bit
//! and docs/guests.md for its command line.

mod bins;
mod cli;
mod data;
mod error;
mod gpu;
mod model;
mod model_io;
mod predictor;
mod progress;
mod receipt;
mod report;
mod rng;
mod rounds;
mod shard;
mod trainer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = cli::main(&args);
    exit(code);
}

/// Ends the program with `code` (0, 1 or 2). Under WASI 0.2, std's `process::exit` can
/// only say ok or err, so non-zero codes go through `exit-with-code`.
fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(target_arch = "wasm32")]
    if code != 0 {
        wasip2::cli::exit::exit_with_code(code.clamp(1, 255) as u8);
    }
    std::process::exit(code)
}
