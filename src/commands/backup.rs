//! `pgbackup backup`: one run over the configured databases.
//!
//! Per database: pg_dump -> gzip -> SHA-256 -> temp file in the database directory; then the
//! sidecar and manifest (each temp + fsync + rename), then fsync and rename of the data file (the
//! commit point), then fsync of the directory. Any failure before the rename leaves nothing that
//! a reader could take for a backup. One database failing does not stop the others.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use crate::catalog::{self, Manifest};
use crate::cli::BackupArgs;
use crate::commands::{human_bytes, write_metrics};
use crate::config::{Config, Database, EnvFn};
use crate::conninfo::ConnInfo;
use crate::error::{Error, Result, EXIT_FAILED};
use crate::ops::backup::{backup_one, Outcome};
use crate::ops::prune;
use crate::postgres::{PgTools, Psql, Target};
use crate::s3::S3Store;
use crate::source::PgDump;
use crate::storage::{LocalStorage, Storage};
use crate::{log, notify};

/// Run a backup of every selected database; record the outcome in the state and metrics file.
/// The metrics and sd-notify say the outcome even when the state file cannot be written (a full
/// backup root), and a state file that cannot be written fails the run (exit 73).
pub fn run(cfg: &Config, args: &BackupArgs, env: EnvFn) -> Result<()> {
    let unsaved = std::cell::RefCell::new(None);
    let result = run_databases(cfg, args, env, &unsaved);
    // Another run holds the lock: that run reports, this one changes nothing.
    if matches!(result, Err(Error::Locked { .. })) {
        return result;
    }
    let ok = result.is_ok() && unsaved.borrow().is_none();
    if let Err(e) = write_metrics(cfg, |st| {
        st.last_run_at = Some(Utc::now());
        st.last_run_ok = Some(ok);
    }) {
        if ok {
            // The metrics just said success; they must say what the exit code will.
            let mut st = crate::state::load(&cfg.local_dir);
            st.last_run_at = Some(Utc::now());
            st.last_run_ok = Some(false);
            crate::commands::render_metrics(cfg, &st);
        }
        unsaved.borrow_mut().get_or_insert(e);
    }
    match (result, unsaved.into_inner()) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(e)) => {
            notify::status(&format!("failed: {e}"));
            Err(e)
        }
        (Ok(()), None) => Ok(()),
    }
}

/// Where a failure to write the state file is kept until the run ends.
type Unsaved = std::cell::RefCell<Option<Error>>;

fn record(
    cfg: &Config,
    db: &str,
    outcome: std::result::Result<&Manifest, &Error>,
    unsaved: &Unsaved,
) {
    let now = Utc::now();
    let saved = write_metrics(cfg, |st| {
        let s = st.databases.entry(db.to_string()).or_default();
        s.runs_total += 1;
        s.last_run_at = Some(now);
        match outcome {
            Ok(m) => {
                s.last_run_ok = Some(true);
                s.last_error = None;
                s.last_success_at = Some(m.finished_at);
                s.last_duration_secs = Some(m.duration_secs);
                s.last_size_bytes = Some(m.compressed_bytes);
            }
            Err(e) => {
                s.last_run_ok = Some(false);
                s.failures_total += 1;
                s.last_failure_at = Some(now);
                s.last_error = Some(e.to_string());
            }
        }
    });
    if let Err(e) = saved {
        log::error(&format!("{db}: the outcome could not be recorded: {e}"));
        unsaved.borrow_mut().get_or_insert(e);
    }
}

/// The longest `--description` a backup takes (it lands in manifests, lists and metrics).
pub const MAX_DESCRIPTION: usize = 1000;

