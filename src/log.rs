//! Logging: human lines on a terminal, journal priorities under systemd, or syslog.
//!
//! `[log] target`: `auto` (the default) writes sd-daemon `<N>` priority prefixes when stderr is
//! the journal (`JOURNAL_STREAM` set; journald strips them and records the priority) and plain
//! `pgbackup: level: message` lines otherwise; `journal` and `stderr` force one of the two;
//! `syslog` sends RFC 3164 messages (facility daemon) to `[log] syslog-socket` (default /dev/log).
//! Errors are logged once, by `main`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicI8, AtomicU8, Ordering};
use std::sync::Mutex;

static VERBOSITY: AtomicI8 = AtomicI8::new(0);
/// `--color`: 0 = auto, 1 = always, 2 = never.
static COLOR: AtomicU8 = AtomicU8::new(0);
/// 0 = undecided, 1 = plain, 2 = journal prefixes, 3 = syslog.
static MODE: AtomicU8 = AtomicU8::new(0);
type SyslogLogger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;
static SYSLOG: Mutex<Option<SyslogLogger>> = Mutex::new(None);

/// Where log lines go (`[log] target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogTarget {
    /// Journal prefixes under systemd, plain lines elsewhere.
    #[default]
    Auto,
    /// Always `<N>` prefixes.
    Journal,
    /// Always plain lines on stderr.
    Stderr,
    /// RFC 3164 messages to a syslog socket.
    Syslog,
}

/// Apply `[log]`; a syslog socket that cannot be reached falls back to stderr, with a warning.
pub fn configure(target: LogTarget, syslog_socket: &Path) {
    match target {
        LogTarget::Auto => {}
        LogTarget::Journal => MODE.store(2, Ordering::Relaxed),
        LogTarget::Stderr => MODE.store(1, Ordering::Relaxed),
        LogTarget::Syslog => {
            let formatter = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_DAEMON,
                hostname: None,
                process: "pgbackup".into(),
                pid: std::process::id(),
            };
            match syslog::unix_custom(formatter, syslog_socket) {
                Ok(logger) => {
                    *SYSLOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(logger);
                    MODE.store(3, Ordering::Relaxed);
                }
                Err(e) => {
                    MODE.store(1, Ordering::Relaxed);
                    warn(&format!(
                        "cannot log to syslog at {}: {e}; logging to stderr",
                        syslog_socket.display()
                    ));
                }
            }
        }
    }
}

/// When output is coloured (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (to anything but empty) or `TERM` is `dumb`.
    #[default]
    Auto,
    /// Always (a pager that understands it: `pgbackup --color always list | less -R`).
    Always,
    /// Never.
    Never,
}

/// Apply `--color`.
pub fn set_color(c: ColorChoice) {
    COLOR.store(
        match c {
            ColorChoice::Auto => 0,
            ColorChoice::Always => 1,
            ColorChoice::Never => 2,
        },
        Ordering::Relaxed,
    );
}

/// Whether output to a stream is coloured, `terminal` saying whether the stream is one.
pub fn colored(terminal: bool) -> bool {
    match COLOR.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            terminal
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    }
}

/// What a word in the output says, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Passed (green).
    Ok,
    /// A warning (yellow).
    Warn,
    /// Failed, an error (red).
    Fail,
}

/// `text` in `tone`'s colour (bold) when `on` (see [`colored`]), else unchanged.
pub fn paint(text: &str, tone: Tone, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let color = match tone {
        Tone::Ok => anstyle::AnsiColor::Green,
        Tone::Warn => anstyle::AnsiColor::Yellow,
        Tone::Fail => anstyle::AnsiColor::Red,
    };
    let style = anstyle::Style::new().bold().fg_color(Some(color.into()));
    format!("{style}{text}{style:#}")
}

/// Set verbosity: negative is quieter (-q), positive louder (-v).
pub fn set_verbosity(v: i8) {
    VERBOSITY.store(v, Ordering::Relaxed);
}

/// Whether -q was given.
pub fn quiet() -> bool {
    VERBOSITY.load(Ordering::Relaxed) < 0
}

fn mode() -> u8 {
    match MODE.load(Ordering::Relaxed) {
        0 => {
            let m = if std::env::var_os("JOURNAL_STREAM").is_some() {
                2
            } else {
                1
            };
            MODE.store(m, Ordering::Relaxed);
            m
        }
        m => m,
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
    let mode = mode();
    if mode == 3 {
        let mut guard = SYSLOG.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(logger) = guard.as_mut() {
            let sent = match level {
                Level::Error => logger.err(msg),
                Level::Warn => logger.warning(msg),
                Level::Info => logger.info(msg),
                Level::Debug => logger.debug(msg),
            };
            if sent.is_ok() {
                return;
            }
        }
    }
    let mut out = std::io::stderr().lock();
    use std::io::IsTerminal;
    if mode == 2 {
        for line in msg.lines() {
            let _ = writeln!(out, "<{}>{line}", level as u8);
        }
    } else {
        let on = colored(out.is_terminal());
        let tag = match level {
            Level::Error => paint("error:", Tone::Fail, on) + " ",
            Level::Warn => paint("warning:", Tone::Warn, on) + " ",
            Level::Info | Level::Debug => String::new(),
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
