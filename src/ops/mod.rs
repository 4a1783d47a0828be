//! Operations: what the commands do, as engine calls with typed outcomes and no terminal I/O
//! (no tables, prompts or argument parsing). The commands in `crate::commands` choose, call and
//! render; they never call each other.

pub mod backup;
pub mod catalog;
pub mod extract;
pub mod fetch;
pub mod inventory;
pub mod prune;

use crate::config::Config;
use crate::error::Result;

/// Create the backup root (0700) if it is missing.
pub fn ensure_root(cfg: &Config) -> Result<()> {
    crate::fsutil::ensure_private_dir(&cfg.local_dir).map_err(|source| {
        crate::error::Error::Output {
            what: "backup directory",
            path: cfg.local_dir.clone(),
            source,
        }
    })
}

/// The database directories a command works on: those named with `--db` (checked against the
/// naming rule), or every one under the backup root.
pub fn selected_databases(cfg: &Config, named: &[String]) -> Result<Vec<String>> {
    if named.is_empty() {
        use crate::storage::Storage;
        return crate::storage::LocalStorage::reading(&cfg.local_dir).databases();
    }
    for db in named {
        if !crate::catalog::is_catalog_name(db) {
            return Err(crate::error::Error::Usage(format!(
                "\"{db}\" is not a database name pgbackup uses"
            )));
        }
    }
    Ok(named.to_vec())
}

/// Create the backup root (0700) and take the run lock.
pub fn lock_root(cfg: &Config) -> Result<crate::lock::RunLock> {
    ensure_root(cfg)?;
    crate::lock::RunLock::acquire(&cfg.local_dir)
}

/// The S3 stores to read: the configured bucket and prefix first, then the read-only
/// `list-prefixes`. Streamed uploads spool their parts in the backup root.
pub fn s3_stores(cfg: &Config) -> Result<Vec<crate::s3::S3Store>> {
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
pub fn newest_backup(
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
pub fn future_backups(cfg: &Config, db: &str) -> Vec<crate::catalog::BackupName> {
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
pub fn add_databases(
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

/// Where the safety backups go (taken before a restore overwrites a database): a directory of
/// their own under the backup root, `<root>/_safety/<db>/`. Its name is not a database name
/// (`_` is not allowed first), so they are never a database's newest backup (`--latest`,
/// freshness), never counted by retention or keep-min, and never pruned by its rules; they are
/// kept for `[retention] keep-safety-days` instead.
pub const SAFETY_DIR: &str = "_safety";

/// The storage of the safety backups.
pub fn safety_storage(cfg: &Config) -> crate::storage::LocalStorage {
    crate::storage::LocalStorage::new(&cfg.local_dir.join(SAFETY_DIR))
}

/// Delete the safety backups of `db` older than `[retention] keep-safety-days`, except `keep`
/// (the one just taken), with their sidecars and manifests; and what interrupted safety backups
/// left. Must run under the run lock. Returns the data files deleted.
pub fn prune_safety(cfg: &Config, db: &str, keep: Option<&str>) -> Result<Vec<String>> {
    use crate::storage::Storage;
    let store = safety_storage(cfg);
    if !cfg.local_dir.join(SAFETY_DIR).join(db).is_dir() {
        return Ok(Vec::new());
    }
    store.clean_incomplete(db)?;
    let limit = chrono::Utc::now() - chrono::Duration::days(i64::from(cfg.keep_safety_days));
    let files = store.files(db)?;
    let present: std::collections::HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let mut gone = Vec::new();
    for b in crate::catalog::backups_in(db, &files) {
        let file = b.name.file_name();
        if keep == Some(file.as_str()) || b.name.timestamp >= limit {
            continue;
        }
        // As retention deletes: data first, so that it stops being a backup at once.
        prune::delete_backup(&store, db, &b.name, &present)?;
        gone.push(file);
    }
    Ok(gone)
}

/// A usage error (2) for the names in `wanted` that are not in `known`, naming the known ones
/// (`what` says what they are: "configured", "configured or backed up"); `Ok` when all are.
pub fn check_known(wanted: &[String], known: &[&str], what: &str) -> Result<()> {
    let unknown: Vec<String> = wanted
        .iter()
        .filter(|w| !known.contains(&w.as_str()))
        .map(|w| format!("\"{w}\""))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::Usage(format!(
        "unknown database {}; {what}: {}",
        unknown.join(", "),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )))
}
