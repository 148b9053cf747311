//! The Rust `wasi:gpu` guest: a random-forest regressor that trains and predicts on the
//! host's GPU through the `wasi:gpu` interfaces, following docs/algorithm.md bit for bit
//! and docs/guests.md for its command line.

mod bins;
mod cli;
mod data;
mod error;
mod gpu;
mod model;
mod predictor;
mod rng;
mod trainer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = cli::main(&args);
    std::process::exit(code);
}
