use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::*;

/// Synthetic complete backups (data + sidecar) of `name`, one per day going back `days` days.
fn synthetic_backups(env: &TestEnv, name: &str, days: i64) -> Vec<String> {
    let dir = env.db_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let now = chrono::Utc::now();
    let mut names = Vec::new();
    for d in 1..=days {
        let ts = now - chrono::Duration::days(d) - chrono::Duration::hours(1);
        let file = format!("{name}_{}.sql.gz", ts.format("%Y%m%d_%H%M%S"));
        std::fs::write(dir.join(&file), b"synthetic").unwrap();
        std::fs::write(
            dir.join(format!("{file}.sha256")),
            format!("{}  {file}\n", "0".repeat(64)),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{file}.json")), b"{}").unwrap();
        names.push(file);
    }
    names
}

#[test]
fn retention_after_a_successful_backup_spares_foreign_files() {
    let c = cluster();
    let db = c.create_db("ret");
    let env = TestEnv::new();
    env.write_config(&format!(
        "[retention]\nkeep-days = 7\nkeep-weekly = 4\nkeep-monthly = 12\nkeep-min = 2\n\n{}",
        env.db_entry("r", &db)
    ));
    let synthetic = synthetic_backups(&env, "r", 400);
    std::fs::write(env.db_dir("r").join("notes.txt"), "keep me").unwrap();
    std::fs::write(
        env.db_dir("r").join("r_20200101_000000.sql"),
        "not our scheme",
    )
    .unwrap();
    // An incomplete data file (no sidecar) is not a backup; retention leaves it alone.
    std::fs::write(
        env.db_dir("r").join("r_20200101_000000.sql.gz"),
        "no sidecar",
    )
    .unwrap();
    env.run(&["backup"])
        .expect_code(0)
        .expect_stderr("retention deleted");
    let left = env.data_files("r");
    // 1 new + 6 in the last 7 days + weekly/monthly picks, and the incomplete file.
    assert!(
        left.len() > 7 && left.len() < 7 + 4 + 12 + 2,
        "{} left: {left:?}",
        left.len()
    );
    assert!(left.contains(&"r_20200101_000000.sql.gz".to_string()));
    for recent in &synthetic[..6] {
        assert!(left.contains(recent), "{recent} is within keep-days");
    }
    let files = env.files("r");
    assert!(files.contains(&"notes.txt".to_string()));
    assert!(files.contains(&"r_20200101_000000.sql".to_string()));
    // Every deleted backup took its sidecar and manifest with it.
    for f in &files {
        if let Some(data) = f
            .strip_suffix(".sha256")
            .or_else(|| f.strip_suffix(".json"))
        {
            assert!(files.contains(&data.to_string()), "orphan {f}");
        }
    }
    // Pruning again changes nothing (idempotent).
    let before = env.files("r");
    env.run(&["prune"]).expect_code(0);
    assert_eq!(env.files("r"), before);
}

#[test]
fn a_failed_backup_deletes_nothing() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "[retention]\nkeep-days = 1\nkeep-min = 1\n\n{}",
        env.db_entry("f", "no_such_database_ret")
    ));
    synthetic_backups(&env, "f", 30);
    let before = env.files("f");
    env.run(&["backup"]).expect_code(69);
    assert_eq!(env.files("f"), before);
}

