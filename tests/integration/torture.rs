//! The defects an adversarial run found (issue "Torture-proof"), one test each, reproduced as
//! found: dangerous backup roots, a failed run reported as success, clock skew that deleted
//! every backup or silenced monitoring, keep-min counting broken sidecars, a panic on a long
//! description, a time limit a forking wrapper escaped, a FIFO that hung verify, debris outside
//! the database directories, and misleading results. (Secrets: see secrets.rs; the fault
//! matrix: scripts/torture.sh.)

use std::time::{Duration, Instant};

use crate::harness::*;

/// A complete synthetic backup of `name` at `ts` (a real gzip and a matching sidecar).
fn synthetic(env: &TestEnv, name: &str, ts: chrono::DateTime<chrono::Utc>) -> String {
    let dir = env.db_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = format!("{name}_{}.sql.gz", ts.format("%Y%m%d_%H%M%S"));
    write_gz_with_sidecar(&dir.join(&file), b"-- PostgreSQL database dump complete\n");
    file
}

#[test]
fn dangerous_backup_roots_are_refused_and_no_mode_is_changed() {
    let env = TestEnv::new();
    for (root, why) in [
        ("/", "system directory"),
        ("/tmp", "system directory"),
        ("/etc", "system directory"),
        ("/var/lib", "system directory"),
        ("backups", "relative path"),
    ] {
        std::fs::write(&env.config, format!("[storage]\nlocal-dir = \"{root}\"\n")).unwrap();
        for cmd in [&["config", "check"][..], &["prune"][..], &["backup"][..]] {
            env.run(cmd).expect_code(78).expect_stderr(why);
        }
    }
    let tmp_mode = std::fs::metadata("/tmp").unwrap().permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(tmp_mode.mode() & 0o7777, 0o1777, "/tmp lost its sticky bit");
    // A world-writable directory (sticky or not) is refused too.
    let shared = env.tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o1777);
    std::fs::write(
        &env.config,
        format!("[storage]\nlocal-dir = \"{}\"\n", shared.display()),
    )
    .unwrap();
    env.run(&["config", "check"])
        .expect_code(78)
        .expect_stderr("writable by every user");
    // An existing root pgbackup did not create keeps its mode (0755 here), with a warning.
    let c = cluster();
    let db = c.create_db("tor_mode");
    std::fs::create_dir_all(&env.backups).unwrap();
    set_mode(&env.backups, 0o755);
    env.write_config(&env.db_entry("m", &db));
    env.run(&["backup"])
        .expect_code(0)
        .expect_stderr("chmod 700");
    assert_eq!(
        std::fs::metadata(&env.backups)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(
        std::fs::metadata(env.db_dir("m"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o700
    );
}

#[test]
fn a_run_that_cannot_record_its_outcome_fails_and_the_metrics_say_so() {
    let c = cluster();
    let db = c.create_db("tor_state");
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    env.write_config(&format!(
        "[metrics]\ntextfile-dir = \"{}\"\n\n{}",
        textfile.display(),
        env.db_entry("s", &db)
    ));
    env.run(&["backup"]).expect_code(0);
    // The state file cannot be replaced (a directory took its name: as good as a full disk).
    let state = env.backups.join(".pgbackup-state.json");
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    let r = env.run(&["backup", "--force"]);
    r.expect_code(73).expect_stderr("state file");
    let prom = std::fs::read_to_string(textfile.join("pgbackup.prom")).unwrap();
    assert!(prom.contains("pgbackup_run_success 0"), "{prom}");
    // The backup itself is complete and verifies (once the state can be written again; until
    // then verify fails the same way).
    env.run(&["verify"]).expect_code(73);
    std::fs::remove_dir(&state).unwrap();
    env.run(&["verify"]).expect_code(0);
}

#[test]
fn a_clock_once_ahead_deletes_nothing_and_silences_nothing() {
    let c = cluster();
    let db = c.create_db("tor_clock");
    let env = TestEnv::new();
    let now = chrono::Utc::now();
    // 60 real daily backups, the newest three days old, and three named in the future.
    let real: Vec<String> = (3..63)
        .map(|d| synthetic(&env, "k", now - chrono::Duration::days(d)))
        .collect();
    let future: Vec<String> = (1..=3)
        .map(|m| synthetic(&env, "k", now + chrono::Duration::days(30 * m)))
        .collect();
    env.write_config(&format!(
        "[retention]\nkeep-daily = 1\nkeep-min = 2\n[backup]\nrespawn-protection-hours = 23\n\n{}",
        env.db_entry("k", &db)
    ));
    // Monitoring: the real newest is three days old; the future ones do not hide it.
    env.run(&["check", "--no-connect", "--max-age", "26"])
        .expect_code(2)
        .expect_stderr_or_stdout("newest backup is");
    // Respawn protection does not take the future for recent: the backup runs.
    let r = env.run(&["backup"]);
    r.expect_code(0).expect_stderr("dated in the future");
    assert!(!r.stderr.contains("skipped"), "{}", r.stderr);
    let files = env.data_files("k");
    // The new backup and keep-min's second (the newest real one) stay, the future ones stay.
    assert!(files.contains(&real[0]), "{files:?}");
    for f in &future {
        assert!(files.contains(f), "{f} deleted: {files:?}");
    }
    assert_eq!(files.len(), 2 + future.len(), "{files:?}");
    env.run(&["list"])
        .expect_code(0)
        .expect_stderr("dated in the future");
    let status = env.run(&["status"]);
    assert!(
        status.stdout.contains("dated in the future"),
        "{}",
        status.stdout
    );
    env.run(&["check", "--no-connect"])
        .expect_code(1)
        .expect_stderr_or_stdout("dated in the future");
}

#[test]
fn keep_min_never_counts_a_backup_with_a_broken_sidecar() {
    let env = TestEnv::new();
    let now = chrono::Utc::now();
    let good: Vec<String> = (10..15)
        .map(|d| synthetic(&env, "b", now - chrono::Duration::days(d)))
        .collect();
    // The three newest have an empty, a truncated and a garbage-sized sidecar.
    for (d, body) in [(1, ""), (2, "abc"), (3, "x\n")] {
        let f = synthetic(&env, "b", now - chrono::Duration::days(d));
        std::fs::write(env.db_dir("b").join(format!("{f}.sha256")), body).unwrap();
    }
    std::fs::write(
        &env.config,
        format!(
            "[storage]\nlocal-dir = \"{}\"\n[retention]\nkeep-days = 0\nkeep-min = 3\n",
            env.backups.display()
        ),
    )
    .unwrap();
    env.run(&["prune"]).expect_code(0);
    let files = env.data_files("b");
    // keep-min 3 kept the three newest that verify; the broken ones are not backups.
    for f in &good[..3] {
        assert!(files.contains(f), "{f} was deleted: {files:?}");
    }
    let list = env.run(&["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let checksummed = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["checksum"] == true)
        .count();
    assert_eq!(checksummed, 3, "{}", list.stdout);
}

#[test]
fn long_and_hostile_descriptions_never_break_list() {
    let c = cluster();
    let db = c.create_db("tor_desc");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("d", &db));
    env.run(&["backup", "--description", &"x".repeat(1001)])
        .expect_code(2)
        .expect_stderr("at most 1000");
    env.run(&[
        "backup",
        "--description",
        "evil\n\r\u{1b}]0;owned\u{7}\u{1b}[31mred",
    ])
    .expect_code(0);
    // A manifest edited by hand with a 70,000-character description.
    let m = format!("{}.json", env.latest("d").display());
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    let hostile = v["description"].as_str().unwrap().to_string();
    v["description"] = format!("{hostile}{}", "y".repeat(70_000)).into();
    std::fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = env.run(&["list"]);
    r.expect_code(0);
    assert!(
        !r.stdout.contains('\u{1b}') && !r.stdout.contains('\r'),
        "{:?}",
        r.stdout
    );
    assert!(r.stdout.contains("\\x1b]0;owned"), "{}", r.stdout);
    assert!(
        r.stdout.lines().all(|l| l.chars().count() < 400),
        "{}",
        r.stdout
    );
}

#[test]
fn the_dump_time_limit_holds_against_a_forking_wrapper() {
    let c = cluster();
    let db = c.create_db("tor_fork");
    let env = TestEnv::new();
    let wrapper = env.tmp.path().join("forking_pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) exec '{0}/pg_dump' --version;; esac\nsh -c 'sleep 300' &\n'{0}/pg_dump' \"$@\"\nwait\n",
            c.bindir.display()
        ),
    )
    .unwrap();
    set_mode(&wrapper, 0o755);
    env.write_config(&format!(
        "[backup]\npg-dump-path = \"{}\"\npsql-path = \"{}/psql\"\ndump-timeout-secs = 2\n\n{}",
        wrapper.display(),
        c.bindir.display(),
        env.db_entry("f", &db)
    ));
    let started = Instant::now();
    env.run(&["backup"]).expect_code(1).expect_stderr("2 s");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(env.data_files("f").is_empty());
}

#[test]
fn a_fifo_never_hangs_verify_and_a_second_sigterm_ends_a_blocked_run() {
    let c = cluster();
    let db = c.create_db("tor_fifo");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("q", &db));
    env.run(&["backup"]).expect_code(0);
    let data = env.latest("q");
    for suffix in [".sha256", ".json"] {
        let p = format!("{}{suffix}", data.display());
        let saved = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        sh(&format!("mkfifo '{p}'"));
        let started = Instant::now();
        let r = env.run(&["verify", data.to_str().unwrap()]);
        assert_ne!(r.code, 0);
        assert!(
            r.stdout.contains("not a regular file") || r.stderr.contains("not a regular file"),
            "{}{}",
            r.stdout,
            r.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, saved).unwrap();
    }
    // A child that ignores SIGTERM keeps the run waiting: a second SIGTERM ends it at once.
    let stubborn = env.tmp.path().join("stubborn_pg_dump");
    std::fs::write(
        &stubborn,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) exec '{}/pg_dump' --version;; esac\ntrap '' TERM\nsleep 60\n",
            c.bindir.display()
        ),
    )
    .unwrap();
    set_mode(&stubborn, 0o755);
    env.write_config(&format!(
        "[backup]\npg-dump-path = \"{}\"\npsql-path = \"{}/psql\"\n\n{}",
        stubborn.display(),
        c.bindir.display(),
        env.db_entry("q", &db)
    ));
    let mut child = env.spawn(&["backup", "--force"]);
    std::thread::sleep(Duration::from_secs(2));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first SIGTERM waits for the child"
    );
    let started = Instant::now();
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let status = child.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(status.code(), Some(143));
    let _ = std::process::Command::new("pkill")
        .args(["-f", &stubborn.display().to_string()])
        .status();
    // Nothing partial is visible; the next run cleans up.
    env.write_config(&env.db_entry("q", &db));
    env.run(&["backup", "--force"]).expect_code(0);
    sh(&format!(
        "cd '{}' && sha256sum -c --quiet *.sha256",
        env.db_dir("q").display()
    ));
}

