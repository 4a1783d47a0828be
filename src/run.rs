//! What one job runs under: its cancellation and its child processes, passed in rather than
//! kept in process-wide statics, so that one process can run several jobs (the coming daemon)
//! and stopping one stops that job's children only.
//!
//! The command line has one job: `crate::signals` cancels the process's root token on SIGTERM,
//! SIGINT or SIGHUP. A daemon makes a [`Cancel::child`] per job; cancelling the root cancels
//! every job, cancelling a job cancels nothing else.
//!
//! A [`Job`] also carries its listeners: what happens during the job (a database started, bytes
//! flowed, a backup was committed, uploaded, pruned, or failed) is an [`Event`] sent to each of
//! them. The journal, sd-notify, the state file and the metrics are listeners
//! (`crate::report`); a test listens with a `Vec`, the daemon's API will listen the same way.
//! Listeners observe; they never steer the job.
//!
//! What stays per process, on purpose: the log's destination and verbosity (a process has one
//! stderr and one journal stream) and the adopted owner of files under the backup root
//! (`crate::fsutil`; one configuration, so one root, per process, the daemon included).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// A cancellation token that also knows the job's running children.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The signal (or 0) that cancelled this job.
    signal: AtomicI32,
    /// The job's running children (pids; each leads its own process group). Held locked while
    /// one is reaped, so that a pid is never signalled after it was reused.
    children: Mutex<BTreeSet<i32>>,
    /// Jobs started under this one.
    jobs: Mutex<Vec<Weak<Inner>>>,
}

impl Cancel {
    /// A token of its own (the process's root, or a test's).
    pub fn new() -> Self {
        Self::default()
    }

    /// A token for a job under this one: cancelled with it, never the other way round.
    pub fn child(&self) -> Cancel {
        let c = Cancel::new();
        if let Some(sig) = self.cancelled() {
            c.inner.signal.store(sig, Ordering::SeqCst);
        }
        lock(&self.inner.jobs).push(Arc::downgrade(&c.inner));
        c
    }

    /// Cancel this job and every job under it: record `signal` (the first one wins) and stop
    /// the running children (SIGTERM to each child's process group).
    pub fn cancel(&self, signal: i32) {
        cancel_inner(&self.inner, signal);
    }

    /// The signal this job was cancelled with, if it was.
    pub fn cancelled(&self) -> Option<i32> {
        match self.inner.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Register a running child; a job already cancelled stops it at once.
    pub fn register(&self, pid: u32) {
        let pid = pid as i32;
        lock(&self.inner.children).insert(pid);
        if self.cancelled().is_some() {
            terminate(pid);
        }
    }

    /// Run `f` (which reaps `pid`) with the child unregistered and the registry locked.
    pub fn reap<T>(&self, pid: u32, f: impl FnOnce() -> T) -> T {
        let mut children = lock(&self.inner.children);
        children.remove(&(pid as i32));
        f()
    }

    /// How many children are registered (for tests and status).
    pub fn running(&self) -> usize {
        lock(&self.inner.children).len()
    }
}

fn cancel_inner(inner: &Inner, signal: i32) {
    let _ = inner
        .signal
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    for &pid in lock(&inner.children).iter() {
        terminate(pid);
    }
    let jobs: Vec<Arc<Inner>> = lock(&inner.jobs).iter().filter_map(Weak::upgrade).collect();
    for j in jobs {
        cancel_inner(&j, signal);
    }
}

/// SIGTERM to a child's process group and to the child itself.
fn terminate(pid: i32) {
    let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
}

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
    /// Bytes flow (every few seconds while a dump runs).
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::time::{Duration, Instant};

    fn sleeper() -> std::process::Child {
        let mut cmd = Command::new("sleep");
        cmd.arg("30").process_group(0);
        cmd.spawn().unwrap()
    }

    fn wait(job: &Cancel, mut child: std::process::Child) -> std::process::ExitStatus {
        let pid = child.id();
        job.reap(pid, || child.wait().unwrap())
    }

    #[test]
    fn cancelling_a_job_stops_its_children_and_no_other_jobs() {
        let root = Cancel::new();
        let (a, b) = (root.child(), root.child());
        let (ca, cb) = (sleeper(), sleeper());
        a.register(ca.id());
        b.register(cb.id());
        assert_eq!((a.running(), b.running()), (1, 1));

        let started = Instant::now();
        a.cancel(15);
        assert!(!wait(&a, ca).success());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the child was not stopped"
        );
        assert_eq!(a.cancelled(), Some(15));
        assert_eq!(b.cancelled(), None, "a sibling job was cancelled");
        assert_eq!(root.cancelled(), None, "the parent was cancelled");

        // The root's cancel reaches every job under it, and a job started later.
        root.cancel(2);
        assert!(!wait(&b, cb).success());
        assert_eq!(b.cancelled(), Some(2));
        assert_eq!(a.cancelled(), Some(15), "the first signal wins");
        let late = root.child();
        assert_eq!(late.cancelled(), Some(2));
        let c = sleeper();
        late.register(c.id());
        assert!(
            !wait(&late, c).success(),
            "a child of a cancelled job kept running"
        );
        assert_eq!(late.running(), 0);
    }
}
