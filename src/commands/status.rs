//! `pgbackup status`: configuration summary, storage, and per database the last run, last
//! success, age, size, backups kept and last verification. Secrets are masked.

use chrono::Utc;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::commands::{human_age, human_bytes, print};
use crate::config::Config;
use crate::error::Result;
use crate::metrics::disk_usage;
use crate::ops::inventory::{free_space, known_databases};
use crate::state::{self, DbState};
use crate::storage::Storage;

#[derive(Debug, Serialize)]
struct DbStatus {
    database: String,
    url: Option<String>,
    backups: u64,
    backups_bytes: u64,
    newest_backup: Option<String>,
    newest_backup_age_secs: Option<i64>,
    #[serde(flatten)]
    state: DbState,
}

#[derive(Debug, Serialize)]
struct Status {
    config_file: Option<String>,
    env_overrides: Vec<String>,
    local_dir: String,
    /// The S3 location, when configured.
    s3: Option<String>,
    /// Whether backups are also kept locally (false: S3 only).
    keep_local: bool,
    /// Where the S3 credentials come from (never the keys themselves).
    s3_credentials: Option<String>,
    /// Object Lock on every object written, e.g. "governance, 30 days".
    s3_object_lock: Option<String>,
    free_bytes: Option<u64>,
    total_bytes: Option<u64>,
    /// What new backups are written as: "plain" or "custom".
    format: &'static str,
    /// Their compression, level and threads.
    compression: &'static str,
    compression_level: u32,
    compression_threads: u32,
    /// Whom new backups are encrypted to (public keys), and the identity that decrypts
    /// (where it comes from, or why there is none); empty: not encrypted.
    encryption: Vec<String>,
    /// The identity verify and restore decrypt with, or why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    retention: String,
    metrics_file: String,
    last_run_at: Option<chrono::DateTime<Utc>>,
    last_run_ok: Option<bool>,
    databases: Vec<DbStatus>,
}

fn retention_summary(cfg: &Config) -> String {
    let p = &cfg.retention;
    if !p.is_active() {
        return format!(
            "none configured: every backup is kept (keep-min {})",
            p.keep_min
        );
    }
    let mut parts = Vec::new();
    if let Some(d) = p.keep_days {
        parts.push(format!("keep-days {d}"));
    }
    for (k, v) in [
        ("keep-daily", p.keep_daily),
        ("keep-weekly", p.keep_weekly),
        ("keep-monthly", p.keep_monthly),
    ] {
        if v > 0 {
            parts.push(format!("{k} {v}"));
        }
    }
    parts.push(format!("keep-min {}", p.keep_min));
    parts.join(", ")
}

