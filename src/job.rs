//! One job: its cancellation (`crate::run::Cancel`) and its listeners. What happens during the
//! job (a database started, bytes flowed, a backup was committed, uploaded, pruned, or failed)
//! is an [`Event`] sent to each of them. The journal, sd-notify, the state file and the metrics
//! are listeners (`crate::report`); a test listens with a `Vec`, the daemon's API will listen
//! the same way. Listeners observe; they never steer the job.
//!
//! What stays per process, on purpose: the log's destination and verbosity (a process has one
//! stderr and one journal stream) and the adopted owner of files under the backup root
//! (`crate::fsutil`; one configuration, so one root, per process, the daemon included).

use std::sync::Arc;

pub use crate::run::Cancel;

/// How much a [`Event::Notice`] matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail for `-v`.
    Debug,
    /// Something done that changes nothing for the user (debris removed).
    Info,
    /// Something the user should look at (a backup dated in the future).
    Warn,
}

/// Where in one database's run a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The dump and its commit: nothing new is visible.
    Backup,
    /// The off-site copy: the local backup is complete.
    Upload,
    /// Retention after a good backup: the new backup is safe.
    Retention,
}

/// What happens during a job.
#[derive(Debug)]
pub enum Event<'a> {
    /// A backup run starts (it holds the run lock).
    RunStarted,
    /// One database's backup starts (`index` counts from 0).
    Started {
        /// The database.
        db: &'a str,
        /// Its place in the run.
        index: usize,
        /// The run's size.
        total: usize,
    },
    /// Bytes flow (about once a second while a dump runs).
    Progress {
        /// The database.
        db: &'a str,
        /// Bytes read from the source.
        read: u64,
        /// Bytes written to the storage.
        written: u64,
        /// Bytes read per second, so far.
        rate: u64,
    },
    /// Worth a line, changes nothing.
    Notice {
        /// How much it matters.
        level: Level,
        /// The line.
        text: String,
    },
    /// A new backup exists.
    Completed {
        /// The database.
        db: &'a str,
        /// Its data file (path or URL).
        path: &'a str,
        /// Its manifest.
        manifest: &'a crate::catalog::Manifest,
    },
    /// The off-site copy of a new backup is complete.
    Uploaded {
        /// The database.
        db: &'a str,
        /// The data object's size.
        bytes: u64,
        /// Where it went.
        location: &'a str,
        /// The backup's manifest.
        manifest: &'a crate::catalog::Manifest,
    },
    /// Respawn protection skipped a database.
    Skipped {
        /// The database.
        db: &'a str,
        /// Why, in words.
        reason: &'a str,
    },
    /// Retention deleted an old backup, or kept it because the storage locks it.
    Retained {
        /// The database.
        db: &'a str,
        /// The backup's data file.
        file: &'a str,
        /// `local` or the S3 location.
        location: &'a str,
        /// Locked until this date (kept), or `None` (deleted).
        locked_until: Option<&'a str>,
    },
    /// A step failed for one database; the run goes on with the next.
    Failed {
        /// The database.
        db: &'a str,
        /// Which step.
        step: Step,
        /// What went wrong.
        error: &'a crate::error::Error,
        /// The local backup a failed upload leaves complete.
        path: Option<&'a str>,
    },
    /// The run is over.
    RunFinished {
        /// Databases in the run.
        total: usize,
        /// Databases with a failed step.
        failed: usize,
        /// The signal that stopped it early, if one did.
        interrupted: Option<i32>,
    },
}

/// Byte progress of transfers (a download, a streamed check), told to whoever draws it (the
/// binary's terminal line); `()` ignores it.
pub trait Transfers {
    /// A transfer of `name` starts; `total` bytes when known.
    fn start(&mut self, _name: &str, _total: Option<u64>) {}
    /// `done` bytes so far.
    fn update(&mut self, _done: u64) {}
    /// The transfer ended, well or not, after `done` bytes.
    fn finish(&mut self, _ok: bool, _done: u64) {}
}

impl Transfers for () {}

/// Whoever observes a job: gets every event, in order, on the job's thread.
pub trait Listener: Send + Sync {
    /// One event.
    fn event(&self, event: &Event<'_>);
}

/// One job: its cancellation and its listeners.
#[derive(Clone, Default)]
pub struct Job {
    /// Cancels this job and stops its children.
    pub cancel: Cancel,
    listeners: Vec<Arc<dyn Listener>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("cancel", &self.cancel)
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

impl Job {
    /// A job under `cancel`, with no listener yet.
    pub fn new(cancel: Cancel) -> Self {
        Job {
            cancel,
            listeners: Vec::new(),
        }
    }

    /// The job with one more listener.
    pub fn listen(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Send `event` to every listener.
    pub fn emit(&self, event: Event<'_>) {
        for l in &self.listeners {
            l.event(&event);
        }
    }

    /// The signal that cancelled this job, if one did.
    pub fn cancelled(&self) -> Option<i32> {
        self.cancel.cancelled()
    }
}
