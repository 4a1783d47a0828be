//! SIGTERM, SIGINT and SIGHUP: stop the running pg_dump, let the backup fail through its normal
//! error path (which removes the temp file), start no further database, exit 128 + signal.
//!
//! `systemctl stop` signals the whole control group, so pg_dump gets the signal too; a plain
//! `kill <pid>` reaches only us, which is why the current child is stopped here explicitly.

use std::sync::OnceLock;

use nix::sys::signal::Signal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::run::Cancel;

/// The process's root token: a signal cancels it, and with it every job and child under it.
static ROOT: OnceLock<Cancel> = OnceLock::new();

/// The process's root token (the command line's one job runs under it; a daemon's jobs under
/// children of it).
pub fn root() -> &'static Cancel {
    ROOT.get_or_init(Cancel::new)
}

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
            // Stops every registered child's whole process group (see postgres::kill_group).
            root().cancel(sig);
        }
    });
}

/// The signal that interrupted this run, if any.
pub fn interrupted() -> Option<i32> {
    root().cancelled()
}

/// Name of a signal number, for messages.
pub fn name(sig: i32) -> &'static str {
    Signal::try_from(sig)
        .map(|s| s.as_str())
        .unwrap_or("signal")
}
