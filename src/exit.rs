//! The one table of exit codes (core: no error type is known here).
//!
//! `--help` (EXIT STATUS), the man pages and README's table are rendered from [`TABLE`]; a test
//! keeps README in step. The one mapping from errors to these classes is in `crate::error`.

/// What kind of failure ended a run (sysexits style; README, *Exit codes*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ExitClass {
    /// Success.
    Ok = 0,
    /// A backup or verification failed.
    Failed = 1,
    /// Usage error.
    Usage = 2,
    /// Corrupt or incomplete backup.
    DataErr = 65,
    /// Database or storage unreachable or refusing.
    Unavailable = 69,
    /// Cannot create output.
    CantCreat = 73,
    /// Another run holds the lock.
    TempFail = 75,
    /// Configuration error.
    Config = 78,
}

impl ExitClass {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// One row of the table: the code as written, and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// `0`, `65`, `128+N`.
    pub code: &'static str,
    /// The meaning, one line.
    pub meaning: &'static str,
}

/// The exit codes of every command but `check` (which uses the Nagios plugin codes).
pub const TABLE: &[Row] = &[
    Row {
        code: "0",
        meaning: "success (also: skipped because the last backup is recent)",
    },
    Row {
        code: "1",
        meaning: "a backup or verification failed (pg_dump error, timeout, incomplete dump, a privilege the restore role lacks)",
    },
    Row {
        code: "2",
        meaning: "usage error (unknown option, unknown --db name)",
    },
    Row {
        code: "65",
        meaning: "corrupt or incomplete backup (a damaged or cut .age file too)",
    },
    Row {
        code: "69",
        meaning: "database or storage unreachable or refusing (wrong password, bad S3 keys, untrusted certificate, denied action), or no pg_dump/psql to run",
    },
    Row {
        code: "73",
        meaning: "cannot create output (directory, permissions, disk full, the state file)",
    },
    Row {
        code: "75",
        meaning: "another run holds the lock",
    },
    Row {
        code: "78",
        meaning: "configuration error (every problem listed, with file and key; also an unsafe backup root, a missing pg-dump-path, no S3 credentials anywhere, an encrypted backup without the age identity that opens it)",
    },
    Row {
        code: "128+N",
        meaning: "stopped by signal N (130 SIGINT, 143 SIGTERM); a second signal stops at once",
    },
];

/// The EXIT STATUS section of `--help`.
pub fn help_text() -> String {
    let mut s = String::from("EXIT STATUS:\n");
    for r in TABLE {
        s.push_str(&format!("  {:<6} {}\n", r.code, r.meaning));
    }
    s.push_str(
        "`pgbackup check` uses the Nagios plugin codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    );
    s
}

/// The EXIT STATUS section of the man pages (roff).
pub fn roff() -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('-', "\\-");
    let mut s = String::from(".SH \"EXIT STATUS\"\n");
    for r in TABLE {
        s.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            esc(r.code),
            esc(r.meaning)
        ));
    }
    s.push_str(".PP\n\\fBpgbackup check\\fR uses the Nagios plugin codes instead: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n");
    s
}

/// README's table (Markdown), between the `<!-- exit-codes -->` markers.
pub fn markdown() -> String {
    let mut s = String::from("| code | meaning |\n|---|---|\n");
    for r in TABLE {
        s.push_str(&format!(
            "| {} | {} |\n",
            r.code,
            r.meaning.replace('|', "\\|")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's codes are the enum's, in order.
    #[test]
    fn the_table_and_the_classes_agree() {
        let classes = [
            ExitClass::Ok,
            ExitClass::Failed,
            ExitClass::Usage,
            ExitClass::DataErr,
            ExitClass::Unavailable,
            ExitClass::CantCreat,
            ExitClass::TempFail,
            ExitClass::Config,
        ];
        for (r, c) in TABLE.iter().zip(classes) {
            assert_eq!(r.code, c.code().to_string());
        }
        assert_eq!(TABLE.len(), classes.len() + 1);
        assert!(help_text().contains("  78     configuration error"));
        assert!(roff().contains("\\fB128+N\\fR"));
    }
}
