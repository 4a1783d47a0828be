//! `pgbackup check`: the health probe, as a Nagios plugin. A short first line (the state, a
//! summary, and after `|` the performance data: each database's backup age and size), then one
//! line per problem (the plugin's long output); exit codes 0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN.

use chrono::Utc;

use crate::cli::CheckArgs;
use crate::commands::{human_age, print};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ops::inventory::{free_space, known_databases};
use crate::postgres::Psql;
use crate::state;

const OK: u8 = 0;
const WARNING: u8 = 1;
const CRITICAL: u8 = 2;
const UNKNOWN: u8 = 3;

/// Run `check` on a loaded (or failed) configuration.
pub fn run(cfg: Result<Config>, args: &CheckArgs) -> Result<()> {
    let out = match cfg {
        Err(e) => {
            let text = e.to_string();
            let mut lines = text.lines().map(str::to_string);
            Outcome {
                code: UNKNOWN,
                summary: format!("configuration error: {}", lines.next().unwrap_or_default()),
                details: lines.collect(),
                perf: Vec::new(),
            }
        }
        Ok(cfg) => evaluate(&cfg, args),
    };
    let code = out.code;
    let label = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][code as usize];
    let perf = if out.perf.is_empty() {
        String::new()
    } else {
        format!(" | {}", out.perf.join(" "))
    };
    let mut text = format!("PGBACKUP {label} - {}{perf}\n", out.summary);
    for d in &out.details {
        text.push_str(d);
        text.push('\n');
    }
    print(&text)?;
    if code == OK {
        Ok(())
    } else {
        Err(Error::Silent(code))
    }
}

/// What `check` found.
struct Outcome {
    code: u8,
    /// The first line, short.
    summary: String,
    /// One line per problem.
    details: Vec<String>,
    /// Nagios performance data (`'label'=value[unit];warn;crit`).
    perf: Vec<String>,
}

impl Outcome {
    fn only(code: u8, summary: String) -> Self {
        Outcome {
            code,
            summary,
            details: Vec::new(),
            perf: Vec::new(),
        }
    }
}

fn evaluate(cfg: &Config, args: &CheckArgs) -> Outcome {
    let st = state::load(&cfg.local_dir);
    let now = Utc::now();
    let mut databases = known_databases(cfg, &st);
    if !args.databases.is_empty() {
        databases.retain(|d| args.databases.contains(d));
        for wanted in &args.databases {
            if !databases.contains(wanted) {
                return Outcome::only(UNKNOWN, format!("unknown database {wanted}"));
            }
        }
    }
    if databases.is_empty() {
        return Outcome::only(
            CRITICAL,
            format!(
                "no backups under {} and no database configured",
                cfg.local_dir.display()
            ),
        );
    }
    let mut worst = OK;
    let mut problems: Vec<String> = Vec::new();
    let mut flag = |level: u8, msg: String| {
        worst = worst.max(level);
        problems.push(msg);
    };
    // S3 is asked only about a database without a local backup (keep-local = false).
    let stores = match crate::ops::s3_stores(cfg) {
        Ok(s) => s,
        Err(e) => return Outcome::only(UNKNOWN, format!("S3 configuration: {e}")),
    };
    let max_age = chrono::Duration::seconds((args.max_age * 3600.0) as i64);
    let mut newest_age: Option<chrono::Duration> = None;
    let mut perf = Vec::new();
    for db in &databases {
        let s = st.databases.get(db).cloned().unwrap_or_default();
        match crate::ops::newest_backup(cfg, &stores, db) {
            Ok(Some(name)) => {
                let age = now - name.timestamp;
                perf.push(format!(
                    "'{db}_age'={}s;;{}",
                    age.num_seconds().max(0),
                    max_age.num_seconds()
                ));
                if let Some(size) = s.last_size_bytes {
                    perf.push(format!("'{db}_size'={size}B"));
                }
                newest_age = Some(newest_age.map_or(age, |a: chrono::Duration| a.max(age)));
                if age > max_age {
                    flag(
                        CRITICAL,
                        format!(
                            "{db}: newest backup is {} old (max {} h)",
                            human_age(age),
                            args.max_age
                        ),
                    );
                }
            }
            Ok(None) => flag(CRITICAL, format!("{db}: no complete backup")),
            Err(e) => flag(UNKNOWN, format!("{db}: cannot read backups: {e}")),
        }
        if s.last_run_ok == Some(false) {
            flag(
                CRITICAL,
                format!(
                    "{db}: last run failed: {}",
                    s.last_error
                        .unwrap_or_default()
                        .lines()
                        .next()
                        .unwrap_or_default()
                ),
            );
        }
        for f in crate::ops::future_backups(cfg, db) {
            flag(
                WARNING,
                format!(
                    "{db}: backup {} is dated in the future: check the clock",
                    f.file_name()
                ),
            );
        }
        if s.last_verify_ok == Some(false) {
            flag(WARNING, format!("{db}: last verification failed"));
        }
        if !args.no_connect {
            if let Some(d) = cfg.databases.iter().find(|d| d.name() == db) {
                if let Err(e) = Psql::new(&cfg.tools(), &d.target).query("SELECT 1") {
                    flag(CRITICAL, format!("{db}: unreachable: {e}"));
                }
            }
            if let Some(r) = cfg.redis.iter().find(|r| r.name == *db) {
                for (level, msg) in redis_state(r, &mut perf) {
                    flag(level, format!("{db}: {msg}"));
                }
            }
        }
    }
    for left in &st.leftover_scratch {
        flag(
            WARNING,
            format!("test-restore scratch database {left} was left behind: drop it by hand"),
        );
    }
    if let Some((free, total)) = free_space(&cfg.local_dir) {
        if total > 0 {
            let pct = free as f64 * 100.0 / total as f64;
            if pct < args.min_free_percent / 2.0 {
                flag(
                    CRITICAL,
                    format!("only {pct:.1}% free on {}", cfg.local_dir.display()),
                );
            } else if pct < args.min_free_percent {
                flag(
                    WARNING,
                    format!("only {pct:.1}% free on {}", cfg.local_dir.display()),
                );
            }
        }
    }
    let dbs = crate::text::count(databases.len() as u64, "database", "databases");
    let summary = match problems.as_slice() {
        [] => format!(
            "{dbs}, the least recent backup is {} old",
            newest_age.map(human_age).unwrap_or_else(|| "-".into())
        ),
        [one] => short(one),
        [first, rest @ ..] => format!("{} (and {} more)", short(first), rest.len()),
    };
    let shortened = problems.iter().any(|p| short(p) != *p);
    Outcome {
        code: worst,
        summary,
        details: if problems.len() > 1 || shortened {
            problems
        } else {
            Vec::new()
        },
        perf,
    }
}

