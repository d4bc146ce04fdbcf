//! `pprofhouse`: the command-line entry point. Each subcommand lives in `cli/`.
use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // Deployed as an AWS Lambda `bootstrap` (provided.al2023): run the trigger, settings from env.
    if pprofhouse_ingest::cli::invoked_as_bootstrap() {
        return cli::run_bootstrap();
    }
    if let Err(e) = cli::apply_config_file() {
        eprintln!("pprofhouse: {e:#}");
        return ExitCode::FAILURE;
    }
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
