//! The `davgate` binary: parses arguments, sets up logging, dispatches.
//! Usage errors exit 2 (clap), every other failure 1 with one message.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = <cli::Cli as clap::Parser>::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let done = runtime.block_on(cli::dispatch(args));
    // Access lines still waiting in a batch, before the process ends.
    davgate::log_writer::write_waiting();
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("davgate: {e:#}");
            ExitCode::from(1)
        }
    }
}