#[test]
fn prune_dry_run_json_and_retention_overrides() {
    let env = TestEnv::new();
    env.write_config("[retention]\nkeep-min = 3\n");
    synthetic_backups(&env, "p", 20);
    // No deleting rule: nothing to do.
    let r = env.run(&["prune", "--json"]);
    r.expect_code(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    assert!(rows.iter().all(|r| r["action"] == "keep"));
    // Dry run with --retention: reasons, nothing deleted.
    let r = env.run(&["prune", "--dry-run", "--json", "--retention", "5"]);
    r.expect_code(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    // Backups are 1..20 days and an hour old: 4 are younger than 5 days.
    assert_eq!(rows.iter().filter(|r| r["action"] == "delete").count(), 16);
    let newest = rows.last().unwrap();
    assert_eq!(
        newest["reasons"],
        serde_json::json!(["keep-min", "keep-days"])
    );
    assert_eq!(env.data_files("p").len(), 20);
    let human = env.run(&["prune", "--dry-run", "--retention", "5"]);
    assert!(human.stdout.contains("would delete"), "{}", human.stdout);
    // The summary per database: how many go and how many stay, with their sizes.
    let bytes = |action: &str| -> u64 {
        rows.iter()
            .filter(|r| (r["action"] == "delete") == (action == "delete"))
            .map(|r| r["size_bytes"].as_u64().unwrap())
            .sum()
    };
    let line = format!(
        "p: would delete 16 backups ({}), kept 4 ({})",
        pgbackup::text::human_bytes(bytes("delete")),
        pgbackup::text::human_bytes(bytes("keep"))
    );
    assert!(
        human.stdout.contains(&line),
        "no \"{line}\" in {}",
        human.stdout
    );
    // BACKUP_RETENTION_DAYS, as the shell-script setups use it.
    let out = env
        .cmd(&["prune"])
        .env("BACKUP_RETENTION_DAYS", "10")
        .output()
        .unwrap();
    let r = Run::from(out);
    r.expect_code(0);
    assert!(r.stdout.contains("p: deleted 11 backups"), "{}", r.stdout);
    assert_eq!(env.data_files("p").len(), 9, "{:?}", env.data_files("p"));
    // keep-min wins over everything.
    env.run(&["prune", "--retention", "0"]).expect_code(0);
    assert_eq!(env.data_files("p").len(), 3);
}

#[test]
fn retention_never_follows_symlinks() {
    let env = TestEnv::new();
    env.write_config("[retention]\nkeep-days = 1\nkeep-min = 1\n");
    let outside = env.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&env.backups).unwrap();
    // A database directory that is a symlink elsewhere is refused, its files untouched.
    let names = {
        let other = TestEnv::new();
        let n = synthetic_backups(&other, "s", 5);
        for f in std::fs::read_dir(other.db_dir("s")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), outside.join(f.file_name())).unwrap();
        }
        n
    };
    std::os::unix::fs::symlink(&outside, env.db_dir("s")).unwrap();
    let r = env.run(&["prune", "--db", "s"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("symlink"), "{}", r.stderr);
    for n in &names {
        assert!(outside.join(n).exists());
    }
    // A backup file that is a symlink is not a backup.
    synthetic_backups(&env, "t", 3);
    let target = outside.join(&names[4]);
    let link = env.db_dir("t").join("t_20000101_000000.sql.gz");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::write(env.db_dir("t").join("t_20000101_000000.sql.gz.sha256"), "x").unwrap();
    env.run(&["prune", "--db", "t"]).expect_code(0);
    assert!(target.exists() && std::fs::symlink_metadata(&link).is_ok());
}

fn promtool(args: &[&str], stdin: Option<&str>) -> Run {
    let mut c = std::process::Command::new("promtool");
    c.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if stdin.is_some() {
        c.stdin(std::process::Stdio::piped());
    }
    let mut child = c.spawn().expect(
        "promtool (Debian package prometheus) must be installed: scripts/test.sh installs it",
    );
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    Run::from(child.wait_with_output().unwrap())
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metrics_env(name: &str, db: &str) -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    env.write_config(&format!(
        "[metrics]\ntextfile-dir = \"{}\"\n\n{}{}",
        textfile.display(),
        env.db_entry(name, db),
        env.db_entry("broken", "no_such_db_metrics")
    ));
    (env, textfile)
}