fn run_databases(cfg: &Config, args: &BackupArgs, env: EnvFn, unsaved: &Unsaved) -> Result<()> {
    for w in &cfg.warnings {
        log::warn(w);
    }
    if let Some(d) = &args.description {
        let n = d.chars().count();
        if n > MAX_DESCRIPTION {
            return Err(Error::Usage(format!(
                "--description is {n} characters long; at most {MAX_DESCRIPTION} are kept in the manifest"
            )));
        }
    }
    let force = args.force
        || crate::config::env::get(&mut |n| env(n), "force")
            .is_some_and(|(v, _)| matches!(v.as_str(), "1" | "true" | "yes" | "on"));
    let _lock = super::lock_root(cfg)?;
    notify::ready("pgbackup: starting backup");
    // What killed runs left outside the database directories: a state write or a download in
    // the root, a metrics write in the textfile directory (ours only; young ones may be a run
    // going on now).
    for (dir, prefix, age) in [
        (&cfg.local_dir, crate::catalog::TEMP_PREFIX, 3600),
        (&cfg.textfile_dir, ".pgbackup.prom.", 600),
    ] {
        match crate::fsutil::clean_stale_temp(dir, prefix, Duration::from_secs(age)) {
            Ok(removed) => {
                for r in removed {
                    log::info(&format!(
                        "removed debris of an interrupted run: {}",
                        dir.join(r).display()
                    ));
                }
            }
            Err(e) => log::debug(&format!("cannot clean {}: {e}", dir.display())),
        }
    }
    let tools = cfg.tools();
    let dump_version = tools.pg_dump_version()?;
    let databases = resolve_databases(cfg, &tools)?;
    let selected = select(databases, &args.databases)?;
    if selected.is_empty() {
        log::warn("no database to back up: the server has no connectable non-template database");
    }
    let policy = prune::policy_with(cfg, args.retention);
    let s3 = super::s3_stores(cfg)?.into_iter().next();
    let local = LocalStorage::new(&cfg.local_dir);
    // With keep-local = false the dump streams straight into S3; otherwise it is written
    // locally and uploaded after the local commit.
    let primary: &dyn Storage = match &s3 {
        Some(store) if !store.keep_local() => store,
        _ => &local,
    };

    let total = selected.len();
    let mut failed: Vec<(String, u8)> = Vec::new();
    for (i, db) in selected.iter().enumerate() {
        if crate::signals::interrupted().is_some() {
            break;
        }
        notify::status(&format!("backing up {} ({}/{total})", db.name(), i + 1));
        let mut source = PgDump::of(cfg, &tools, &dump_version, db, crate::signals::root());
        match backup_one(
            cfg,
            db.name(),
            &mut source,
            force,
            args.description.as_deref(),
            primary,
        ) {
            Ok(Outcome::Done { path, manifest }) => {
                let rate = manifest.raw_bytes as f64 / manifest.duration_secs.max(0.001);
                log::info(&format!(
                    "{}: backup complete: {} ({}, {} uncompressed, {} tables, {:.1} s, {}/s)",
                    db.name(),
                    path,
                    human_bytes(manifest.compressed_bytes),
                    human_bytes(manifest.raw_bytes),
                    manifest.tables.len(),
                    manifest.duration_secs,
                    human_bytes(rate as u64),
                ));
                // Off-site copy: data first, then sidecar and manifest.
                if let Some(store) = s3.as_ref().filter(|s| s.keep_local()) {
                    match upload_backup(store, &cfg.local_dir, &manifest) {
                        Ok(bytes) => log::info(&format!(
                            "{}: uploaded {} to {}",
                            db.name(),
                            human_bytes(bytes),
                            store.location()
                        )),
                        Err(e) => {
                            log::error(&format!(
                                "{}: upload failed: {e}; the local backup {} is complete",
                                db.name(),
                                path
                            ));
                            record(cfg, db.name(), Err(&e), unsaved);
                            failed.push((db.name().to_string(), e.exit_code()));
                            continue;
                        }
                    }
                }
                record(cfg, db.name(), Ok(&manifest), unsaved);
                // Retention only after this database's backup succeeded (and was uploaded).
                let pruned = prune::prune_all(
                    cfg,
                    s3.as_ref(),
                    db.name(),
                    &policy,
                    Utc::now(),
                    false,
                    Some(&manifest.file),
                );
                match pruned {
                    Ok(rows) => {
                        for r in &rows {
                            match (r.action, &r.locked_until) {
                                ("delete", _) => log::info(&format!(
                                    "{}: retention deleted {} ({})",
                                    db.name(),
                                    r.file,
                                    r.location
                                )),
                                ("locked", Some(until)) => log::info(&format!(
                                    "{}: retention kept {} ({}): locked until {until}",
                                    db.name(),
                                    r.file,
                                    r.location
                                )),
                                _ => {}
                            }
                        }
                    }
                    Err(e) => {
                        log::error(&format!(
                            "{}: retention failed: {e}; the new backup is safe, old ones were not all deleted",
                            db.name()
                        ));
                        failed.push((db.name().to_string(), e.exit_code()));
                    }
                }
            }
            Ok(Outcome::Skipped { reason }) => {
                log::info(&format!("{}: skipped: {reason}", db.name()));
            }
            Err(e) => {
                log::error(&format!("{}: backup failed: {e}", db.name()));
                record(cfg, db.name(), Err(&e), unsaved);
                failed.push((db.name().to_string(), e.exit_code()));
            }
        }
    }
    if let Some(sig) = crate::signals::interrupted() {
        return Err(Error::Interrupted(sig));
    }
    if failed.is_empty() {
        notify::status(&format!("backup finished: {total} database(s) ok"));
        return Ok(());
    }
    // One code for all failures when they agree, else the generic one.
    let code = if failed.iter().all(|(_, c)| *c == failed[0].1) {
        failed[0].1
    } else {
        EXIT_FAILED
    };
    Err(Error::BackupsFailed {
        failed: failed.len(),
        total,
        names: failed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        code,
    })
}

