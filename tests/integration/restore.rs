use crate::harness::*;

fn setup(prefix: &str, name: &str) -> (TestEnv, String) {
    let c = cluster();
    let db = c.create_db(prefix);
    c.sql(&db, RICH_SCHEMA);
    let env = TestEnv::new();
    env.write_config(&env.db_entry(name, &db));
    env.run(&["backup"]).expect_code(0);
    (env, db)
}

#[test]
fn restore_to_a_new_target_is_identical() {
    let c = cluster();
    let (env, src) = setup("rs_new", "src");
    let dst = format!("rs_new_copy_{}", std::process::id());
    let r = env.run(&[
        "restore",
        "--db",
        "src",
        "--latest",
        "--target",
        &c.url(&dst),
        "--create",
        "--yes",
    ]);
    r.expect_code(0).expect_no_secret();
    assert_eq!(c.fingerprint(&src), c.fingerprint(&dst));
    assert!(
        !r.stderr.contains("safety backup"),
        "a new database needs no safety backup"
    );
}

#[test]
fn clean_restore_over_a_changed_database_with_a_restorable_safety_backup() {
    let c = cluster();
    let (env, src) = setup("rs_clean", "main");
    let original = c.fingerprint(&src);
    c.sql(&src, "DELETE FROM app.items WHERE id < 100; CREATE TABLE app.newer (x int); INSERT INTO app.newer VALUES (1);");
    let changed = c.fingerprint(&src);
    assert_ne!(original, changed);
    // A session that would block DROP DATABASE is terminated by --clean.
    let _session = c.hold_session(&src);
    let backup = env.data_files("main")[0].clone();
    let r = env.run(&["restore", "--backup", &backup, "--clean", "--yes"]);
    r.expect_code(0).expect_stderr("safety backup of");
    assert_eq!(c.fingerprint(&src), original);

    // The safety backup holds the changed state, and restores. It sits in the safety
    // directory: the database's own backups are unchanged, so `--latest` still means the
    // newest real backup, and retention never counts it.
    assert_eq!(env.data_files("main"), std::slice::from_ref(&backup));
    let safety_dir = env.backups.join("_safety").join("main");
    let safety_files: Vec<String> = std::fs::read_dir(&safety_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.ends_with(".sql.gz"))
        .collect();
    assert_eq!(safety_files.len(), 1, "{safety_files:?}");
    let safety = safety_dir.join(&safety_files[0]);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", safety.display())).unwrap())
            .unwrap();
    assert!(
        m["description"].as_str().unwrap().contains("safety backup"),
        "{m}"
    );
    let check = format!("rs_clean_check_{}", std::process::id());
    env.run(&[
        "restore",
        "--file",
        safety.to_str().unwrap(),
        "--target",
        &c.url(&check),
        "--create",
        "--yes",
    ])
    .expect_code(0);
    assert_eq!(c.fingerprint(&check), changed);

    // list shows it apart; --latest restores the real backup, not the safety one.
    let list = env.run(&["list"]);
    assert!(
        list.stdout.lines().any(|l| l.contains("safety")),
        "{}",
        list.stdout
    );
    c.sql(&src, "CREATE TABLE app.again (x int)");
    env.run(&["restore", "--db", "main", "--latest", "--clean", "--yes"])
        .expect_code(0);
    assert_eq!(
        c.fingerprint(&src),
        original,
        "--latest took the safety backup"
    );

    // A safety backup older than keep-safety-days goes at the next restore's safety backup;
    // the database's own backups are untouched.
    let old = safety_dir.join("main_20200101_000000.sql.gz");
    std::fs::copy(&safety, &old).unwrap();
    let sum = sh(&format!(
        "cd '{}' && sha256sum main_20200101_000000.sql.gz",
        safety_dir.display()
    ));
    std::fs::write(format!("{}.sha256", old.display()), sum).unwrap();
    c.sql(&src, "CREATE TABLE app.third (x int)");
    env.run(&["restore", "--db", "main", "--latest", "--clean", "--yes"])
        .expect_code(0)
        .expect_stderr("removed the expired safety backup main_20200101_000000.sql.gz");
    assert!(!old.exists());
    assert_eq!(env.data_files("main"), [backup]);
}

