//! `pgbackup list`: the backups on disk, as a table for people or JSON for scripts.

use serde::Serialize;

use crate::catalog::{self, Entry};
use crate::cli::ListArgs;
use crate::commands::{human_bytes, print, read_root_error, render_table, selected_databases};
use crate::config::Config;
use crate::error::Result;

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
    /// Whether the `.sha256` sidecar exists.
    pub checksum: bool,
    /// Whether it counts as a backup (data file and sidecar present).
    pub complete: bool,
    /// SHA-256 from the manifest, if any.
    pub sha256: Option<String>,
    /// `--description` given at backup time.
    pub description: Option<String>,
    /// Where it lives: "local".
    pub location: &'static str,
}

impl From<&Entry> for ListRow {
    fn from(e: &Entry) -> Self {
        ListRow {
            database: e.name.database.clone(),
            file: e.name.file_name(),
            path: e.path.display().to_string(),
            timestamp: e
                .name
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            size_bytes: e.size,
            checksum: e.has_sidecar,
            complete: e.is_complete(),
            sha256: e.manifest.as_ref().map(|m| m.sha256.clone()),
            description: e.manifest.as_ref().and_then(|m| m.description.clone()),
            location: "local",
        }
    }
}

/// Run `list`.
pub fn run(cfg: &Config, args: &ListArgs) -> Result<()> {
    let databases = selected_databases(cfg, &args.databases)?;
    let mut rows = Vec::new();
    for db in &databases {
        for e in catalog::list_dir(&cfg.local_dir, db).map_err(|e| read_root_error(cfg, e))? {
            rows.push(ListRow::from(&e));
        }
    }
    if args.json {
        let mut s = serde_json::to_string_pretty(&rows).expect("rows are plain data");
        s.push('\n');
        return print(&s);
    }
    if rows.is_empty() {
        crate::log::info(&format!("no backups under {}", cfg.local_dir.display()));
        return Ok(());
    }
    let mut table = vec![vec![
        "DATABASE".to_string(),
        "TIME (UTC)".to_string(),
        "SIZE".to_string(),
        "CHECKSUM".to_string(),
        "DESCRIPTION".to_string(),
    ]];
    for r in &rows {
        table.push(vec![
            r.database.clone(),
            r.timestamp
                .replace('T', " ")
                .trim_end_matches('Z')
                .to_string(),
            human_bytes(r.size_bytes),
            if r.checksum {
                "ok"
            } else {
                "MISSING (not a backup)"
            }
            .to_string(),
            r.description.clone().unwrap_or_default(),
        ]);
    }
    print(&render_table(&table))
}
