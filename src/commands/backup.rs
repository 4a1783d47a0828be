//! `pgbackup backup`: one run over the configured databases (`crate::ops::backup::run`), with
//! the journal, sd-notify and the state file with its metrics listening.

use std::sync::Arc;

use crate::cli::BackupArgs;
use crate::config::{Config, EnvFn};
use crate::error::Result;
use crate::job::Job;
use crate::ops::backup::Request;
use crate::report::{Journal, Recorder, Systemd};

/// Run a backup of every selected database; record the outcome in the state and metrics file.
/// The metrics and sd-notify say the outcome even when the state file cannot be written (a full
/// backup root), and a state file that cannot be written fails the run (exit 73).
pub fn run(cfg: &Config, args: &BackupArgs, env: EnvFn) -> Result<()> {
    let force = args.force
        || crate::config::env::get(&mut |n| env(n), "force")
            .is_some_and(|(v, _)| matches!(v.as_str(), "1" | "true" | "yes" | "on"));
    let recorder = Arc::new(Recorder::new(cfg));
    let job = Job::new(crate::signals::root().clone())
        // The terminal line first: it ends its line before the journal writes one.
        .listen(Arc::new(crate::progress::BackupLine::default()))
        .listen(Arc::new(Journal::default()))
        .listen(Arc::new(Systemd::default()))
        .listen(recorder.clone());
    let request = Request {
        databases: &args.databases,
        force,
        description: args.description.as_deref(),
        retention: args.retention,
        only: args.only.map(|o| match o {
            crate::cli::OnlyKind::Postgres => crate::ops::backup::ItemKind::Postgres,
            crate::cli::OnlyKind::Redis => crate::ops::backup::ItemKind::Redis,
        }),
    };
    recorder.finish(crate::ops::backup::run(cfg, &job, &request))
}
