//! `pgbackup prune`, and the retention step after a successful backup.
//!
//! Only complete backups that match pgbackup's naming scheme, inside the database's own
//! directory (not a symlink), are candidates; each is deleted with its sidecar and manifest, data
//! file first so that it stops being a backup at once. Everything else is left alone.

use chrono::Utc;

use crate::catalog;
use crate::cli::PruneArgs;
use crate::commands::print;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::log;
use crate::ops::prune::{policy_with, prune_all};

/// Run `prune`.
pub fn run(cfg: &Config, args: &PruneArgs) -> Result<()> {
    for w in cfg.warnings_for(&args.databases) {
        log::warn(w);
    }
    let policy = policy_with(cfg, args.retention);
    if !policy.is_active() {
        log::info("no retention rule is configured ([retention] keep-days / keep-daily / keep-weekly / keep-monthly): nothing is deleted");
    }
    let mut databases = crate::ops::selected_databases(cfg, &args.databases)?;
    let stores = crate::ops::s3_stores(cfg)?;
    let store = stores.first();
    // Only the write prefix: list-prefixes are read-only.
    crate::ops::add_databases(
        &stores[..stores.len().min(1)],
        &args.databases,
        &mut databases,
    )?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(crate::ops::lock_root(cfg)?)
    };
    let now = Utc::now();
    let mut all = Vec::new();
    for db in &databases {
        if !catalog::is_catalog_name(db) {
            return Err(Error::Usage(format!(
                "\"{db}\" is not a database name pgbackup uses"
            )));
        }
        all.extend(prune_all(cfg, store, db, &policy, now, args.dry_run, None)?);
    }
    if !args.dry_run {
        crate::report::write_metrics(cfg, |_| {})?;
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
            ("locked", _) => "keep",
            _ => "keep",
        };
        let why = match &r.locked_until {
            Some(until) => format!("kept: locked until {until}"),
            None => why,
        };
        out.push_str(&format!(
            "{verb:<12}  {:<5}  {}/{}  {why}\n",
            r.location, r.database, r.file
        ));
    }
    out.push_str(&summary(&all, args.dry_run));
    print(&out)
}

/// Per database: how many backups (and bytes) are (or would be) deleted and how many kept.
fn summary(rows: &[crate::ops::prune::PruneRow], dry_run: bool) -> String {
    let mut per: std::collections::BTreeMap<&str, [(usize, u64); 2]> = Default::default();
    for r in rows {
        let e = per.entry(&r.database).or_default();
        let i = usize::from(r.action != "delete");
        e[i].0 += 1;
        e[i].1 += r.size_bytes;
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut out = String::new();
    for (db, [(gone, gone_bytes), (kept, kept_bytes)]) in per {
        out.push_str(&format!(
            "{db}: {verb} {gone} backup{} ({}), kept {kept} ({})\n",
            if gone == 1 { "" } else { "s" },
            crate::text::human_bytes(gone_bytes),
            crate::text::human_bytes(kept_bytes)
        ));
    }
    if out.is_empty() {
        out.push_str("no complete backup to consider\n");
    }
    out
}
