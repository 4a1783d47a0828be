//! `pgbackup list`: the backups on disk, as a table for people or JSON for scripts.

use serde::Serialize;

use crate::cli::ListArgs;
use crate::commands::{human_bytes, print, render_table};
use crate::config::Config;
use crate::error::Result;
use crate::ops::selected_databases;
use crate::s3::S3Store;
use crate::storage::{LocalStorage, Storage, StoredBackup};

/// One row of `list --json`. Field names are a stable interface.
#[derive(Debug, Serialize)]
pub struct ListRow {
    /// Database (directory) name.
    pub database: String,
    /// Data file name.
    pub file: String,
    /// Full path.
    pub path: String,
    /// Start time, RFC 3339 UTC.
    pub timestamp: String,
    /// Data file size.
    pub size_bytes: u64,
    /// The dump format: "plain" (SQL, restored by psql) or "custom" (pg_restore).
    pub format: &'static str,
    /// The compression: "gzip" or "zstd".
    pub compression: &'static str,
    /// The compression threads it was written with, from the manifest (when read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_threads: Option<u32>,
    /// The encryption: "age" or "none".
    pub encryption: &'static str,
    /// The compression level, from the manifest (when read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u32>,
    /// Whether the `.sha256` sidecar exists.
    pub checksum: bool,
    /// Whether it counts as a backup (data file and sidecar present).
    pub complete: bool,
    /// SHA-256 from the manifest, if any.
    pub sha256: Option<String>,
    /// `--description` given at backup time.
    pub description: Option<String>,
    /// Where it lives: "local", "s3", "local+s3", "s3-legacy" (a read-only list-prefixes
    /// location), or "safety" (taken before a restore overwrote the database; not counted by
    /// retention, kept for keep-safety-days).
    pub location: &'static str,
    /// The S3 Object Lock retain-until date, while it is in the future.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// When `pgbackup verify` last checked it (from its manifest; unknown for a remote backup,
    /// whose manifest a listing does not fetch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_verify_at: Option<String>,
    /// Whether that verification passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_verify_ok: Option<bool>,
    /// Whether the manifest was read (so that "never verified" is known, not guessed).
    #[serde(skip)]
    manifest_read: bool,
}

