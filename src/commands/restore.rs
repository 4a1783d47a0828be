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

mod redis;

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

/// Show the plan (unless `--yes` and `-q`: scripts) and ask for "yes" (unless `--yes`; never
/// without a terminal to ask on).
fn confirm(args: &RestoreArgs, plan: &str) -> Result<()> {
    if !(args.yes && log::quiet()) {
        eprint!("{plan}");
    }
    if !args.yes {
        if !stdin_is_terminal() {
            return Err(Error::Usage(
                "refusing to restore without confirmation: pass --yes (nothing was changed)".into(),
            ));
        }
        if prompt("Type 'yes' to restore: ")? != "yes" {
            return Err(Error::Cancelled);
        }
    }
    Ok(())
}

/// The job a safety backup runs under (its reports to the journal and systemd).
fn safety_job() -> crate::job::Job {
    crate::job::Job::new(crate::signals::root().clone())
        .listen(std::sync::Arc::new(crate::report::Journal::default()))
        .listen(std::sync::Arc::new(crate::report::Systemd::default()))
}

/// The safety backup of a restore's target, through the normal backup path into the safety
/// directory (never the newest backup, never counted by retention), then the expired safety
/// backups of `name` pruned. `label` names it in the log ("safety backup of shop").
fn safety_backup(
    cfg: &Config,
    job: &crate::job::Job,
    name: &str,
    source: &mut dyn crate::source::Source,
    description: &str,
    label: &str,
) -> Result<()> {
    let local = crate::ops::safety_storage(cfg);
    match backup_one(cfg, name, source, true, Some(description), &local, job)? {
        Outcome::Done { path, manifest } => {
            log::info(&format!(
                "{label}: {path} (kept {} days, [retention] keep-safety-days)",
                cfg.keep_safety_days
            ));
            for old in crate::ops::prune_safety(cfg, name, Some(&manifest.file))? {
                log::info(&format!("removed the expired safety backup {old}"));
            }
        }
        Outcome::Skipped { .. } => unreachable!("forced backups are never skipped"),
    }
    Ok(())
}

