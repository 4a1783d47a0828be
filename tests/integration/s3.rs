use crate::harness::*;

/// About 8 MiB of incompressible rows: with 5 MiB parts the data goes up in two parts.
pub fn fill_two_parts(db: &str) {
    cluster().sql(
        db,
        "CREATE TABLE t AS SELECT g, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 250000) g",
    );
}

/// A `[storage.s3]` section for `bucket` on the test server, keys in files.
pub fn s3_section(env: &TestEnv, s3: &S3Server, bucket: &str, secret: &str, extra: &str) -> String {
    let ak = env.tmp.path().join("s3-access-key");
    let sk = env.tmp.path().join("s3-secret-key");
    std::fs::write(&ak, &s3.access_key).unwrap();
    std::fs::write(&sk, secret).unwrap();
    set_mode(&ak, 0o600);
    set_mode(&sk, 0o600);
    format!(
        "[storage.s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nregion = \"{}\"\naccess-key-file = \"{}\"\nsecret-key-file = \"{}\"\n{extra}\n",
        s3.endpoint,
        s3.region,
        ak.display(),
        sk.display()
    )
}

#[test]
fn backup_uploads_data_then_sidecar_and_manifest_and_list_merges() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("up");
    let db = c.create_db("s3up");
    fill_two_parts(&db);
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    env.write_config(&format!(
        "{}[metrics]\ntextfile-dir = \"{}\"\n\n{}",
        s3_section(
            &env,
            s3,
            &bucket,
            &s3.secret_key,
            "storage-class = \"STANDARD_IA\"\npart-size-mib = 5"
        ),
        textfile.display(),
        env.db_entry("up", &db)
    ));
    let r = env.run(&["backup"]);
    r.expect_code(0)
        .expect_stderr("uploaded")
        .expect_no_secret();
    assert!(!r.stderr.contains(&s3.secret_key));
    let local = env.latest("up");
    let name = local.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        std::fs::metadata(&local).unwrap().len() > 5 << 20,
        "the dump must need two parts"
    );

    // An independent client sees all three objects under the prefix.
    let listed = s3.aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        &bucket,
        "--prefix",
        "backups/up/",
    ]);
    listed.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let keys: Vec<&str> = v["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    for suffix in ["", ".sha256", ".json"] {
        assert!(
            keys.contains(&format!("backups/up/{name}{suffix}").as_str()),
            "{keys:?}"
        );
    }
    // What S3 holds has the sidecar's checksum, and the configured storage class.
    let dl = env.tmp.path().join("downloaded.sql.gz");
    s3.aws(&[
        "s3",
        "cp",
        &format!("s3://{bucket}/backups/up/{name}"),
        dl.to_str().unwrap(),
    ])
    .expect_code(0);
    let sum = sh(&format!("sha256sum '{}'", dl.display()));
    let sidecar = std::fs::read_to_string(format!("{}.sha256", local.display())).unwrap();
    assert_eq!(&sum[..64], &sidecar[..64]);
    let head = s3.aws(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        &format!("backups/up/{name}"),
    ]);
    head.expect_code(0);
    assert!(head.stdout.contains("STANDARD_IA"), "{}", head.stdout);

    // list shows where each backup lives; a backup only S3 has is listed too.
    let j = env.run(&["list", "--json"]);
    j.expect_code(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{}", j.stdout);
    assert_eq!(rows[0]["location"], "local+s3");
    for suffix in ["", ".sha256", ".json"] {
        std::fs::remove_file(format!("{}{suffix}", local.display())).unwrap();
    }
    let j = env.run(&["list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(rows[0]["location"], "s3", "{}", j.stdout);
    assert_eq!(rows[0]["complete"], true);
    assert!(std::fs::read_to_string(textfile.join("pgbackup.prom"))
        .unwrap()
        .contains("pgbackup_last_run_success{database=\"up\"} 1"));
}

#[test]
fn s3_failures_are_69_with_a_clear_message_and_the_local_backup_stays() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("fail");
    let db = c.create_db("s3fail");
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    let run = |section: String, needle: &str| {
        env.write_config(&format!(
            "{section}[metrics]\ntextfile-dir = \"{}\"\n\n{}",
            textfile.display(),
            env.db_entry("f", &db)
        ));
        let r = env.run(&["backup"]);
        r.expect_code(69)
            .expect_stderr(needle)
            .expect_stderr("the local backup");
        assert!(!r.stderr.contains("wrong-secret-123"), "{}", r.stderr);
        let prom = std::fs::read_to_string(textfile.join("pgbackup.prom")).unwrap();
        assert!(
            prom.contains("pgbackup_last_run_success{database=\"f\"} 0"),
            "{prom}"
        );
    };
    run(
        s3_section(&env, s3, &bucket, "wrong-secret-123", ""),
        "refused the credentials",
    );
    run(
        s3_section(&env, s3, "no-such-bucket-here", &s3.secret_key, ""),
        "does not exist",
    );
    let port = free_port();
    let dead = S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        ..s3.clone()
    };
    run(
        s3_section(&env, &dead, &bucket, &s3.secret_key, ""),
        "cannot reach S3 endpoint",
    );
    // Every attempt left a complete local backup.
    assert_eq!(env.data_files("f").len(), 3);
    sh(&format!(
        "cd '{}' && sha256sum -c --quiet *.sha256",
        env.db_dir("f").display()
    ));
}