/// Upload a committed local backup: the data object, then the sidecar, then the manifest.
fn upload_backup(store: &S3Store, root: &Path, manifest: &Manifest) -> Result<u64> {
    let db = &manifest.database;
    let dir = catalog::db_dir(root, db);
    let bytes = store.upload_file(&dir.join(&manifest.file), &store.key_of(db, &manifest.file))?;
    for suffix in [".sha256", ".json"] {
        let name = format!("{}{suffix}", manifest.file);
        let path = dir.join(&name);
        let content = std::fs::read(&path).map_err(|source| Error::Input {
            what: "backup file",
            path,
            source,
        })?;
        store.put(&store.key_of(db, &name), &content)?;
    }
    Ok(bytes)
}

/// The configured databases, or in zero-config mode every connectable non-template database of
/// the server that libpq's defaults reach (directory names escaped by `escape_db_name`).
pub fn resolve_databases(cfg: &Config, tools: &PgTools) -> Result<Vec<Database>> {
    if !cfg.databases.is_empty() {
        return Ok(cfg.databases.clone());
    }
    let base_db = std::env::var("PGDATABASE").unwrap_or_else(|_| "postgres".into());
    let server = Target {
        name: "(default server)".into(),
        conn: ConnInfo::from_pairs(vec![("dbname".into(), base_db)]),
        password: None,
    };
    let names = Psql::new(tools, &server).list_databases()?;
    Ok(names
        .into_iter()
        .map(|datname| {
            let mut conn = ConnInfo::default();
            conn.set("dbname", &datname);
            Database {
                target: Target {
                    name: catalog::escape_db_name(&datname),
                    conn,
                    password: None,
                },
                extensions: Vec::new(),
                pg_dump_args: Vec::new(),
                password_source: None,
            }
        })
        .collect())
}

fn select(all: Vec<Database>, wanted: &[String]) -> Result<Vec<Database>> {
    if wanted.is_empty() {
        return Ok(all);
    }
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|w| !all.iter().any(|d| d.name() == w.as_str()))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = all.iter().map(Database::name).collect();
        return Err(Error::Usage(format!(
            "unknown database {}; configured: {}",
            unknown
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", "),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    Ok(all
        .into_iter()
        .filter(|d| wanted.iter().any(|w| w == d.name()))
        .collect())
}
