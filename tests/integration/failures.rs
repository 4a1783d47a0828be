use std::time::Duration;

use crate::harness::*;

/// Nothing that a reader could take for a backup: no data file, no sidecar.
#[track_caller]
fn assert_no_backup(env: &TestEnv, name: &str) {
    let files = env.files(name);
    assert!(
        !files
            .iter()
            .any(|f| !f.starts_with('.') && (f.ends_with(".sql.gz") || f.ends_with(".sha256"))),
        "a failed run left a visible backup: {files:?}"
    );
}

/// A config whose backup root is `root` (a small file system of a full-disk test).
fn write_config_on(env: &TestEnv, root: &std::path::Path, sections: &str, entry: &str) {
    std::fs::write(
        &env.config,
        format!(
            "[storage]\nlocal-dir = \"{}\"\n{sections}\n{entry}",
            root.display()
        ),
    )
    .unwrap();
}

#[test]
fn wrong_password_is_unreachable_with_a_hint_and_no_leak() {
    let c = cluster();
    let db = c.create_db("wrongpw");
    let env = TestEnv::new();
    std::fs::write(&env.password_file, "not-the-password-XYZ\n").unwrap();
    env.write_config(&env.db_entry("w", &db));
    let r = env.run(&["backup"]);
    // libpq's lines read as one sentence, and the hint names the user's password source,
    // not the in-memory passfile pg_dump read it from.
    r.expect_code(69)
        .expect_stderr("password authentication failed for user \"postgres\"; check the password in password-file ")
        .expect_stderr(&format!("{} and the user name", env.password_file.display()));
    for leak in [
        "not-the-password-XYZ",
        "/proc/self/fd",
        "passfile",
        "retrieved from file",
    ] {
        assert!(!r.stderr.contains(leak), "{leak}: {}", r.stderr);
    }
    assert_no_backup(&env, "w");
}

/// A warning about one database's settings is not shown for a run of another one.
#[test]
fn an_unselected_database_s_password_file_is_not_warned_about() {
    let c = cluster();
    let db = c.create_db("selwarn");
    let env = TestEnv::new();
    let open = env.tmp.path().join("open.pass");
    std::fs::write(&open, "whatever\n").unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    env.write_config(&format!(
        "{}[[database]]\nname = \"loose\"\nurl = \"dbname=nosuch\"\npassword-file = \"{}\"\n",
        env.db_entry("tight", &db),
        open.display()
    ));
    let r = env.run(&["backup", "--db", "tight"]);
    r.expect_code(0);
    assert!(!r.stderr.contains("open.pass"), "{}", r.stderr);
    // Selected, or in config check, it is named with its database.
    env.run(&["config", "check"])
        .expect_stderr_or_stdout("database loose: ")
        .expect_stderr_or_stdout("open.pass is readable by other users");
    env.run(&["verify", "--db", "loose"])
        .expect_stderr("database loose: ");
}

#[test]
fn missing_database_is_unreachable() {
    let c = cluster();
    let env = TestEnv::new();
    env.write_config(&env.db_entry("m", "no_such_database_here"));
    env.run(&["backup"])
        .expect_code(69)
        .expect_stderr("does not exist")
        .expect_stderr("check the database name");
    assert_no_backup(&env, "m");
    let _ = c;
}

#[test]
fn server_down_is_unreachable() {
    let env = TestEnv::new();
    let port = free_port();
    env.write_config(&format!(
        "[[database]]\nname = \"down\"\nurl = \"postgresql://postgres@127.0.0.1:{port}/x\"\npassword-file = \"{}\"\n",
        env.password_file.display()
    ));
    env.run(&["backup"])
        .expect_code(69)
        .expect_stderr("Connection refused")
        .expect_stderr("is the server running");
    assert_no_backup(&env, "down");
}

#[test]
fn one_failing_database_does_not_stop_the_others() {
    let c = cluster();
    let good = c.create_db("good");
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        env.db_entry("broken", "no_such_db_either"),
        env.db_entry("fine", &good)
    ));
    env.run(&["backup"])
        .expect_code(69)
        .expect_stderr("1 of 2 database backups failed: broken");
    assert_eq!(env.data_files("fine").len(), 1);
    assert_no_backup(&env, "broken");
}

