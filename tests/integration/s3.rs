use crate::harness::*;

/// About 8 MiB of incompressible rows: with 5 MiB parts the data goes up in two parts.
pub fn fill_two_parts(db: &str) {
    cluster().sql(
        db,
        "CREATE TABLE t AS SELECT g, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 250000) g",
    );
}

/// A `[storage.s3]` section for `bucket` on the test server, keys in files, and the server's CA
/// as `ca-file` when it is an https endpoint.
pub fn s3_section(env: &TestEnv, s3: &S3Server, bucket: &str, secret: &str, extra: &str) -> String {
    let ca = match &s3.ca_file {
        Some(ca) => format!("ca-file = \"{}\"\n", ca.display()),
        None => String::new(),
    };
    format!(
        "{}{ca}",
        s3_section_keys_only(env, s3, bucket, secret, extra)
    )
}

/// A `[storage.s3]` section for `bucket`, keys in files, without `ca-file`.
pub fn s3_section_keys_only(
    env: &TestEnv,
    s3: &S3Server,
    bucket: &str,
    secret: &str,
    extra: &str,
) -> String {
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
    if s3.region == "garage" {
        // Garage accepts the header but keeps no storage classes (it reports none).
        eprintln!("storage class not checked: Garage does not implement storage classes");
    } else {
        assert!(head.stdout.contains("STANDARD_IA"), "{}", head.stdout);
    }

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
    // Keys that may read but not write: the refused action is named.
    let reader = S3Server {
        access_key: s3.denied_key.0.clone(),
        ..s3.clone()
    };
    run(
        s3_section(&env, &reader, &bucket, &s3.denied_key.1, ""),
        if s3.region == "garage" {
            // Garage hides a bucket from a key without any permission on it.
            "does not exist"
        } else {
            "denied s3:PutObject (CreateMultipartUpload)"
        },
    );
    // Every attempt left a complete local backup.
    assert_eq!(env.data_files("f").len(), 4);
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
    // A backup configured by the old setups' variables alone.
    let backup_to = |bucket: &str| {
        env.cmd(&["backup", "--force"])
            .env("BACKUP_STORAGE", "s3")
            .env("S3_BUCKET", bucket)
            .env("S3_ENDPOINT_URL", &s3.endpoint)
            .env("AWS_REGION", &s3.region)
            .env("S3_ACCESS_KEY", &s3.access_key)
            .env("S3_SECRET_KEY", &s3.secret_key)
            .envs(s3.ca_file.iter().map(|ca| ("SSL_CERT_FILE", ca)))
            .output()
            .unwrap()
    };
    Run::from(backup_to(&bucket))
        .expect_code(0)
        .expect_stderr("uploaded");
    let listed = s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/e/")]);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
    // A bucket that does not exist is named with where it was set: the variable, not a key
    // of a config file that does not set it.
    let out = backup_to(&format!("{bucket}-nosuch"));
    let run = Run::from(out);
    run.expect_stderr("does not exist")
        .expect_stderr("(environment variable S3_BUCKET)");
    assert!(
        !run.stderr.contains("[storage.s3] bucket"),
        "{}",
        run.stderr
    );
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
    // it, and a data object without its sidecar (not a backup: never counted; as the debris of
    // an interrupted commit it goes only after abort-incomplete-after-hours, 24 by default).
    let tree = env.tmp.path().join("tree");
    // Sidecars are well formed (the reader rule counts no empty or truncated one).
    let put = |key: &str| {
        let p = tree.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body = match key.rsplit('/').next().unwrap().strip_suffix(".sha256") {
            Some(data) => format!("{}  {data}\n", "0".repeat(64)),
            None => "x".to_string(),
        };
        std::fs::write(p, body).unwrap();
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
    // verify checks the newest remote backup streamed from S3, and leaves nothing behind.
    let r = env.run(&["verify", "--db", "rs"]);
    r.expect_code(0).expect_stderr("streamed from S3");
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
    expect_restore_refused(&env, &name, &format!("s3rs_never_{}", std::process::id()));
}

/// Start the fault proxy in front of the shared moto server; returns it and an `S3Server` that
/// points at it.
pub fn fault_proxy(s3: &S3Server, mode: &str) -> (std::process::Child, S3Server) {
    let port = free_port();
    let proxy = std::process::Command::new("python3")
        .arg(repo().join("tests/fixtures/s3_fault_proxy.py"))
        .args([port.to_string(), s3.endpoint.clone(), mode.to_string()])
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
        ca_file: None,
        ..s3.clone()
    };
    (proxy, via)
}

