//! `pgbackup config check` and `pgbackup config show`.

use std::path::Path;

use crate::cli::ConfigCommand;
use crate::config::{Config, EnvFn};
use crate::error::{ConfigProblems, Result};

fn place(cfg: &Config) -> String {
    cfg.source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(built-in defaults)".into())
}

/// Run a config subcommand.
pub fn run(path: Option<&Path>, cmd: &ConfigCommand, env: EnvFn) -> Result<()> {
    let cfg = super::loaded(Config::load(path, env)?);
    match cmd {
        ConfigCommand::Check => {
            let mut problems = ConfigProblems::default();
            let tools = cfg.tools();
            let mut programs = vec![
                ("backup.pg-dump-path", &tools.pg_dump),
                ("backup.psql-path", &tools.psql),
            ];
            // Custom- and directory-format backups are restored (and test-restored) by
            // pg_restore.
            if cfg.format.is_archive() {
                programs.push(("backup.pg-restore-path", &tools.pg_restore));
            }
            for (key, prog) in programs {
                let mut cmd = std::process::Command::new(prog);
                crate::postgres::clean_env(&mut cmd);
                let ok = cmd
                    .arg("--version")
                    .stdin(std::process::Stdio::null())
                    .output()
                    .is_ok_and(|o| o.status.success());
                if !ok {
                    problems.push(
                        key,
                        format!(
                            "cannot run {}; install the PostgreSQL client (apt install postgresql-client) or set the full path",
                            prog.display()
                        ),
                    );
                }
            }
            for w in cfg.warnings_for(&[]) {
                crate::log::warn(w);
            }
            // Object Lock cannot be switched on later for a bucket: say so now, not at 02:00.
            if let Some(s3) = cfg.s3.as_ref().filter(|s| s.object_lock.is_some()) {
                match crate::s3::S3Store::new(s3).and_then(|st| st.check_object_lock()) {
                    Ok(()) => {}
                    Err(e @ crate::s3::S3Failure::LockNotEnabled { .. }) => problems.push(
                        format!("{}: storage.s3.object-lock", place(&cfg)),
                        e.to_string(),
                    ),
                    Err(e) => return Err(e.into()),
                }
            }
            if !problems.is_empty() {
                return Err(problems.into());
            }
            let what = match cfg.databases.len() {
                0 => "no [[database]]: all databases of the default server".to_string(),
                1 => "1 database".to_string(),
                n => format!("{n} databases"),
            };
            let mut env_line = String::new();
            if !cfg.env_overrides.is_empty() {
                env_line.push_str(&format!(
                    "environment taken: {}\n",
                    cfg.env_overrides.join(", ")
                ));
            }
            let ignored: Vec<&str> = crate::config::env::ignored(env)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            if !ignored.is_empty() {
                env_line.push_str(&format!(
                    "environment ignored (see the warnings): {}\n",
                    ignored.join(", ")
                ));
            }
            super::print(&format!(
                "configuration OK ({}; {what})\n{env_line}",
                cfg.source
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in defaults".into())
            ))
        }
        ConfigCommand::Show => super::print(&cfg.to_display_toml()),
    }
}