/// Run `status`.
pub fn run(cfg: &Config, args: &StatusArgs) -> Result<()> {
    let st = state::load(&cfg.local_dir);
    let now = Utc::now();
    let stores = crate::ops::s3_stores(cfg)?;
    let databases: Vec<DbStatus> = known_databases(cfg, &st)
        .into_iter()
        .map(|db| {
            let disk = disk_usage(&cfg.local_dir, &db);
            let newest = crate::ops::newest_backup(cfg, &stores, &db).ok().flatten();
            DbStatus {
                url: cfg
                    .databases
                    .iter()
                    .find(|d| d.name() == db)
                    .map(|d| d.target.conn.masked().to_string()),
                backups: disk.count,
                backups_bytes: disk.bytes,
                newest_backup_age_secs: newest.as_ref().map(|n| (now - n.timestamp).num_seconds()),
                newest_backup: newest.map(|n| n.file_name()),
                state: st.databases.get(&db).cloned().unwrap_or_default(),
                database: db,
            }
        })
        .collect();
    let space = free_space(&cfg.local_dir);
    let status = Status {
        config_file: cfg.source.as_ref().map(|p| p.display().to_string()),
        env_overrides: cfg.env_overrides.clone(),
        local_dir: cfg.local_dir.display().to_string(),
        s3: stores.first().map(|s| s.location()),
        keep_local: stores.first().is_none_or(|s| s.keep_local()),
        s3_credentials: stores.first().map(|s| s.credential_source()),
        s3_object_lock: stores
            .first()
            .and_then(|s| s.object_lock())
            .map(|l| format!("{}, {} days", l.mode.header().to_lowercase(), l.days)),
        format: cfg.format.name(),
        compression: cfg.compression.name(),
        compression_level: cfg.compression.level(),
        compression_threads: cfg.compression.threads(),
        encryption: cfg
            .encrypt_to
            .as_ref()
            .map(|r| r.names().to_vec())
            .unwrap_or_default(),
        identity: match &cfg.keys {
            Ok(ids) => Some(ids.source().to_string()),
            Err(_) if cfg.encrypt_to.is_none() => None,
            Err(why) => Some(format!("none: {why}")),
        },
        free_bytes: space.map(|s| s.0),
        total_bytes: space.map(|s| s.1),
        retention: retention_summary(cfg),
        metrics_file: match &cfg.textfile_dir {
            Some(d) => d.join(&cfg.metrics_file).display().to_string(),
            None => "none ([metrics] textfile-dir is not set)".into(),
        },
        last_run_at: st.last_run_at,
        last_run_ok: st.last_run_ok,
        databases,
    };
    if args.json {
        let mut s = serde_json::to_string_pretty(&status).expect("status is plain data");
        s.push('\n');
        return print(&s);
    }
    let mut out = String::new();
    out.push_str(&format!(
        "config:     {}{}\n",
        status
            .config_file
            .as_deref()
            .unwrap_or("none (built-in defaults)"),
        if status.env_overrides.is_empty() {
            String::new()
        } else {
            format!(" + environment {}", status.env_overrides.join(", "))
        }
    ));
    let used: u64 = status.databases.iter().map(|d| d.backups_bytes).sum();
    let count: u64 = status.databases.iter().map(|d| d.backups).sum();
    out.push_str(&format!(
        "storage:    {} ({}, {}){}\n",
        status.local_dir,
        crate::text::count(count, "backup", "backups"),
        human_bytes(used),
        match space {
            Some((free, total)) if total > 0 => format!(
                "; {} free of {} ({:.0}%)",
                human_bytes(free),
                human_bytes(total),
                free as f64 * 100.0 / total as f64
            ),
            _ => String::new(),
        }
    ));
    if let Some(s3) = &status.s3 {
        out.push_str(&format!(
            "s3:         {s3}{}\n",
            if status.keep_local {
                " (and local copies)"
            } else {
                " (keep-local = false: no local copies; KEPT counts local ones)"
            }
        ));
        if let Some(c) = &status.s3_credentials {
            out.push_str(&format!("s3 keys:    {c}\n"));
        }
        if let Some(l) = &status.s3_object_lock {
            out.push_str(&format!("s3 lock:    {l} (Object Lock)\n"));
        }
    }
    out.push_str(&format!(
        "format:     {}, {}-{} ({} thread{})\n",
        status.format,
        status.compression,
        status.compression_level,
        status.compression_threads,
        if status.compression_threads == 1 {
            ""
        } else {
            "s"
        }
    ));
    if !status.encryption.is_empty() {
        out.push_str(&format!(
            "encryption: age, to {} key{}: {}\n",
            status.encryption.len(),
            if status.encryption.len() == 1 {
                ""
            } else {
                "s"
            },
            status
                .encryption
                .iter()
                .map(|k| k.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(i) = &status.identity {
        out.push_str(&format!("identity:   {i}\n"));
    }
    out.push_str(&format!("retention:  {}\n", status.retention));
    out.push_str(&format!("metrics:    {}\n", status.metrics_file));
    out.push_str(&format!(
        "last run:   {}\n\n",
        match (status.last_run_at, status.last_run_ok) {
            (Some(t), Some(ok)) => format!(
                "{} ({} ago): {}",
                t.format("%Y-%m-%d %H:%M:%S UTC"),
                human_age(now - t),
                if ok { "ok" } else { "FAILED" }
            ),
            _ => "never".into(),
        }
    ));
    let mut rows = vec![vec![
        "DATABASE".to_string(),
        "LAST RUN".into(),
        "NEWEST BACKUP".into(),
        "AGE".into(),
        "SIZE".into(),
        "KEPT".into(),
        "LAST VERIFY".into(),
    ]];
    for d in &status.databases {
        rows.push(vec![
            d.database.clone(),
            match d.state.last_run_ok {
                Some(true) => "ok".into(),
                Some(false) => "FAILED".into(),
                None => "-".into(),
            },
            d.newest_backup.clone().unwrap_or_else(|| "none".into()),
            d.newest_backup_age_secs
                .map(|s| human_age(chrono::Duration::seconds(s)))
                .unwrap_or_else(|| "-".into()),
            d.state
                .last_size_bytes
                .map(human_bytes)
                .unwrap_or_else(|| "-".into()),
            format!("{} ({})", d.backups, human_bytes(d.backups_bytes)),
            match (d.state.last_verify_ok, d.state.last_verify_at) {
                (Some(ok), Some(t)) => format!(
                    "{} {} ago",
                    if ok { "ok" } else { "FAILED" },
                    human_age(now - t)
                ),
                _ => "never".into(),
            },
        ]);
    }
    out.push_str(&super::render_table(&rows));
    for d in &status.databases {
        for f in crate::ops::future_backups(cfg, &d.database) {
            out.push_str(&format!(
                "\nwarning: {}: backup {} is dated in the future; a clock was or is wrong (it is kept, and not counted as the newest)\n",
                d.database,
                f.file_name()
            ));
        }
    }
    for left in &st.leftover_scratch {
        out.push_str(&format!(
            "\nwarning: the test-restore scratch database {left} was left behind; drop it by hand\n"
        ));
    }
    for d in &status.databases {
        if let (Some(false), Some(e)) = (d.state.last_run_ok, &d.state.last_error) {
            out.push_str(&format!("\n{}: last error: {e}\n", d.database));
        }
    }
    print(&out)
}