/// A backup of a fresh two-part database `name` through the fault proxy in `mode` (5 MiB parts
/// plus `extra_s3`; `extra` sections before the database), checking that the proxy did inject
/// its fault (its log says `injected`). Returns the run, the bucket, and how long it took.
fn backup_through_fault(
    env: &TestEnv,
    name: &str,
    mode: &str,
    extra_s3: &str,
    extra: &str,
    injected: &str,
) -> (Run, String, std::time::Duration) {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket(name);
    let db = c.create_db(&format!("s3{name}"));
    fill_two_parts(&db);
    let (mut proxy, via) = fault_proxy(s3, mode);
    env.write_config(&format!(
        "{}{extra}{}",
        s3_section(
            env,
            &via,
            &bucket,
            &s3.secret_key,
            &format!("part-size-mib = 5\n{extra_s3}")
        ),
        env.db_entry(name, &db)
    ));
    let started = std::time::Instant::now();
    let r = env.run(&["backup"]);
    let took = started.elapsed();
    // "die" has exited by itself; the others serve until killed.
    let _ = proxy.kill();
    let out = proxy.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(injected),
        "the fault ({mode}) was not injected"
    );
    (r, bucket, took)
}

#[test]
fn server_killed_mid_upload_fails_cleanly_and_keeps_the_local_backup() {
    let s3 = s3_server();
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    let metrics = format!("[metrics]\ntextfile-dir = \"{}\"\n\n", textfile.display());
    let (r, bucket, _) =
        backup_through_fault(&env, "killed", "die", "", &metrics, "dying after part 1");
    r.expect_code(69)
        .expect_stderr("cannot reach S3 endpoint")
        .expect_stderr("the local backup");
    // Nothing that looks like a backup in the bucket; the local one is complete.
    let listed = s3.aws(&["s3api", "list-objects-v2", "--bucket", &bucket]);
    assert!(!listed.stdout.contains(".sql.gz"), "{}", listed.stdout);
    sh(&format!(
        "cd '{}' && sha256sum -c --quiet *.sha256",
        env.db_dir("killed").display()
    ));
    let prom = std::fs::read_to_string(textfile.join("pgbackup.prom")).unwrap();
    assert!(
        prom.contains("pgbackup_last_run_success{database=\"killed\"} 0"),
        "{prom}"
    );
}

#[test]
fn a_transient_5xx_on_one_part_is_retried_and_the_upload_succeeds() {
    let s3 = s3_server();
    let env = TestEnv::new();
    let (r, bucket, _) = backup_through_fault(&env, "retry", "503", "", "", "injected 503");
    r.expect_code(0).expect_stderr("retrying");
    let name = env
        .latest("retry")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let dl = env.tmp.path().join("dl.sql.gz");
    s3.aws(&[
        "s3",
        "cp",
        &format!("s3://{bucket}/backups/retry/{name}"),
        dl.to_str().unwrap(),
    ])
    .expect_code(0);
    assert_eq!(
        std::fs::read(&dl).unwrap(),
        std::fs::read(env.latest("retry")).unwrap()
    );
}

/// Sizes of the regular files a process has open (spool files are unlinked, so only /proc
/// sees them).
fn open_file_sizes(pid: u32) -> Vec<(String, u64)> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    rd.filter_map(|e| {
        let p = e.ok()?.path();
        let target = std::fs::read_link(&p).ok()?.display().to_string();
        let m = std::fs::metadata(&p).ok()?;
        m.is_file().then_some((target, m.len()))
    })
    .collect()
}