#[test]
fn metrics_pass_promtool_and_a_real_node_exporter() {
    let c = cluster();
    let db = c.create_db("metrics");
    let (env, textfile) = metrics_env("m", &db);
    env.run(&["backup", "--db", "m"]).expect_code(0);
    env.run(&["backup", "--db", "broken"]).expect_code(69);
    env.run(&["verify", "--db", "m", "--test-restore"])
        .expect_code(0);
    let prom = textfile.join("pgbackup.prom");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    // A run for one database kept the other's series.
    assert!(
        text.contains("pgbackup_last_run_success{database=\"m\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pgbackup_last_run_success{database=\"broken\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("pgbackup_failures_total{database=\"broken\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pgbackup_backups{database=\"m\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pgbackup_last_verify_success{database=\"m\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pgbackup_last_test_restore_duration_seconds{database=\"m\"}"),
        "{text}"
    );
    // The last whole run (of "broken") failed.
    assert!(text.contains("pgbackup_run_success 0"), "{text}");
    assert!(!text.contains(PASSWORD));
    let r = promtool(&["check", "metrics"], Some(&text));
    assert_eq!(r.code, 0, "promtool: {}{}", r.stdout, r.stderr);

    // A real node_exporter reads it without a scrape error.
    let port = free_port();
    let mut ne = std::process::Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .arg("--collector.textfile")
        .arg(format!("--collector.textfile.directory={}", textfile.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus-node-exporter (Debian package) must be installed: scripts/test.sh installs it");
    let mut body = String::new();
    wait_for(Duration::from_secs(20), "node_exporter to answer", || {
        body = std::net::TcpStream::connect(("127.0.0.1", port))
            .map(|_| http_get(port, "/metrics"))
            .unwrap_or_default();
        body.contains("node_textfile_scrape_error")
    });
    let _ = ne.kill();
    let _ = ne.wait();
    assert!(body.contains("node_textfile_scrape_error 0"), "{body}");
    assert!(
        body.contains("pgbackup_last_run_success{database=\"m\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE pgbackup_runs_total counter"),
        "{body}"
    );
}

#[test]
fn alerting_rules_pass_promtool_check_and_unit_tests() {
    let rules = repo().join("packaging/prometheus/pgbackup-rules.yml");
    let r = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let tests = repo().join("packaging/prometheus/pgbackup-rules.test.yml");
    let r = promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn sd_notify_messages_reach_the_socket() {
    let c = cluster();
    let db = c.create_db("notify");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("n", &db));
    let sock_path = env.tmp.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let out = env
        .cmd(&["backup"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "30000000")
        .output()
        .unwrap();
    Run::from(out).expect_code(0);
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    let all = messages.join("\n---\n");
    assert!(all.contains("READY=1"), "{all}");
    assert!(all.contains("STATUS=backing up n (1/1)"), "{all}");
    assert!(
        all.contains("STATUS=backup finished: 1 database ok"),
        "{all}"
    );
    assert!(all.contains("WATCHDOG=1"), "{all}");
    // A failure is reported in STATUS too.
    let bad = TestEnv::new();
    bad.write_config(&bad.db_entry("x", "no_such_db_notify"));
    let out = bad
        .cmd(&["backup"])
        .env("NOTIFY_SOCKET", &sock_path)
        .output()
        .unwrap();
    Run::from(out).expect_code(69);
    let mut failed = String::new();
    while let Ok(n) = sock.recv(&mut buf) {
        failed.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        failed.contains("STATUS=failed: 1 of 1 database backup failed: x"),
        "{failed}"
    );
    assert!(
        !failed.contains("WATCHDOG=1"),
        "no WATCHDOG_USEC, no pings: {failed}"
    );
}

#[test]
fn journal_priorities_under_systemd() {
    let env = TestEnv::new();
    env.write_config(&env.db_entry("j", "no_such_db_journal"));
    let out = env
        .cmd(&["backup"])
        .env("JOURNAL_STREAM", "8:1234")
        .output()
        .unwrap();
    let r = Run::from(out);
    r.expect_code(69);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("<3>j: backup failed")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.lines().all(|l| l.starts_with('<')), "{}", r.stderr);
}

#[test]
fn status_and_check() {
    let c = cluster();
    let db = c.create_db("status");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("st", &db));
    env.run(&["check", "--no-connect"]).expect_code(2);
    env.run(&["backup"]).expect_code(0);
    let r = env.run(&["status"]);
    r.expect_code(0).expect_no_secret();
    assert!(r.stdout.contains("st "), "{}", r.stdout);
    let j = env.run(&["status", "--json"]);
    j.expect_code(0).expect_no_secret();
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let d = &v["databases"][0];
    assert_eq!(d["database"], "st");
    assert_eq!(d["backups"], 1);
    assert_eq!(d["last_run_ok"], true);
    assert!(d["url"].as_str().unwrap().contains("127.0.0.1"));
    assert!(v["free_bytes"].as_u64().unwrap() > 0);

    let ok = env.run(&["check"]);
    ok.expect_code(0);
    assert!(
        ok.stdout
            .starts_with("PGBACKUP OK - 1 database, the least recent backup is "),
        "{}",
        ok.stdout
    );
    // Nagios performance data after the `|`: the backup's age (critical at --max-age) and size.
    let first = ok.stdout.lines().next().unwrap();
    let perf = first.split_once(" | ").map(|p| p.1).unwrap_or_default();
    assert!(
        perf.contains("'st_age'=") && perf.contains("s;;93600"),
        "{first}"
    );
    assert!(
        perf.contains("'st_size'=") && perf.ends_with('B'),
        "{first}"
    );
    let stale = env.run(&["check", "--max-age", "0"]);
    stale.expect_code(2);
    assert!(
        stale.stdout.contains("newest backup is"),
        "{}",
        stale.stdout
    );
    // Several problems: one short first line, then one line per problem.
    let both = env.run(&["check", "--max-age", "0", "--min-free-percent", "100"]);
    both.expect_code(2);
    let lines: Vec<&str> = both.stdout.lines().collect();
    assert!(lines[0].contains("(and 1 more)"), "{}", both.stdout);
    assert!(lines[0].len() < 400, "{}", lines[0]);
    assert!(
        lines[1..].iter().any(|l| l.contains("newest backup is")),
        "{}",
        both.stdout
    );
    assert!(
        lines[1..].iter().any(|l| l.contains("% free on")),
        "{}",
        both.stdout
    );
    let disk = env.run(&["check", "--min-free-percent", "100"]);
    assert!(disk.code == 1 || disk.code == 2, "{}", disk.stdout);
    // Unreachable database: CRITICAL.
    c.sql(
        "postgres",
        &format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false"),
    );
    let down = env.run(&["check"]);
    c.sql(
        "postgres",
        &format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"),
    );
    down.expect_code(2);
    assert!(down.stdout.contains("unreachable"), "{}", down.stdout);
    // A broken config: UNKNOWN.
    std::fs::write(&env.config, "[nope]\n").unwrap();
    let unknown = env.run(&["check"]);
    unknown.expect_code(3);
    assert!(
        unknown
            .stdout
            .starts_with("PGBACKUP UNKNOWN - configuration error"),
        "{}",
        unknown.stdout
    );
}

#[test]
fn log_target_syslog_and_journal_from_config() {
    let env = TestEnv::new();
    let sock_path = env.tmp.path().join("syslog.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    env.write_config(&format!(
        "[log]\ntarget = \"syslog\"\nsyslog-socket = \"{}\"\n\n{}",
        sock_path.display(),
        env.db_entry("sl", "no_such_db_syslog")
    ));
    let r = env.run(&["backup"]);
    r.expect_code(69);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    // facility daemon (3 << 3) + err (3) = 27
    assert!(
        got.iter().any(|m| m.starts_with("<27>")
            && m.contains("pgbackup[")
            && m.contains("sl: backup failed")),
        "{got:?}"
    );
    assert!(
        !r.stderr.contains("backup failed"),
        "went to syslog, not stderr: {}",
        r.stderr
    );

    env.write_config(&format!(
        "[log]\ntarget = \"journal\"\n\n{}",
        env.db_entry("sl", "no_such_db_syslog")
    ));
    let r = env.run(&["backup"]);
    r.expect_code(69);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("<3>sl: backup failed")),
        "{}",
        r.stderr
    );
}

