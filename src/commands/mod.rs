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
        let cfg = Config::load(path, env)?;
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
        Command::Check(args) => check::run(Config::load(cli.config.as_deref(), env), args),
        Command::Config(c) => config::run(cli.config.as_deref(), c, env),
        Command::Generate(g) => generate::run(g),
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

pub(crate) use crate::text::{escape_control, human_age, human_bytes};

/// Update the state file and rewrite the metrics file from the state in memory. The metrics are
/// written whatever happened to the state file; a state file that could not be written is
/// returned as the error (a run that cannot record its outcome has failed: the caller says so).
/// Failures to write the metrics file are logged (a missing textfile directory only at debug
/// level when it is the default).
pub(crate) fn write_metrics(
    cfg: &Config,
    f: impl FnOnce(&mut crate::state::State),
) -> std::result::Result<crate::state::State, crate::error::Error> {
    let root = &cfg.local_dir;
    let (state, saved) = if root.is_dir() {
        crate::state::update(root, f)
    } else {
        let mut st = crate::state::State::default();
        f(&mut st);
        (st, Ok(()))
    };
    render_metrics(cfg, &state);
    match saved {
        Ok(()) => Ok(state),
        Err(source) => Err(crate::error::Error::Output {
            what: "state file",
            path: root.join(crate::state::STATE_FILE),
            source,
        }),
    }
}

/// Write the metrics file for `state` (see [`write_metrics`]).
pub(crate) fn render_metrics(cfg: &Config, state: &crate::state::State) {
    if !cfg.textfile_dir.is_dir() {
        let msg = format!(
            "metrics not written: {} does not exist (install prometheus-node-exporter or set [metrics] textfile-dir)",
            cfg.textfile_dir.display()
        );
        if cfg.textfile_dir == std::path::Path::new(crate::config::DEFAULT_TEXTFILE_DIR) {
            crate::log::debug(&msg);
        } else {
            crate::log::warn(&msg);
        }
        return;
    }
    if let Err(e) = crate::metrics::write(&cfg.textfile_dir, state, &cfg.local_dir) {
        crate::log::warn(&format!(
            "cannot write {}: {e}",
            cfg.textfile_dir.join(crate::metrics::FILE_NAME).display()
        ));
    }
}

/// The database directories a command works on: those named with `--db` (checked against the
/// naming rule), or every one under the backup root.
pub(crate) fn selected_databases(cfg: &Config, named: &[String]) -> Result<Vec<String>> {
    if named.is_empty() {
        use crate::storage::Storage;
        return crate::storage::LocalStorage::reading(&cfg.local_dir).databases();
    }
    for db in named {
        if !crate::catalog::is_valid_dir_name(db) {
            return Err(crate::error::Error::Usage(format!(
                "\"{db}\" is not a database name pgbackup uses"
            )));
        }
    }
    Ok(named.to_vec())
}

pub(crate) use crate::ops::ensure_root;

/// Create the backup root (0700) and take the run lock.
pub(crate) fn lock_root(cfg: &Config) -> Result<crate::lock::RunLock> {
    ensure_root(cfg)?;
    crate::lock::RunLock::acquire(&cfg.local_dir)
}

/// The S3 stores to read: the configured bucket and prefix first, then the read-only
/// `list-prefixes`. Streamed uploads spool their parts in the backup root.
pub(crate) fn s3_stores(cfg: &Config) -> Result<Vec<crate::s3::S3Store>> {
    let Some(c) = &cfg.s3 else {
        return Ok(Vec::new());
    };
    let main = crate::s3::S3Store::new(c)?.with_spool_dir(&cfg.local_dir);
    let mut stores = main.legacy_stores();
    stores.insert(0, main);
    Ok(stores)
}

/// The newest complete backup of `db` that is not dated in the future: the local one, else
/// (when S3 is configured, e.g. with keep-local = false) the newest in S3. A backup named after
/// now (a clock that was ahead) says nothing about how fresh the backups are.
pub(crate) fn newest_backup(
    cfg: &Config,
    stores: &[crate::s3::S3Store],
    db: &str,
) -> Result<Option<crate::catalog::BackupName>> {
    use crate::storage::Storage;
    let now = chrono::Utc::now();
    // Read-only: a symlinked database directory is read (list does the same).
    if let Some(b) = crate::storage::LocalStorage::reading(&cfg.local_dir)
        .complete_backups(db)?
        .into_iter()
        .rfind(|b| !crate::retention::is_future(b.name.timestamp, now))
    {
        return Ok(Some(b.name));
    }
    for store in stores {
        if let Some(b) = store
            .complete_backups(db)?
            .into_iter()
            .rfind(|b| !crate::retention::is_future(b.name.timestamp, now))
        {
            return Ok(Some(b.name));
        }
    }
    Ok(None)
}

/// The complete local backups of `db` dated in the future (a clock that was or is wrong).
pub(crate) fn future_backups(cfg: &Config, db: &str) -> Vec<crate::catalog::BackupName> {
    let now = chrono::Utc::now();
    use crate::storage::Storage;
    crate::storage::LocalStorage::reading(&cfg.local_dir)
        .complete_backups(db)
        .unwrap_or_default()
        .into_iter()
        .filter(|b| crate::retention::is_future(b.name.timestamp, now))
        .map(|b| b.name)
        .collect()
}

/// Without `--db`, a command also covers the databases that only `stores` hold: add them,
/// sorted.
pub(crate) fn add_databases(
    stores: &[crate::s3::S3Store],
    named: &[String],
    databases: &mut Vec<String>,
) -> Result<()> {
    if !named.is_empty() {
        return Ok(());
    }
    for store in stores {
        for d in crate::storage::Storage::databases(store)? {
            if !databases.contains(&d) {
                databases.push(d);
            }
        }
    }
    databases.sort();
    Ok(())
}

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