#[test]
fn corrupt_backups_are_refused_before_the_target_is_touched() {
    let c = cluster();
    let (env, src) = setup("rs_corrupt", "cor");
    let before = c.fingerprint(&src);
    let path = env.latest("cor");
    let good = std::fs::read(&path).unwrap();
    let side = std::fs::read(format!("{}.sha256", path.display())).unwrap();
    let restore = |what: &str| {
        let r = env.run(&["restore", "--db", "cor", "--latest", "--clean", "--yes"]);
        assert_eq!(r.code, 65, "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("refusing to restore"),
            "{what}: {}",
            r.stderr
        );
        assert_eq!(c.fingerprint(&src), before, "{what}: the target changed");
        assert_eq!(
            env.data_files("cor").len(),
            1,
            "{what}: no safety backup for a refused restore"
        );
    };
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    restore("flipped byte");
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    refresh_sidecar(&path);
    restore("truncated");
    std::fs::write(&path, &good).unwrap();
    std::fs::write(
        format!("{}.sha256", path.display()),
        format!(
            "{}  {}\n",
            "f".repeat(64),
            path.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    restore("wrong sidecar");
    let text = zcat(&{
        std::fs::write(format!("{}.sha256", path.display()), &side).unwrap();
        path.clone()
    });
    write_gz_with_sidecar(&path, &text.as_bytes()[..text.len() / 2]);
    restore("incomplete dump");
    // And a missing sidecar: the data file alone is not a backup, so --latest finds nothing;
    // named by path it is refused as corrupt.
    std::fs::write(&path, &good).unwrap();
    std::fs::remove_file(format!("{}.sha256", path.display())).unwrap();
    let r = env.run(&[
        "restore",
        "--file",
        path.to_str().unwrap(),
        "--clean",
        "--yes",
    ]);
    r.expect_code(65).expect_stderr("sidecar");
    assert_eq!(c.fingerprint(&src), before);
}

#[test]
fn names_with_quotes_spaces_and_unicode_cannot_inject_sql() {
    let c = cluster();
    let sentinel = c.create_db("sentinel");
    let weird = format!(
        "we\"ird'; DROP DATABASE {sentinel}; -- 名前 {}",
        std::process::id()
    );
    c.sql(
        "postgres",
        &format!("CREATE DATABASE \"{}\"", weird.replace('"', "\"\"")),
    );
    c.sql(
        &weird,
        "CREATE TABLE \"Tab'le\"\"x\" (a int); INSERT INTO \"Tab'le\"\"x\" VALUES (1), (2), (3);",
    );
    let env = TestEnv::new();
    let kw = format!(
        "host=127.0.0.1 port={} user=postgres dbname='{}'",
        c.port,
        weird.replace('\\', "\\\\").replace('\'', "\\'")
    );
    env.write_config(&format!(
        "[[database]]\nname = \"weird\"\nurl = {}\npassword-file = \"{}\"\n",
        toml_string(&kw),
        env.password_file.display()
    ));
    env.run(&["backup"]).expect_code(0);
    env.run(&["verify", "--test-restore"]).expect_code(0);
    let target = format!("{weird} copy");
    let target_kw = format!(
        "host=127.0.0.1 port={} user=postgres dbname='{}'",
        c.port,
        target.replace('\\', "\\\\").replace('\'', "\\'")
    );
    env.run(&[
        "restore", "--db", "weird", "--latest", "--target", &target_kw, "--create", "--yes",
    ])
    .expect_code(0);
    assert!(
        db_exists(&sentinel),
        "the sentinel database was dropped: SQL injection"
    );
    assert!(db_exists(&target));
    assert_eq!(c.fingerprint(&weird), c.fingerprint(&target));
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn without_a_terminal_selection_and_confirmation_are_required() {
    let (env, _) = setup("rs_noterm", "nt");
    env.run(&["restore"])
        .expect_code(2)
        .expect_stderr("no backup selected");
    env.run(&["restore", "--db", "nt", "--latest", "--clean"])
        .expect_code(2)
        .expect_stderr("pass --yes");
    env.run(&[
        "restore",
        "--db",
        "nt",
        "--latest",
        "--target",
        &cluster().url("rs_never_created"),
        "--yes",
    ])
    .expect_code(2)
    .expect_stderr("--create");
    assert!(!db_exists("rs_never_created"));
}

/// The numbered pick and the confirmation, answered through a pseudo-terminal (`script`).
#[test]
fn interactive_selection_through_a_pseudo_terminal() {
    let c = cluster();
    let (env, src) = setup("rs_pty", "pty");
    env.run(&["backup", "--description", "second one"])
        .expect_code(0);
    let dst = format!("rs_pty_copy_{}", std::process::id());
    let cmd = format!(
        "'{}' --config '{}' restore --db pty --target '{}' --create",
        env!("CARGO_BIN_EXE_pgbackup"),
        env.config.display(),
        c.url(&dst)
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("(sleep 2; printf '1\\n'; sleep 2; printf 'yes\\n'; sleep 5) | script -qec \"{}\" /dev/null", cmd.replace('"', "\\\"")))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("TERM", "dumb")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("Restore which backup? [1-2]"), "{text}");
    assert!(
        text.contains("second one"),
        "the menu shows descriptions: {text}"
    );
    assert!(text.contains("Type 'yes' to restore"), "{text}");
    assert!(text.contains("restored"), "{text}");
    assert_eq!(c.fingerprint(&src), c.fingerprint(&dst));
}

/// A `pg_dump | gzip` file from an old script has no sidecar: restore refuses it and says how
/// (`--no-sidecar`); with it, the decompression and the completion trailer are still checked
/// before the target is touched, the plan says there is no checksum, and the tables come back
/// identical. A truncated one is refused even so.
#[test]
fn a_dump_made_without_pgbackup_restores_with_no_sidecar_after_its_checks() {
    let c = cluster();
    let src = c.create_db("rs_foreign");
    c.sql(&src, RICH_SCHEMA);
    let env = TestEnv::new();
    // Configured only for its login (the target's password comes from it).
    env.write_config(&env.db_entry("foreign", &src));
    let dump = env.tmp.path().join("nightly-backup.sql.gz");
    sh(&format!(
        "PGHOST='{}' PGPORT={} PGUSER=postgres '{}' -d '{src}' | gzip > '{}'",
        c.dir.display(),
        c.port,
        c.bindir.join("pg_dump").display(),
        dump.display()
    ));
    let dst = format!("{src}_copy");
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "restore".to_string(),
            "--file".into(),
            dump.display().to_string(),
            "--target".into(),
            c.url(&dst),
            "--create".into(),
            "--yes".into(),
            "--db".into(),
            "foreign".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| env.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    run(args(&[]))
        .expect_code(65)
        .expect_stderr("pass --no-sidecar");
    assert!(!db_exists(&dst));

    let r = run(args(&["--no-sidecar"]));
    r.expect_code(0)
        .expect_stderr("WITHOUT a checksum")
        .expect_stderr("NO checksum (--no-sidecar)");
    assert_eq!(c.fingerprint(&src), c.fingerprint(&dst));

    // Truncated: the completion check still refuses it.
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::write(&dump, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let other = format!("{src}_never");
    let mut a = args(&["--no-sidecar"]);
    a[4] = c.url(&other);
    run(a).expect_code(65).expect_stderr("refusing to restore");
    assert!(!db_exists(&other));
}
