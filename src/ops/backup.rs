//! A backup run as an operation: over the selected databases, each one's backup (respawn
//! protection, a free name, the source's stream through the pipeline into a storage writer, the
//! commit in the storage's order, the manifest), its off-site copy and its retention. On any
//! error nothing new is visible under a backup name; one database failing does not stop the
//! others. What happens is told to the job's listeners as events (`crate::job::Event`); the
//! result is typed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::catalog::{self, BackupName, Kind, Manifest, MANIFEST_VERSION};
use crate::config::{Config, Database};
use crate::conninfo::ConnInfo;
use crate::error::{Error, Result, EXIT_FAILED};
use crate::job::{Event, Job, Level, Step};
use crate::ops::prune;
use crate::pipeline::{self, PipelineError};
use crate::postgres::{PgTools, Psql, Target};
use crate::s3::S3Store;
use crate::source::{PgDump, Source};
use crate::storage::{LocalStorage, Storage};
use crate::text::human_age;

/// How often a running dump reports its progress to the job's listeners (each decides how
/// often it passes it on: a terminal line redraws at once, sd-notify and the log every 5 s).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What happened to one database.
#[derive(Debug)]
pub enum Outcome {
    /// A new backup exists.
    Done {
        /// Its data file (path or URL).
        path: String,
        /// Its manifest.
        manifest: Box<Manifest>,
    },
    /// Respawn protection: the last backup is recent.
    Skipped {
        /// Why, in words.
        reason: String,
    },
}

/// A failed write of the backup stream: an S3 failure comes out as itself, anything else
/// (disk full, I/O error) as a write error on the backup file.
fn write_error(e: std::io::Error, dest: &str) -> Error {
    Error::from_stream(e, |source| Error::Output {
        what: "backup file",
        path: PathBuf::from(dest),
        source,
    })
}

/// What a backup run is asked for.
#[derive(Debug, Default)]
pub struct Request<'a> {
    /// The databases to back up (by name); empty: every one.
    pub databases: &'a [String],
    /// Back up even when respawn protection would skip.
    pub force: bool,
    /// Kept in each manifest.
    pub description: Option<&'a str>,
    /// `--retention DAYS` instead of the configured `keep-days`.
    pub retention: Option<u32>,
    /// Only one kind of item (`--only`).
    pub only: Option<ItemKind>,
}

/// A kind of backup item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// PostgreSQL databases (and the cluster globals).
    Postgres,
    /// `[[redis]]` servers.
    Redis,
}

/// The longest `--description` a backup takes (it lands in manifests, lists and metrics).
pub const MAX_DESCRIPTION: usize = 1000;

