//! `pgbackup backup`: one run over the configured databases.
//!
//! Per database: pg_dump -> gzip -> SHA-256 -> temp file in the database directory; then the
//! sidecar and manifest (each temp + fsync + rename), then fsync and rename of the data file (the
//! commit point), then fsync of the directory. Any failure before the rename leaves nothing that
//! a reader could take for a backup. One database failing does not stop the others.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::catalog::{self, BackupName, Kind, Manifest, MANIFEST_VERSION};
use crate::cli::BackupArgs;
use crate::commands::{human_bytes, prune, write_metrics};
use crate::config::{Config, Database, EnvFn};
use crate::conninfo::ConnInfo;
use crate::error::{Error, Result, EXIT_FAILED};
use crate::pipeline::{self, PipelineError};
use crate::postgres::{PgTools, Psql, Target};
use crate::s3::{S3Failure, S3Store};
use crate::source::{PgDump, Source};
use crate::storage::{LocalStorage, Storage};
use crate::{log, notify};

/// How often progress goes to sd-notify and the debug log.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What happened to one database.
#[derive(Debug)]
pub enum Outcome {
    /// A new backup exists.
    Done {
        /// Its data file (path or URL).
        path: String,
        /// Its manifest.
        manifest: Box<Manifest>,
    },
    /// Respawn protection: the last backup is recent.
    Skipped {
        /// Why, in words.
        reason: String,
    },
}

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
        let mut source = PgDump::new(
            &tools,
            &dump_version,
            &db.target,
            &db.pg_dump_args,
            cfg.dump_timeout,
        );
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
    let bytes = store.upload_file(&dir.join(&manifest.file), db, &manifest.file)?;
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

/// A failed write of the backup stream: an S3 failure comes out as itself, anything else
/// (disk full, I/O error) as a write error on the backup file.
fn write_error(e: std::io::Error, dest: &str) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<S3Failure>()) {
        let inner = e.into_inner().expect("checked above");
        return Error::S3(*inner.downcast::<S3Failure>().expect("checked above"));
    }
    Error::Output {
        what: "backup file",
        path: PathBuf::from(dest),
        source: e,
    }
}

/// Back up one database. On any error nothing new is visible under a backup name.
/// `source` produces the stream (pg_dump for a configured database; a scripted source in the
/// fast tier); it is not started when respawn protection skips the backup.
pub fn backup_one(
    cfg: &Config,
    name: &str,
    source: &mut dyn Source,
    force: bool,
    description: Option<&str>,
    store: &dyn Storage,
) -> Result<Outcome> {
    for removed in LocalStorage::new(&cfg.local_dir).clean_incomplete(name)? {
        log::info(&format!(
            "{name}: removed debris of an interrupted run: {removed}"
        ));
    }

    let now = Utc::now();
    let complete = store.complete_backups(name)?;
    for future in complete
        .iter()
        .filter(|b| crate::retention::is_future(b.name.timestamp, now))
    {
        log::warn(&format!(
            "{name}: backup {} is dated in the future ({} > now): a clock was or is wrong; it is kept, and ignored for respawn protection, freshness and retention counts",
            future.name.file_name(),
            future.name.timestamp.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    if cfg.respawn_protection_hours > 0 && !force {
        // A backup dated in the future says nothing about how recent the last one is.
        if let Some(latest) = complete
            .iter()
            .rfind(|b| !crate::retention::is_future(b.name.timestamp, now))
        {
            let age = Utc::now() - latest.name.timestamp;
            let limit = chrono::Duration::hours(i64::from(cfg.respawn_protection_hours));
            if age < limit {
                return Ok(Outcome::Skipped {
                    reason: format!(
                        "last backup {} is {} old, younger than respawn-protection-hours = {}; use --force to back up anyway",
                        latest.name.file_name(),
                        super::human_age(age),
                        cfg.respawn_protection_hours
                    ),
                });
            }
        }
    }

    let info = source.facts()?;
    let server_version = info.server_version.clone();
    let db_size = info.size;

    // A free name: two runs within one second must not overwrite each other.
    let started_at = Utc::now();
    let mut ts = started_at;
    let chain = cfg.chain();
    let files = store.files(name)?;
    let previous = catalog::backups_in(name, &files)
        .into_iter()
        .rfind(|b| b.has_sidecar);
    let existing: HashSet<String> = files.into_iter().map(|f| f.name).collect();
    let backup_name = loop {
        let n = BackupName::new(name, ts, Kind::of(&chain));
        let taken = [n.file_name(), n.sidecar_name(), n.manifest_name()]
            .iter()
            .any(|f| existing.contains(f));
        if !taken {
            break n;
        }
        ts += chrono::Duration::seconds(1);
    };
    let file = backup_name.file_name();
    let final_path = store.describe(name, &file);

    // An upper estimate of the compressed size, from which S3 fixes its part size: four times
    // the previous backup (room to grow), else the database's size on disk.
    let size_hint = match previous {
        Some(prev) => Some(prev.size.saturating_mul(4)),
        None => db_size,
    };
    let writer = store.create(&store.key_of(name, &file), size_hint)?;
    let clock = Instant::now();
    let stdout = source.start()?;
    let result = pipeline::run(
        stdout,
        writer,
        chain.compression,
        PROGRESS_EVERY,
        |raw, written| {
            let rate = raw as f64 / clock.elapsed().as_secs_f64().max(0.001);
            let msg = format!(
                "backing up {name}: {} read, {} written, {}/s",
                human_bytes(raw),
                human_bytes(written),
                human_bytes(rate as u64)
            );
            notify::progress(&msg);
            log::debug(&msg);
        },
    );
    let (writer, out) = match result {
        Ok(done) => done,
        Err(PipelineError::Write(e)) => {
            source.kill();
            let _ = source.finish(true);
            return Err(write_error(e, &final_path));
        }
        Err(PipelineError::Read(e)) => {
            source.kill();
            source.finish(true)?;
            return Err(Error::Dump(crate::postgres::DumpError::Failed {
                db: name.to_string(),
                status: "read error".into(),
                detail: e.to_string(),
            }));
        }
    };
    source.finish(out.complete)?;
    let finished_at = Utc::now();
    let origin = source.origin();

    let manifest = Manifest {
        format_version: MANIFEST_VERSION,
        database: name.to_string(),
        dbname: origin.dbname,
        host: origin.host,
        file: backup_name.file_name(),
        server_version,
        pg_dump_version: origin.program_version,
        started_at,
        finished_at,
        duration_secs: clock.elapsed().as_secs_f64(),
        compressed_bytes: out.compressed_bytes,
        raw_bytes: out.raw_bytes,
        sha256: out.sha256.clone(),
        compression: chain.compression.name().into(),
        compression_level: chain.compression.level(),
        dump_format: chain.format.name().into(),
        stages: chain.stages(),
        description: description.map(str::to_string),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tables: out.tables,
        extensions: info.extensions,
        database_properties: info.properties,
        verifications: Vec::new(),
        extra: serde_json::Map::new(),
    };
    let manifest_json = catalog::manifest_bytes(&manifest);

    // The storage commits in its own order (locally the data file's rename is the commit
    // point; in S3 the data object goes first and the sidecar makes it a backup).
    let sidecar = catalog::sidecar_line(&out.sha256, &file);
    store.commit_backup(
        name,
        &backup_name,
        writer,
        sidecar.as_bytes(),
        &manifest_json,
    )?;
    Ok(Outcome::Done {
        path: final_path,
        manifest: Box::new(manifest),
    })
}
