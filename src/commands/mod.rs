//! One module per subcommand, and the dispatcher.

pub mod backup;
pub mod check;
pub mod config;
pub mod generate;
pub mod list;
pub mod prune;
pub mod restore;
pub mod status;
pub mod verify;

use std::io::Write;

use crate::cli::{Cli, Command};
use crate::config::{process_env, Config};
use crate::error::Result;

/// Run the command `cli` asks for.
pub fn dispatch(cli: &Cli) -> Result<()> {
    let env = &process_env;
    let load = |path: Option<&std::path::Path>| {
        let cfg = loaded(Config::load(path, env)?);
        crate::fsutil::adopt_owner_of(&cfg.local_dir);
        Ok::<Config, crate::error::Error>(cfg)
    };
    match &cli.command {
        Command::Backup(args) => {
            let cfg = load(cli.config.as_deref())?;
            backup::run(&cfg, args, env)
        }
        Command::Verify(args) => {
            let cfg = load(cli.config.as_deref())?;
            verify::run(&cfg, args)
        }
        Command::Restore(args) => {
            let cfg = load(cli.config.as_deref())?;
            restore::run(&cfg, args)
        }
        Command::List(args) => {
            let cfg = load(cli.config.as_deref())?;
            list::run(&cfg, args)
        }
        Command::Prune(args) => {
            let cfg = load(cli.config.as_deref())?;
            prune::run(&cfg, args)
        }
        Command::Status(args) => {
            let cfg = load(cli.config.as_deref())?;
            status::run(&cfg, args)
        }
        // A health probe answers UNKNOWN (3) even for a broken config.
        Command::Check(args) => {
            check::run(Config::load(cli.config.as_deref(), env).map(loaded), args)
        }
        Command::Config(c) => config::run(cli.config.as_deref(), c, env),
        Command::Generate(g) => generate::run(g),
        Command::Serve { .. } => Err(crate::error::Error::Usage(
            "there is no `pgbackup serve` yet (a daemon with schedules and an HTTP API is planned); schedule backups with the systemd timers: systemctl enable --now pgbackup.timer pgbackup-verify.timer (systemctl edit pgbackup.timer to change OnCalendar=)".into(),
        )),
    }
}

/// A loaded configuration, its `[log]` applied to this process.
pub(crate) fn loaded(cfg: Config) -> Config {
    crate::log::configure(cfg.log_target, &cfg.syslog_socket);
    cfg
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

pub(crate) use crate::text::{escape_control, human_age, human_bytes};

/// Left-aligned columns, two spaces apart, trailing blanks trimmed.
pub(crate) fn render_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        // Padding by hand: `{:<w$}` panics for widths over 65,535.
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let pad = w.saturating_sub(c.chars().count());
                format!("{c}{}", " ".repeat(pad))
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