#[test]
fn s3_settings_from_the_environment() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("env");
    let db = c.create_db("s3env");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("e", &db));
    let out = env
        .cmd(&["backup"])
        .env("BACKUP_STORAGE", "s3")
        .env("S3_BUCKET", &bucket)
        .env("S3_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("S3_ACCESS_KEY", &s3.access_key)
        .env("S3_SECRET_KEY", &s3.secret_key)
        .output()
        .unwrap();
    Run::from(out).expect_code(0).expect_stderr("uploaded");
    let listed = s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/e/")]);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
    // BACKUP_STORAGE=s3 without a bucket is a configuration error.
    let out = env
        .cmd(&["config", "check"])
        .env("BACKUP_STORAGE", "s3")
        .output()
        .unwrap();
    Run::from(out)
        .expect_code(78)
        .expect_stderr("no bucket is set");
}

#[test]
fn retention_applies_to_s3_with_the_same_rules_and_spares_foreign_keys() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("ret");
    let db = c.create_db("s3ret");
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}[retention]\nkeep-days = 7\nkeep-min = 2\n\n{}",
        s3_section(&env, s3, &bucket, &s3.secret_key, ""),
        env.db_entry("r", &db)
    ));
    // 20 synthetic remote backups, one a day, a foreign object under our prefix, one outside
    // it, and a data object without its sidecar (not a backup: never counted, never deleted).
    let tree = env.tmp.path().join("tree");
    let put = |key: &str| {
        let p = tree.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    };
    let now = chrono::Utc::now();
    for d in 1..=20 {
        let name = format!(
            "r_{}.sql.gz",
            (now - chrono::Duration::days(d) - chrono::Duration::hours(1)).format("%Y%m%d_%H%M%S")
        );
        put(&format!("backups/r/{name}"));
        put(&format!("backups/r/{name}.sha256"));
    }
    put("backups/r/notes.txt");
    put("backups/r/r_20200101_000000.sql.gz");
    put("elsewhere/r/r_20200101_000000.sql.gz");
    put("elsewhere/r/r_20200101_000000.sql.gz.sha256");
    s3.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        tree.to_str().unwrap(),
        &format!("s3://{bucket}/"),
    ])
    .expect_code(0);

    let dry = env.run(&["prune", "--dry-run", "--json"]);
    dry.expect_code(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(
        rows.iter()
            .filter(|r| r["location"] == "s3" && r["action"] == "delete")
            .count(),
        14,
        "{}",
        dry.stdout
    );

    env.run(&["backup"])
        .expect_code(0)
        .expect_stderr("retention deleted");
    let listed = s3.aws(&["s3api", "list-objects-v2", "--bucket", &bucket]);
    let v: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let keys: Vec<&str> = v["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    let remote_backups = keys
        .iter()
        .filter(|k| {
            k.starts_with("backups/r/r_") && k.ends_with(".sql.gz") && !k.contains("20200101")
        })
        .count();
    // The new one plus the six synthetic ones younger than 7 days.
    assert_eq!(remote_backups, 7, "{keys:?}");
    for kept in [
        "backups/r/notes.txt",
        "backups/r/r_20200101_000000.sql.gz",
        "elsewhere/r/r_20200101_000000.sql.gz",
    ] {
        assert!(keys.contains(&kept), "{kept} was deleted: {keys:?}");
    }
    // No orphan sidecars left behind.
    for k in &keys {
        if let Some(data) = k.strip_suffix(".sha256") {
            assert!(keys.contains(&data), "orphan {k}");
        }
    }
}

#[test]
fn verify_and_restore_from_s3_when_the_local_copy_is_gone() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("rs");
    let db = c.create_db("s3rs");
    c.sql(&db, RICH_SCHEMA);
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        s3_section(&env, s3, &bucket, &s3.secret_key, ""),
        env.db_entry("rs", &db)
    ));
    env.run(&["backup"]).expect_code(0);
    let local = env.latest("rs");
    let name = local.file_name().unwrap().to_string_lossy().to_string();
    let good = std::fs::read(&local).unwrap();
    for suffix in ["", ".sha256", ".json"] {
        std::fs::remove_file(format!("{}{suffix}", local.display())).unwrap();
    }
    // verify fetches the newest remote backup, checks it, and leaves no download behind.
    let r = env.run(&["verify", "--db", "rs"]);
    r.expect_code(0).expect_stderr("downloading");
    assert!(r.stdout.starts_with("ok"), "{}", r.stdout);
    assert!(!sh(&format!("ls -a '{}'", env.backups.display())).contains(".pgbackup-tmp"));

    // restore from S3 into a new database: identical tables.
    let dst = format!("s3rs_copy_{}", std::process::id());
    env.run(&[
        "restore",
        "--db",
        "rs",
        "--latest",
        "--target",
        &c.url(&dst),
        "--create",
        "--yes",
    ])
    .expect_code(0);
    assert_eq!(c.fingerprint(&db), c.fingerprint(&dst));

    // A corrupted remote object is refused before anything is restored.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    let badf = env.tmp.path().join("bad");
    std::fs::write(&badf, &bad).unwrap();
    s3.aws(&[
        "s3",
        "cp",
        badf.to_str().unwrap(),
        &format!("s3://{bucket}/backups/rs/{name}"),
    ])
    .expect_code(0);
    env.run(&["verify", &name]).expect_code(65);
    let dst2 = format!("s3rs_never_{}", std::process::id());
    env.run(&[
        "restore",
        "--backup",
        &name,
        "--target",
        &c.url(&dst2),
        "--create",
        "--yes",
    ])
    .expect_code(65)
    .expect_stderr("refusing to restore");
    assert_eq!(
        c.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{dst2}'")
        ),
        "0"
    );
}