/// Run a backup of every selected database under `job` (its lock held for the run): each
/// database's dump, its upload when S3 keeps a local copy, then its retention. Failures of one
/// database are told as events and aggregated into the result; a cancelled job stops before
/// the next database.
pub fn run(cfg: &Config, job: &Job, req: &Request<'_>) -> Result<()> {
    for w in cfg.warnings_for(req.databases) {
        job.emit(Event::Notice {
            level: Level::Warn,
            text: w.clone(),
        });
    }
    if let Some(d) = req.description {
        let n = d.chars().count();
        if n > MAX_DESCRIPTION {
            return Err(Error::Usage(format!(
                "--description is {n} characters long; at most {MAX_DESCRIPTION} are kept in the manifest"
            )));
        }
    }
    let _lock = super::lock_root(cfg)?;
    job.emit(Event::RunStarted);
    // What killed runs left outside the database directories: a state write or a download in
    // the root, a metrics write in the textfile directory (ours only; young ones may be a run
    // going on now).
    let textfile = cfg
        .textfile_dir
        .as_ref()
        .map(|d| (d, ".pgbackup.prom.", 600));
    for (dir, prefix, age) in
        std::iter::once((&cfg.local_dir, crate::catalog::TEMP_PREFIX, 3600)).chain(textfile)
    {
        match crate::fsutil::clean_stale_temp(dir, prefix, Duration::from_secs(age)) {
            Ok(removed) => {
                for r in removed {
                    job.emit(Event::Notice {
                        level: Level::Info,
                        text: format!(
                            "removed debris of an interrupted run: {}",
                            dir.join(r).display()
                        ),
                    });
                }
            }
            Err(e) => job.emit(Event::Notice {
                level: Level::Debug,
                text: format!("cannot clean {}: {e}", dir.display()),
            }),
        }
    }
    let tools = cfg.tools();
    // `--db` names databases and Redis servers alike; PostgreSQL is left alone when only
    // Redis servers are configured or selected (no pg_dump needed, no discovery).
    let is_redis = |n: &str| cfg.redis.iter().any(|r| r.name == n);
    // With Redis servers configured, PostgreSQL databases are only the configured ones (no
    // discovery): `--db` must name one of either.
    let configured = !cfg.databases.is_empty() || !cfg.redis.is_empty();
    if !req.databases.is_empty() && configured {
        let known: Vec<&str> = cfg
            .databases
            .iter()
            .map(Database::name)
            .chain(cfg.redis.iter().map(|r| r.name.as_str()))
            .collect();
        super::check_known(req.databases, &known, "configured")?;
    }
    let pg_wanted: Vec<String> = req
        .databases
        .iter()
        .filter(|w| !is_redis(w))
        .cloned()
        .collect();
    match req.only {
        Some(ItemKind::Redis) if cfg.redis.is_empty() => {
            return Err(Error::Usage(
                "--only redis: no [[redis]] server is configured (see pgbackup.toml(5))".into(),
            ))
        }
        Some(ItemKind::Redis) if !pg_wanted.is_empty() => {
            return Err(Error::Usage(format!(
                "--only redis: {} is not a [[redis]] server",
                pg_wanted.join(", ")
            )))
        }
        Some(ItemKind::Postgres) if cfg.databases.is_empty() && !cfg.redis.is_empty() => {
            return Err(Error::Usage(
                "--only postgres: no [[database]] is configured (with [[redis]] servers, databases are not discovered)".into(),
            ))
        }
        Some(ItemKind::Postgres) if req.databases.iter().any(|w| is_redis(w)) => {
            return Err(Error::Usage(
                "--only postgres: --db names a [[redis]] server".into(),
            ))
        }
        _ => {}
    }
    let wants_pg = match req.only {
        Some(ItemKind::Redis) => false,
        Some(ItemKind::Postgres) => true,
        None if req.databases.is_empty() => !cfg.databases.is_empty() || cfg.redis.is_empty(),
        None => !pg_wanted.is_empty(),
    };
    let mut items: Vec<Item> = Vec::new();
    let dump_version = if wants_pg {
        let dump_version = tools.pg_dump_version()?;
        let databases = resolve_databases(cfg, &tools)?;
        let selected = select(databases, &pg_wanted)?;
        if selected.is_empty() {
            job.emit(Event::Notice {
                level: Level::Warn,
                text: "no database to back up: the server has no connectable non-template database"
                    .into(),
            });
        }
        let globals = if cfg.globals {
            globals_of(&selected)
        } else {
            Vec::new()
        };
        items.extend(selected.into_iter().chain(globals).map(Item::Database));
        dump_version
    } else {
        String::new()
    };
    items.extend(
        cfg.redis
            .iter()
            .filter(|_| req.only != Some(ItemKind::Postgres))
            .filter(|r| req.databases.is_empty() || req.databases.contains(&r.name))
            .map(|r| Item::Redis(r.clone())),
    );
    let mut sources = item_sources(cfg, &tools, &dump_version, &job.cancel);
    run_databases(cfg, job, req, &items, &mut sources)
}

/// What one backup run goes through: PostgreSQL databases (and their cluster globals), then
/// Redis servers.
#[derive(Debug, Clone)]
pub enum Item {
    /// A database (or the globals of its server).
    Database(Database),
    /// A Redis or Valkey server.
    Redis(crate::redis::RedisTarget),
}

/// Anything a run backs up under a name of its own.
pub trait Named {
    /// Its directory and file-name prefix.
    fn name(&self) -> &str;
    /// A Redis server (for the words of a message).
    fn is_redis(&self) -> bool {
        false
    }
}

