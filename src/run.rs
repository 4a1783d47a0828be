//! What one job runs under: its cancellation and its child processes, passed in rather than
//! kept in process-wide statics, so that one process can run several jobs (the coming daemon)
//! and stopping one stops that job's children only.
//!
//! The command line has one job: `crate::signals` cancels the process's root token on SIGTERM,
//! SIGINT or SIGHUP. A daemon makes a [`Cancel::child`] per job; cancelling the root cancels
//! every job, cancelling a job cancels nothing else.
//! A `crate::job::Job` holds a token with the job's listeners.

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