#[test]
fn keep_local_false_streams_to_s3_with_part_sized_spool_and_cleans_stale_uploads() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("stream");
    let db = c.create_db("s3stream");
    // About 13 MiB of incompressible dump: three 5 MiB parts.
    c.sql(
        &db,
        "CREATE TABLE t AS SELECT g, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 400000) g",
    );
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        s3_section(
            &env,
            s3,
            &bucket,
            &s3.secret_key,
            "part-size-mib = 5\nkeep-local = false\nabort-incomplete-after-hours = 0"
        ),
        env.db_entry("st", &db)
    ));
    // Debris of a killed earlier run (an incomplete upload of ours) and a foreign upload.
    for key in [
        "backups/st/st_20200101_000000.sql.gz",
        "backups/st/someone-elses.bin",
    ] {
        s3.aws(&[
            "s3api",
            "create-multipart-upload",
            "--bucket",
            &bucket,
            "--key",
            key,
        ])
        .expect_code(0);
    }

    // While it runs, no file pgbackup has open is bigger than one part.
    let mut child = env.spawn(&["backup"]);
    let mut biggest = 0u64;
    let mut samples = 0;
    while child.try_wait().unwrap().is_none() {
        for (path, size) in open_file_sizes(child.id()) {
            assert!(
                size <= 5 << 20,
                "{path} is {size} bytes: more than one part"
            );
            biggest = biggest.max(size);
        }
        samples += 1;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = Run::from(child.wait_with_output().unwrap());
    r.expect_code(0)
        .expect_stderr("backup complete: s3://")
        .expect_stderr("aborted incomplete upload of backups/st/st_20200101_000000.sql.gz")
        .expect_no_secret();
    assert!(
        samples > 3 && biggest > 1 << 20,
        "the spool was never seen ({samples} samples, biggest {biggest})"
    );
    // No data file on local disk.
    assert!(env.data_files("st").is_empty(), "{:?}", env.files("st"));

    // Three objects; the data object's SHA-256 matches the sidecar; the foreign upload stays.
    let listed = s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/st/")]);
    listed.expect_code(0);
    let name = listed
        .stdout
        .split_whitespace()
        .find(|w| w.ends_with(".sql.gz"))
        .unwrap()
        .to_string();
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
    let dl = env.tmp.path().join("dl");
    std::fs::create_dir(&dl).unwrap();
    for f in [name.clone(), format!("{name}.sha256")] {
        s3.aws(&[
            "s3",
            "cp",
            &format!("s3://{bucket}/backups/st/{f}"),
            dl.join(&f).to_str().unwrap(),
        ])
        .expect_code(0);
    }
    sh(&format!(
        "cd '{}' && sha256sum -c --quiet *.sha256 && gzip -t *.gz",
        dl.display()
    ));
    let uploads = s3.aws(&["s3api", "list-multipart-uploads", "--bucket", &bucket]);
    assert!(
        !uploads.stdout.contains("st_20200101_000000"),
        "{}",
        uploads.stdout
    );
    assert!(
        uploads.stdout.contains("someone-elses.bin"),
        "{}",
        uploads.stdout
    );

    // list shows it in S3; verify checks it streamed, with progress on a terminal.
    let json = env.run(&["list", "--json"]);
    json.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows[0]["location"], "s3");
    assert_eq!(rows[0]["complete"], true);
    let pty = sh(&format!(
        "script -qec \"'{}' --config '{}' --color never verify 2>&1\" /dev/null",
        env!("CARGO_BIN_EXE_pgbackup"),
        env.config.display()
    ));
    assert!(
        pty.contains("(100%)"),
        "no download progress on a terminal: {pty}"
    );
    assert!(pty.contains("ok    st/"), "{pty}");
    // restore --latest picks it from S3 (nothing is on local disk) and restores it.
    let target = format!("{db}_restored");
    env.run(&[
        "restore",
        "--latest",
        "--db",
        "st",
        "--target",
        &c.url(&target),
        "--create",
        "--yes",
    ])
    .expect_code(0);
    assert_eq!(c.fingerprint(&db), c.fingerprint(&target));
    // check and status find the backup in S3 (nothing is on local disk).
    env.run(&["check", "--no-connect"]).expect_code(0);
    let status = env.run(&["status", "--json"]);
    status.expect_code(0);
    assert!(status.stdout.contains(&name), "{}", status.stdout);
    assert!(
        status.stdout.contains("\"keep_local\": false"),
        "{}",
        status.stdout
    );
    let human = env.run(&["status"]);
    human.expect_code(0);
    assert!(
        human.stdout.contains("keep-local = false"),
        "{}",
        human.stdout
    );
    // A second run with respawn protection off finds the name taken in S3, not on disk.
    env.run(&["backup", "--force"]).expect_code(0);
}

#[test]
fn a_stalled_part_upload_is_detected_and_retried() {
    let s3 = s3_server();
    let env = TestEnv::new();
    let (r, bucket, took) = backup_through_fault(
        &env,
        "stall",
        "stall",
        "stall-timeout-secs = 2",
        "",
        "stalling part 2",
    );
    r.expect_code(0)
        .expect_stderr("no progress within the stall timeout")
        .expect_stderr("uploaded");
    // Detected within the stall timeout (plus the retry), not after the proxy's 60 s.
    assert!(took < std::time::Duration::from_secs(40), "took {took:?}");
    let listed = s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/stall/")]);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
}

