//! systemd notification: STATUS lines shown by `systemctl status`. A no-op outside systemd
//! (no `NOTIFY_SOCKET`), and never fatal: a backup does not fail because systemd did not listen.

use sd_notify::NotifyState;

fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Send `STATUS=<text>`.
pub fn status(text: &str) {
    if enabled() {
        let _ = sd_notify::notify(false, &[NotifyState::Status(text)]);
    }
}
