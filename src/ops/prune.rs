//! Retention applied to a storage: which backups go, deleted data file first (so each stops
//! being a backup at once), then sidecar and manifest; Object Lock respected. Returns typed
//! rows; `commands::prune` and the backup run render them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::log;
use crate::retention::{decide, Policy, Reason};
use crate::s3::S3Store;
use crate::storage::{backups_in, LocalStorage, Storage};

/// One backup's fate, as printed by `prune --json`.
#[derive(Debug, Serialize)]
pub struct PruneRow {
    /// Database (directory) name.
    pub database: String,
    /// Data file name.
    pub file: String,
    /// "keep", "delete", or "locked" (retention would delete it, but S3 Object Lock still
    /// protects it: it is kept, and tried again by a later prune).
    pub action: &'static str,
    /// The Object Lock retain-until date of a "locked" backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// The rules that keep it (empty when deleted).
    pub reasons: Vec<Reason>,
    /// "local" or "s3".
    pub location: &'static str,
    /// The data file's size.
    pub size_bytes: u64,
}

/// Apply `policy` to one database's complete backups in `store` (local or S3). Only names of
/// our scheme count, each backup is deleted data file first (so it stops being a backup at
/// once), then sidecar and manifest. With `dry_run` nothing is deleted.
pub fn prune_storage(
    store: &dyn Storage,
    database: &str,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
    this_run: Option<&str>,
) -> Result<Vec<PruneRow>> {
    let files = store.files(database)?;
    let present: std::collections::HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let complete: Vec<_> = backups_in(database, &files)
        .into_iter()
        .filter(|b| b.has_sidecar)
        .collect();
    let times: Vec<_> = complete.iter().map(|b| b.name.timestamp).collect();
    let mut rows = Vec::new();
    for (b, mut d) in complete.iter().zip(decide(&times, policy, now)) {
        // The backup this run made is never deleted by its own retention (a clock that
        // jumped back would otherwise make it look old).
        if d.is_none() && this_run == Some(b.name.file_name().as_str()) {
            d = Some(std::iter::once(Reason::ThisRun).collect());
        }
        let mut row = PruneRow {
            database: database.to_string(),
            file: b.name.file_name(),
            action: if d.is_some() { "keep" } else { "delete" },
            reasons: d
                .clone()
                .map(|r| r.into_iter().collect())
                .unwrap_or_default(),
            location: store.kind(),
            locked_until: None,
            size_bytes: b.size,
        };
        if d.is_none() {
            // A retention lock is never a failure: the backup is kept and reported.
            let lock = match store.locked_until(&store.key_of(database, &row.file))? {
                Some(until) => Some(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                None if dry_run => None,
                None => delete_backup(store, database, &b.name, &present)?,
            };
            if let Some(until) = lock {
                row.action = "locked";
                row.locked_until = Some(until);
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Delete one backup, data file first (so that it stops being a backup at once), then sidecar
/// and manifest. Returns the lock date when a retention lock refused the data file.
pub fn delete_backup(
    store: &dyn Storage,
    database: &str,
    name: &catalog::BackupName,
    present: &std::collections::HashSet<&str>,
) -> Result<Option<String>> {
    for (i, f) in [name.file_name(), name.sidecar_name(), name.manifest_name()]
        .into_iter()
        .enumerate()
    {
        if !present.contains(f.as_str()) {
            continue;
        }
        match store.delete(&store.key_of(database, &f)) {
            Ok(()) => {}
            Err(Error::S3(crate::s3::S3Failure::Locked { until, .. })) if i == 0 => {
                return Ok(Some(until))
            }
            // The data object is gone, so this is no backup any more; what stays locked is
            // debris that a later prune removes once its lock has expired.
            Err(Error::S3(crate::s3::S3Failure::Locked { until, .. })) => {
                log::info(&format!(
                    "{database}: {f} stays until {until} (Object Lock); a later prune removes it"
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Retention for one database in every writable storage, after a successful backup or by
/// `prune`: the policy, then the debris of interrupted writes (S3's stale multipart uploads).
pub fn prune_all(
    cfg: &Config,
    s3: Option<&S3Store>,
    database: &str,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
    this_run: Option<&str>,
) -> Result<Vec<PruneRow>> {
    // Local debris is cleaned before each backup (backup_one), under the same lock.
    let local = LocalStorage::new(&cfg.local_dir);
    let mut rows = prune_storage(&local, database, policy, now, dry_run, this_run)?;
    if let Some(s3) = s3 {
        rows.extend(prune_storage(s3, database, policy, now, dry_run, this_run)?);
        if !dry_run {
            for removed in s3.clean_incomplete(database)? {
                log::info(&format!("{database}: {removed}"));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{sidecar_line, BackupName, Kind};
    use crate::storage::MemoryStorage;

    fn backup(store: &MemoryStorage, db: &str, at: DateTime<Utc>) -> String {
        let n = BackupName::new(db, at, Kind::SQL_GZ);
        store
            .put(&format!("{db}/{}", n.file_name()), b"data")
            .unwrap();
        store
            .put(
                &format!("{db}/{}", n.sidecar_name()),
                sidecar_line(&"0".repeat(64), &n.file_name()).as_bytes(),
            )
            .unwrap();
        n.file_name()
    }

    /// The fast tier: retention on a storage, without a file system or a server.
    #[test]
    fn retention_on_a_storage_spares_keep_min_this_run_the_future_and_foreign_files() {
        let store = MemoryStorage::new();
        let now = Utc::now();
        let old: Vec<String> = (2..30)
            .map(|d| backup(&store, "db", now - chrono::Duration::days(d)))
            .collect();
        let future = backup(&store, "db", now + chrono::Duration::days(40));
        store.put("db/notes.txt", b"mine").unwrap();
        // This run's backup, named by a clock ten days behind: keep-min would not keep it.
        let this_run = backup(
            &store,
            "db",
            now - chrono::Duration::days(10) + chrono::Duration::minutes(30),
        );
        let policy = Policy {
            keep_days: Some(0),
            keep_min: 2,
            ..Policy::default()
        };
        let rows = prune_storage(&store, "db", &policy, now, false, Some(&this_run)).unwrap();
        let left: Vec<String> = store
            .files("db")
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        for keep in [&this_run, &old[0], &old[1], &future] {
            assert!(left.contains(keep), "{keep} deleted: {left:?}");
        }
        assert!(left.contains(&"notes.txt".to_string()));
        assert!(!left.contains(&old[5]));
        // Deleted with their sidecars: no debris left behind.
        assert!(crate::catalog::debris_in("db", &store.files("db").unwrap()).is_empty());
        let deleted = rows.iter().filter(|r| r.action == "delete").count();
        assert_eq!(deleted, old.len() - 2, "{rows:?}");
        assert!(rows
            .iter()
            .any(|r| r.file == this_run && r.reasons.contains(&Reason::ThisRun)));
        assert!(rows
            .iter()
            .any(|r| r.file == future && r.reasons.contains(&Reason::FutureDated)));
        // The next run's retention (not this run's any more) deletes it; then nothing.
        let next = prune_storage(&store, "db", &policy, now, false, None).unwrap();
        assert_eq!(
            next.iter().filter(|r| r.action == "delete").count(),
            1,
            "{next:?}"
        );
        let again = prune_storage(&store, "db", &policy, now, false, None).unwrap();
        assert!(again.iter().all(|r| r.action != "delete"), "{again:?}");
    }
}
