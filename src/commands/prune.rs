//! `pgbackup prune`, and the retention step after a successful backup.
//!
//! Only complete backups that match pgbackup's naming scheme, inside the database's own
//! directory (not a symlink), are candidates; each is deleted with its sidecar and manifest, data
//! file first so that it stops being a backup at once. Everything else is left alone.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{self, Entry};
use crate::cli::PruneArgs;
use crate::commands::print;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::log;
use crate::retention::{decide, Policy, Reason};
use crate::s3::S3Store;

/// One backup's fate, as printed by `prune --json`.
#[derive(Debug, Serialize)]
pub struct PruneRow {
    /// Database (directory) name.
    pub database: String,
    /// Data file name.
    pub file: String,
    /// "keep" or "delete".
    pub action: &'static str,
    /// The rules that keep it (empty when deleted).
    pub reasons: Vec<Reason>,
    /// "local" or "s3".
    pub location: &'static str,
}

/// Apply `policy` to one database directory. With `dry_run` nothing is deleted.
pub fn prune_db(
    root: &Path,
    database: &str,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> std::io::Result<Vec<PruneRow>> {
    let dir = catalog::db_dir(root, database);
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
        Ok(m) if !m.file_type().is_dir() => {
            return Err(std::io::Error::other(format!(
                "{} is not a directory (a symlink?); retention never follows links",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    let complete: Vec<Entry> = catalog::list_dir(root, database)?
        .into_iter()
        .filter(Entry::is_complete)
        .collect();
    let times: Vec<_> = complete.iter().map(|e| e.name.timestamp).collect();
    let decisions = decide(&times, policy, now);
    let mut rows = Vec::new();
    let mut deleted = false;
    for (e, d) in complete.iter().zip(decisions) {
        let action = if d.is_some() { "keep" } else { "delete" };
        if d.is_none() && !dry_run {
            for name in [
                e.name.file_name(),
                e.name.sidecar_name(),
                e.name.manifest_name(),
            ] {
                match std::fs::remove_file(dir.join(&name)) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                    _ => {}
                }
            }
            deleted = true;
        }
        rows.push(PruneRow {
            database: database.to_string(),
            file: e.name.file_name(),
            action,
            reasons: d.map(|r| r.into_iter().collect()).unwrap_or_default(),
            location: "local",
        });
    }
    if deleted {
        fsutil::fsync_dir(&dir)?;
    }
    Ok(rows)
}

/// Apply `policy` to one database's backups in S3: only keys of our naming scheme under
/// `<prefix><db>/`, complete ones (data and sidecar) only, data object deleted first.
pub fn prune_s3(
    store: &S3Store,
    database: &str,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> std::result::Result<Vec<PruneRow>, crate::s3::S3Failure> {
    let objects = store.list(database)?;
    let files: std::collections::HashSet<String> = objects
        .iter()
        .filter_map(|o| o.key.rsplit('/').next().map(str::to_string))
        .collect();
    let mut complete: Vec<catalog::BackupName> = files
        .iter()
        .filter_map(|f| catalog::BackupName::parse(f))
        .filter(|n| n.database == database && files.contains(&n.sidecar_name()))
        .collect();
    complete.sort_by_key(|n| n.timestamp);
    let times: Vec<_> = complete.iter().map(|n| n.timestamp).collect();
    let mut rows = Vec::new();
    for (n, d) in complete.iter().zip(decide(&times, policy, now)) {
        if d.is_none() && !dry_run {
            for f in [n.file_name(), n.sidecar_name(), n.manifest_name()] {
                if files.contains(&f) {
                    store.delete(&store.key(database, &f))?;
                }
            }
        }
        rows.push(PruneRow {
            database: database.to_string(),
            file: n.file_name(),
            action: if d.is_some() { "keep" } else { "delete" },
            reasons: d.map(|r| r.into_iter().collect()).unwrap_or_default(),
            location: "s3",
        });
    }
    Ok(rows)
}

/// The policy with a `--retention DAYS` override.
pub fn policy_with(cfg: &Config, days: Option<u32>) -> Policy {
    let mut p = cfg.retention;
    if days.is_some() {
        p.keep_days = days;
    }
    p
}

/// Run `prune`.
pub fn run(cfg: &Config, args: &PruneArgs) -> Result<()> {
    for w in &cfg.warnings {
        log::warn(w);
    }
    let policy = policy_with(cfg, args.retention);
    if !policy.is_active() {
        log::info("no retention rule is configured ([retention] keep-days / keep-daily / keep-weekly / keep-monthly): nothing is deleted");
    }
    let mut databases = crate::commands::selected_databases(cfg, &args.databases)?;
    let store = cfg.s3.as_ref().map(S3Store::new).transpose()?;
    crate::commands::add_s3_databases(store.as_ref(), &args.databases, &mut databases)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(crate::commands::lock_root(cfg)?)
    };
    let now = Utc::now();
    let mut all = Vec::new();
    for db in &databases {
        if !catalog::is_valid_dir_name(db) {
            return Err(Error::Usage(format!(
                "\"{db}\" is not a database name pgbackup uses"
            )));
        }
        let rows = prune_db(&cfg.local_dir, db, &policy, now, args.dry_run).map_err(|source| {
            Error::Output {
                what: "backup directory",
                path: catalog::db_dir(&cfg.local_dir, db),
                source,
            }
        })?;
        all.extend(rows);
        if let Some(store) = &store {
            all.extend(prune_s3(store, db, &policy, now, args.dry_run)?);
        }
    }
    if !args.dry_run {
        crate::commands::write_metrics(cfg, |_| {});
    }
    if args.json {
        let mut s = serde_json::to_string_pretty(&all).expect("rows are plain data");
        s.push('\n');
        return print(&s);
    }
    let mut out = String::new();
    for r in &all {
        let why = r
            .reasons
            .iter()
            .map(|r| r.key())
            .collect::<Vec<_>>()
            .join(", ");
        let verb = match (r.action, args.dry_run) {
            ("delete", true) => "would delete",
            ("delete", false) => "deleted",
            _ => "keep",
        };
        out.push_str(&format!(
            "{verb:<12}  {:<5}  {}/{}  {why}\n",
            r.location, r.database, r.file
        ));
    }
    print(&out)
}