impl ListRow {
    /// The row of a backup in `store` (its manifest read when `with_manifest`).
    fn new(store: &dyn Storage, location: &'static str, b: &StoredBackup, manifest: bool) -> Self {
        let manifest = (manifest && b.has_manifest)
            .then(|| store.read_manifest(&b.name))
            .flatten();
        let file = b.name.file_name();
        let last = manifest.as_ref().and_then(|m| m.verifications.last());
        let chain = b.name.chain();
        ListRow {
            format: chain.format.name(),
            compression: chain.compression.name(),
            compression_threads: manifest
                .as_ref()
                .and_then(|m| m.chain().ok())
                .map(|c| c.compression.threads()),
            encryption: if chain.encrypted { "age" } else { "none" },
            compression_level: manifest.as_ref().map(|m| m.compression_level),
            last_verify_at: last.map(|v| v.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            last_verify_ok: last.map(|v| v.ok),
            manifest_read: manifest.is_some(),
            database: b.name.database.clone(),
            path: store.describe(&b.name.database, &file),
            timestamp: b
                .name
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            file,
            size_bytes: b.size,
            checksum: b.has_sidecar,
            complete: b.has_sidecar,
            sha256: manifest.as_ref().map(|m| m.sha256.clone()),
            description: manifest.and_then(|m| m.description),
            location,
            locked_until: None,
        }
    }
}

/// Add the complete backups of `db` in a remote store: a file the rows already have is marked
/// as being in both places, others are added. A remote backup, like a local one, is listed as
/// complete only when its sidecar is there too.
fn merge_remote(
    store: &S3Store,
    location: &'static str,
    db: &str,
    rows: &mut Vec<ListRow>,
) -> Result<()> {
    for b in store.backups(db)? {
        let file = b.name.file_name();
        let locked_until = match store.object_lock() {
            Some(_) if b.has_sidecar => store
                .locked_until(&store.key_of(db, &file))?
                .map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            _ => None,
        };
        if let Some(row) = rows.iter_mut().find(|r| r.file == file) {
            if b.has_sidecar && row.location == "local" && location == "s3" {
                row.location = "local+s3";
                row.locked_until = locked_until;
            }
            continue;
        }
        // The manifest is not fetched: one GET per remote backup is too dear for a listing.
        rows.push(ListRow {
            locked_until,
            ..ListRow::new(store, location, &b, false)
        });
    }
    Ok(())
}

/// Run `list`.
pub fn run(cfg: &Config, args: &ListArgs) -> Result<()> {
    let mut databases = selected_databases(cfg, &args.databases)?;
    let stores = crate::ops::s3_stores(cfg)?;
    // An S3 failure does not hide the local backups, but the run fails with it (exit 69):
    // a script must not take a partial list for the whole.
    let mut s3_error = crate::ops::add_databases(&stores, &args.databases, &mut databases).err();
    if args.databases.is_empty() {
        // Databases that only have safety backups (a restore into a new name) are listed too.
        for d in LocalStorage::reading(&cfg.local_dir.join(crate::ops::SAFETY_DIR))
            .databases()
            .unwrap_or_default()
        {
            if !databases.contains(&d) {
                databases.push(d);
            }
        }
        databases.sort();
    }
    let mut rows = Vec::new();
    // Read-only: a symlinked database directory is listed.
    let local_store = LocalStorage::reading(&cfg.local_dir);
    for db in &databases {
        let mut local: Vec<ListRow> = local_store
            .backups(db)?
            .iter()
            .map(|b| ListRow::new(&local_store, "local", b, true))
            .collect();
        for (i, store) in stores.iter().enumerate() {
            // The first store is the write prefix; the others are read-only list-prefixes.
            let location = if i == 0 { "s3" } else { "s3-legacy" };
            if s3_error.is_some() {
                break;
            }
            if let Err(e) = merge_remote(store, location, db, &mut local) {
                s3_error = Some(e);
            }
        }
        local.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        rows.extend(local);
        // The safety backups taken before restores, after the database's own, marked.
        let safety = LocalStorage::reading(&cfg.local_dir.join(crate::ops::SAFETY_DIR));
        if cfg.local_dir.join(crate::ops::SAFETY_DIR).join(db).is_dir() {
            rows.extend(
                safety
                    .backups(db)?
                    .iter()
                    .map(|b| ListRow::new(&safety, "safety", b, true)),
            );
        }
    }
    if s3_error.is_some() {
        crate::log::warn("the S3 listing failed: only local backups are shown");
    }
    let printed = print_rows(cfg, args, &rows);
    match s3_error {
        Some(e) => Err(e),
        None => printed,
    }
}

fn print_rows(cfg: &Config, args: &ListArgs, rows: &[ListRow]) -> Result<()> {
    if args.json {
        let mut s = serde_json::to_string_pretty(&rows).expect("rows are plain data");
        s.push('\n');
        return print(&s);
    }
    if rows.is_empty() {
        crate::log::info(&format!("no backups under {}", cfg.local_dir.display()));
        return Ok(());
    }
    let now = (chrono::Utc::now() + crate::retention::FUTURE_TOLERANCE)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for r in rows.iter().filter(|r| r.timestamp > now) {
        crate::log::warn(&format!(
            "{}: {} is dated in the future: a clock was or is wrong (retention keeps it and counts it nowhere)",
            r.database, r.file
        ));
    }
    let mut table = vec![vec![
        "DATABASE".to_string(),
        "TIME (UTC)".to_string(),
        "SIZE".to_string(),
        "FORMAT".to_string(),
        "SIDECAR".to_string(),
        "VERIFIED".to_string(),
        "WHERE".to_string(),
        "DESCRIPTION".to_string(),
    ]];
    for r in rows {
        table.push(vec![
            r.database.clone(),
            r.timestamp
                .replace('T', " ")
                .trim_end_matches('Z')
                .to_string(),
            human_bytes(r.size_bytes),
            format!(
                "{} {}{}{}",
                r.format,
                r.compression,
                r.compression_level
                    .map(|l| format!("-{l}"))
                    .unwrap_or_default(),
                if r.encryption == "age" { " age" } else { "" }
            ),
            if r.checksum {
                "present"
            } else {
                "MISSING (not a backup)"
            }
            .to_string(),
            verified(r),
            match &r.locked_until {
                Some(u) => format!("{} (locked until {})", r.location, &u[..10.min(u.len())]),
                None => r.location.to_string(),
            },
            shorten(&crate::commands::escape_control(
                r.description.as_deref().unwrap_or_default(),
            )),
        ]);
    }
    print(&render_table(&table))
}

/// The VERIFIED column: the last verify's result and age, "never", or "-" when unknown.
fn verified(r: &ListRow) -> String {
    match (&r.last_verify_at, r.last_verify_ok) {
        (Some(at), Some(ok)) => {
            let age = chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| crate::text::human_age(chrono::Utc::now() - t.with_timezone(&chrono::Utc)))
                .unwrap_or_else(|_| "?".into());
            format!("{} {age} ago", if ok { "ok" } else { "FAILED" })
        }
        _ if r.manifest_read => "never".into(),
        _ => "-".into(),
    }
}

/// At most 120 characters of a description in the table (`--json` has it whole).
fn shorten(s: &str) -> String {
    if s.chars().count() <= 120 {
        return s.to_string();
    }
    let mut t: String = s.chars().take(119).collect();
    t.push('…');
    t
}
