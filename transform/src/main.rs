//! `pprofhouse`: the command-line entry point. Each subcommand lives in `cli/`.
use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(&args.log);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pprofhouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}