impl Named for Database {
    fn name(&self) -> &str {
        Database::name(self)
    }
}

impl Named for Item {
    fn name(&self) -> &str {
        match self {
            Item::Database(d) => d.name(),
            Item::Redis(r) => &r.name,
        }
    }
    fn is_redis(&self) -> bool {
        matches!(self, Item::Redis(_))
    }
}

/// One globals item per server among `databases` (by host, port and user): named
/// [`catalog::GLOBALS`] when there is one server, `_globals-<host:port>` (escaped) for each
/// when there are several; it connects as the first database of its server does.
pub fn globals_of(databases: &[Database]) -> Vec<Database> {
    let mut servers: Vec<(String, &Database)> = Vec::new();
    for d in databases {
        let key = format!(
            "{}|{}",
            d.target.conn.host_port(),
            d.target.conn.get("user").unwrap_or_default()
        );
        if !servers.iter().any(|(k, _)| *k == key) {
            servers.push((key, d));
        }
    }
    let several = servers.len() > 1;
    servers
        .into_iter()
        .map(|(_, d)| {
            let name = if several {
                format!(
                    "{}-{}",
                    catalog::GLOBALS,
                    catalog::escape_db_name(&d.target.conn.host_port())
                )
            } else {
                catalog::GLOBALS.to_string()
            };
            Database {
                target: Target {
                    name,
                    ..d.target.clone()
                },
                extensions: Vec::new(),
                pg_dump_args: Vec::new(),
                warnings: Vec::new(),
            }
        })
        .collect()
}

