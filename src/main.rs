//! The `pgbackup` binary: parse the command line, run the command, map the error to an exit code.

use std::process::ExitCode;

use clap::Parser;
use pgbackup::cli::Cli;
use pgbackup::{commands, log, notify};

fn main() -> ExitCode {
    // Installed a second time as `pgbackup-verify`: that name means `pgbackup verify`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called_as_verify = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "pgbackup-verify");
    if called_as_verify {
        args.insert(1, "verify".into());
    }
    // A panic is a bug, never an error path; if one happens it is still logged and reported.
    std::panic::set_hook(Box::new(|info| {
        log::error(&format!(
            "internal error (a bug in pgbackup, please report it): {info}"
        ));
        notify::status("failed: internal error");
    }));
    let cli = Cli::parse_from(args);
    log::set_verbosity(cli.verbose as i8 - cli.quiet as i8);
    log::set_color(match cli.color {
        pgbackup::cli::Color::Auto => log::ColorChoice::Auto,
        pgbackup::cli::Color::Always => log::ColorChoice::Always,
        pgbackup::cli::Color::Never => log::ColorChoice::Never,
    });
    pgbackup::signals::install();
    // The one TLS crypto provider (ring), installed before any connection is made.
    pgbackup::s3::http::install_crypto_provider();
    match commands::dispatch(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(pgbackup::error::Error::Silent(code)) => ExitCode::from(code),
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
