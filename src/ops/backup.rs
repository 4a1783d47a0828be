//! One database's backup as an operation: respawn protection, a free name, the source's stream
//! through the pipeline into a storage writer, the commit in the storage's order, the manifest.
//! On any error nothing new is visible under a backup name. Returns a typed [`Outcome`]; the
//! command renders it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::catalog::{self, BackupName, Kind, Manifest, MANIFEST_VERSION};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::{self, PipelineError};
use crate::s3::S3Failure;
use crate::source::Source;
use crate::storage::{LocalStorage, Storage};
use crate::text::{human_age, human_bytes};
use crate::{log, notify};

/// How often progress goes to sd-notify and the debug log.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

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
    if e.get_ref().is_some_and(|i| i.is::<S3Failure>()) {
        let inner = e.into_inner().expect("checked above");
        return Error::S3(*inner.downcast::<S3Failure>().expect("checked above"));
    }
    Error::Output {
        what: "backup file",
        path: PathBuf::from(dest),
        source: e,
    }
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
) -> Result<Outcome> {
    for removed in LocalStorage::new(&cfg.local_dir).clean_incomplete(name)? {
        log::info(&format!(
            "{name}: removed debris of an interrupted run: {removed}"
        ));
    }

    let now = Utc::now();
    let complete = store.complete_backups(name)?;
    for future in complete
        .iter()
        .filter(|b| crate::retention::is_future(b.name.timestamp, now))
    {
        log::warn(&format!(
            "{name}: backup {} is dated in the future ({} > now): a clock was or is wrong; it is kept, and ignored for respawn protection, freshness and retention counts",
            future.name.file_name(),
            future.name.timestamp.format("%Y-%m-%d %H:%M:%S UTC")
        ));
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
    let server_version = info.server_version.clone();
    let db_size = info.size;

    // A free name: two runs within one second must not overwrite each other.
    let started_at = Utc::now();
    let mut ts = started_at;
    let chain = cfg.chain();
    let files = store.files(name)?;
    let previous = catalog::backups_in(name, &files)
        .into_iter()
        .rfind(|b| b.has_sidecar);
    let existing: HashSet<String> = files.into_iter().map(|f| f.name).collect();
    let backup_name = loop {
        let n = BackupName::new(name, ts, Kind::of(&chain));
        let taken = [n.file_name(), n.sidecar_name(), n.manifest_name()]
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
        chain.compression,
        PROGRESS_EVERY,
        |raw, written| {
            let rate = raw as f64 / clock.elapsed().as_secs_f64().max(0.001);
            let msg = format!(
                "backing up {name}: {} read, {} written, {}/s",
                human_bytes(raw),
                human_bytes(written),
                human_bytes(rate as u64)
            );
            notify::progress(&msg);
            log::debug(&msg);
        },
    );
    let (writer, out) = match result {
        Ok(done) => done,
        Err(PipelineError::Write(e)) => {
            source.kill();
            let _ = source.finish(true);
            return Err(write_error(e, &final_path));
        }
        Err(PipelineError::Read(e)) => {
            source.kill();
            source.finish(true)?;
            return Err(Error::Dump(crate::postgres::DumpError::Failed {
                db: name.to_string(),
                status: "read error".into(),
                detail: e.to_string(),
            }));
        }
    };
    source.finish(out.complete)?;
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
        compression: chain.compression.name().into(),
        compression_level: chain.compression.level(),
        dump_format: chain.format.name().into(),
        stages: chain.stages(),
        description: description.map(str::to_string),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tables: out.tables,
        extensions: info.extensions,
        database_properties: info.properties,
        verifications: Vec::new(),
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
