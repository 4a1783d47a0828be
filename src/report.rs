//! The listeners a command-line run installs on its job (`crate::job::Job`): the journal (log
//! lines), systemd (sd-notify STATUS and progress), and the state file with the node_exporter
//! textfile that is rendered from it. Each turns [`Event`]s into its own output; none of them
//! steers the job.

use std::sync::Mutex;

use chrono::Utc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::job::{Event, Level, Listener, Step};
use crate::text::human_bytes;
use crate::{log, notify};

/// Lets one progress report in `every` through.
#[derive(Debug)]
struct Throttle {
    every: std::time::Duration,
    last: Mutex<Option<std::time::Instant>>,
}

impl Throttle {
    const fn new(every: std::time::Duration) -> Self {
        Throttle {
            every,
            last: Mutex::new(None),
        }
    }

    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(t) if t.elapsed() < self.every => false,
            _ => {
                *last = Some(std::time::Instant::now());
                true
            }
        }
    }
}

/// How often the log and sd-notify pass progress on.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Log lines for the journal (or stderr, or syslog: `crate::log` decides where).
#[derive(Debug)]
pub struct Journal {
    progress: Throttle,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            progress: Throttle::new(PROGRESS_EVERY),
        }
    }
}

impl Listener for Journal {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::RunStarted | Event::Started { .. } | Event::RunFinished { .. } => {}
            Event::Progress {
                db,
                read,
                written,
                rate,
            } => {
                if self.progress.due() {
                    log::debug(&progress_line(db, *read, *written, *rate));
                }
            }
            Event::Notice { level, text } => match level {
                Level::Debug => log::debug(text),
                Level::Info => log::info(text),
                Level::Warn => log::warn(text),
            },
            Event::Completed { db, path, manifest } => {
                let rate = manifest.raw_bytes as f64 / manifest.duration_secs.max(0.001);
                log::info(&format!(
                    "{db}: backup complete: {path} ({}, {} uncompressed, {}, {:.1} s, {}/s)",
                    human_bytes(manifest.compressed_bytes),
                    human_bytes(manifest.raw_bytes),
                    if crate::catalog::is_globals_name(db) {
                        "cluster globals".to_string()
                    } else if manifest.redis.is_some() {
                        format!(
                            "{} in {}",
                            crate::text::count(
                                manifest.tables.iter().map(|t| t.rows).sum::<u64>(),
                                "key",
                                "keys"
                            ),
                            crate::text::count(
                                manifest.tables.len() as u64,
                                "logical database",
                                "logical databases"
                            )
                        )
                    } else {
                        crate::text::count(manifest.tables.len() as u64, "table", "tables")
                    },
                    manifest.duration_secs,
                    human_bytes(rate as u64),
                ));
            }
            Event::Uploaded {
                db,
                bytes,
                location,
                ..
            } => log::info(&format!(
                "{db}: uploaded {} to {location}",
                human_bytes(*bytes)
            )),
            Event::Skipped { db, reason } => log::info(&format!("{db}: skipped: {reason}")),
            Event::Retained {
                db,
                file,
                location,
                locked_until: None,
            } => log::info(&format!("{db}: retention deleted {file} ({location})")),
            Event::Retained {
                db,
                file,
                location,
                locked_until: Some(until),
            } => log::info(&format!(
                "{db}: retention kept {file} ({location}): locked until {until}"
            )),
            Event::Failed {
                db,
                step,
                error,
                path,
            } => match step {
                Step::Backup => log::error(&format!("{db}: backup failed: {error}")),
                Step::Upload => log::error(&format!(
                    "{db}: upload failed: {error}; the local backup {} is complete",
                    path.unwrap_or("")
                )),
                Step::Retention => log::error(&format!(
                    "{db}: retention failed: {error}; the new backup is safe, old ones were not all deleted"
                )),
            },
        }
    }
}

/// The words of a progress report.
pub fn progress_line(db: &str, read: u64, written: u64, rate: u64) -> String {
    format!(
        "backing up {db}: {} read, {} written, {}/s",
        human_bytes(read),
        human_bytes(written),
        human_bytes(rate)
    )
}

/// sd-notify: READY at the start, a STATUS line per database, progress (which also extends a
/// start timeout and pings the watchdog) while bytes flow, and the outcome.
#[derive(Debug)]
pub struct Systemd {
    progress: Throttle,
}

impl Default for Systemd {
    fn default() -> Self {
        Systemd {
            progress: Throttle::new(PROGRESS_EVERY),
        }
    }
}

impl Listener for Systemd {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::RunStarted => notify::ready("pgbackup: starting backup"),
            Event::Started { db, index, total } => {
                notify::status(&format!("backing up {db} ({}/{total})", index + 1));
            }
            Event::Progress {
                db,
                read,
                written,
                rate,
            } if self.progress.due() => {
                notify::progress(&progress_line(db, *read, *written, *rate));
            }
            Event::RunFinished {
                total,
                failed: 0,
                interrupted: None,
            } => notify::status(&format!(
                "backup finished: {} ok",
                crate::text::count(*total as u64, "database", "databases")
            )),
            // A failed run's STATUS is the error, set by `main` when the run returns it.
            _ => {}
        }
    }
}

/// The state file (`<root>/.pgbackup-state.json`) and the metrics rendered from it: one update
/// per database outcome. A state file that cannot be written is kept and fails the run at
/// [`Recorder::finish`] (exit 73): a run that cannot record its outcome has failed.
#[derive(Debug)]
pub struct Recorder {
    cfg: Config,
    unsaved: Mutex<Option<Error>>,
}