#[test]
fn list_prefixes_are_listed_and_restorable_but_never_pruned() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("legacy");
    let db = c.create_db("s3legacy");
    c.sql(
        &db,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g",
    );
    let env = TestEnv::new();
    // A legacy flat layout (backups/mem0/<db>_<ts>.sql.gz) from the old setup, with sidecars.
    env.write_config(&env.db_entry("lg", &db));
    env.run(&["backup"]).expect_code(0);
    let local = env.latest("lg");
    let name = local.file_name().unwrap().to_string_lossy().to_string();
    let old = name.replace("_2026", "_2019");
    let legacy_dir = env.tmp.path().join("legacy");
    std::fs::create_dir(&legacy_dir).unwrap();
    std::fs::copy(&local, legacy_dir.join(&old)).unwrap();
    refresh_sidecar(&legacy_dir.join(&old));
    for f in [old.clone(), format!("{old}.sha256")] {
        s3.aws(&[
            "s3",
            "cp",
            legacy_dir.join(&f).to_str().unwrap(),
            &format!("s3://{bucket}/old-backups/mem0/{f}"),
        ])
        .expect_code(0);
    }
    std::fs::remove_dir_all(env.db_dir("lg")).unwrap();
    env.write_config(&format!(
        "{}{}[retention]\nkeep-days = 1\nkeep-min = 1\n",
        s3_section(
            &env,
            s3,
            &bucket,
            &s3.secret_key,
            "list-prefixes = [\"old-backups/mem0\"]"
        ),
        env.db_entry("lg", &db)
    ));
    let json = env.run(&["list", "--json"]);
    json.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == old.as_str())
        .unwrap_or_else(|| panic!("{}", json.stdout));
    assert_eq!(row["location"], "s3-legacy");
    assert_eq!(
        row["path"],
        format!("s3://{bucket}/old-backups/mem0/{old}").as_str()
    );
    // Verify fetches it from the legacy prefix; prune never touches it.
    env.run(&["verify", &old]).expect_code(0);
    env.run(&["prune"]).expect_code(0);
    let still = s3.aws(&["s3", "ls", &format!("s3://{bucket}/old-backups/mem0/")]);
    assert!(still.stdout.contains(&old), "{}", still.stdout);
    // Restore from it into a new database.
    let target = format!("{db}_from_legacy");
    env.run(&[
        "restore",
        "--backup",
        &old,
        "--target",
        &c.url(&target),
        "--create",
        "--yes",
    ])
    .expect_code(0);
    assert_eq!(c.sql(&target, "SELECT count(*) FROM t").trim(), "100");
}

/// The retried completion succeeds on moto; Garage (like AWS) answers NoSuchUpload, and the
/// object's `-N` ETag shows the first attempt did complete (this fails on Garage without that).
#[test]
fn a_completion_whose_answer_is_lost_is_recognised_as_done() {
    let s3 = s3_server();
    let env = TestEnv::new();
    let (r, bucket, _) =
        backup_through_fault(&env, "lost", "lose-complete", "", "", "lost the answer");
    r.expect_code(0)
        .expect_stderr("retrying")
        .expect_stderr("uploaded");
    let listed = s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/lost/")]);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
}