/// Start the fault proxy in front of the shared moto server; returns it and an `S3Server` that
/// points at it.
pub fn fault_proxy(s3: &S3Server, mode: &str) -> (std::process::Child, S3Server) {
    let target_port: u16 = s3.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let port = free_port();
    let proxy = std::process::Command::new("python3")
        .arg(repo().join("tests/fixtures/s3_fault_proxy.py"))
        .args([port.to_string(), target_port.to_string(), mode.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        std::time::Duration::from_secs(20),
        "the fault proxy",
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let via = S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        ..s3.clone()
    };
    (proxy, via)
}

#[test]
fn server_killed_mid_upload_fails_cleanly_and_keeps_the_local_backup() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("killed");
    let db = c.create_db("s3killed");
    fill_two_parts(&db);
    let (proxy, via) = fault_proxy(s3, "die");
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    env.write_config(&format!(
        "{}[metrics]\ntextfile-dir = \"{}\"\n\n{}",
        s3_section(&env, &via, &bucket, &s3.secret_key, "part-size-mib = 5"),
        textfile.display(),
        env.db_entry("k", &db)
    ));
    let r = env.run(&["backup"]);
    let out = proxy.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dying after part 1"),
        "the server was not killed mid-upload"
    );
    r.expect_code(69)
        .expect_stderr("cannot reach S3 endpoint")
        .expect_stderr("the local backup");
    // Nothing that looks like a backup in the bucket; the local one is complete.
    let listed = s3.aws(&["s3api", "list-objects-v2", "--bucket", &bucket]);
    assert!(!listed.stdout.contains(".sql.gz"), "{}", listed.stdout);
    sh(&format!(
        "cd '{}' && sha256sum -c --quiet *.sha256",
        env.db_dir("k").display()
    ));
    let prom = std::fs::read_to_string(textfile.join("pgbackup.prom")).unwrap();
    assert!(
        prom.contains("pgbackup_last_run_success{database=\"k\"} 0"),
        "{prom}"
    );
}

#[test]
fn a_transient_5xx_on_one_part_is_retried_and_the_upload_succeeds() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("retry");
    let db = c.create_db("s3retry");
    fill_two_parts(&db);
    let (mut proxy, via) = fault_proxy(s3, "503");
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        s3_section(&env, &via, &bucket, &s3.secret_key, "part-size-mib = 5"),
        env.db_entry("rt", &db)
    ));
    let r = env.run(&["backup"]);
    let _ = proxy.kill();
    let out = proxy.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("injected 503"),
        "the fault was not injected"
    );
    r.expect_code(0).expect_stderr("retrying");
    let name = env
        .latest("rt")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let dl = env.tmp.path().join("dl.sql.gz");
    s3.aws(&[
        "s3",
        "cp",
        &format!("s3://{bucket}/backups/rt/{name}"),
        dl.to_str().unwrap(),
    ])
    .expect_code(0);
    assert_eq!(
        std::fs::read(&dl).unwrap(),
        std::fs::read(env.latest("rt")).unwrap()
    );
}
