//! The `pgbackup` binary: parse the command line, run the command, map the error to an exit code.

use std::process::ExitCode;

use clap::Parser;
use pgbackup::cli::Cli;
use pgbackup::{commands, log, notify};

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::set_verbosity(cli.verbose as i8 - cli.quiet as i8);
    pgbackup::signals::install();
    match commands::dispatch(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = e.to_string();
            log::error(&msg);
            notify::status(&format!(
                "failed: {}",
                msg.lines().next().unwrap_or_default()
            ));
            ExitCode::from(e.exit_code())
        }
    }
}