#[test]
fn debris_outside_database_directories_goes_and_foreign_files_stay() {
    let c = cluster();
    let db = c.create_db("tor_debris");
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    env.write_config(&format!(
        "[metrics]\ntextfile-dir = \"{}\"\n\n{}",
        textfile.display(),
        env.db_entry("d", &db)
    ));
    std::fs::create_dir_all(env.db_dir("d")).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    let stale = [
        env.backups.join(".pgbackup-tmp.state1"),
        textfile.join(".pgbackup.prom.x1"),
    ];
    for p in &stale {
        std::fs::write(p, "half written").unwrap();
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let young = env.backups.join(".pgbackup-tmp.now");
    std::fs::write(&young, "a run going on").unwrap();
    // An orphan sidecar of another database's name in d's directory is foreign there.
    let foreign = env.db_dir("d").join("other_20200101_000000.sql.gz.sha256");
    std::fs::write(&foreign, "theirs").unwrap();
    let foreign_prom = textfile.join("node_other.prom");
    std::fs::write(&foreign_prom, "x 1\n").unwrap();
    env.run(&["backup"]).expect_code(0).expect_stderr("debris");
    for p in &stale {
        assert!(!p.exists(), "{} stayed", p.display());
    }
    assert!(young.exists() && foreign.exists() && foreign_prom.exists());
}

#[test]
fn results_never_mislead() {
    let c = cluster();
    let db = c.create_db("tor_mislead");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("r", &db));
    env.run(&["backup"]).expect_code(0);
    let data = env.latest("r");
    let manifest = format!("{}.json", data.display());
    let saved = std::fs::read(&manifest).unwrap();
    // A garbage or non-object manifest is a failed check, not "missing (optional)".
    for junk in ["not json at all", "[1, 2, 3]"] {
        std::fs::write(&manifest, junk).unwrap();
        let r = env.run(&["verify", "--db", "r"]);
        r.expect_code(65);
        assert!(
            r.stdout.contains("is not a pgbackup manifest"),
            "{}",
            r.stdout
        );
    }
    std::fs::write(&manifest, saved).unwrap();
    // A sidecar with CRLF (an editor on Windows) is what sha256sum -c accepts: so does verify.
    let sidecar = format!("{}.sha256", data.display());
    let text = std::fs::read_to_string(&sidecar).unwrap();
    std::fs::write(&sidecar, text.replace('\n', "\r\n")).unwrap();
    sh(&format!(
        "cd '{}' && sha256sum -c --quiet *.sha256",
        env.db_dir("r").display()
    ));
    env.run(&["verify", "--db", "r"]).expect_code(0);
    // A pg-dump-path that does not exist is a configuration error (78), as documented.
    env.write_config(&format!(
        "[backup]\npg-dump-path = \"/nonexistent/pg_dump\"\n\n{}",
        env.db_entry("r", &db)
    ));
    env.run(&["backup"])
        .expect_code(78)
        .expect_stderr("pg-dump-path");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains("| 78 | configuration error") && readme.contains("a missing pg-dump-path")
    );
}
