use crate::harness::*;

#[test]
fn round_trip_restores_identical_tables() {
    let c = cluster();
    let src = c.create_db("rt_src");
    c.sql(&src, RICH_SCHEMA);
    let env = TestEnv::new();
    env.write_config(&env.db_entry("rich", &src));

    env.run(&["backup", "--description", "round trip"])
        .expect_code(0)
        .expect_no_secret();

    let data = env.data_files("rich");
    assert_eq!(data.len(), 1, "{:?}", env.files("rich"));
    let dir = env.db_dir("rich");
    let file = dir.join(&data[0]);
    // sha256sum -c accepts the sidecar; gzip -t accepts the data.
    sh(&format!(
        "cd '{}' && sha256sum -c '{}.sha256'",
        dir.display(),
        data[0]
    ));
    sh(&format!("gzip -t '{}'", file.display()));

    // Restore with nothing but zcat and psql into a fresh database.
    let dst = c.create_db("rt_dst");
    let out = std::process::Command::new("bash")
        .arg("-o")
        .arg("pipefail")
        .arg("-c")
        .arg(format!(
            "zcat '{}' | PGHOST='{}' PGPORT={} PGUSER=postgres '{}' -X -q -v ON_ERROR_STOP=1 -d '{dst}' >/dev/null",
            file.display(),
            c.dir.display(),
            c.port,
            c.bindir.join("psql").display()
        ))
        .output()
        .expect("restore");
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let before = c.fingerprint(&src);
    let after = c.fingerprint(&dst);
    assert!(before.len() >= 8, "fingerprint too small: {before:?}");
    assert!(
        before.contains_key("\"Sales Dept\".\"Order Lines\""),
        "{before:?}"
    );
    assert_eq!(before["sequence app.counter"], "4242");
    assert!(before["large objects"].starts_with("2:"), "{before:?}");
    assert_eq!(before, after);

    // The manifest: sizes, checksum and the row counts taken from the dump itself.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{}.json", data[0]))).unwrap())
            .unwrap();
    let sidecar = std::fs::read_to_string(dir.join(format!("{}.sha256", data[0]))).unwrap();
    assert_eq!(manifest["sha256"].as_str().unwrap(), &sidecar[..64]);
    assert_eq!(
        manifest["compressed_bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    assert_eq!(manifest["description"], "round trip");
    assert_eq!(manifest["database"], "rich");
    assert_eq!(manifest["dump_format"], "plain");
    let tables = manifest["tables"].as_array().unwrap();
    let rows = |schema: &str, table: &str| {
        tables
            .iter()
            .find(|t| t["schema"] == schema && t["table"] == table)
            .unwrap_or_else(|| panic!("{schema}.{table} missing in {tables:?}"))["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("app", "items"), 2001);
    assert_eq!(rows("Sales Dept", "Order Lines"), 300);
    assert_eq!(
        rows("app", "events_2025") + rows("app", "events_2026"),
        1000
    );
    let raw = manifest["raw_bytes"].as_u64().unwrap();
    let unzipped = sh(&format!("zcat '{}' | wc -c", file.display()));
    assert_eq!(unzipped.trim().parse::<u64>().unwrap(), raw);
    assert!(!serde_json::to_string(&manifest).unwrap().contains(PASSWORD));

    // Files 0600, directories 0700.
    use std::os::unix::fs::PermissionsExt;
    for f in env.files("rich") {
        let mode = std::fs::metadata(dir.join(&f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    for d in [&env.backups, &dir] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
}

#[test]
fn list_shows_backups_as_table_and_json() {
    let c = cluster();
    let db = c.create_db("list");
    c.sql(
        &db,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g",
    );
    let env = TestEnv::new();
    env.write_config(&env.db_entry("listed", &db));
    env.run(&["backup", "--description", "first"])
        .expect_code(0);
    env.run(&["backup"]).expect_code(0);
    // Debris and foreign files never show up as backups.
    std::fs::write(env.db_dir("listed").join("notes.txt"), "x").unwrap();
    std::fs::write(
        env.db_dir("listed").join("listed_20200101_000000.sql.gz"),
        "orphan",
    )
    .unwrap();

    let json = env.run(&["list", "--json"]);
    json.expect_code(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows.len(), 3, "{}", json.stdout);
    assert_eq!(rows[0]["file"], "listed_20200101_000000.sql.gz");
    assert_eq!(rows[0]["checksum"], false);
    assert_eq!(rows[0]["complete"], false);
    assert_eq!(rows[1]["description"], "first");
    for r in &rows[1..] {
        assert_eq!(r["database"], "listed");
        assert_eq!(r["checksum"], true);
        assert_eq!(r["location"], "local");
        assert!(r["size_bytes"].as_u64().unwrap() > 0);
        assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
    }
    assert_ne!(
        rows[1]["file"], rows[2]["file"],
        "two runs in one second got distinct names"
    );
    assert!(rows[1]["timestamp"].as_str() < rows[2]["timestamp"].as_str());

    let table = env.run(&["list", "--db", "listed"]);
    table.expect_code(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    assert!(lines[0].starts_with("DATABASE"));
    assert!(lines[1].contains("MISSING"));
    assert!(lines[2].contains("first"));
}

#[test]
fn respawn_protection_skips_unless_forced() {
    let c = cluster();
    let db = c.create_db("respawn");
    let env = TestEnv::new();
    env.write_config(&format!(
        "[backup]\nrespawn-protection-hours = 23\n\n{}",
        env.db_entry("r", &db)
    ));
    env.run(&["backup"]).expect_code(0);
    assert_eq!(env.data_files("r").len(), 1);
    env.run(&["backup"]).expect_code(0).expect_stderr("skipped");
    assert_eq!(env.data_files("r").len(), 1);
    env.run(&["backup", "--force"]).expect_code(0);
    assert_eq!(env.data_files("r").len(), 2);
    let out = env
        .cmd(&["backup"])
        .env("FORCE_BACKUP", "true")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(env.data_files("r").len(), 3);
    // The environment variable turns it off too.
    let out = env
        .cmd(&["run"])
        .env("RESPAWN_PROTECTION_HOURS", "0")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(env.data_files("r").len(), 4);
}

#[test]
fn zero_config_discovers_databases_and_escapes_names() {
    let c = cluster();
    let weird = format!("zc \"quoted\" ünï-db {}", std::process::id());
    c.sql(
        "postgres",
        &format!("CREATE DATABASE \"{}\"", weird.replace('"', "\"\"")),
    );
    c.sql(
        &weird,
        "CREATE TABLE \"t\"\"x\" (a int); INSERT INTO \"t\"\"x\" VALUES (1), (2)",
    );
    let env = TestEnv::new();
    env.write_config("");
    let escaped = pgbackup::catalog::escape_db_name(&weird);
    assert!(
        escaped.starts_with("zc-20-22quoted-22-20-c3-bc"),
        "{escaped}"
    );
    // libpq's own environment reaches the server: the local socket, trusted.
    let out = env
        .cmd(&["backup", "--db", &escaped])
        .env("PGHOST", &c.dir)
        .env("PGPORT", c.port.to_string())
        .env("PGUSER", "postgres")
        .output()
        .unwrap();
    let run = Run::from(out);
    run.expect_code(0);
    let files = env.data_files(&escaped);
    assert_eq!(files.len(), 1, "{:?}", env.files(&escaped));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.db_dir(&escaped).join(format!("{}.json", files[0]))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["dbname"], weird.as_str());
    assert_eq!(manifest["tables"][0]["table"], "t\"x");
    assert_eq!(manifest["tables"][0]["rows"], 2);
    // An unknown name is a usage error that lists what exists.
    let out = env
        .cmd(&["backup", "--db", "no-such-db"])
        .env("PGHOST", &c.dir)
        .env("PGPORT", c.port.to_string())
        .env("PGUSER", "postgres")
        .output()
        .unwrap();
    Run::from(out)
        .expect_code(2)
        .expect_stderr("unknown database \"no-such-db\"");
}

#[test]
fn database_url_and_backup_dir_from_environment() {
    let c = cluster();
    let db = c.create_db("envurl");
    let env = TestEnv::new();
    // No config file at all: PGBACKUP_CONFIG names a missing file -> error; the default path
    // may be missing, so run with a config that sets nothing.
    env.write_config("");
    let other_root = env.tmp.path().join("from-env");
    let url = format!(
        "postgresql://postgres:{}@127.0.0.1:{}/{db}",
        PASSWORD, c.port
    );
    let out = env
        .cmd(&["backup"])
        .env("DATABASE_URL", &url)
        .env("BACKUP_DIR", &other_root)
        .env("BACKUP_COMPRESSION_LEVEL", "1")
        .output()
        .unwrap();
    Run::from(out).expect_code(0).expect_no_secret();
    let files: Vec<_> = std::fs::read_dir(other_root.join(&db)).unwrap().collect();
    assert_eq!(files.len(), 3, "data, sidecar, manifest");
    let shown = env
        .cmd(&["config", "show"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let shown = Run::from(shown);
    shown.expect_code(0).expect_no_secret();
    assert!(
        shown.stdout.contains("postgres:***@127.0.0.1"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("DATABASE_URL"), "{}", shown.stdout);
}

#[test]
fn stale_temp_files_and_orphans_are_cleaned_by_the_next_run() {
    let c = cluster();
    let db = c.create_db("debris");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("d", &db));
    std::fs::create_dir_all(env.db_dir("d")).unwrap();
    std::fs::write(env.db_dir("d").join(".pgbackup-tmp.XYZ123"), "half a dump").unwrap();
    std::fs::write(
        env.db_dir("d").join("d_20200101_000000.sql.gz.sha256"),
        "orphan",
    )
    .unwrap();
    std::fs::write(env.db_dir("d").join("keep-me.txt"), "foreign").unwrap();
    env.run(&["backup"]).expect_code(0).expect_stderr("debris");
    let files = env.files("d");
    assert!(
        !files.iter().any(|f| f.starts_with(".pgbackup-tmp")),
        "{files:?}"
    );
    assert!(!files.contains(&"d_20200101_000000.sql.gz.sha256".to_string()));
    assert!(files.contains(&"keep-me.txt".to_string()));
    assert_eq!(env.data_files("d").len(), 1);
}

/// On a terminal a backup shows a live line (bytes read and written, rate, elapsed) that ends
/// at 100% before the "backup complete" line; off a terminal there is no such line.
#[test]
fn a_backup_on_a_terminal_shows_its_progress() {
    let (env, _) = Scenario::new("bprog", "prog")
        .sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS v FROM generate_series(1, 400000) g")
        .build();
    let pty = sh(&format!(
        "script -qec \"'{}' --config '{}' backup 2>&1\" /dev/null",
        env!("CARGO_BIN_EXE_pgbackup"),
        env.config.display()
    ));
    assert!(pty.contains("backing up prog: "), "no progress line: {pty}");
    assert!(
        pty.contains(" read, ") && pty.contains(" written, "),
        "{pty}"
    );
    let done = pty
        .find("(100%)")
        .unwrap_or_else(|| panic!("no final line: {pty}"));
    let complete = pty.find("backup complete").unwrap();
    assert!(
        done < complete,
        "the final line came after the log line: {pty}"
    );
    // Not a terminal: log lines only.
    let r = env.run(&["backup", "--force"]);
    r.expect_code(0);
    assert!(!r.stderr.contains("backing up prog:"), "{}", r.stderr);
}