/// A Redis server's replication state: through Sentinel, the master it names (down flags, the
/// quorum, replicas known), then the server itself (reachable, a master, its replicas' links).
fn redis_state(r: &crate::redis::RedisTarget, perf: &mut Vec<String>) -> Vec<(u8, String)> {
    let timeout = std::time::Duration::from_secs(10);
    let mut out = Vec::new();
    let mut from_replica = false;
    if let crate::redis::Addr::Sentinel {
        master,
        sentinels,
        replica,
    } = &r.addr
    {
        from_replica = *replica;
        match crate::redis::ask_sentinels(r, master, sentinels, timeout) {
            Err(e) => {
                out.push((CRITICAL, e.to_string()));
                return out;
            }
            Ok(v) => {
                perf.push(format!("'{}_replicas'={}", r.name, v.replicas));
                perf.push(format!("'{}_sentinels'={}", r.name, v.other_sentinels + 1));
                if v.flags.split(',').any(|f| f == "s_down" || f == "o_down") {
                    out.push((
                        CRITICAL,
                        format!(
                            "Sentinel {} flags master {master} ({}:{}) as {}",
                            v.sentinel, v.master.0, v.master.1, v.flags
                        ),
                    ));
                }
                if let Err(e) = &v.quorum {
                    out.push((
                        WARNING,
                        format!(
                            "Sentinel {}: no failover possible for {master}: {e}",
                            v.sentinel
                        ),
                    ));
                }
                if v.replicas == 0 {
                    out.push((
                        WARNING,
                        format!(
                            "Sentinel knows no replica of {master}: a failover has nowhere to go"
                        ),
                    ));
                }
            }
        }
    }
    let mut c = match crate::redis::connect(r, timeout) {
        Ok(c) => c,
        Err(e) => {
            out.push((CRITICAL, format!("unreachable: {e}")));
            return out;
        }
    };
    match c.info_fields() {
        Ok(info) if !info.is_empty() => {
            let role = info.get("role").map(String::as_str).unwrap_or("");
            if role == "slave" {
                let link = info
                    .get("master_link_status")
                    .map(String::as_str)
                    .unwrap_or("?");
                if matches!(r.addr, crate::redis::Addr::Sentinel { .. }) && !from_replica {
                    out.push((
                        CRITICAL,
                        format!(
                            "Sentinel's master {} is a replica (a failover under way?)",
                            c.addr()
                        ),
                    ));
                } else if link != "up" {
                    out.push((
                        WARNING,
                        format!(
                            "a replica whose link to its master {}:{} is {link}",
                            info.get("master_host").map(String::as_str).unwrap_or("?"),
                            info.get("master_port").map(String::as_str).unwrap_or("?")
                        ),
                    ));
                }
            } else if let Some(n) = info
                .get("connected_slaves")
                .and_then(|n| n.parse::<u64>().ok())
            {
                if !matches!(r.addr, crate::redis::Addr::Sentinel { .. }) {
                    perf.push(format!("'{}_replicas'={n}", r.name));
                }
            }
        }
        Ok(_) => {}
        Err(e) => out.push((CRITICAL, format!("unreachable: {e}"))),
    }
    out
}

/// A problem for the first line: its first line, at most 200 characters.
fn short(p: &str) -> String {
    let line = p.lines().next().unwrap_or_default();
    if line.chars().count() <= 200 {
        return line.to_string();
    }
    let mut s: String = line.chars().take(199).collect();
    s.push('…');
    s
}
