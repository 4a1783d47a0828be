//! The environment variables pgbackup reads, in one table: the names of the setups users move
//! from (shell scripts, cron containers, Python services), the setting each one overrides, and
//! its place in the order. Configuration reads them through [`get`]; README's table is rendered
//! from [`TABLE`] (a test keeps it in step), so adding a name users already have is one row.

/// One row: the variables (first set wins) and what they override.
#[derive(Debug, Clone, Copy)]
pub struct EnvRow {
    /// The setting, as the code asks for it (`storage.local-dir`); a row the code reads
    /// elsewhere (libpq, the AWS credential chain) has a key of its own here.
    pub setting: &'static str,
    /// The variables, first set wins.
    pub names: &'static [&'static str],
    /// What they override, for README (markdown).
    pub overrides: &'static str,
}

const fn row(
    setting: &'static str,
    names: &'static [&'static str],
    overrides: &'static str,
) -> EnvRow {
    EnvRow {
        setting,
        names,
        overrides,
    }
}

/// Every variable pgbackup reads, in README's order.
pub const TABLE: &[EnvRow] = &[
    row("config", &["PGBACKUP_CONFIG"], "config file path"),
    row(
        "storage.kind",
        &["BACKUP_STORAGE"],
        "`local` turns the S3 upload off; `s3` requires a bucket",
    ),
    row(
        "storage.s3.bucket",
        &["S3_BUCKET", "BACKUP_S3_BUCKET"],
        "`[storage.s3] bucket`",
    ),
    row(
        "storage.s3.endpoint",
        &["S3_ENDPOINT_URL"],
        "`[storage.s3] endpoint`",
    ),
    row(
        "storage.s3.region",
        &["S3_REGION", "BACKUP_S3_REGION", "AWS_REGION"],
        "`[storage.s3] region`",
    ),
    row(
        "storage.s3.default-region",
        &["AWS_DEFAULT_REGION"],
        "the region when neither the variables above nor the config file set one (above the profile's region)",
    ),
    row(
        "storage.s3.access-key",
        &["S3_ACCESS_KEY"],
        "the S3 access key, above the config file (also `S3_ACCESS_KEY_FILE`)",
    ),
    row(
        "storage.s3.secret-key",
        &["S3_SECRET_KEY"],
        "the S3 secret key, above the config file (also `S3_SECRET_KEY_FILE`)",
    ),
    row(
        "aws.access-key",
        &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"],
        "the S3 keys below the config file (also `AWS_PROFILE`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, ...): see *S3 credentials*",
    ),
    row(
        "tls.trust",
        &["SSL_CERT_FILE", "SSL_CERT_DIR"],
        "the trust store (instead of /etc/ssl/certs)",
    ),
    row(
        "proxy",
        &["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"],
        "the proxy for S3 and STS",
    ),
    row(
        "storage.s3.keep-local",
        &["BACKUP_KEEP_LOCAL"],
        "`[storage.s3] keep-local` (`true`/`false`)",
    ),
    row(
        "storage.local-dir",
        &["BACKUP_LOCAL_DIR", "BACKUP_DIR"],
        "`local-dir` (`BACKUP_LOCAL_DIR` wins)",
    ),
    row(
        "backup.format",
        &["BACKUP_FORMAT"],
        "`format` (`plain`/`custom`/`directory`)",
    ),
    row(
        "backup.compression",
        &["BACKUP_COMPRESSION"],
        "`compression` (`gzip`/`zstd`)",
    ),
    row(
        "backup.compression-level",
        &["BACKUP_COMPRESSION_LEVEL"],
        "`compression-level`",
    ),
    row(
        "backup.dump-jobs",
        &["BACKUP_DUMP_JOBS"],
        "`dump-jobs`",
    ),
    row(
        "backup.compression-threads",
        &["BACKUP_COMPRESSION_THREADS"],
        "`compression-threads`",
    ),
    row(
        "backup.respawn-protection-hours",
        &["RESPAWN_PROTECTION_HOURS"],
        "`respawn-protection-hours`",
    ),
    row(
        "backup.dump-timeout-secs",
        &["BACKUP_DUMP_TIMEOUT"],
        "`dump-timeout-secs`",
    ),
    row("force", &["FORCE_BACKUP"], "`--force` (`true`, `1`, `yes`, `on`)"),
    row(
        "database.url",
        &["DATABASE_URL", "DATABASE_URL_FILE"],
        "defines the database when the file has none; replaces the `url` when it has exactly one; an error when it has several",
    ),
    row(
        "database.parts",
        &["DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_USER_FILE"],
        "as `DATABASE_URL`, built from parts (when `DATABASE_URL` is unset)",
    ),
    row(
        "database.password-file",
        &["DB_PASSWORD_FILE"],
        "the password of that database (Docker secrets style)",
    ),
    row(
        "retention.keep-days",
        &["BACKUP_RETENTION_DAYS"],
        "`[retention] keep-days` (`--retention DAYS` overrides it)",
    ),
    row(
        "metrics.textfile-dir",
        &["METRICS_DIR"],
        "`[metrics] textfile-dir`",
    ),
    row(
        "systemd.credentials",
        &["CREDENTIALS_DIRECTORY"],
        "set by systemd for `LoadCredential=`: passwords and S3 keys are read from it (see *Installing as a service*)",
    ),
    row(
        "libpq",
        &["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSFILE"],
        "read by libpq itself (and the other `PG*` variables)",
    ),
];