#[test]
fn backend_terminated_mid_dump_fails_and_leaves_nothing() {
    let c = cluster();
    let db = c.create_db("terminated");
    c.sql(
        &db,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    let env = TestEnv::new();
    env.write_config(&env.db_entry("t", &db));
    let lock = c.hold_lock(&db, "t");
    let child = env.spawn(&["backup"]);
    let pid = c.wait_for_blocked_dump(&db);
    c.sql("postgres", &format!("SELECT pg_terminate_backend({pid})"));
    let r = Run::from(child.wait_with_output().unwrap());
    drop(lock);
    r.expect_code(1)
        .expect_stderr("pg_dump of t failed")
        .expect_stderr("terminating connection");
    assert_no_backup(&env, "t");
    assert!(
        !env.files("t")
            .iter()
            .any(|f| f.starts_with(".pgbackup-tmp")),
        "the temp file was not removed: {:?}",
        env.files("t")
    );
}

#[test]
fn dump_timeout_kills_pg_dump_and_fails_cleanly() {
    let c = cluster();
    let db = c.create_db("timeout");
    c.sql(&db, "CREATE TABLE t (a int)");
    let env = TestEnv::new();
    env.write_config(&format!(
        "[backup]\ndump-timeout-secs = 2\n\n{}",
        env.db_entry("slow", &db)
    ));
    let _lock = c.hold_lock(&db, "t");
    let started = std::time::Instant::now();
    let r = env.run(&["backup"]);
    r.expect_code(1).expect_stderr("did not finish within 2 s");
    // pg_dump's own reply to the stop is not shown as if somebody had interrupted it.
    assert!(!r.stderr.contains("terminated by user"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_no_backup(&env, "slow");
    assert!(!env
        .files("slow")
        .iter()
        .any(|f| f.starts_with(".pgbackup-tmp")));
    // pg_dump is gone from the server.
    wait_for(Duration::from_secs(10), "pg_dump to disconnect", || {
        c.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'pg_dump'"),
        ) == "0"
    });
}

#[test]
fn kill_9_mid_dump_leaves_no_backup_and_next_run_cleans_up() {
    let c = cluster();
    let db = c.create_db("killed");
    c.sql(
        &db,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    let env = TestEnv::new();
    env.write_config(&env.db_entry("k", &db));
    // A good backup first: it must survive the killed run untouched.
    env.run(&["backup"]).expect_code(0);
    let before = env.files("k");
    let first = env.data_files("k")[0].clone();
    let first_bytes = std::fs::read(env.db_dir("k").join(&first)).unwrap();

    let lock = c.hold_lock(&db, "t");
    let mut child = env
        .cmd(&["backup"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.wait_for_blocked_dump(&db);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(lock);

    let after = env.files("k");
    assert!(
        after.iter().any(|f| f.starts_with(".pgbackup-tmp")),
        "expected the killed run's temp file, proving it was mid-dump: {after:?}"
    );
    let visible: Vec<_> = after
        .iter()
        .filter(|f| !f.starts_with('.'))
        .cloned()
        .collect();
    assert_eq!(
        visible, before,
        "the killed run changed the visible backups"
    );
    assert_eq!(
        std::fs::read(env.db_dir("k").join(&first)).unwrap(),
        first_bytes
    );

    // The lock died with the process: the next run succeeds and removes the debris.
    env.run(&["backup"]).expect_code(0);
    let files = env.files("k");
    assert!(
        !files.iter().any(|f| f.starts_with(".pgbackup-tmp")),
        "{files:?}"
    );
    assert_eq!(env.data_files("k").len(), 2);
}

#[test]
fn concurrent_run_gets_75_naming_the_holder() {
    let c = cluster();
    let db = c.create_db("concurrent");
    c.sql(&db, "CREATE TABLE t (a int)");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("cc", &db));
    let lock = c.hold_lock(&db, "t");
    let first = env
        .cmd(&["backup"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.wait_for_blocked_dump(&db);
    env.run(&["backup"])
        .expect_code(75)
        .expect_stderr(&format!("(pid {})", first.id()));
    drop(lock);
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(env.data_files("cc").len(), 1);
}

#[test]
fn unwritable_backup_directory_is_73() {
    let c = cluster();
    let db = c.create_db("unwritable");
    let env = TestEnv::new();
    let blocker = env.tmp.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    std::fs::write(
        &env.config,
        format!(
            "[storage]\nlocal-dir = \"{}/sub\"\n\n{}",
            blocker.display(),
            env.db_entry("u", &db)
        ),
    )
    .unwrap();
    env.run(&["backup"])
        .expect_code(73)
        .expect_stderr("cannot write backup directory");
}

/// A full disk mid-write: a 1 MiB tmpfs and a dump that does not fit. Needs root for mount.
#[test]
fn full_disk_fails_with_73_and_keeps_the_previous_backup() {
    let c = cluster();
    let db = c.create_db("fulldisk");
    c.sql(&db, "CREATE TABLE t (a int, b text)");
    let env = TestEnv::new();
    let mnt = env.tmp.path().join("small");
    let _guard = small_disk(&mnt, "1m");
    write_config_on(&env, &mnt, "", &env.db_entry("f", &db));
    env.run(&["backup"]).expect_code(0);
    let good = std::fs::read_dir(mnt.join("f")).unwrap().count();
    assert_eq!(good, 3);
    // Random text does not compress: about 4 MiB of it cannot fit in 1 MiB.
    c.sql(&db, "INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 60000) g");
    env.run(&["backup", "--force"])
        .expect_code(73)
        .expect_stderr("disk is full");
    let mut names: Vec<String> = std::fs::read_dir(mnt.join("f"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "only the earlier backup remains: {names:?}");
    sh(&format!(
        "cd '{}' && sha256sum -c *.sha256",
        mnt.join("f").display()
    ));
}

#[test]
fn sigterm_mid_dump_stops_pg_dump_and_removes_the_temp_file() {
    let c = cluster();
    let db = c.create_db("sigterm");
    c.sql(
        &db,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g",
    );
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        env.db_entry("s1", &db),
        env.db_entry("s2", &db)
    ));
    let lock = c.hold_lock(&db, "t");
    let child = env.spawn(&["backup"]);
    c.wait_for_blocked_dump(&db);
    // Only pgbackup gets the signal, as with a plain `kill`: it must stop pg_dump itself.
    sh(&format!("kill -TERM {}", child.id()));
    let r = Run::from(child.wait_with_output().unwrap());
    drop(lock);
    r.expect_code(143).expect_stderr("interrupted by SIGTERM");
    assert_no_backup(&env, "s1");
    assert!(
        !env.files("s1")
            .iter()
            .any(|f| f.starts_with(".pgbackup-tmp")),
        "{:?}",
        env.files("s1")
    );
    assert!(
        env.files("s2").is_empty(),
        "no further database was started"
    );
    wait_for(Duration::from_secs(10), "pg_dump to disconnect", || {
        c.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'pg_dump'"),
        ) == "0"
    });
}

/// The directory format on a full disk: pg_dump's temp directory or the backup fills the 1 MiB
/// root, the run is 73 saying the disk is full, the earlier backup stays whole and no temp
/// directory is left. A kill -9 in the middle of such a dump leaves no backup visible, and the
/// next run succeeds.
#[test]
fn directory_format_on_a_full_disk_is_73_and_a_kill_9_leaves_nothing_visible() {
    let c = cluster();
    let db = c.create_db("fulldir");
    c.sql(
        &db,
        "CREATE TABLE t (a int, b text); CREATE TABLE u (a int)",
    );
    let env = TestEnv::new();
    let mnt = env.tmp.path().join("small");
    let _guard = small_disk(&mnt, "1m");
    write_config_on(
        &env,
        &mnt,
        "[backup]\nformat = \"directory\"\ndump-jobs = 2\n",
        &env.db_entry("f", &db),
    );
    env.run(&["backup"]).expect_code(0);
    let before = visible(&mnt.join("f"));
    assert_eq!(before.len(), 3, "{before:?}");
    c.sql(&db, "INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 60000) g");
    let full = env.run(&["backup", "--force"]);
    full.expect_code(73).expect_stderr("disk is full");
    assert_eq!(visible(&mnt.join("f")), before);
    let debris: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".pgbackup-tmp"))
        .collect();
    assert!(debris.is_empty(), "{debris:?}");
    sh(&format!(
        "cd '{}' && sha256sum -c *.sha256",
        mnt.join("f").display()
    ));
    c.sql(&db, "TRUNCATE t");

    // kill -9 while pg_dump waits for a lock.
    let lock = c.hold_lock(&db, "u");
    let mut child = env
        .cmd(&["backup", "--force"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.wait_for_blocked_dump(&db);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(lock);
    assert_eq!(
        visible(&mnt.join("f")),
        before,
        "the killed run changed the backups"
    );
    env.run(&["backup", "--force"]).expect_code(0);
    assert_eq!(env.run(&["list", "--json"]).code, 0);
}

/// The names in `dir` that are not hidden (not our temp files, not debris), sorted.
fn visible(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}