/// What an interrupted S3 commit leaves (a data object whose sidecar never came, a manifest
/// without data) is removed once older than abort-incomplete-after-hours; foreign keys stay.
/// A key that may not delete makes retention fail with 69 naming the action; the new backup
/// is safe.
#[test]
fn s3_debris_goes_after_its_age_and_a_key_without_delete_is_69() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("debris");
    let db = c.create_db("s3debris");
    let env = TestEnv::new();
    let tree = env.tmp.path().join("tree");
    for key in [
        "backups/d/d_20200101_000000.sql.gz",
        "backups/d/d_20200102_000000.sql.gz.json",
        "backups/d/notes.txt",
        "backups/d/other_20200101_000000.sql.gz",
    ] {
        let p = tree.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }
    s3.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        tree.to_str().unwrap(),
        &format!("s3://{bucket}/"),
    ])
    .expect_code(0);
    env.write_config(&format!(
        "{}{}",
        s3_section(
            &env,
            s3,
            &bucket,
            &s3.secret_key,
            "abort-incomplete-after-hours = 0"
        ),
        env.db_entry("d", &db)
    ));
    let r = env.run(&["prune"]);
    r.expect_code(0).expect_stderr("deleted orphaned");
    let keys = s3
        .aws(&["s3", "ls", "--recursive", &format!("s3://{bucket}/")])
        .stdout;
    assert!(!keys.contains("d_20200101_000000.sql.gz"), "{keys}");
    assert!(!keys.contains("d_20200102_000000.sql.gz.json"), "{keys}");
    assert!(keys.contains("backups/d/notes.txt"), "{keys}");
    assert!(
        keys.contains("backups/d/other_20200101_000000.sql.gz"),
        "{keys}"
    );

    // A key without s3:DeleteObject: the backup is made and uploaded, retention fails loudly.
    let Some((nd_ak, nd_sk)) = s3.no_delete_key.clone() else {
        eprintln!(
            "not run on this server: Garage keys have no policy that takes s3:DeleteObject away"
        );
        return;
    };
    let nd = S3Server {
        access_key: nd_ak,
        ..s3.clone()
    };
    env.write_config(&format!(
        "{}[retention]\nkeep-days = 0\nkeep-min = 1\n\n{}",
        s3_section(&env, &nd, &bucket, &nd_sk, ""),
        env.db_entry("d", &db)
    ));
    env.run(&["backup"]).expect_code(0);
    let r = env.run(&["backup", "--force"]);
    r.expect_code(69)
        .expect_stderr("denied s3:DeleteObject")
        .expect_stderr("grant the pgbackup user s3:DeleteObject");
    let listed = s3
        .aws(&["s3", "ls", &format!("s3://{bucket}/backups/d/")])
        .stdout;
    let newest = env.latest("d");
    let name = newest.file_name().unwrap().to_string_lossy().to_string();
    for suffix in ["", ".sha256", ".json"] {
        assert!(listed.contains(&format!("{name}{suffix}\n")), "{listed}");
    }
}

/// keep-local = false: `verify --all` covers every backup S3 holds (it said none existed).
#[test]
fn verify_all_covers_the_backups_only_s3_holds() {
    let s3 = s3_server();
    let bucket = s3.bucket("vall");
    let (env, _) = Scenario::new("s3vall", "va")
        .config_with(move |env| s3_section(env, s3, &bucket, &s3.secret_key, "keep-local = false"))
        .backed_up();
    env.run(&["backup", "--force"]).expect_code(0);
    let r = env.run(&["verify", "--all", "--json"]);
    r.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", r.stdout);
    assert!(rows.iter().all(|r| r["ok"] == true));
    // Each was checked streamed, nothing downloaded; a test restore downloads each at its
    // turn and removes it after.
    assert!(!r.stderr.contains("downloading"), "{}", r.stderr);
    let r = env.run(&["verify", "--all", "--test-restore"]);
    r.expect_code(0);
    assert_eq!(r.stdout.matches("test-restore").count(), 2, "{}", r.stdout);
    assert!(!sh(&format!("ls -a '{}'", env.backups.display())).contains(".pgbackup-tmp"));
}

/// A backup only S3 holds is verified streamed: a connection cut mid-object resumes with a
/// Range and the check passes on the object's bytes (a repeat of its start would fail the
/// checksum); an endpoint that is gone is 69 (unreachable), never 65 (corrupt).
#[test]
fn verify_streams_from_s3_resumes_a_cut_read_and_an_outage_is_not_corruption() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("vstream");
    let db = c.create_db("s3vstream");
    fill_two_parts(&db);
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        s3_section(&env, s3, &bucket, &s3.secret_key, "keep-local = false"),
        env.db_entry("vs", &db)
    ));
    env.run(&["backup"]).expect_code(0);

    let (mut proxy, via) = fault_proxy(s3, "cut-get");
    env.write_config(&format!(
        "{}{}",
        s3_section(&env, &via, &bucket, &s3.secret_key, "keep-local = false"),
        env.db_entry("vs", &db)
    ));
    let r = env.run(&["verify", "--json"]);
    let _ = proxy.kill();
    let log = String::from_utf8_lossy(&proxy.wait_with_output().unwrap().stderr).to_string();
    assert!(log.contains("cut the body of a GET"), "not injected: {log}");
    r.expect_code(0).expect_stderr("resuming");
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rows[0]["ok"], true, "{}", r.stdout);
    assert!(
        rows[0]["path"].as_str().unwrap().starts_with("s3://"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("downloading"), "{}", r.stderr);

    // The proxy is gone now: the endpoint is unreachable.
    let r = env.run(&["verify"]);
    r.expect_code(69);
    assert!(!r.stdout.contains("ok "), "{}", r.stdout);
}
