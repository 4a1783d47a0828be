//! `pgbackup restore`: pick a backup, verify it, show the plan, confirm, take a safety backup of
//! the target when the restore is destructive, then stream it into psql.
//!
//! Nothing touches the target before the backup passed its integrity checks (checksum against
//! the sidecar, full decompression, completion trailer).

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::catalog;
use crate::cli::RestoreArgs;
use crate::commands::human_bytes;
use crate::config::{Config, Database};
use crate::conninfo::ConnInfo;
use crate::error::{ConfigProblems, Error, Result};
use crate::ops::backup::{backup_one, Outcome};
use crate::ops::catalog::{backups_of, Located, Place, Which};
use crate::ops::fetch::{fetch_backup, resolve_backup, resolve_or_fetch, Fetched};
use crate::postgres::{quote_ident, quote_literal, Psql, RestoreOptions, Target};
use crate::storage::{LocalStorage, Storage};
use crate::verify::BackupFiles;
use crate::{log, notify};

fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

fn prompt(question: &str) -> Result<String> {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|source| Error::Input {
            what: "answer from",
            path: "standard input".into(),
            source,
        })?;
    Ok(line.trim().to_string())
}

/// Run `restore`.
pub fn run(cfg: &Config, args: &RestoreArgs) -> Result<()> {
    for w in &cfg.warnings {
        log::warn(w);
    }
    // A backup fetched from S3 lives in a temp directory until the restore is over.
    let mut fetched = Vec::new();
    let files = choose(cfg, args, &mut fetched)?;
    let file_name = files.file_name();

    // 1. Verify before anything else (a custom archive is decompressed for pg_restore in the
    //    same pass).
    let temp_root = match &args.temp_dir {
        Some(d) => d.clone(),
        None if cfg.local_dir.is_dir() => cfg.local_dir.clone(),
        None => std::env::temp_dir(),
    };
    log::info(&format!("verifying {file_name} before restoring it"));
    let (integrity, extracted) =
        crate::ops::extract::check_for_restore(&files, &temp_root, |_| {})?;
    let custom = integrity
        .chain
        .is_some_and(|c| c.format == crate::chain::Format::Custom);
    // Only the sidecar may be missing, and only when asked for: the decompression and the
    // completion trailer are checked whatever happens.
    let sidecar_missing = integrity
        .checks
        .iter()
        .any(|c| c.name == "sidecar" && !c.ok);
    let only_sidecar = integrity.checks.iter().all(|c| c.ok || c.name == "sidecar");
    if !(integrity.ok() || args.no_sidecar && only_sidecar) {
        let hint = if only_sidecar && sidecar_missing && args.file.is_some() {
            " (a dump made without pgbackup has no sidecar: pass --no-sidecar to restore it after checking its decompression and completion trailer)"
        } else {
            ""
        };
        return Err(Error::Corrupt(format!(
            "refusing to restore {}: {}; nothing was changed on the target{hint}",
            files.data.display(),
            integrity.failures()
        )));
    }
    let checksum = if sidecar_missing {
        log::warn(&format!(
            "restoring {} WITHOUT a checksum: it has no valid sidecar, so nothing proves these are the bytes that were written; its decompression and pg_dump's completion trailer were checked",
            files.data.display()
        ));
        "NO checksum (--no-sidecar); decompression and completion checked"
    } else {
        "checksum verified"
    };

    let selective = !(args.schemas.is_empty() && args.tables.is_empty());
    if !custom && selective {
        return Err(Error::Usage(format!(
            "--schema and --table need a custom-format backup (pg_restore picks from its table of contents); {file_name} is plain SQL (set [backup] format = \"custom\" for backups to come)"
        )));
    }
    // A selective restore names what the archive holds (pg_restore would restore nothing, and
    // say nothing), and creates the schemas of what it restores, which pg_restore does not.
    let mut selected_schemas: Vec<String> = Vec::new();
    if custom && selective {
        let in_schema =
            |t: &&catalog::TableRows| args.schemas.is_empty() || args.schemas.contains(&t.schema);
        for s in &args.schemas {
            if !integrity.tables.iter().any(|t| &t.schema == s)
                && !integrity.created_schemas.contains(s)
            {
                let mut known: Vec<&str> =
                    integrity.tables.iter().map(|t| t.schema.as_str()).collect();
                known.sort();
                known.dedup();
                return Err(Error::Usage(format!(
                    "{file_name} holds no schema \"{s}\"; its schemas with tables: {} (nothing was changed)",
                    known.join(", ")
                )));
            }
        }
        for name in &args.tables {
            if !integrity
                .tables
                .iter()
                .filter(in_schema)
                .any(|t| &t.table == name)
            {
                let known: Vec<String> = integrity
                    .tables
                    .iter()
                    .filter(in_schema)
                    .map(|t| format!("{}.{}", t.schema, t.table))
                    .take(20)
                    .collect();
                return Err(Error::Usage(format!(
                    "{file_name} holds no table \"{name}\"{}; its tables include: {} (nothing was changed)",
                    if args.schemas.is_empty() { String::new() } else { format!(" in schema {}", args.schemas.join(", ")) },
                    known.join(", ")
                )));
            }
        }
        selected_schemas = args.schemas.clone();
        for t in integrity.tables.iter().filter(in_schema) {
            if args.tables.contains(&t.table) && !selected_schemas.contains(&t.schema) {
                selected_schemas.push(t.schema.clone());
            }
        }
    }
    if !custom && args.jobs.is_some() {
        log::warn(
            "--jobs applies to custom-format backups; a plain SQL dump is restored by one psql",
        );
    }
    let jobs = if args.single_transaction {
        1
    } else {
        args.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
    };

    // 2. Where to.
    let database = files
        .name
        .as_ref()
        .map(|n| n.database.clone())
        .or_else(|| args.database.clone())
        .unwrap_or_default();
    let configured: Option<&Database> = cfg.databases.iter().find(|d| d.name() == database);
    let target = match &args.target {
        Some(url) => {
            let conn = ConnInfo::parse(url).map_err(|e| {
                let mut p = ConfigProblems::default();
                p.push("--target", e.to_string());
                Error::Config(p)
            })?;
            // Same server and role as the configured database: its password applies.
            let same_login = |c: &Target| {
                ["host", "port", "user"]
                    .iter()
                    .all(|k| c.conn.get(k) == conn.get(k))
            };
            let password = conn.password().map(crate::secret::Secret::new).or_else(|| {
                configured
                    .filter(|d| same_login(&d.target))
                    .and_then(|d| d.target.password.clone())
            });
            Target {
                name: conn.get("dbname").unwrap_or("(target)").to_string(),
                password,
                conn,
            }
        }
        None => match configured {
            Some(d) => d.target.clone(),
            None => {
                let dbname = integrity
                    .manifest
                    .as_ref()
                    .map(|m| m.dbname.clone())
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{database} is not configured and the backup has no manifest naming its database; pass --target URL"
                        ))
                    })?;
                let mut conn = ConnInfo::default();
                conn.set("dbname", &dbname);
                Target {
                    name: database.clone(),
                    conn,
                    password: None,
                }
            }
        },
    };
    let target_db = target.conn.get("dbname").unwrap_or_default().to_string();
    if target_db.is_empty() {
        return Err(Error::Usage(
            "the target names no database (dbname); give one in --target".into(),
        ));
    }
    let mut maint = target.clone();
    maint.conn.set("dbname", "postgres");
    maint.name = format!("postgres (managing {target_db})");
    let tools = cfg.tools();
    let maint_psql = Psql::new(&tools, &maint);
    let exists = !maint_psql
        .query(&format!(
            "SELECT 1 FROM pg_database WHERE datname = {}",
            quote_literal(&target_db)
        ))?
        .is_empty();
    let user_objects = if exists {
        Psql::new(&tools, &target)
            .query(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p','v','m','S','f') \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'",
            )?
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    } else {
        0
    };
    if !exists && !args.create && !args.clean {
        return Err(Error::Usage(format!(
            "the target database {target_db} does not exist; pass --create to create it"
        )));
    }
    let destructive = exists && (args.clean || user_objects > 0);
    let safety = destructive && user_objects > 0 && !args.no_safety_backup;

    // 3. The plan, and confirmation.
    let age = integrity
        .manifest
        .as_ref()
        .map(|m| m.started_at)
        .or(files.name.as_ref().map(|n| n.timestamp))
        .map(|t| format!("{} old", super::human_age(Utc::now() - t)))
        .or_else(|| {
            // No manifest and no name of ours: the file's own age.
            let modified = std::fs::metadata(&files.data)
                .and_then(|m| m.modified())
                .ok()?;
            let t: chrono::DateTime<Utc> = modified.into();
            Some(format!(
                "{} old by its mtime",
                super::human_age(Utc::now() - t)
            ))
        })
        .unwrap_or_else(|| "age unknown".into());
    let mut plan = format!(
        "restore plan:\n  backup:  {} ({}, {} uncompressed, {age}; {checksum})\n  target:  database {target_db} on {}\n",
        files.data.display(),
        human_bytes(std::fs::metadata(&files.data).map(|m| m.len()).unwrap_or(0)),
        human_bytes(integrity.raw_bytes),
        target.conn.masked(),
    );
    if !exists {
        plan.push_str("  the target does not exist and will be created\n");
    } else if args.clean {
        plan.push_str(&format!(
            "  --clean: the target ({user_objects} objects) will be DROPPED and recreated; its connections are terminated\n"
        ));
    } else if user_objects > 0 {
        plan.push_str(&format!(
            "  the target is not empty ({user_objects} objects): without --clean the restore stops at the first object that exists\n"
        ));
    }
    if safety {
        plan.push_str("  a safety backup of the target is taken first\n");
    } else if destructive {
        plan.push_str("  no safety backup (--no-safety-backup)\n");
    }
    if args.no_owner {
        plan.push_str("  ownership and privilege statements are skipped (--no-owner)\n");
    }
    if let Some(x) = &extracted {
        plan.push_str(&format!(
            "  pg_restore with {jobs} job{} reads the checked, decompressed archive ({}, in {}; removed afterwards)\n",
            if jobs == 1 { "" } else { "s" },
            human_bytes(integrity.raw_bytes),
            x.path.parent().unwrap_or(&temp_root).display()
        ));
    }
    if !args.schemas.is_empty() {
        plan.push_str(&format!("  only schema(s): {}\n", args.schemas.join(", ")));
    }
    if !args.tables.is_empty() {
        plan.push_str(&format!("  only table(s): {}\n", args.tables.join(", ")));
    }
    if !selected_schemas.is_empty() {
        plan.push_str(&format!(
            "  schema(s) created first where missing (pg_restore creates only what is selected): {}\n",
            selected_schemas.join(", ")
        ));
    }
    // What the plain dump does not carry, applied when the restore (re)creates the database.
    let props = integrity
        .manifest
        .as_ref()
        .and_then(|m| m.database_properties.clone());
    let creates = !exists || args.clean;
    if let Some(p) = props.as_ref().filter(|_| creates) {
        if !p.encoding.is_empty() {
            plan.push_str(&format!(
                "  created as the original: encoding {}, collation {}, ctype {}{}\n",
                p.encoding,
                p.collate,
                p.ctype,
                p.icu_locale
                    .as_ref()
                    .map(|l| format!(
                        ", {} locale {l}",
                        p.locale_provider.as_deref().unwrap_or("icu")
                    ))
                    .unwrap_or_default()
            ));
        }
        for line in p.describe() {
            plan.push_str(&format!("  then applied: {line}\n"));
        }
    }
    let recorded_extensions = integrity
        .manifest
        .as_ref()
        .map(|m| m.extensions.clone())
        .unwrap_or_default();
    let configured_extensions = configured.map(|d| d.extensions.clone()).unwrap_or_default();
    let pre_extensions = crate::dbprops::extensions_to_create(
        &configured_extensions,
        &recorded_extensions,
        &integrity.created_extensions,
        &integrity.created_schemas,
    );
    for (e, schema) in &pre_extensions {
        plan.push_str(&format!(
            "  extension {e} is created first{} (the dump does not create it)\n",
            schema
                .as_ref()
                .map(|s| format!(" in schema {s}"))
                .unwrap_or_default()
        ));
    }
    // With --yes and -q (scripts) the plan is not shown; a prompt always shows it.
    if !(args.yes && log::quiet()) {
        eprint!("{plan}");
    }
    if !args.yes {
        if !stdin_is_terminal() {
            return Err(Error::Usage(
                "refusing to restore without confirmation: pass --yes (nothing was changed)".into(),
            ));
        }
        let answer = prompt("Type 'yes' to restore: ")?;
        if answer != "yes" {
            return Err(Error::Cancelled);
        }
    }

    // 4. The lock: no backup or prune runs while we work, and the safety backup goes through the
    //    normal backup path.
    let _lock = crate::ops::lock_root(cfg)?;
    if safety {
        let name = if args.target.is_none() && configured.is_some() {
            database.clone()
        } else {
            catalog::escape_db_name(&target_db)
        };
        let db = Database {
            target: Target {
                name: name.clone(),
                ..target.clone()
            },
            extensions: Vec::new(),
            pg_dump_args: Vec::new(),
            password_source: None,
        };
        let dump_version = tools.pg_dump_version()?;
        let description = format!("safety backup before restoring {file_name}");
        // In the safety directory: never the newest backup, never counted by retention.
        let local = crate::ops::safety_storage(cfg);
        let job = crate::job::Job::new(crate::signals::root().clone())
            .listen(std::sync::Arc::new(crate::report::Journal::default()))
            .listen(std::sync::Arc::new(crate::report::Systemd::default()));
        let mut source = crate::source::PgDump::of(cfg, &tools, &dump_version, &db, &job.cancel);
        match backup_one(
            cfg,
            db.name(),
            &mut source,
            true,
            Some(&description),
            &local,
            &job,
        )? {
            Outcome::Done { path, manifest } => {
                log::info(&format!(
                    "safety backup of {target_db}: {path} (kept {} days, [retention] keep-safety-days)",
                    cfg.keep_safety_days
                ));
                for old in crate::ops::prune_safety(cfg, db.name(), Some(&manifest.file))? {
                    log::info(&format!("removed the expired safety backup {old}"));
                }
            }
            Outcome::Skipped { .. } => unreachable!("forced backups are never skipped"),
        }
    }

    // 5. Prepare the target.
    if args.clean && exists {
        maint_psql.query(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
            quote_literal(&target_db)
        ))?;
        maint_psql.query(&format!(
            "DROP DATABASE {} WITH (FORCE)",
            quote_ident(&target_db)
        ))?;
    }
    if creates {
        crate::dbprops::create_database(&maint_psql, &target_db, props.as_ref())?;
    }
    for (ext, schema) in &pre_extensions {
        for sql in crate::dbprops::create_extension_sql(ext, schema.as_deref()) {
            Psql::new(&tools, &target).query(&sql)?;
        }
    }
    for schema in &selected_schemas {
        Psql::new(&tools, &target).query(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))?;
    }

    // 6. Stream it in.
    let total = std::fs::metadata(&files.data).map(|m| m.len()).unwrap_or(0);
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let every = if tty {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(10)
    };
    // The read side of the chain the integrity pass read it with (it passed, so it is known).
    let compression = integrity.compression().ok_or_else(|| {
        Error::Corrupt(format!("{file_name}: a chain this pgbackup does not know"))
    })?;
    let raw = if let Some(x) = &extracted {
        let msg = format!("restoring {target_db} with pg_restore ({jobs} job(s))");
        notify::status(&msg);
        log::info(&msg);
        crate::postgres::restore_archive(
            &tools,
            &target,
            &x.path,
            crate::postgres::ArchiveRestore {
                jobs,
                no_owner: args.no_owner,
                single_transaction: args.single_transaction,
                schemas: &args.schemas,
                tables: &args.tables,
                timeout: None,
            },
            crate::signals::root(),
        )?;
        integrity.raw_bytes
    } else {
        let (_, raw) = crate::postgres::restore_plain(
            &tools,
            &target,
            &files.data,
            RestoreOptions {
                no_owner: args.no_owner,
                single_transaction: args.single_transaction,
                timeout: None,
                compression,
            },
            crate::signals::root(),
            every,
            |read, raw| {
                let rate = raw as f64 / started.elapsed().as_secs_f64().max(0.001);
                let pct = (read * 100).checked_div(total).unwrap_or(0);
                let msg = format!(
                    "restoring {target_db}: {pct}% ({} of {} read, {} restored, {}/s)",
                    human_bytes(read),
                    human_bytes(total),
                    human_bytes(raw),
                    human_bytes(rate as u64)
                );
                notify::status(&msg);
                if tty {
                    eprint!("\r{msg}   ");
                } else {
                    log::info(&msg);
                }
            },
        )
        .inspect_err(|_| {
            if tty {
                eprintln!();
            }
        })?;
        if tty {
            eprintln!();
        }
        raw
    };
    drop(extracted);
    if let Some(sig) = crate::signals::interrupted() {
        return Err(Error::Interrupted(sig));
    }
    if let Some(p) = props.as_ref().filter(|_| creates) {
        crate::dbprops::apply_properties(&maint_psql, &target_db, p)?;
    }
    log::info(&format!(
        "restored {file_name} into {target_db}: {} in {:.1} s",
        human_bytes(raw),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The backup to restore: --file, --backup, --latest, or a pick from a numbered list.
fn choose(cfg: &Config, args: &RestoreArgs, fetched: &mut Vec<Fetched>) -> Result<BackupFiles> {
    if let Some(path) = &args.file {
        return resolve_backup(&cfg.local_dir, &path.display().to_string())
            .and_then(|f| require_path(f, path));
    }
    let stores = crate::ops::s3_stores(cfg)?;
    if let Some(name) = &args.backup {
        return resolve_or_fetch(
            cfg,
            &stores,
            name,
            fetched,
            &mut crate::progress::Terminal::new("downloading"),
        );
    }
    let named: Vec<String> = args.database.iter().cloned().collect();
    let mut databases = crate::ops::selected_databases(cfg, &named)?;
    // Backups that only S3 holds (keep-local = false, or a lost disk) are candidates too.
    crate::ops::add_databases(&stores, &named, &mut databases)?;
    // Local first (a local copy wins over the same backup in S3: it needs no download).
    let mut candidates: Vec<Located> = Vec::new();
    for db in &databases {
        candidates.extend(backups_of(cfg, &stores, db, Which::Complete)?);
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.name().timestamp));
    let local = LocalStorage::reading(&cfg.local_dir);
    let take = |c: &Located, fetched: &mut Vec<Fetched>| -> Result<BackupFiles> {
        match &c.place {
            Place::Local(path) => Ok(BackupFiles::for_data(path)),
            Place::Stored(i) => {
                let f = fetch_backup(
                    cfg,
                    &stores[*i],
                    c.name(),
                    &mut crate::progress::Terminal::new("downloading"),
                )?;
                let files = f.files.clone();
                fetched.push(f);
                Ok(files)
            }
        }
    };
    if args.latest {
        if databases.len() != 1 {
            return Err(Error::Usage(
                "--latest needs --db NAME when there is more than one database".into(),
            ));
        }
        // The newest, local or in S3 (a local copy wins a tie: it needs no download).
        return match candidates.first() {
            Some(c) => take(c, fetched),
            None => Err(Error::Usage(format!(
                "no complete backup of {}",
                databases[0]
            ))),
        };
    }
    if !stdin_is_terminal() {
        return Err(Error::Usage(
            "no backup selected: pass --latest (with --db), --backup NAME or --file PATH, or run on a terminal to pick one".into(),
        ));
    }
    if candidates.is_empty() {
        return Err(Error::Usage(format!(
            "no complete backup under {}{}",
            cfg.local_dir.display(),
            if stores.is_empty() { "" } else { " or in S3" }
        )));
    }
    let mut menu =
        String::from("     DATABASE  TIME (UTC)           SIZE      WHERE  DESCRIPTION\n");
    for (i, c) in candidates.iter().enumerate() {
        menu.push_str(&format!(
            "{:>3}  {:<8}  {}  {:<8}  {:<5}  {}\n",
            i + 1,
            c.name().database,
            c.name().timestamp.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(c.backup.size),
            c.location(),
            // A local backup's description (the manifest of one in S3 is not fetched for a menu).
            match c.place {
                Place::Local(_) => local
                    .read_manifest(c.name())
                    .and_then(|m| m.description)
                    .unwrap_or_default(),
                Place::Stored(_) => String::new(),
            }
        ));
    }
    eprint!("{menu}");
    let answer = prompt(&format!("Restore which backup? [1-{}]: ", candidates.len()))?;
    let n: usize = answer
        .parse()
        .ok()
        .filter(|n| (1..=candidates.len()).contains(n))
        .ok_or_else(|| {
            Error::Usage(format!(
                "\"{answer}\" is not a number from 1 to {}",
                candidates.len()
            ))
        })?;
    take(&candidates[n - 1], fetched)
}

fn require_path(f: BackupFiles, path: &std::path::Path) -> Result<BackupFiles> {
    if f.data.is_file() {
        Ok(f)
    } else {
        Err(Error::Usage(format!(
            "{}: no such backup file",
            path.display()
        )))
    }
}
