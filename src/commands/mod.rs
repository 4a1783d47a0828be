//! One module per subcommand, and the dispatcher.

pub mod backup;
pub mod config;
pub mod list;
pub mod restore;
pub mod verify;

use std::io::Write;

use crate::cli::{Cli, Command};
use crate::config::{process_env, Config};
use crate::error::Result;

/// Run the command `cli` asks for.
pub fn dispatch(cli: &Cli) -> Result<()> {
    let env = &process_env;
    match &cli.command {
        Command::Backup(args) => {
            let cfg = Config::load(cli.config.as_deref(), env)?;
            backup::run(&cfg, args, env)
        }
        Command::Verify(args) => {
            let cfg = Config::load(cli.config.as_deref(), env)?;
            verify::run(&cfg, args)
        }
        Command::Restore(args) => {
            let cfg = Config::load(cli.config.as_deref(), env)?;
            restore::run(&cfg, args)
        }
        Command::List(args) => {
            let cfg = Config::load(cli.config.as_deref(), env)?;
            list::run(&cfg, args)
        }
        Command::Config(c) => config::run(cli.config.as_deref(), c, env),
    }
}

/// Print to stdout; a closed pipe (`pgbackup list | head`) is not an error.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::error::Error::Output {
            what: "standard output",
            path: "-".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Bytes in human units (binary).
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A duration in words: minutes, hours or days.
pub(crate) fn human_age(d: chrono::Duration) -> String {
    let mins = d.num_minutes().max(0);
    match mins {
        m if m < 120 => format!("{m} min"),
        m if m < 48 * 60 => format!("{:.1} h", m as f64 / 60.0),
        m => format!("{:.1} days", m as f64 / 1440.0),
    }
}
