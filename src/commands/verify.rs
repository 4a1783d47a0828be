//! `pgbackup verify` / `pgbackup-verify`: prove backups restorable.
//!
//! Integrity (one streaming pass, `crate::verify`), then optionally a test restore: a scratch
//! database with a unique name, the configured extensions, the dump restored with
//! `ON_ERROR_STOP` and without ownership and privilege statements (so a least-privilege role with
//! `CREATEDB` can do it), every table's row count compared with the manifest, and the scratch
//! database dropped whatever happens. The result is appended to the backup's manifest.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use crate::catalog::{self, BackupName, Check, TableRows, Verification};
use crate::cli::VerifyArgs;
use crate::commands::print;
use crate::config::{Config, Database};
use crate::conninfo::ConnInfo;
use crate::error::{Error, Result, EXIT_DATAERR, EXIT_FAILED, EXIT_UNAVAILABLE};
use crate::fsutil;
use crate::ops::catalog::{backups_of, Located, Place, Which};
use crate::ops::fetch::{fetch_backup, resolve_or_locate};
use crate::postgres::{quote_ident, PgError, PgTools, Psql, RestoreError, RestoreOptions, Target};
use crate::s3::S3Store;
use crate::storage::{LocalStorage, Storage};
use crate::verify::{check_integrity, BackupFiles};
use crate::{log, notify};

/// One verified backup, as printed by `--json`.
#[derive(Debug, Serialize)]
pub struct VerifyRow {
    /// Database (directory) name.
    pub database: String,
    /// Data file name.
    pub file: String,
    /// Full path.
    pub path: String,
    /// Whether every check passed.
    pub ok: bool,
    /// The checks.
    pub checks: Vec<Check>,
    /// Seconds taken.
    pub duration_secs: f64,
    /// Seconds the test restore took, when one ran and passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_restore_secs: Option<f64>,
}