/// `sudo pgbackup backup` on a tree that belongs to the service user leaves nothing the service
/// cannot use: every file and directory it creates goes to the tree's owner.
#[test]
fn root_runs_keep_the_backup_tree_owned_by_its_owner() {
    use std::os::unix::fs::MetadataExt;
    let c = cluster();
    let db = c.create_db("owner");
    let env = TestEnv::new();
    // The cluster's socket is trusted: no password file that only root could read.
    env.write_config(&format!(
        "[[database]]\nname = \"o\"\nurl = \"host={} port={} user=postgres dbname={db}\"\n",
        c.dir.display(),
        c.port
    ));
    std::fs::create_dir(&env.backups).unwrap();
    sh(&format!(
        "chown postgres: '{}' && chmod 755 '{}' '{}'",
        env.backups.display(),
        env.tmp.path().display(),
        env.backups.display()
    ));
    let owner = std::fs::metadata(&env.backups).unwrap().uid();
    assert_ne!(owner, 0);
    env.run(&["backup"]).expect_code(0);
    env.run(&["verify", "--db", "o"]).expect_code(0);
    let listing = sh(&format!(
        "find '{}' -printf '%u %p\\n'",
        env.backups.display()
    ));
    for line in listing.lines() {
        assert!(
            line.starts_with("postgres "),
            "not given to the owner: {line}\n{listing}"
        );
    }
    assert!(
        listing.contains(".pgbackup-state.json") && listing.contains(".pgbackup.lock"),
        "{listing}"
    );
    // And the owner can carry on where root left off.
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(env!("CARGO_BIN_EXE_pgbackup"))
        .arg("--config")
        .arg(&env.config)
        .arg("backup")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    Run::from(out).expect_code(0);
    assert_eq!(env.data_files("o").len(), 2);
}

