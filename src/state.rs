//! What the last runs did, per database: `<local-dir>/.pgbackup-state.json`.
//!
//! The state feeds the metrics file (so a run for one database keeps the others' series),
//! `pgbackup status` and `pgbackup check`. Updates are read-modify-write under a short flock of
//! their own, so a verify and a backup running at the same time do not lose each other's update.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::fsutil;

/// File name of the state inside the backup root.
pub const STATE_FILE: &str = ".pgbackup-state.json";
const STATE_LOCK: &str = ".pgbackup-state.lock";

/// Per-database history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DbState {
    /// When the last backup attempt ended.
    pub last_run_at: Option<DateTime<Utc>>,
    /// Whether it succeeded.
    pub last_run_ok: Option<bool>,
    /// Its error, in words (never a secret: errors mask them).
    pub last_error: Option<String>,
    /// Last successful backup.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Last failed backup.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Duration of the last successful backup.
    pub last_duration_secs: Option<f64>,
    /// Size of the last successful backup's data file.
    pub last_size_bytes: Option<u64>,
    /// The last successful backup's format and compression, e.g. `("custom", "zstd")`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_format: Option<(String, String)>,
    /// Whether the last successful backup was encrypted ("age"; absent: not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_encryption: Option<String>,
    /// Backup attempts.
    pub runs_total: u64,
    /// Failed backup attempts.
    pub failures_total: u64,
    /// Last verification.
    pub last_verify_at: Option<DateTime<Utc>>,
    /// Whether it passed.
    pub last_verify_ok: Option<bool>,
    /// Duration of the last test restore.
    pub last_test_restore_secs: Option<f64>,
}

/// The whole state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Per database (directory name).
    pub databases: BTreeMap<String, DbState>,
    /// When the last whole backup run ended, and whether every database succeeded.
    pub last_run_at: Option<DateTime<Utc>>,
    /// See `last_run_at`.
    pub last_run_ok: Option<bool>,
    /// Scratch databases of test restores that could not be dropped (`name on server`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftover_scratch: Vec<String>,
}

fn path(root: &Path) -> PathBuf {
    root.join(STATE_FILE)
}

/// Read the state; a missing or unreadable file is an empty state.
pub fn load(root: &Path) -> State {
    std::fs::read(path(root))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Apply `f` to the state and write it back atomically. Returns the new state whether or not
/// it could be written (the run's outcome is in memory, and metrics and sd-notify must say it
/// even when the disk is full), and the error of writing it, if any.
pub fn update(root: &Path, f: impl FnOnce(&mut State)) -> (State, std::io::Result<()>) {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(root.join(STATE_LOCK))
        .and_then(|file| {
            crate::fsutil::give_away(&root.join(STATE_LOCK))?;
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))
        });
    let mut state = load(root);
    f(&mut state);
    let saved = lock.and_then(|_lock| {
        let mut bytes = serde_json::to_vec_pretty(&state).expect("state is plain data");
        bytes.push(b'\n');
        fsutil::write_atomic(root, STATE_FILE, &bytes)
    });
    (state, saved)
}