/// Run `verify`.
pub fn run(cfg: &Config, args: &VerifyArgs) -> Result<()> {
    for w in cfg.warnings_for(&args.databases) {
        log::warn(w);
    }
    // A backup only S3 holds is checked streamed from S3, with nothing written locally; for a
    // test restore it is downloaded first (psql reads it after the checks passed), one at a
    // time, each just before its turn.
    let stores = crate::ops::s3_stores(cfg)?;
    let backups = select(cfg, args, &stores)?;
    if backups.is_empty() {
        return Err(Error::Corrupt(format!(
            "no backup found to verify under {}; run `pgbackup backup` first",
            cfg.local_dir.display()
        )));
    }
    let tools = cfg.tools();
    let mut rows = Vec::new();
    let mut worst: u8 = 0;
    let mut unsaved = false;
    for (i, item) in backups.iter().enumerate() {
        if crate::signals::interrupted().is_some() {
            break;
        }
        let remote;
        let subject = match item {
            Item::Ready(f) => Subject::Files(f),
            Item::Remote(store, name) if args.test_restore => {
                remote = fetch_backup(
                    cfg,
                    &stores[*store],
                    name,
                    &mut crate::progress::Terminal::new("downloading"),
                )?;
                Subject::Files(&remote.files)
            }
            Item::Remote(store, name) => {
                log::info(&format!(
                    "checking {} streamed from S3 (nothing is written locally)",
                    stores[*store].describe(&name.database, &name.file_name())
                ));
                Subject::Stored(&stores[*store], name)
            }
        };
        notify::status(&format!(
            "verifying {} ({}/{})",
            subject.file_name(),
            i + 1,
            backups.len()
        ));
        let (row, code) = verify_one(cfg, &tools, subject, args.test_restore, args.keep_scratch);
        if !args.json {
            let summary = row
                .checks
                .iter()
                .map(|c| {
                    if c.ok && c.name != "test-restore" {
                        c.name.clone()
                    } else {
                        format!("{}: {}", c.name, c.detail)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            // Table and file names may hold control characters: never written raw.
            let summary = crate::commands::escape_control(&summary);
            let on = log::colored(std::io::IsTerminal::is_terminal(&std::io::stdout()));
            let status = if row.ok {
                log::paint("ok  ", log::Tone::Ok, on)
            } else {
                log::paint("FAIL", log::Tone::Fail, on)
            };
            print(&format!(
                "{status}  {}/{}  {summary}\n",
                row.database, row.file
            ))?;
        }
        if !row.ok {
            log::error(&format!(
                "{}: verification failed: {}",
                row.file,
                row.checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        worst = worst_code(worst, code);
        if row.database != "-" {
            let (db, ok, tr) = (row.database.clone(), row.ok, row.test_restore_secs);
            let saved = crate::report::write_metrics(cfg, |st| {
                let s = st.databases.entry(db).or_default();
                s.last_verify_at = Some(Utc::now());
                s.last_verify_ok = Some(ok);
                if tr.is_some() {
                    s.last_test_restore_secs = tr;
                }
            });
            if let Err(e) = saved {
                log::error(&format!(
                    "{}: the result could not be recorded: {e}",
                    row.file
                ));
                worst = worst_code(worst, e.exit_code());
                unsaved = true;
            }
        }
        rows.push(row);
    }
    if args.json {
        let mut s = serde_json::to_string_pretty(&rows).expect("rows are plain data");
        s.push('\n');
        print(&s)?;
    }
    if let Some(sig) = crate::signals::interrupted() {
        return Err(Error::Interrupted(sig));
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    if failed == 0 && unsaved {
        return Err(Error::Output {
            what: "state file",
            path: cfg.local_dir.join(crate::state::STATE_FILE),
            source: std::io::Error::other("the verification results could not be recorded"),
        });
    }
    if failed == 0 {
        notify::status(&format!(
            "verify finished: {} ok",
            crate::text::count(rows.len() as u64, "backup", "backups")
        ));
        return Ok(());
    }
    Err(Error::VerifyFailed {
        failed,
        total: rows.len(),
        code: worst,
    })
}

/// 65 (corrupt) outranks 69 (unreachable) outranks 1.
fn worst_code(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        EXIT_DATAERR => 3,
        EXIT_UNAVAILABLE => 2,
        0 => 0,
        _ => 1,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// One backup to verify: at hand, or in S3 (index into the stores), checked or fetched at its
/// turn.
#[derive(Debug)]
enum Item {
    Ready(BackupFiles),
    Remote(usize, BackupName),
}

/// Which backups: the named ones, or the latest (or all) of each selected database.
fn select(cfg: &Config, args: &VerifyArgs, stores: &[S3Store]) -> Result<Vec<Item>> {
    if !args.backups.is_empty() {
        let mut out = Vec::new();
        for b in &args.backups {
            out.push(match resolve_or_locate(cfg, stores, b)? {
                crate::ops::fetch::Located::Local(files) => Item::Ready(files),
                crate::ops::fetch::Located::Stored(i, name) => Item::Remote(i, name),
            });
        }
        return Ok(out);
    }
    let mut databases = crate::ops::selected_databases(cfg, &args.databases)?;
    crate::ops::add_databases(stores, &args.databases, &mut databases)?;
    // A name that is neither configured nor has backups anywhere is a typo, as `backup --db`
    // says (2), not a missing backup (65).
    if !args.databases.is_empty() {
        let mut known: Vec<String> = cfg.databases.iter().map(|d| d.name().to_string()).collect();
        crate::ops::add_databases(stores, &[], &mut known)?;
        known.extend(
            LocalStorage::reading(&cfg.local_dir)
                .databases()
                .unwrap_or_default(),
        );
        known.sort();
        known.dedup();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        crate::ops::check_known(&args.databases, &known, "configured or backed up")?;
    }
    let mut out = Vec::new();
    for db in &databases {
        let item = |l: Located| match l.place {
            Place::Local(path) => Item::Ready(BackupFiles::for_data(&path)),
            Place::Stored(i) => Item::Remote(i, l.backup.name),
        };
        if args.all {
            // Every local data file, complete or not (verify says what is missing), and every
            // complete backup that only S3 holds (keep-local = false).
            out.extend(
                backups_of(cfg, stores, db, Which::EveryLocalFile)?
                    .into_iter()
                    .map(item),
            );
        } else if let Some(newest) = newest(backups_of(cfg, stores, db, Which::Complete)?) {
            out.push(item(newest));
        } else if !args.databases.is_empty() {
            return Err(Error::Corrupt(format!(
                "no complete backup of {db} under {}",
                cfg.local_dir.display()
            )));
        }
    }
    Ok(out)
}

/// A streamed check's progress: the terminal line and sd-notify.
struct Checking<'a, F: FnMut(u64)> {
    line: crate::progress::Terminal,
    status: &'a mut F,
}

impl<F: FnMut(u64)> crate::job::Transfers for Checking<'_, F> {
    fn start(&mut self, name: &str, total: Option<u64>) {
        self.line.start(name, total);
    }
    fn update(&mut self, done: u64) {
        self.line.update(done);
        (self.status)(done);
    }
    fn finish(&mut self, ok: bool, done: u64) {
        self.line.finish(ok, done);
    }
}

/// Where the backup that [`verify_one`] checks is.
#[derive(Clone, Copy)]
enum Subject<'a> {
    /// Local files (also one fetched from S3 for a test restore).
    Files(&'a BackupFiles),
    /// A backup in a storage, checked streamed (integrity only).
    Stored(&'a dyn Storage, &'a BackupName),
}

impl Subject<'_> {
    fn file_name(&self) -> String {
        match self {
            Subject::Files(f) => f.file_name(),
            Subject::Stored(_, n) => n.file_name(),
        }
    }

    fn path(&self) -> String {
        match self {
            Subject::Files(f) => f.data.display().to_string(),
            Subject::Stored(s, n) => s.describe(&n.database, &n.file_name()),
        }
    }

    fn name(&self) -> Option<&BackupName> {
        match self {
            Subject::Files(f) => f.name.as_ref(),
            Subject::Stored(_, n) => Some(n),
        }
    }
}

/// The backup `verify` takes for a database: the newest local one, else (only S3 has a backup
/// of it) the newest in the first S3 location that has one.
fn newest(found: Vec<Located>) -> Option<Located> {
    let local = found
        .iter()
        .rposition(|l| matches!(l.place, Place::Local(_)));
    let first_store = found.first().map(|l| l.place.clone());
    match local {
        Some(i) => found.into_iter().nth(i),
        None => found
            .into_iter()
            .rfind(|l| Some(&l.place) == first_store.as_ref()),
    }
}

/// Verify one backup; returns the row and the exit code it deserves (0 when ok). A test restore
/// needs local files; a stored subject gets the integrity checks only.
fn verify_one(
    cfg: &Config,
    tools: &PgTools,
    subject: Subject<'_>,
    test_restore: bool,
    keep_scratch: bool,
) -> (VerifyRow, u8) {
    let started = Instant::now();
    let database = subject
        .name()
        .map(|n| n.database.clone())
        .unwrap_or_else(|| "-".into());
    let mut code = 0;
    // sd-notify STATUS every 8 MiB; on a terminal, a progress line for a streamed check.
    let mut last_status = 0u64;
    let mut status = |read: u64| {
        if read - last_status >= 8 << 20 {
            last_status = read;
            notify::status(&format!(
                "verifying {}: {} read",
                subject.file_name(),
                super::human_bytes(read)
            ));
        }
    };
    // A test restore of a custom archive reads it decompressed: the check writes that copy.
    let mut extracted = None;
    let checked = match subject {
        Subject::Files(files) if test_restore => {
            let root = cfg.temp_root(None);
            crate::ops::extract::check_for_restore(files, &cfg.keys, &root, status)
                .map(|(i, x)| {
                    extracted = x;
                    i
                })
                .map_err(|e| match e {
                    Error::Input { source, .. } => (
                        format!("cannot read {}: {source}", files.data.display()),
                        EXIT_DATAERR,
                    ),
                    e => (e.to_string(), e.exit_code()),
                })
        }
        Subject::Files(files) => check_integrity(files, &cfg.keys, status).map_err(|e| {
            (
                format!("cannot read {}: {e}", files.data.display()),
                EXIT_DATAERR,
            )
        }),
        // S3 unreachable is 69, not a corrupt backup.
        Subject::Stored(store, name) => {
            let mut transfers = Checking {
                line: crate::progress::Terminal::new("checking"),
                status: &mut status,
            };
            crate::verify::check_stored(store, name, &cfg.keys, &mut transfers)
                .map_err(|e| (e.to_string(), e.exit_code()))
        }
    };
    let integrity = match checked {
        Ok(i) => i,
        Err((detail, code)) => {
            let row = VerifyRow {
                database,
                file: subject.file_name(),
                path: subject.path(),
                ok: false,
                checks: vec![Check {
                    name: "read".into(),
                    ok: false,
                    detail,
                }],
                duration_secs: started.elapsed().as_secs_f64(),
                test_restore_secs: None,
            };
            return (row, code);
        }
    };
    let mut checks = integrity.checks.clone();
    let mut test_restore_secs = None;
    if integrity.only_key_problem() {
        // Not a verdict on the backup: no result is recorded in its manifest.
        code = crate::error::EXIT_CONFIG;
    } else if !integrity.ok() {
        code = EXIT_DATAERR;
    } else if let (true, Subject::Files(files)) = (test_restore, subject) {
        let restore_started = Instant::now();
        let (check, c) = test_restore_check(
            cfg,
            tools,
            files,
            extracted.as_ref().map(|x| x.path()),
            &database,
            &integrity,
            keep_scratch,
        );
        drop(extracted.take());
        if check.ok {
            test_restore_secs = Some(restore_started.elapsed().as_secs_f64());
        }
        code = c;
        checks.push(check);
    }
    let ok = checks.iter().all(|c| c.ok);
    let duration = started.elapsed().as_secs_f64();
    // The result goes into a local manifest (a backup in S3 keeps its manifest as written: its
    // objects may be under Object Lock; the state file records the result either way).
    let recorded = (!integrity.only_key_problem())
        .then_some(integrity.manifest)
        .flatten();
    if let (Some(mut manifest), Subject::Files(files)) = (recorded, subject) {
        manifest.record_verification(Verification {
            at: Utc::now(),
            ok,
            duration_secs: duration,
            checks: checks.clone(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
        });
        // Never recreate the manifest of a backup that retention removed meanwhile.
        if files.data.exists() {
            if let (Some(dir), Some(name)) = (files.manifest.parent(), files.manifest.file_name()) {
                let written = fsutil::write_atomic(
                    dir,
                    &name.to_string_lossy(),
                    &catalog::manifest_bytes(&manifest),
                )
                .and_then(|()| fsutil::fsync_dir(dir));
                if let Err(e) = written {
                    log::warn(&format!(
                        "cannot record the result in {}: {e}",
                        files.manifest.display()
                    ));
                }
            }
        }
    }
    let row = VerifyRow {
        database,
        file: subject.file_name(),
        path: subject.path(),
        ok,
        checks,
        duration_secs: duration,
        test_restore_secs,
    };
    (row, if ok { 0 } else { code.max(EXIT_FAILED) })
}

/// The server connection a test restore uses to create and drop its scratch database.
fn maintenance_target(cfg: &Config, database: &str, dbname: Option<&str>) -> (Target, Vec<String>) {
    let configured: Option<&Database> = cfg.databases.iter().find(|d| d.name() == database);
    let extensions = configured.map(|d| d.extensions.clone()).unwrap_or_default();
    if let Some(t) = &cfg.verify_target {
        return (t.clone(), extensions);
    }
    if let Some(d) = configured {
        return (d.target.clone(), extensions);
    }
    // Zero-config: libpq's defaults, connected to the backed-up database's server.
    let mut conn = ConnInfo::default();
    conn.set("dbname", dbname.unwrap_or("postgres"));
    (
        Target {
            name: database.to_string(),
            conn,
            password: None,
            password_source: None,
        },
        extensions,
    )
}

/// Drops the scratch database when dropped, also after an error or a signal (and says when it
/// could not); [`Scratch::drop_now`] does it with the result in hand.
struct Scratch<'a> {
    tools: &'a PgTools,
    maint: &'a Target,
    /// The backup root, whose state records a scratch database left behind.
    root: &'a Path,
    name: String,
    /// `--keep-scratch`: leave it for inspection.
    keep: bool,
    done: bool,
}

impl Scratch<'_> {
    /// Drop the scratch database. `DROP ... WITH (FORCE)` first (it ends sessions of ours); when
    /// that is refused because another role's process is connected (an autovacuum worker on the
    /// freshly loaded database: a non-superuser may not terminate it), a plain `DROP DATABASE`,
    /// which makes autovacuum let go, retried with backoff for about 15 s.
    fn drop_now(&mut self) -> std::result::Result<(), String> {
        self.done = true;
        if self.keep {
            return Ok(());
        }
        drop_database(self.tools, self.maint, &self.name)
    }
}

/// See [`Scratch::drop_now`].
fn drop_database(tools: &PgTools, maint: &Target, name: &str) -> std::result::Result<(), String> {
    let psql = Psql::new(tools, maint);
    let force = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    let plain = format!("DROP DATABASE IF EXISTS {}", quote_ident(name));
    let mut last = match psql.query(&force) {
        Ok(_) => return Ok(()),
        Err(e) => e.to_string(),
    };
    let mut delay = Duration::from_millis(250);
    for _ in 0..7 {
        // Another role's session (an autovacuum worker, a superuser's psql) that a
        // non-superuser may not terminate, or a session that is still there.
        let busy = [
            "being accessed by other users",
            "must be a member of the role",
            "pg_signal_backend",
            "to terminate superuser process",
        ]
        .iter()
        .any(|m| last.contains(m));
        if !busy {
            break;
        }
        std::thread::sleep(delay);
        delay *= 2;
        match psql.query(&plain) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if self.done || self.keep {
            return;
        }
        if let Err(e) = drop_database(self.tools, self.maint, &self.name) {
            log::error(&format!(
                "could not drop the scratch database {}: {e}; drop it by hand",
                self.name
            ));
            record_leftover(self.root, &self.name, self.maint);
        }
    }
}

/// Note a scratch database that could not be dropped in the state: `status`, `check` and the
/// metrics report it until it is dropped.
fn record_leftover(root: &Path, name: &str, maint: &Target) {
    let entry = format!("{name} on {}", maint.conn.masked());
    let _ = crate::state::update(root, |st| {
        if !st.leftover_scratch.contains(&entry) {
            st.leftover_scratch.push(entry.clone());
        }
    });
}

/// Scratch databases left behind on this server by earlier runs: dropped now if they can be.
fn drop_leftovers(tools: &PgTools, maint: &Target, root: &Path) {
    let suffix = format!(" on {}", maint.conn.masked());
    let left: Vec<String> = crate::state::load(root)
        .leftover_scratch
        .into_iter()
        .filter(|e| e.ends_with(&suffix))
        .collect();
    for entry in left {
        let name = entry.trim_end_matches(&suffix);
        if drop_database(tools, maint, name).is_ok() {
            log::info(&format!(
                "dropped the scratch database {name} an earlier test restore left behind"
            ));
            let _ = crate::state::update(root, |st| st.leftover_scratch.retain(|e| *e != entry));
        }
    }
}

/// Row-level security lifted on the scratch database's tables for counting (the data is there
/// whatever a policy would hide from the restore role), then put back as it was.
fn lift_row_security(psql: &Psql) -> std::result::Result<Vec<(String, bool, bool)>, String> {
    let rows = psql
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE (c.relrowsecurity OR c.relforcerowsecurity) AND c.relkind IN ('r', 'p')",
        )
        .map_err(|e| e.to_string())?;
    let tables: Vec<(String, bool, bool)> = rows
        .into_iter()
        .filter_map(|r| {
            let mut it = r.into_iter();
            Some((it.next()?, it.next()? == "t", it.next()? == "t"))
        })
        .collect();
    for (t, _, _) in &tables {
        psql.query(&format!(
            "ALTER TABLE ONLY {t} DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY"
        ))
        .map_err(|e| {
            format!(
                "cannot lift row-level security on {t} to count its rows: {e}; the test-restore role needs to own the restored tables (it does with a scratch database it creates) or BYPASSRLS"
            )
        })?;
    }
    Ok(tables)
}

fn restore_row_security(psql: &Psql, tables: &[(String, bool, bool)]) {
    for (t, enabled, forced) in tables {
        let mut parts = Vec::new();
        if *enabled {
            parts.push("ENABLE ROW LEVEL SECURITY");
        }
        if *forced {
            parts.push("FORCE ROW LEVEL SECURITY");
        }
        if let Err(e) = psql.query(&format!("ALTER TABLE ONLY {t} {}", parts.join(", "))) {
            log::warn(&format!(
                "row-level security of {t} in the scratch database not put back: {e}"
            ));
        }
    }
}

fn test_restore_check(
    cfg: &Config,
    tools: &PgTools,
    files: &BackupFiles,
    archive: Option<&Path>,
    database: &str,
    integrity: &crate::verify::Integrity,
    keep: bool,
) -> (Check, u8) {
    let started = Instant::now();
    let fail = |detail: String, code: u8| {
        (
            Check {
                name: "test-restore".into(),
                ok: false,
                detail,
            },
            code,
        )
    };
    if integrity
        .chain
        .is_some_and(|c| c.format == crate::chain::Format::Globals)
    {
        return (
            Check {
                name: "test-restore".into(),
                ok: true,
                detail: "not for the cluster globals (roles and tablespaces belong to a whole server; `restore --globals --dry-run` shows what they hold); their checksum, decompression and pg_dumpall's trailer were checked".into(),
            },
            0,
        );
    }
    if integrity
        .chain
        .is_some_and(|c| c.format == crate::chain::Format::Rdb)
    {
        return redis_test_restore(cfg, files, archive, integrity, keep);
    }
    let manifest = integrity.manifest.as_ref();
    let expected = manifest
        .map(|m| m.tables.clone())
        .unwrap_or_else(|| integrity.tables.clone());
    let dbname = manifest.map(|m| m.dbname.clone());
    let props = manifest.and_then(|m| m.database_properties.clone());
    let (maint, configured_extensions) = maintenance_target(cfg, database, dbname.as_deref());
    let scratch_name = format!(
        "pgbackup_verify_{}_{}_{}",
        database
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect::<String>(),
        std::process::id(),
        Utc::now().format("%Y%m%d%H%M%S%3f")
    );
    let maint_psql = Psql::new(tools, &maint);
    drop_leftovers(tools, &maint, &cfg.local_dir);
    if let Err(e) = crate::dbprops::create_database(&maint_psql, &scratch_name, props.as_ref()) {
        let code = e.exit_code();
        return fail(
            format!(
                "cannot create the scratch database {scratch_name}: {e}; the role needs CREATEDB (or set [verify] restore-url)"
            ),
            code,
        );
    }
    let mut guard = Scratch {
        tools,
        maint: &maint,
        root: &cfg.local_dir,
        name: scratch_name.clone(),
        keep,
        done: false,
    };
    let mut target = maint.clone();
    target.name = scratch_name.clone();
    target.conn.set("dbname", &scratch_name);
    let psql = Psql::new(tools, &target);
    let pre = crate::dbprops::extensions_to_create(
        &configured_extensions,
        manifest
            .map(|m| m.extensions.as_slice())
            .unwrap_or_default(),
        &integrity.created_extensions,
        &integrity.created_schemas,
    );
    for (ext, schema) in &pre {
        for sql in crate::dbprops::create_extension_sql(ext, schema.as_deref()) {
            if let Err(e) = psql.query(&sql) {
                return fail(format!("cannot create extension {ext}: {e}"), EXIT_FAILED);
            }
        }
    }
    let Some(unpack) = integrity.unpack() else {
        return fail("a chain this pgbackup does not know".into(), EXIT_DATAERR);
    };
    let restored = if let Some(archive) = archive {
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        notify::status(&format!(
            "test restore of {}: pg_restore with {}",
            files.file_name(),
            crate::text::count(jobs, "job", "jobs")
        ));
        crate::postgres::restore_archive(
            tools,
            &target,
            archive,
            crate::postgres::ArchiveRestore {
                jobs,
                no_owner: true,
                single_transaction: false,
                schemas: &[],
                tables: &[],
                timeout: cfg.verify_restore_timeout,
            },
            crate::signals::root(),
        )
    } else {
        crate::postgres::restore_plain(
            tools,
            &target,
            &files.data,
            RestoreOptions {
                no_owner: true,
                single_transaction: false,
                timeout: cfg.verify_restore_timeout,
                unpack,
            },
            crate::signals::root(),
            Duration::from_secs(10),
            |_, raw| {
                notify::status(&format!(
                    "test restore of {}: {} restored",
                    files.file_name(),
                    super::human_bytes(raw)
                ))
            },
        )
        .map(|_| ())
    };
    match restored {
        Ok(_) => {}
        Err(RestoreError::Pg(e @ PgError::Connect { .. })) => {
            return fail(e.to_string(), EXIT_UNAVAILABLE)
        }
        // Too slow is not corrupt; nor is a privilege the restore role lacks.
        Err(e @ RestoreError::Timeout { .. }) => return fail(e.to_string(), EXIT_FAILED),
        Err(e @ RestoreError::Sql { privilege: true, .. }) => {
            return fail(
                format!("{e}; this is the test-restore role's privileges, not the backup (see README: the least-privilege role)"),
                EXIT_FAILED,
            )
        }
        Err(e) => return fail(e.to_string(), EXIT_DATAERR),
    }
    if crate::signals::interrupted().is_some() {
        return fail("interrupted".into(), EXIT_FAILED);
    }
    // The database's own settings and comment, as a restore would apply them (best effort: a
    // superuser-only setting is not the backup's fault).
    if let Some(p) = &props {
        for sql in p.apply_sql(&scratch_name, false) {
            if let Err(e) = maint_psql.query(&sql) {
                log::warn(&format!(
                    "test restore: database setting not applied: {e} ({sql})"
                ));
            }
        }
    }
    let lifted = match lift_row_security(&psql) {
        Ok(l) => l,
        Err(e) => return fail(e, EXIT_FAILED),
    };
    let counted = compare_counts(&psql, &expected);
    restore_row_security(&psql, &lifted);
    let dropped = guard.drop_now();
    let mut result = match counted {
        Ok(rows) => (
            Check {
                name: "test-restore".into(),
                ok: true,
                detail: format!(
                    "restored into a scratch database, {} tables with {rows} rows match the manifest{} ({:.1} s)",
                    expected.len(),
                    if integrity.unnamed_copies > 0 {
                        format!(
                            "; {} without a readable table name not compared",
                            crate::text::count(integrity.unnamed_copies, "COPY block", "COPY blocks")
                        )
                    } else {
                        String::new()
                    },
                    started.elapsed().as_secs_f64()
                ),
            },
            0,
        ),
        Err((detail, code)) => fail(detail, code),
    };
    if keep {
        result.0.detail.push_str(&format!(
            "; the scratch database {scratch_name} was kept (--keep-scratch): drop it when done"
        ));
        log::info(&format!(
            "kept the scratch database {scratch_name} on {}",
            maint.conn.masked()
        ));
    }
    if let Err(e) = dropped {
        record_leftover(&cfg.local_dir, &scratch_name, &maint);
        result.0.ok = false;
        result.0.detail.push_str(&format!(
            "; but the scratch database {scratch_name} could not be dropped: {e}; drop it by hand (DROP DATABASE {})",
            quote_ident(&scratch_name)
        ));
        result.1 = result.1.max(EXIT_FAILED);
    }
    result
}

/// A Redis snapshot's test restore: the checked, decompressed copy loaded by a throwaway
/// redis-server (see [`crate::redis_server`]), whose keys per logical database (and Functions
/// libraries) must be the manifest's; its `DEBUG DIGEST` is reported.
fn redis_test_restore(
    cfg: &Config,
    files: &BackupFiles,
    rdb: Option<&Path>,
    integrity: &crate::verify::Integrity,
    keep: bool,
) -> (Check, u8) {
    use crate::redis_server::{loaded, ServerProgram, Throwaway};
    let started = Instant::now();
    let fail = |detail: String, code: u8| {
        (
            Check {
                name: "test-restore".into(),
                ok: false,
                detail,
            },
            code,
        )
    };
    let Some(rdb) = rdb else {
        return fail(
            "the decompressed snapshot for redis-server is missing".into(),
            EXIT_FAILED,
        );
    };
    let program = match ServerProgram::find(cfg.redis_server_path.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e, EXIT_UNAVAILABLE),
    };
    let manifest = integrity.manifest.as_ref();
    let rdb_version = manifest
        .and_then(|m| m.redis.as_ref())
        .map(|r| r.rdb_version)
        .or_else(|| crate::redis_server::rdb_version_of(rdb));
    if let (Some(v), Some(max)) = (rdb_version, program.max_rdb_version()) {
        if v > max {
            return fail(
                format!(
                    "the snapshot is RDB version {v}, which {} cannot load (it reads up to {max}); install a newer redis-server for test restores, or set [verify] redis-server-path to one",
                    program.describe()
                ),
                EXIT_FAILED,
            );
        }
    }
    let expected: std::collections::BTreeMap<u64, u64> = manifest
        .map(|m| m.tables.clone())
        .unwrap_or_else(|| integrity.tables.clone())
        .iter()
        .filter_map(|t| Some((t.schema.strip_prefix("db")?.parse().ok()?, t.rows)))
        .collect();
    let databases = expected.keys().max().map_or(16, |m| m + 1);
    let temp_root = rdb.parent().unwrap_or(Path::new("/tmp"));
    notify::status(&format!(
        "test restore of {}: loading into a throwaway {}",
        files.file_name(),
        program.describe()
    ));
    let mut server = match Throwaway::start(&program, rdb, temp_root, databases) {
        Ok(s) => s,
        Err(e) => return fail(e, EXIT_FAILED),
    };
    let mut client = match server.wait_loaded(cfg.verify_restore_timeout) {
        Ok(c) => c,
        Err(e) if e == "interrupted" => return fail(e, EXIT_FAILED),
        Err(e) if e.contains("restore-timeout-secs") => return fail(e, EXIT_FAILED),
        Err(e) => return fail(e, EXIT_DATAERR),
    };
    let held = match loaded(&mut client) {
        Ok(l) => l,
        Err(e) => return fail(format!("the throwaway server: {e}"), EXIT_FAILED),
    };
    drop(client);
    server.stop();
    let mut problems = Vec::new();
    for db in expected.keys().chain(held.keyspace.keys()) {
        let want = expected.get(db).copied().unwrap_or(0);
        let got = held.keyspace.get(db).copied().unwrap_or(0);
        if want != got
            && !problems
                .iter()
                .any(|p: &String| p.starts_with(&format!("db{db}:")))
        {
            problems.push(format!(
                "db{db}: {got} keys loaded, the manifest says {want}"
            ));
        }
    }
    let want_functions = manifest.and_then(|m| m.redis.as_ref()).map(|r| r.functions);
    if let (Some(want), Some(got)) = (want_functions, held.functions) {
        if want != got {
            problems.push(format!(
                "{got} Functions libraries loaded, the manifest says {want}"
            ));
        }
    }
    if !problems.is_empty() {
        return fail(
            format!(
                "loaded by a throwaway {}, but {}",
                program.describe(),
                problems.join("; ")
            ),
            EXIT_DATAERR,
        );
    }
    let keys: u64 = held.keyspace.values().sum();
    let mut detail = format!(
        "loaded by a throwaway {}: {} in {} match the manifest",
        program.describe(),
        crate::text::count(keys, "key", "keys"),
        crate::text::count(
            held.keyspace.len() as u64,
            "logical database",
            "logical databases"
        )
    );
    if let Some(n) = held.functions.filter(|n| *n > 0) {
        detail.push_str(&format!(
            ", {}",
            crate::text::count(n, "Functions library", "Functions libraries")
        ));
    }
    if let Some(d) = &held.digest {
        // The data's fingerprint: a restore's target must show the same.
        detail.push_str(&format!("; DEBUG DIGEST {d}"));
    }
    detail.push_str(&format!(" ({:.1} s)", started.elapsed().as_secs_f64()));
    if keep {
        detail.push_str("; --keep-scratch does not apply to Redis (the throwaway server is stopped and removed)");
    }
    (
        Check {
            name: "test-restore".into(),
            ok: true,
            detail,
        },
        0,
    )
}

/// Every table in `expected` exists and holds exactly that many rows (`ONLY`: the table's own
/// rows, as in its COPY block). Returns the total.
fn compare_counts(psql: &Psql, expected: &[TableRows]) -> std::result::Result<u64, (String, u8)> {
    if expected.is_empty() {
        return Ok(0);
    }
    let mut total = 0;
    let mut problems = Vec::new();
    // Batches keep each statement a reasonable size for databases with thousands of tables.
    for batch in expected.chunks(200) {
        let existing = batch
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "SELECT {i}, to_regclass({}) IS NOT NULL",
                    crate::postgres::quote_literal(&format!(
                        "{}.{}",
                        quote_ident(&t.schema),
                        quote_ident(&t.table)
                    ))
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let exists = by_index(
            psql.query(&existing)
                .map_err(|e| (e.to_string(), e.exit_code()))?,
        );
        let mut present = Vec::new();
        for (i, t) in batch.iter().enumerate() {
            if exists.get(&i).map(String::as_str) == Some("t") {
                present.push(t);
            } else {
                problems.push(format!("table {}.{} is missing", t.schema, t.table));
            }
        }
        if present.is_empty() {
            continue;
        }
        let counts = present
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "SELECT {i}, count(*) FROM ONLY {}.{}",
                    quote_ident(&t.schema),
                    quote_ident(&t.table)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = by_index(
            psql.query(&counts)
                .map_err(|e| (e.to_string(), e.exit_code()))?,
        );
        for (i, t) in present.iter().enumerate() {
            let got: u64 = rows
                .get(&i)
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX);
            if got != t.rows {
                problems.push(format!(
                    "row count mismatch in {}.{}: restored {got}, manifest says {}",
                    t.schema, t.table, t.rows
                ));
            }
            total += got;
        }
    }
    if problems.is_empty() {
        Ok(total)
    } else {
        Err((problems.join("; "), EXIT_DATAERR))
    }
}

/// Rows of `(index, value)` as a map.
fn by_index(rows: Vec<Vec<String>>) -> std::collections::HashMap<usize, String> {
    rows.into_iter()
        .filter_map(|r| {
            let mut it = r.into_iter();
            Some((it.next()?.parse().ok()?, it.next()?))
        })
        .collect()
}