/// Two configurations that share one textfile directory each write their own file when they
/// name an instance (`pgbackup-<instance>.prom`), and neither overwrites the other's.
#[test]
fn instances_sharing_a_textfile_directory_write_their_own_files() {
    let shared = tempfile::tempdir().unwrap();
    let mut envs = Vec::new();
    for instance in ["alpha", "beta"] {
        let (env, _) = Scenario::new(&format!("inst{instance}"), instance)
            .config(&format!(
                "[metrics]\ntextfile-dir = \"{}\"\ninstance = \"{instance}\"\n",
                shared.path().display()
            ))
            .backed_up();
        envs.push(env);
    }
    for instance in ["alpha", "beta"] {
        let text = std::fs::read_to_string(shared.path().join(format!("pgbackup-{instance}.prom")))
            .unwrap();
        assert!(
            text.contains(&format!(
                "pgbackup_last_run_success{{database=\"{instance}\"}} 1"
            )),
            "{instance}: {text}"
        );
    }
    assert!(!shared.path().join("pgbackup.prom").exists());
    let status = envs[0].run(&["status", "--json"]);
    assert!(
        status.stdout.contains("pgbackup-alpha.prom"),
        "{}",
        status.stdout
    );
    envs[0].write_config("[metrics]\ninstance = \"../x\"\n");
    envs[0]
        .run(&["config", "check"])
        .expect_code(78)
        .expect_stderr("metrics.instance");
}

/// Without `[metrics] textfile-dir` no metrics file is written (a throwaway run never lands in
/// the directory a live Prometheus scrapes) and status says so; a configured directory that
/// does not exist is one warning per run, however many databases the run backs up.
#[test]
fn metrics_only_where_configured_and_a_missing_directory_warned_once() {
    let c = cluster();
    let (a, b) = (c.create_db("mta"), c.create_db("mtb"));
    let env = TestEnv::new();
    let entries = format!("{}{}", env.db_entry("a", &a), env.db_entry("b", &b));
    env.write_config(&entries);
    env.run(&["backup"]).expect_code(0);
    let status = env.run(&["status"]);
    status.expect_code(0);
    assert!(
        status
            .stdout
            .contains("metrics:    none ([metrics] textfile-dir is not set)"),
        "{}",
        status.stdout
    );
    let missing = env.tmp.path().join("no-such-dir");
    env.write_config(&format!(
        "[metrics]\ntextfile-dir = \"{}\"\n{entries}",
        missing.display()
    ));
    let r = env.run(&["backup", "--force"]);
    r.expect_code(0);
    assert_eq!(
        r.stderr.matches("metrics not written").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(!missing.exists());
}
