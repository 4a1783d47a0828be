//! Logging: human lines on a terminal, journal priorities under systemd.
//!
//! Under systemd (`JOURNAL_STREAM` set) every line starts with an sd-daemon `<N>` priority prefix,
//! which journald strips and records as the line's priority. Elsewhere lines go to stderr as
//! `pgbackup: level: message`. Errors are logged once, by `main`.

use std::io::Write;
use std::sync::atomic::{AtomicI8, AtomicU8, Ordering};

static VERBOSITY: AtomicI8 = AtomicI8::new(0);
/// 0 = undecided, 1 = plain, 2 = journal prefixes.
static MODE: AtomicU8 = AtomicU8::new(0);

/// Set verbosity: negative is quieter (-q), positive louder (-v).
pub fn set_verbosity(v: i8) {
    VERBOSITY.store(v, Ordering::Relaxed);
}

fn journal() -> bool {
    match MODE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let j = std::env::var_os("JOURNAL_STREAM").is_some();
            MODE.store(if j { 2 } else { 1 }, Ordering::Relaxed);
            j
        }
    }
}

#[derive(Clone, Copy)]
enum Level {
    Error = 3,
    Warn = 4,
    Info = 6,
    Debug = 7,
}

fn emit(level: Level, msg: &str) {
    let v = VERBOSITY.load(Ordering::Relaxed);
    let shown = match level {
        Level::Error => true,
        Level::Warn => v >= -1,
        Level::Info => v >= 0,
        Level::Debug => v >= 1,
    };
    if !shown {
        return;
    }
    let mut out = std::io::stderr().lock();
    if journal() {
        for line in msg.lines() {
            let _ = writeln!(out, "<{}>{line}", level as u8);
        }
    } else {
        let tag = match level {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info | Level::Debug => "",
        };
        let _ = writeln!(out, "pgbackup: {tag}{msg}");
    }
}

/// Log an error (priority 3).
pub fn error(msg: &str) {
    emit(Level::Error, msg);
}

/// Log a warning (priority 4).
pub fn warn(msg: &str) {
    emit(Level::Warn, msg);
}

/// Log progress (priority 6).
pub fn info(msg: &str) {
    emit(Level::Info, msg);
}

/// Log detail shown with -v (priority 7).
pub fn debug(msg: &str) {
    emit(Level::Debug, msg);
}
