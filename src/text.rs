//! Text for people, shared by every layer: control characters escaped, sizes and ages in
//! human units. Pure functions.

/// Text from a manifest, a file name or a server, made safe to print on a terminal: control
/// characters (newlines, carriage returns, escape sequences) are shown as `\n`, `\r`,
/// `\x1b`, never written raw.
pub fn escape_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `1 table`, `3 tables`: a count with its noun, singular or plural.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Bytes in human units (binary).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A duration in words: minutes, hours or days.
pub fn human_age(d: chrono::Duration) -> String {
    let mins = d.num_minutes().max(0);
    match mins {
        m if m < 120 => format!("{m} min"),
        m if m < 48 * 60 => format!("{:.1} h", m as f64 / 60.0),
        m => format!("{:.1} days", m as f64 / 1440.0),
    }
}