impl Recorder {
    /// A recorder for `cfg`'s root and textfile directory.
    pub fn new(cfg: &Config) -> Self {
        Recorder {
            cfg: cfg.clone(),
            unsaved: Mutex::new(None),
        }
    }

    fn record(&self, db: &str, outcome: std::result::Result<&crate::catalog::Manifest, &Error>) {
        let now = Utc::now();
        let saved = write_metrics(&self.cfg, |st| {
            let s = st.databases.entry(db.to_string()).or_default();
            s.runs_total += 1;
            s.last_run_at = Some(now);
            match outcome {
                Ok(m) => {
                    s.last_run_ok = Some(true);
                    s.last_error = None;
                    s.last_success_at = Some(m.finished_at);
                    s.last_duration_secs = Some(m.duration_secs);
                    s.last_size_bytes = Some(m.compressed_bytes);
                    s.last_format = Some((m.dump_format.clone(), m.compression.clone()));
                    s.last_encryption = m
                        .chain()
                        .is_ok_and(|c| c.encrypted)
                        .then(|| "age".to_string());
                }
                Err(e) => {
                    s.last_run_ok = Some(false);
                    s.failures_total += 1;
                    s.last_failure_at = Some(now);
                    s.last_error = Some(e.to_string());
                }
            }
        });
        if let Err(e) = saved {
            log::error(&format!("{db}: the outcome could not be recorded: {e}"));
            self.keep(e);
        }
    }

    fn keep(&self, e: Error) {
        self.unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }

    /// Record the run's end (`result` is what the run returned) and say what it comes to: the
    /// run's own error, else a state file that could not be written, else success. The metrics
    /// say the outcome even when the state file cannot be written (a full backup root). A run
    /// that found another holding the lock changes nothing.
    pub fn finish(&self, result: Result<()>) -> Result<()> {
        if matches!(result, Err(Error::Locked { .. })) {
            return result;
        }
        let unsaved = self
            .unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let ok = result.is_ok() && unsaved.is_none();
        let mut unsaved = unsaved;
        if let Err(e) = write_metrics(&self.cfg, |st| {
            st.last_run_at = Some(Utc::now());
            st.last_run_ok = Some(ok);
        }) {
            if ok {
                // The metrics just said success; they must say what the exit code will.
                let mut st = crate::state::load(&self.cfg.local_dir);
                st.last_run_at = Some(Utc::now());
                st.last_run_ok = Some(false);
                render_metrics(&self.cfg, &st);
            }
            unsaved.get_or_insert(e);
        }
        match (result, unsaved) {
            (Err(e), _) | (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
        }
    }
}

impl Listener for Recorder {
    fn event(&self, event: &Event<'_>) {
        match event {
            // Recorded once the off-site copy (if any) is complete: see `Uploaded`.
            Event::Completed { db, manifest, .. } if !self.uploads() => {
                self.record(db, Ok(manifest));
            }
            Event::Uploaded { db, manifest, .. } => self.record(db, Ok(manifest)),
            Event::Failed {
                db,
                step: Step::Backup | Step::Upload,
                error,
                ..
            } => self.record(db, Err(error)),
            _ => {}
        }
    }
}

impl Recorder {
    /// Whether each backup is uploaded after its local commit (S3 with keep-local).
    fn uploads(&self) -> bool {
        self.cfg.s3.as_ref().is_some_and(|s| s.keep_local)
    }
}

/// Update the state file and rewrite the metrics file from the state in memory. The metrics are
/// written whatever happened to the state file; a state file that could not be written is
/// returned as the error (a run that cannot record its outcome has failed: the caller says so).
/// Failures to write the metrics file are logged (a missing textfile directory once per run;
/// none configured only at debug level).
pub fn write_metrics(
    cfg: &Config,
    f: impl FnOnce(&mut crate::state::State),
) -> std::result::Result<crate::state::State, Error> {
    let root = &cfg.local_dir;
    let (state, saved) = if root.is_dir() {
        crate::state::update(root, f)
    } else {
        let mut st = crate::state::State::default();
        f(&mut st);
        (st, Ok(()))
    };
    render_metrics(cfg, &state);
    match saved {
        Ok(()) => Ok(state),
        Err(source) => Err(Error::Output {
            what: "state file",
            path: root.join(crate::state::STATE_FILE),
            source,
        }),
    }
}

/// Write the metrics file for `state` (see [`write_metrics`]).
pub fn render_metrics(cfg: &Config, state: &crate::state::State) {
    let Some(dir) = &cfg.textfile_dir else {
        log::debug(&format!(
            "metrics not written: [metrics] textfile-dir is not set (node_exporter's is {}, as the packaged configuration sets it)",
            crate::config::DEFAULT_TEXTFILE_DIR
        ));
        return;
    };
    if !dir.is_dir() {
        // Said once per run, however many times the metrics are rewritten in it.
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            log::warn(&format!(
                "metrics not written: {} does not exist (install prometheus-node-exporter or fix [metrics] textfile-dir)",
                dir.display()
            ));
        }
        return;
    }
    if let Err(e) = crate::metrics::write(dir, &cfg.metrics_file, state, &cfg.local_dir) {
        log::warn(&format!(
            "cannot write {}: {e}",
            dir.join(&cfg.metrics_file).display()
        ));
    }
}
