//! systemd notification: READY, STATUS lines shown by `systemctl status`, EXTEND_TIMEOUT_USEC
//! while a long dump makes progress, and WATCHDOG pings when the unit sets `WatchdogSec=`.
//! A no-op outside systemd (no `NOTIFY_SOCKET`), and never fatal: a backup does not fail because
//! systemd did not listen.

use sd_notify::NotifyState;

/// How much more time each progress message asks for (a start or stop timeout, if any, is pushed
/// back while bytes keep flowing).
const EXTEND_BY_USEC: u32 = 60_000_000;

fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// As sd_watchdog_enabled(3): `WATCHDOG_USEC` set, and `WATCHDOG_PID` unset or ours.
/// (sd-notify's own helper also requires `WATCHDOG_PID`, which systemd may leave out.)
fn watchdog_enabled() -> bool {
    let usec = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|v| v > 0);
    let pid_ok = match std::env::var("WATCHDOG_PID") {
        Ok(p) => p.parse::<u32>().ok() == Some(std::process::id()),
        Err(_) => true,
    };
    usec && pid_ok
}

fn send(states: &[NotifyState]) {
    if enabled() {
        let _ = sd_notify::notify(false, states);
    }
}

/// `READY=1` with a first status line.
pub fn ready(text: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(text)]);
}

/// `STATUS=<text>`, plus a watchdog ping when enabled.
pub fn status(text: &str) {
    if watchdog_enabled() {
        send(&[NotifyState::Status(text), NotifyState::Watchdog]);
    } else {
        send(&[NotifyState::Status(text)]);
    }
}

/// Progress of long work: STATUS, EXTEND_TIMEOUT_USEC and (when enabled) a watchdog ping.
pub fn progress(text: &str) {
    let mut states = vec![
        NotifyState::Status(text),
        NotifyState::ExtendTimeoutUsec(EXTEND_BY_USEC),
    ];
    if watchdog_enabled() {
        states.push(NotifyState::Watchdog);
    }
    send(&states);
}