/// Run `restore`.
pub fn run(cfg: &Config, args: &RestoreArgs) -> Result<()> {
    let selected: Vec<String> = args.database.iter().cloned().collect();
    for w in cfg.warnings_for(&selected) {
        log::warn(w);
    }
    // A backup fetched from S3 lives in a temp directory until the restore is over.
    let mut fetched = Vec::new();
    let files = if args.globals && args.backup.is_none() && args.file.is_none() {
        let picked = RestoreArgs {
            database: Some(catalog::GLOBALS.to_string()),
            latest: true,
            ..args.clone()
        };
        choose(cfg, &picked, &mut fetched).map_err(|e| match e {
            Error::Usage(m) if m.starts_with("no complete backup") => Error::Usage(format!(
                "{m}: set [backup] globals = true and run a backup (with several servers, pass --backup _globals-<server>_<time>.sql.gz)"
            )),
            e => e,
        })?
    } else {
        choose(cfg, args, &mut fetched)?
    };
    let file_name = files.file_name();

    // 1. Verify before anything else (a custom archive is decompressed for pg_restore in the
    //    same pass).
    let temp_root = cfg.temp_root(args.temp_dir.as_deref());
    log::info(&format!("verifying {file_name} before restoring it"));
    let database = files
        .name
        .as_ref()
        .map(|n| n.database.clone())
        .or_else(|| args.database.clone())
        .unwrap_or_default();
    // While the backup is checked, the target's server is asked what it holds (read-only
    // queries: whether the database exists, how many objects it has), which takes a few
    // client starts and round trips; nothing is written to it before the checks passed. Not
    // for the cluster globals, whose target is a server, not a database (nor for a Redis
    // snapshot).
    let globals_by_name = files.name.as_ref().is_some_and(|n| {
        n.database == catalog::GLOBALS || n.kind.container == catalog::Container::Rdb
    }) || args.globals;
    let (checked, probe) = std::thread::scope(|scope| {
        let probe =
            (!globals_by_name).then(|| scope.spawn(|| probe_target(cfg, args, &files, &database)));
        let checked = crate::ops::extract::check_for_restore(&files, &cfg.keys, &temp_root, |_| {});
        let probe = probe.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (checked, probe)
    });
    let (integrity, extracted) = checked?;
    // An encrypted backup without the key that opens it: the configuration's fault (78).
    if integrity.only_key_problem() {
        let mut p = crate::error::ConfigProblems::default();
        p.push(
            "[encryption]",
            format!(
                "cannot restore {}: {}; nothing was changed on the target",
                files.data.display(),
                integrity.failures()
            ),
        );
        return Err(Error::Config(p));
    }
    // A custom archive or a directory-format dump: pg_restore, from the checked copy.
    let custom = integrity.chain.is_some_and(|c| c.format.is_archive());
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

    if integrity
        .chain
        .is_some_and(|c| c.format == crate::chain::Format::Rdb)
    {
        let Some(rdb) = extracted.as_ref().map(|x| x.path().to_path_buf()) else {
            return Err(Error::Corrupt(format!(
                "{file_name}: the decompressed snapshot for the restore is missing"
            )));
        };
        return redis::run(cfg, args, &files, &integrity, &rdb, checksum);
    }
    let is_globals = integrity
        .chain
        .is_some_and(|c| c.format == crate::chain::Format::Globals);
    if is_globals {
        return restore_globals(cfg, args, &files, &integrity, checksum);
    }
    if args.globals {
        return Err(Error::Usage(format!(
            "{file_name} is a database's backup, not the cluster globals; drop --globals to restore it"
        )));
    }
    let selective = !(args.schemas.is_empty() && args.tables.is_empty());
    if !custom && selective {
        return Err(Error::Usage(format!(
            "--schema and --table need a custom- or directory-format backup (pg_restore picks from its table of contents); {file_name} is plain SQL (set [backup] format = \"custom\" or \"directory\" for backups to come)"
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

    // 2. Where to (probed while the backup was checked).
    let Probe {
        target,
        target_db,
        maint,
        exists,
        user_objects,
    } = match probe {
        Some(p) => p?,
        None => probe_target(cfg, args, &files, &database)?,
    };
    let configured: Option<&Database> = cfg.databases.iter().find(|d| d.name() == database);
    let tools = cfg.tools();
    let maint_psql = Psql::new(&tools, &maint);
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
            x.path().parent().unwrap_or(&temp_root).display()
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
    confirm(args, &plan)?;

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
            warnings: Vec::new(),
        };
        let dump_version = tools.pg_dump_version()?;
        let job = safety_job();
        let mut source = crate::source::PgDump::of(cfg, &tools, &dump_version, &db, &job.cancel);
        safety_backup(
            cfg,
            &job,
            db.name(),
            &mut source,
            &format!("safety backup before restoring {file_name}"),
            &format!("safety backup of {target_db}"),
        )?;
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
    let unpack = integrity.unpack().ok_or_else(|| {
        Error::Corrupt(format!("{file_name}: a chain this pgbackup does not know"))
    })?;
    let raw = if let Some(x) = &extracted {
        let msg = format!(
            "restoring {target_db} with pg_restore ({})",
            crate::text::count(jobs, "job", "jobs")
        );
        notify::status(&msg);
        log::info(&msg);
        crate::postgres::restore_archive(
            &tools,
            &target,
            x.path(),
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
                unpack,
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

/// Where a restore goes, and what is there now.
struct Probe {
    /// The target database.
    target: Target,
    /// Its name on the server.
    target_db: String,
    /// The same server's `postgres` database, to create or drop the target from.
    maint: Target,
    /// Whether the target database exists.
    exists: bool,
    /// Tables, views, sequences, ... in it.
    user_objects: u64,
}

/// Find the restore's target (`--target`, the configured database, or the manifest's
/// database name) and ask its server whether it exists and how much it holds: read-only.
fn probe_target(
    cfg: &Config,
    args: &RestoreArgs,
    files: &BackupFiles,
    database: &str,
) -> Result<Probe> {
    let configured: Option<&Database> = cfg.databases.iter().find(|d| d.name() == database);
    let target = match &args.target {
        Some(url) => {
            let conn = target_conn(url)?;
            // Same server and role as the configured database: its password applies.
            let same_login = |c: &Target| {
                ["host", "port", "user"]
                    .iter()
                    .all(|k| c.conn.get(k) == conn.get(k))
            };
            let (password, password_source) = match conn.password() {
                Some(p) => (Some(crate::secret::Secret::new(p)), Some("--target".into())),
                None => match configured.filter(|d| same_login(&d.target)) {
                    Some(d) => (d.target.password.clone(), d.target.password_source.clone()),
                    None => (None, None),
                },
            };
            Target {
                name: conn.get("dbname").unwrap_or("(target)").to_string(),
                password,
                password_source,
                conn,
            }
        }
        None => match configured {
            Some(d) => d.target.clone(),
            None => {
                let dbname = files
                    .manifest_state()
                    .ok()
                    .flatten()
                    .map(|m| m.dbname)
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{database} is not configured and the backup has no manifest naming its database; pass --target URL"
                        ))
                    })?;
                let mut conn = ConnInfo::default();
                conn.set("dbname", &dbname);
                Target {
                    name: database.to_string(),
                    conn,
                    password: None,
                    password_source: None,
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
    Ok(Probe {
        target,
        target_db,
        maint,
        exists,
        user_objects,
    })
}

/// `--target URL` parsed; a malformed one is a configuration error naming `--target`.
fn target_conn(url: &str) -> Result<ConnInfo> {
    ConnInfo::parse(url).map_err(|e| {
        let mut p = ConfigProblems::default();
        p.push("--target", e.to_string());
        Error::Config(p)
    })
}

/// What a globals dump does, read from its statements (pg_dumpall writes one per line).
#[derive(Debug, Default)]
struct GlobalsPlan {
    roles: Vec<String>,
    tablespaces: Vec<String>,
    memberships: usize,
    settings: usize,
    passwords: bool,
}

/// The identifier at the start of `s` (quoted or not), unquoted.
fn leading_ident(s: &str) -> Option<String> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                } else {
                    return Some(out);
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let end = s
            .find(|c: char| c == ';' || c.is_whitespace())
            .unwrap_or(s.len());
        (end > 0).then(|| s[..end].to_string())
    }
}

fn globals_plan(text: &str) -> GlobalsPlan {
    let mut p = GlobalsPlan::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("CREATE ROLE ") {
            p.roles.extend(leading_ident(rest));
        } else if let Some(rest) = line.strip_prefix("CREATE TABLESPACE ") {
            p.tablespaces.extend(leading_ident(rest));
        } else if line.starts_with("GRANT ") {
            p.memberships += 1;
        } else if line.starts_with("ALTER ROLE ") {
            if line.contains(" PASSWORD '") {
                p.passwords = true;
            }
            if line.contains(" SET ") && !line.contains(" WITH ") {
                p.settings += 1;
            }
        }
    }
    p
}

/// `restore --globals`: the plan (roles created, roles altered, tablespaces; never a password
/// hash), `--dry-run` or confirmation, then psql against the server's `postgres` database with
/// the `CREATE ROLE` of every role that exists there left out (their `ALTER ROLE` still sets
/// the backup's attributes, password hash and settings).
fn restore_globals(
    cfg: &Config,
    args: &RestoreArgs,
    files: &BackupFiles,
    integrity: &crate::verify::Integrity,
    checksum: &str,
) -> Result<()> {
    use std::io::Read;
    let file_name = files.file_name();
    let unpack = integrity.unpack().ok_or_else(|| {
        Error::Corrupt(format!("{file_name}: a chain this pgbackup does not know"))
    })?;
    let read_err = |source| Error::Input {
        what: "backup file",
        path: files.data.clone(),
        source,
    };
    let mut text = String::new();
    let file = std::fs::File::open(&files.data).map_err(read_err)?;
    crate::codec::unpack(&unpack, file)
        .take(256 << 20)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    let plan = globals_plan(&text);

    let mut server = match &args.target {
        Some(url) => {
            let conn = target_conn(url)?;
            Target {
                name: "(target server)".into(),
                password: conn.password().map(crate::secret::Secret::new),
                password_source: Some("--target".into()),
                conn,
            }
        }
        None => match cfg.databases.first() {
            Some(d) => d.target.clone(),
            None => {
                let mut conn = ConnInfo::default();
                conn.set("dbname", "postgres");
                Target {
                    name: "(default server)".into(),
                    conn,
                    password: None,
                    password_source: None,
                }
            }
        },
    };
    server.conn.set("dbname", "postgres");
    server.name = "postgres (restoring the cluster globals)".into();
    let tools = cfg.tools();
    let psql = Psql::new(&tools, &server);
    let existing: Vec<String> = psql
        .query("SELECT rolname FROM pg_roles")?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    let (exist, new): (Vec<&String>, Vec<&String>) =
        plan.roles.iter().partition(|r| existing.contains(r));
    let list = |v: &[&String]| {
        let mut s: Vec<String> = v.iter().take(30).map(|r| r.to_string()).collect();
        if v.len() > 30 {
            s.push(format!("and {} more", v.len() - 30));
        }
        s.join(", ")
    };
    let mut out = format!(
        "restore plan (cluster globals):\n  backup:  {} ({}; {checksum})\n  target:  the server of {}\n",
        files.data.display(),
        human_bytes(std::fs::metadata(&files.data).map(|m| m.len()).unwrap_or(0)),
        server.conn.masked(),
    );
    out.push_str(&format!(
        "  roles created ({}): {}\n",
        new.len(),
        list(&new)
    ));
    out.push_str(&format!(
        "  roles that exist, set to the backup's attributes ({}): {}\n",
        exist.len(),
        list(&exist)
    ));
    if !plan.tablespaces.is_empty() {
        let t: Vec<&String> = plan.tablespaces.iter().collect();
        out.push_str(&format!(
            "  tablespaces created ({}): {} (their directories must exist on the server's host)\n",
            t.len(),
            list(&t)
        ));
    }
    out.push_str(&format!(
        "  {}, {}\n  passwords: {}\n",
        crate::text::count(
            plan.memberships as u64,
            "membership grant",
            "membership grants"
        ),
        crate::text::count(plan.settings as u64, "role setting", "role settings"),
        if plan.passwords {
            "the backup's password hashes are set (they are never shown)"
        } else {
            "none in this backup (taken with --no-role-passwords): set them after the restore"
        }
    ));
    if !(args.yes && log::quiet()) || args.dry_run {
        eprint!("{out}");
    }
    if args.dry_run {
        log::info("--dry-run: nothing was changed");
        return Ok(());
    }
    if !args.yes {
        if !stdin_is_terminal() {
            return Err(Error::Usage(
                "refusing to restore without confirmation: pass --yes (nothing was changed)".into(),
            ));
        }
        if prompt("Type 'yes' to restore the globals: ")? != "yes" {
            return Err(Error::Cancelled);
        }
    }
    // The statements to run, in a private 0600 temp file (it holds password hashes), in the
    // compression the restore's reader takes; removed when done.
    let kept: String = text
        .lines()
        .filter(|l| {
            !l.strip_prefix("CREATE ROLE ")
                .and_then(leading_ident)
                .is_some_and(|r| existing.contains(&r))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let temp_root = cfg.temp_root(None);
    let temp_compression = crate::chain::Compression::Gzip {
        level: 1,
        threads: 1,
    };
    let temp = crate::fsutil::temp_in(&temp_root).map_err(|source| Error::Output {
        what: "temp file",
        path: temp_root.clone(),
        source,
    })?;
    let write = || -> std::io::Result<()> {
        let mut gz = crate::codec::encoder(temp_compression, temp.as_file())?;
        gz.write_all(kept.as_bytes())?;
        gz.finish()?.sync_all()
    };
    write().map_err(|source| Error::Output {
        what: "temp file",
        path: temp.path().to_path_buf(),
        source,
    })?;
    crate::postgres::restore_plain(
        &tools,
        &server,
        temp.path(),
        RestoreOptions {
            no_owner: false,
            single_transaction: false,
            timeout: None,
            unpack: crate::codec::Unpack::clear(temp_compression),
        },
        crate::signals::root(),
        Duration::from_secs(10),
        |_, _| {},
    )?;
    log::info(&format!(
        "restored the cluster globals of {file_name}: {} created, {} set to the backup's attributes",
        crate::text::count(new.len() as u64, "role", "roles"),
        exist.len()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_globals_plan_reads_quoted_names_and_never_keeps_a_hash() {
        let text = "CREATE ROLE alice;\nALTER ROLE alice WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$x';\n\
CREATE ROLE \"bob \"\"the\"\" smith\";\nALTER ROLE \"bob \"\"the\"\" smith\" WITH NOLOGIN;\n\
ALTER ROLE alice SET work_mem TO '8MB';\nGRANT alice TO \"bob \"\"the\"\" smith\" GRANTED BY postgres;\n\
CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';\n";
        let p = globals_plan(text);
        assert_eq!(
            p.roles,
            vec!["alice".to_string(), "bob \"the\" smith".to_string()]
        );
        assert_eq!(p.tablespaces, vec!["fast".to_string()]);
        assert_eq!((p.memberships, p.settings, p.passwords), (1, 1, true));
        assert!(!format!("{p:?}").contains("SCRAM"));
        assert_eq!(leading_ident("\"unterminated"), None);
        assert_eq!(leading_ident(";"), None);
    }
}
