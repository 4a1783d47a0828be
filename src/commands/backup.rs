//! `pgbackup backup`: one run over the configured databases.
//!
//! Per database: pg_dump -> gzip -> SHA-256 -> temp file in the database directory; then the
//! sidecar and manifest (each temp + fsync + rename), then fsync and rename of the data file (the
//! commit point), then fsync of the directory. Any failure before the rename leaves nothing that
//! a reader could take for a backup. One database failing does not stop the others.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::catalog::{self, BackupName, Kind, Manifest, MANIFEST_VERSION};
use crate::cli::BackupArgs;
use crate::commands::{human_bytes, prune, write_metrics};
use crate::config::{Config, Database, EnvFn};
use crate::conninfo::ConnInfo;
use crate::error::{Error, Result, EXIT_FAILED};
use crate::fsutil;
use crate::pipeline::{self, PipelineError};
use crate::postgres::{major_version, DumpProcess, PgError, PgTools, Psql, Target};
use crate::s3::{S3Failure, S3Store};
use crate::{log, notify};

/// How often progress goes to sd-notify and the debug log.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What happened to one database.
#[derive(Debug)]
pub enum Outcome {
    /// A new backup exists.
    Done {
        /// Its data file.
        path: PathBuf,
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
pub fn run(cfg: &Config, args: &BackupArgs, env: EnvFn) -> Result<()> {
    let result = run_databases(cfg, args, env);
    // Another run holds the lock: that run reports, this one changes nothing.
    if !matches!(result, Err(Error::Locked { .. })) {
        let ok = result.is_ok();
        write_metrics(cfg, |st| {
            st.last_run_at = Some(Utc::now());
            st.last_run_ok = Some(ok);
        });
    }
    result
}

fn record(cfg: &Config, db: &str, outcome: std::result::Result<&Manifest, &Error>) {
    let now = Utc::now();
    write_metrics(cfg, |st| {
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
}

fn run_databases(cfg: &Config, args: &BackupArgs, env: EnvFn) -> Result<()> {
    for w in &cfg.warnings {
        log::warn(w);
    }
    let force = args.force
        || env("FORCE_BACKUP").is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"));
    let _lock = super::lock_root(cfg)?;
    notify::ready("pgbackup: starting backup");
    let tools = cfg.tools();
    let dump_version = tools.pg_dump_version()?;
    let databases = resolve_databases(cfg, &tools)?;
    let selected = select(databases, &args.databases)?;
    if selected.is_empty() {
        log::warn("no database to back up: the server has no connectable non-template database");
    }
    let policy = prune::policy_with(cfg, args.retention);
    let s3 = cfg.s3.as_ref().map(S3Store::new).transpose()?;

    let total = selected.len();
    let mut failed: Vec<(String, u8)> = Vec::new();
    for (i, db) in selected.iter().enumerate() {
        if crate::signals::interrupted().is_some() {
            break;
        }
        notify::status(&format!("backing up {} ({}/{total})", db.name(), i + 1));
        match backup_one(
            cfg,
            &tools,
            &dump_version,
            db,
            force,
            args.description.as_deref(),
        ) {
            Ok(Outcome::Done { path, manifest }) => {
                let rate = manifest.raw_bytes as f64 / manifest.duration_secs.max(0.001);
                log::info(&format!(
                    "{}: backup complete: {} ({}, {} uncompressed, {} tables, {:.1} s, {}/s)",
                    db.name(),
                    path.display(),
                    human_bytes(manifest.compressed_bytes),
                    human_bytes(manifest.raw_bytes),
                    manifest.tables.len(),
                    manifest.duration_secs,
                    human_bytes(rate as u64),
                ));
                // Off-site copy: data first, then sidecar and manifest.
                if let Some(store) = &s3 {
                    match upload_backup(store, &path, db.name()) {
                        Ok(bytes) => log::info(&format!(
                            "{}: uploaded {} to {}",
                            db.name(),
                            human_bytes(bytes),
                            store.location()
                        )),
                        Err(e) => {
                            let e = Error::S3(e);
                            log::error(&format!(
                                "{}: upload failed: {e}; the local backup {} is complete",
                                db.name(),
                                path.display()
                            ));
                            record(cfg, db.name(), Err(&e));
                            failed.push((db.name().to_string(), e.exit_code()));
                            continue;
                        }
                    }
                }
                record(cfg, db.name(), Ok(&manifest));
                // Retention only after this database's backup succeeded (and was uploaded).
                let pruned = prune::prune_db(&cfg.local_dir, db.name(), &policy, Utc::now(), false)
                    .map_err(|e| e.to_string())
                    .and_then(|mut rows| {
                        if let Some(store) = &s3 {
                            rows.extend(
                                prune::prune_s3(store, db.name(), &policy, Utc::now(), false)
                                    .map_err(|e| e.to_string())?,
                            );
                        }
                        Ok(rows)
                    });
                match pruned {
                    Ok(rows) => {
                        for r in rows.iter().filter(|r| r.action == "delete") {
                            log::info(&format!(
                                "{}: retention deleted {} ({})",
                                db.name(),
                                r.file,
                                r.location
                            ));
                        }
                    }
                    Err(e) => {
                        log::error(&format!(
                            "{}: retention failed: {e}; the new backup is safe, old ones were not all deleted",
                            db.name()
                        ));
                        failed.push((db.name().to_string(), crate::error::EXIT_CANTCREAT));
                    }
                }
            }
            Ok(Outcome::Skipped { reason }) => {
                log::info(&format!("{}: skipped: {reason}", db.name()));
            }
            Err(e) => {
                log::error(&format!("{}: backup failed: {e}", db.name()));
                record(cfg, db.name(), Err(&e));
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
fn upload_backup(store: &S3Store, data: &Path, db: &str) -> std::result::Result<u64, S3Failure> {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let bytes = store.upload_file(data, &store.key(db, &name), "application/gzip")?;
    for (suffix, ct) in [(".sha256", "text/plain"), (".json", "application/json")] {
        let local = data.with_file_name(format!("{name}{suffix}"));
        let content = std::fs::read(&local).map_err(|source| S3Failure::Read {
            path: local.display().to_string(),
            source,
        })?;
        store.put_bytes(&store.key(db, &format!("{name}{suffix}")), &content, ct)?;
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

fn output_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Output { what, path, source }
}

/// Back up one database. On any error nothing new is visible under a backup name.
pub fn backup_one(
    cfg: &Config,
    tools: &PgTools,
    dump_version: &str,
    db: &Database,
    force: bool,
    description: Option<&str>,
) -> Result<Outcome> {
    let name = db.name();
    let dir = catalog::db_dir(&cfg.local_dir, name);
    fsutil::ensure_private_dir(&dir).map_err(output_err("backup directory", &dir))?;
    for removed in fsutil::clean_debris(&dir).map_err(output_err("backup directory", &dir))? {
        log::info(&format!(
            "{name}: removed debris of an interrupted run: {removed}"
        ));
    }

    if cfg.respawn_protection_hours > 0 && !force {
        let latest = catalog::latest_complete(&cfg.local_dir, name)
            .map_err(output_err("backup directory", &dir))?;
        if let Some(latest) = latest {
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

    let server_version = Psql::new(tools, &db.target).server_version()?;
    if let (Some(s), Some(d)) = (major_version(&server_version), major_version(dump_version)) {
        if s > d {
            return Err(PgError::VersionMismatch {
                db: name.to_string(),
                dump_version: dump_version.to_string(),
                server_version,
                server_major: s,
            }
            .into());
        }
    }

    // A free name: two runs within one second must not overwrite each other.
    let started_at = Utc::now();
    let mut ts = started_at;
    let backup_name = loop {
        let n = BackupName::new(name, ts, Kind::SqlGz);
        let taken = [n.file_name(), n.sidecar_name(), n.manifest_name()]
            .iter()
            .any(|f| dir.join(f).exists());
        if !taken {
            break n;
        }
        ts += chrono::Duration::seconds(1);
    };
    let final_path = dir.join(backup_name.file_name());

    let tmp = fsutil::temp_in(&dir).map_err(output_err("backup file", &final_path))?;
    let clock = Instant::now();
    let (mut proc, stdout) =
        DumpProcess::spawn(tools, &db.target, &db.pg_dump_args, cfg.dump_timeout)?;
    let timeout_secs = cfg.dump_timeout.map(|d| d.as_secs()).unwrap_or(0);
    let result = pipeline::run(
        stdout,
        tmp.as_file(),
        cfg.compression_level,
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
    let out = match result {
        Ok((_, out)) => out,
        Err(PipelineError::Write(e)) => {
            proc.kill();
            let _ = proc.finish(timeout_secs);
            return Err(output_err("backup file", &final_path)(e));
        }
        Err(PipelineError::Read(e)) => {
            proc.kill();
            proc.finish(timeout_secs)?;
            return Err(Error::Dump(crate::postgres::DumpError::Failed {
                db: name.to_string(),
                status: "read error".into(),
                detail: e.to_string(),
            }));
        }
    };
    proc.finish(timeout_secs)?;
    if !out.complete {
        return Err(Error::Incomplete {
            db: name.to_string(),
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(output_err("backup file", &final_path))?;
    let finished_at = Utc::now();

    let manifest = Manifest {
        format_version: MANIFEST_VERSION,
        database: name.to_string(),
        dbname: db.target.conn.get("dbname").unwrap_or_default().to_string(),
        host: db.target.conn.host_port(),
        file: backup_name.file_name(),
        server_version,
        pg_dump_version: dump_version.to_string(),
        started_at,
        finished_at,
        duration_secs: clock.elapsed().as_secs_f64(),
        compressed_bytes: out.compressed_bytes,
        raw_bytes: out.raw_bytes,
        sha256: out.sha256.clone(),
        compression: "gzip".into(),
        compression_level: cfg.compression_level,
        dump_format: "plain".into(),
        description: description.map(str::to_string),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tables: out.tables,
        verifications: Vec::new(),
        extra: serde_json::Map::new(),
    };
    let manifest_json = catalog::manifest_bytes(&manifest);

    // Sidecar and manifest first; the data file's rename is the commit point.
    let sidecar = catalog::sidecar_line(&out.sha256, &backup_name.file_name());
    let commit = (|| {
        fsutil::write_atomic(&dir, &backup_name.sidecar_name(), sidecar.as_bytes())?;
        fsutil::write_atomic(&dir, &backup_name.manifest_name(), &manifest_json)?;
        tmp.persist(&final_path).map_err(|e| e.error)?;
        fsutil::fsync_dir(&dir)?;
        fsutil::fsync_dir(&cfg.local_dir)
    })();
    if let Err(e) = commit {
        if !final_path.exists() {
            let _ = std::fs::remove_file(dir.join(backup_name.sidecar_name()));
            let _ = std::fs::remove_file(dir.join(backup_name.manifest_name()));
        }
        return Err(output_err("backup file", &final_path)(e));
    }
    Ok(Outcome::Done {
        path: final_path,
        manifest: Box::new(manifest),
    })
}