/// Variables the old setups use that pgbackup knows of but does not read (yet): a set one gets a
/// warning naming what to use instead, never silence.
pub const IGNORED: &[(&str, &str)] = &[
    (
        "DB_PASSWORD",
        "a password is never read from the environment; put it in a file named by DB_PASSWORD_FILE (mode 0600) or use password-file / a systemd credential",
    ),
    (
        "ROOK_DATABASE_URL",
        "set DATABASE_URL (or a [[database]] url) to the database to back up",
    ),
    (
        "BACKUP_SCHEDULE",
        "the schedule is pgbackup.timer's OnCalendar= (`systemctl edit pgbackup.timer`)",
    ),
    (
        "BACKUP_CRON_SCHEDULE",
        "the schedule is pgbackup.timer's OnCalendar= (`systemctl edit pgbackup.timer`)",
    ),
    (
        "BACKUP_ENABLED",
        "enable or disable the timer instead (`systemctl enable --now pgbackup.timer` / `disable`)",
    ),
    (
        "DB_RETRY_ATTEMPTS",
        "pgbackup does not retry a failed dump within a run; the next run retries, and the failure is reported (exit code, metrics)",
    ),
    (
        "DB_RETRY_DELAY",
        "pgbackup does not retry a failed dump within a run; the next run retries, and the failure is reported (exit code, metrics)",
    ),
    (
        "HEALTH_PORT",
        "health is `pgbackup check` (Nagios) and the node_exporter metrics",
    ),
];

/// The ignored variables `env` has set, each with what to use instead.
pub fn ignored(env: &dyn Fn(&str) -> Option<String>) -> Vec<(&'static str, &'static str)> {
    IGNORED
        .iter()
        .filter(|(n, _)| env(n).is_some())
        .copied()
        .collect()
}

/// The variables of `setting`, first set wins. A setting missing from the table is a bug the
/// tests catch (every key the code asks for is looked up in them).
pub fn names(setting: &str) -> &'static [&'static str] {
    TABLE
        .iter()
        .find(|r| r.setting == setting)
        .map(|r| r.names)
        .unwrap_or(&[])
}

/// The first of `setting`'s variables that `env` has: `(value, variable name)`.
pub fn get(
    env: &mut dyn FnMut(&str) -> Option<String>,
    setting: &str,
) -> Option<(String, &'static str)> {
    names(setting).iter().find_map(|n| env(n).map(|v| (v, *n)))
}

/// README's table.
pub fn markdown() -> String {
    let mut s = String::from("| variable | overrides |\n|---|---|\n");
    for r in TABLE {
        let names: Vec<String> = r.names.iter().map(|n| format!("`{n}`")).collect();
        s.push_str(&format!("| {} | {} |\n", names.join(", "), r.overrides));
    }
    let ignored: Vec<String> = IGNORED.iter().map(|(n, _)| format!("`{n}`")).collect();
    s.push_str(&format!(
        "\nKnown from the old setups but not read (a warning names what to use instead): {}.\n",
        ignored.join(", ")
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variable name the configuration code spells out is a row of the table (the one
    /// place); every setting key it asks for exists.
    #[test]
    fn the_code_reads_no_variable_the_table_does_not_have() {
        let whole = [
            include_str!("mod.rs"),
            include_str!("databases.rs"),
            include_str!("storage.rs"),
        ]
        .map(|c| &c[..c.find("#[cfg(test)]").unwrap_or(c.len())])
        .concat();
        let code = whole.as_str();
        let known: Vec<&str> = TABLE.iter().flat_map(|r| r.names.iter().copied()).collect();
        let mut missing = Vec::new();
        for lit in code.split('"').skip(1).step_by(2) {
            let looks_like_var = lit.len() > 3
                && lit.contains('_')
                && lit
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit());
            if looks_like_var && !known.contains(&lit) {
                missing.push(lit.to_string());
            }
        }
        assert!(missing.is_empty(), "not in config::env::TABLE: {missing:?}");
        let mut asked = 0;
        let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        for pattern in [
            "env::get(&mutenv_get,\"",
            "first(env_get,\"",
            "int_setting(\"",
        ] {
            for key in compact.split(pattern).skip(1) {
                let key = &key[..key.find('"').unwrap()];
                assert!(!names(key).is_empty(), "no row for setting {key}");
                asked += 1;
            }
        }
        assert!(asked >= 12, "the lookups were not found ({asked})");
    }
}
