//! `pgbackup list`: the backups on disk, as a table for people or JSON for scripts.

use serde::Serialize;

use crate::catalog::{self, Entry};
use crate::cli::ListArgs;
use crate::commands::{human_bytes, print};
use crate::config::Config;
use crate::error::{Error, Result};

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
    let read_err = |source| Error::Input {
        what: "backup directory",
        path: cfg.local_dir.clone(),
        source,
    };
    let databases = if args.databases.is_empty() {
        catalog::list_databases(&cfg.local_dir).map_err(read_err)?
    } else {
        args.databases.clone()
    };
    let mut rows = Vec::new();
    for db in &databases {
        if !catalog::is_valid_dir_name(db) {
            return Err(Error::Usage(format!(
                "\"{db}\" is not a database name pgbackup uses"
            )));
        }
        for e in catalog::list_dir(&cfg.local_dir, db).map_err(read_err)? {
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
    let mut table = vec![[
        "DATABASE".to_string(),
        "TIME (UTC)".to_string(),
        "SIZE".to_string(),
        "CHECKSUM".to_string(),
        "DESCRIPTION".to_string(),
    ]];
    for r in &rows {
        table.push([
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
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            table
                .iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    print(&out)
}