/// A source per item: pg_dump (or pg_dumpall) for a database, SYNC for a Redis server.
fn item_sources<'d>(
    cfg: &'d Config,
    tools: &'d PgTools,
    version: &'d str,
    cancel: &'d crate::run::Cancel,
) -> impl FnMut(&'d Item) -> Box<dyn Source + 'd> {
    let mut pg = pg_dumps(cfg, tools, version, cancel);
    move |item| match item {
        Item::Database(db) => pg(db),
        Item::Redis(r) => Box::new(
            crate::source::RedisSync::new(
                r,
                cfg.redis_stall
                    .get(&r.name)
                    .copied()
                    .unwrap_or(Duration::from_secs(60)),
                cancel,
            )
            .with_limit(cfg.dump_timeout),
        ),
    }
}

/// A pg_dump per database, under the job's cancellation.
fn pg_dumps<'d>(
    cfg: &'d Config,
    tools: &'d PgTools,
    version: &'d str,
    cancel: &'d crate::run::Cancel,
) -> impl FnMut(&'d Database) -> Box<dyn Source + 'd> {
    move |db| {
        if catalog::is_globals_name(db.name()) {
            Box::new(crate::source::PgDumpAll::new(
                tools,
                version,
                &db.target,
                cfg.dump_timeout,
                cancel,
            ))
        } else {
            Box::new(PgDump::of(cfg, tools, version, db, cancel))
        }
    }
}

/// The loop of [`run`] over `selected`, with the sources `sources` makes (pg_dump; a scripted
/// source in the fast tier).
pub fn run_databases<'d, T: Named>(
    cfg: &Config,
    job: &Job,
    req: &Request<'_>,
    selected: &'d [T],
    sources: &mut dyn FnMut(&'d T) -> Box<dyn Source + 'd>,
) -> Result<()> {
    let policy = prune::policy_with(cfg, req.retention);
    let s3 = super::s3_stores(cfg)?.into_iter().next();
    let local = LocalStorage::new(&cfg.local_dir);
    // With keep-local = false the dump streams straight into S3; otherwise it is written
    // locally and uploaded after the local commit.
    let primary: &dyn Storage = match &s3 {
        Some(store) if !store.keep_local() => store,
        _ => &local,
    };

    let total = selected.len();
    let mut failed: Vec<(String, u8)> = Vec::new();
    for (index, db) in selected.iter().enumerate() {
        if job.cancelled().is_some() {
            break;
        }
        let name = db.name();
        job.emit(Event::Started {
            db: name,
            index,
            total,
        });
        let mut source = sources(db);
        let outcome = backup_one(
            cfg,
            name,
            source.as_mut(),
            req.force,
            req.description,
            primary,
            job,
        );
        drop(source);
        match outcome {
            Ok(Outcome::Done { path, manifest }) => {
                job.emit(Event::Completed {
                    db: name,
                    path: &path,
                    manifest: &manifest,
                });
                // Off-site copy: data first, then sidecar and manifest.
                if let Some(store) = s3.as_ref().filter(|s| s.keep_local()) {
                    match upload_backup(store, &cfg.local_dir, &manifest) {
                        Ok(bytes) => job.emit(Event::Uploaded {
                            db: name,
                            bytes,
                            location: &store.location(),
                            manifest: &manifest,
                        }),
                        Err(e) => {
                            job.emit(Event::Failed {
                                db: name,
                                step: Step::Upload,
                                error: &e,
                                path: Some(&path),
                            });
                            failed.push((name.to_string(), e.exit_code()));
                            continue;
                        }
                    }
                }
                // Retention only after this database's backup succeeded (and was uploaded).
                let pruned = prune::prune_all(
                    cfg,
                    s3.as_ref(),
                    name,
                    &policy,
                    Utc::now(),
                    false,
                    Some(&manifest.file),
                );
                match pruned {
                    Ok(rows) => {
                        for r in &rows {
                            let locked_until = match (r.action, &r.locked_until) {
                                ("delete", _) => None,
                                ("locked", Some(until)) => Some(until.as_str()),
                                _ => continue,
                            };
                            job.emit(Event::Retained {
                                db: name,
                                file: &r.file,
                                location: r.location,
                                locked_until,
                            });
                        }
                    }
                    Err(e) => {
                        job.emit(Event::Failed {
                            db: name,
                            step: Step::Retention,
                            error: &e,
                            path: None,
                        });
                        failed.push((name.to_string(), e.exit_code()));
                    }
                }
            }
            Ok(Outcome::Skipped { reason }) => job.emit(Event::Skipped {
                db: name,
                reason: &reason,
            }),
            Err(e) => {
                job.emit(Event::Failed {
                    db: name,
                    step: Step::Backup,
                    error: &e,
                    path: None,
                });
                failed.push((name.to_string(), e.exit_code()));
            }
        }
    }
    let interrupted = job.cancelled();
    job.emit(Event::RunFinished {
        total,
        failed: failed.len(),
        interrupted,
    });
    if let Some(sig) = interrupted {
        return Err(Error::Interrupted(sig));
    }
    if failed.is_empty() {
        return Ok(());
    }
    // One code for all failures when they agree, else the generic one.
    let code = if failed.iter().all(|(_, c)| *c == failed[0].1) {
        failed[0].1
    } else {
        EXIT_FAILED
    };
    let redis: Vec<bool> = selected.iter().map(Named::is_redis).collect();
    let what = if redis.iter().all(|r| *r) {
        ("Redis snapshot", "Redis snapshots")
    } else if redis.iter().any(|r| *r) {
        ("backup", "backups")
    } else {
        ("database backup", "database backups")
    };
    Err(Error::BackupsFailed {
        failed: failed.len(),
        total,
        what,
        names: failed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        code,
    })
}

/// Upload a committed local backup: the data object, then the sidecar, then the manifest.
fn upload_backup(store: &S3Store, root: &Path, manifest: &Manifest) -> Result<u64> {
    let db = &manifest.database;
    let dir = catalog::db_dir(root, db);
    let bytes = store.upload_file(&dir.join(&manifest.file), &store.key_of(db, &manifest.file))?;
    for suffix in [".sha256", ".json"] {
        let name = format!("{}{suffix}", manifest.file);
        let path = dir.join(&name);
        let content = std::fs::read(&path).map_err(|source| Error::Input {
            what: "backup file",
            path,
            source,
        })?;
        store.put(&store.key_of(db, &name), &content)?;
    }
    Ok(bytes)
}

/// The configured databases, or in zero-config mode every connectable non-template database of
/// the server that libpq's defaults reach (directory names escaped by `escape_db_name`).
pub fn resolve_databases(cfg: &Config, tools: &PgTools) -> Result<Vec<Database>> {
    if !cfg.databases.is_empty() {
        return Ok(cfg.databases.clone());
    }
    let base_db = std::env::var("PGDATABASE").unwrap_or_else(|_| "postgres".into());
    let server = Target {
        name: "(default server)".into(),
        conn: ConnInfo::from_pairs(vec![("dbname".into(), base_db)]),
        password: None,
        password_source: None,
    };
    let names = Psql::new(tools, &server).list_databases()?;
    Ok(names
        .into_iter()
        .map(|datname| {
            let mut conn = ConnInfo::default();
            conn.set("dbname", &datname);
            Database {
                target: Target {
                    name: catalog::escape_db_name(&datname),
                    conn,
                    password: None,
                    password_source: None,
                },
                extensions: Vec::new(),
                pg_dump_args: Vec::new(),
                warnings: Vec::new(),
            }
        })
        .collect())
}

/// The databases named on the command line (all when none is named); an unknown name is a
/// usage error that lists the configured ones.
fn select(all: Vec<Database>, wanted: &[String]) -> Result<Vec<Database>> {
    if wanted.is_empty() {
        return Ok(all);
    }
    let known: Vec<&str> = all.iter().map(Database::name).collect();
    super::check_known(wanted, &known, "configured")?;
    Ok(all
        .into_iter()
        .filter(|d| wanted.iter().any(|w| w == d.name()))
        .collect())
}

/// Back up one database. On any error nothing new is visible under a backup name.
/// `source` produces the stream (pg_dump for a configured database; a scripted source in the
/// fast tier); it is not started when respawn protection skips the backup.
pub fn backup_one(
    cfg: &Config,
    name: &str,
    source: &mut dyn Source,
    force: bool,
    description: Option<&str>,
    store: &dyn Storage,
    job: &Job,
) -> Result<Outcome> {
    for removed in LocalStorage::new(&cfg.local_dir).clean_incomplete(name)? {
        job.emit(Event::Notice {
            level: Level::Info,
            text: format!("{name}: removed debris of an interrupted run: {removed}"),
        });
    }

    let now = Utc::now();
    let complete = store.complete_backups(name)?;
    for future in complete
        .iter()
        .filter(|b| crate::retention::is_future(b.name.timestamp, now))
    {
        job.emit(Event::Notice {
            level: Level::Warn,
            text: format!(
                "{name}: backup {} is dated in the future ({} > now): a clock was or is wrong; it is kept, and ignored for respawn protection, freshness and retention counts",
                future.name.file_name(),
                future.name.timestamp.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        });
    }
    if cfg.respawn_protection_hours > 0 && !force {
        // A backup dated in the future says nothing about how recent the last one is.
        if let Some(latest) = complete
            .iter()
            .rfind(|b| !crate::retention::is_future(b.name.timestamp, now))
        {
            let age = Utc::now() - latest.name.timestamp;
            let limit = chrono::Duration::hours(i64::from(cfg.respawn_protection_hours));
            if age < limit {
                return Ok(Outcome::Skipped {
                    reason: format!(
                        "last backup {} is {} old, younger than respawn-protection-hours = {}; use --force to back up anyway",
                        latest.name.file_name(),
                        human_age(age),
                        cfg.respawn_protection_hours
                    ),
                });
            }
        }
    }

    let info = source.facts()?;
    if let Some(text) = source.note() {
        job.emit(Event::Notice {
            level: Level::Warn,
            text,
        });
    }
    let server_version = info.server_version.clone();
    let db_size = info.size;

    // A free name: two runs within one second must not overwrite each other.
    let started_at = Utc::now();
    let mut ts = started_at;
    let chain = crate::chain::Chain {
        format: source.format(),
        compression: cfg.compression,
        encrypted: cfg.encrypt_to.is_some(),
    };
    let files = store.files(name)?;
    let previous = catalog::backups_in(name, &files)
        .into_iter()
        .rfind(|b| b.has_sidecar);
    let existing: HashSet<String> = files.into_iter().map(|f| f.name).collect();
    // A second is taken by a backup of any kind: "the newest" stays one backup.
    let taken_at: HashSet<i64> = existing
        .iter()
        .filter_map(|f| {
            let data = f
                .strip_suffix(".sha256")
                .or_else(|| f.strip_suffix(".json"))
                .unwrap_or(f);
            BackupName::parse(data).map(|n| n.timestamp.timestamp())
        })
        .collect();
    let backup_name = loop {
        let n = BackupName::new(name, ts, Kind::of(&chain));
        let taken = taken_at.contains(&n.timestamp.timestamp())
            || [n.file_name(), n.sidecar_name(), n.manifest_name()]
                .iter()
                .any(|f| existing.contains(f));
        if !taken {
            break n;
        }
        ts += chrono::Duration::seconds(1);
    };
    let file = backup_name.file_name();
    let final_path = store.describe(name, &file);

    // An upper estimate of the compressed size, from which S3 fixes its part size: four times
    // the previous backup (room to grow), else the database's size on disk.
    let size_hint = match previous {
        Some(prev) => Some(prev.size.saturating_mul(4)),
        None => db_size,
    };
    let writer = store.create(&store.key_of(name, &file), size_hint)?;
    let clock = Instant::now();
    let stdout = source.start()?;
    let result = pipeline::run(
        stdout,
        writer,
        chain,
        cfg.encrypt_to.as_ref(),
        PROGRESS_EVERY,
        |read, written| {
            let rate = read as f64 / clock.elapsed().as_secs_f64().max(0.001);
            job.emit(Event::Progress {
                db: name,
                read,
                written,
                rate: rate as u64,
            });
        },
    );
    let (writer, out) = match result {
        Ok(done) => done,
        Err(PipelineError::Write(e)) => {
            source.kill();
            let _ = source.finish(None);
            return Err(write_error(e, &final_path));
        }
        Err(PipelineError::Read(e)) => {
            source.kill();
            source.finish(None)?;
            return Err(Error::Dump(crate::postgres::DumpError::Failed {
                db: name.to_string(),
                status: "read error".into(),
                detail: e.to_string(),
            }));
        }
    };
    source.finish(out.incomplete.clone())?;
    let finished_at = Utc::now();
    let origin = source.origin();

    let manifest = Manifest {
        format_version: MANIFEST_VERSION,
        database: name.to_string(),
        dbname: origin.dbname,
        host: origin.host,
        file: backup_name.file_name(),
        server_version,
        pg_dump_version: origin.program_version,
        started_at,
        finished_at,
        duration_secs: clock.elapsed().as_secs_f64(),
        compressed_bytes: out.compressed_bytes,
        raw_bytes: out.raw_bytes,
        sha256: out.sha256.clone(),
        plaintext_sha256: out.plaintext.as_ref().map(|p| p.0.clone()),
        plaintext_bytes: out.plaintext.as_ref().map(|p| p.1),
        compression: chain.compression.name().into(),
        compression_level: chain.compression.level(),
        dump_format: chain.format.name().into(),
        stages: chain.stages(
            cfg.encrypt_to
                .as_ref()
                .map(crate::crypt::Recipients::names)
                .unwrap_or_default(),
        ),
        description: description.map(str::to_string),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tables: out.tables,
        extensions: info.extensions,
        database_properties: info.properties,
        redis: out.rdb.map(|stream| {
            let server = source.redis_facts().unwrap_or_default();
            crate::catalog::RedisFacts {
                role: server.role,
                valkey_version: server.valkey_version,
                server_keyspace: server.server_keyspace,
                ..stream
            }
        }),
        verifications: Vec::new(),
        verifications_total: 0,
        extra: serde_json::Map::new(),
    };
    let manifest_json = catalog::manifest_bytes(&manifest);

    // The storage commits in its own order (locally the data file's rename is the commit
    // point; in S3 the data object goes first and the sidecar makes it a backup).
    let sidecar = catalog::sidecar_line(&out.sha256, &file);
    store.commit_backup(
        name,
        &backup_name,
        writer,
        sidecar.as_bytes(),
        &manifest_json,
    )?;
    Ok(Outcome::Done {
        path: final_path,
        manifest: Box::new(manifest),
    })
}
