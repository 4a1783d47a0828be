//! SIGTERM, SIGINT and SIGHUP: stop the running pg_dump, let the backup fail through its normal
//! error path (which removes the temp file), start no further database, exit 128 + signal.
//!
//! `systemctl stop` signals the whole control group, so pg_dump gets the signal too; a plain
//! `kill <pid>` reaches only us, which is why the current child is stopped here explicitly.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static INTERRUPTED: AtomicI32 = AtomicI32::new(0);
/// The running child. Held locked while the child is reaped, so its pid is never reused under us.
static CHILD: Mutex<Option<i32>> = Mutex::new(None);

/// Start the signal thread. Call once, early.
pub fn install() {
    // A second signal ends the process at once, even while a call blocks that the first could
    // not end (signal-hook's conditional shutdown: armed by the first signal, _exit(128+N) in the
    // handler). What the run leaves then (a temp file) is debris the next run removes.
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT, SIGHUP] {
        let _ = signal_hook::flag::register_conditional_shutdown(
            sig,
            128 + sig,
            std::sync::Arc::clone(&armed),
        );
        let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&armed));
    }
    let Ok(mut signals) = Signals::new([SIGTERM, SIGINT, SIGHUP]) else {
        crate::log::warn("cannot install signal handlers; an interrupted run leaves a temp file for the next run to remove");
        return;
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            INTERRUPTED.store(sig, Ordering::SeqCst);
            let guard = CHILD.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(pid) = *guard {
                // The child's whole process group (see postgres::kill_group).
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
    });
}

/// The signal that interrupted this run, if any.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Register the running child (None when it is about to be reaped).
pub fn set_child(pid: Option<i32>) {
    *CHILD.lock().unwrap_or_else(|e| e.into_inner()) = pid;
}

/// Run `f` (which reaps the child) with the child unregistered and the registry locked.
pub fn reap<T>(f: impl FnOnce() -> T) -> T {
    let mut guard = CHILD.lock().unwrap_or_else(|e| e.into_inner());
    *guard = None;
    f()
}

/// Name of a signal number, for messages.
pub fn name(sig: i32) -> &'static str {
    Signal::try_from(sig)
        .map(|s| s.as_str())
        .unwrap_or("signal")
}
