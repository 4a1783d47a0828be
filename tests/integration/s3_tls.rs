//! S3 over https as users run it: the private CA of a MinIO/Garage/Ceph endpoint, the system
//! store, `SSL_CERT_FILE`, and the certificate failures (unknown issuer, wrong name, expired).
//! Every other S3 test runs over https too (the shared moto server); these are the trust cases.

use crate::harness::*;
use crate::s3::{s3_section, s3_section_keys_only};

/// The defect this suite was written for: every https endpoint panicked (exit 101) at the first
/// request, the backup died at the upload with no log line, and the other databases were
/// skipped. Now: exit 69, the endpoint and the certificate problem named, the fix (`ca-file`)
/// given, every database backed up locally, the failure in the metrics.
#[test]
fn an_untrusted_certificate_is_69_naming_the_endpoint_and_the_fix() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("untrusted");
    let (db1, db2) = (c.create_db("tls_a"), c.create_db("tls_b"));
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    env.write_config(&format!(
        "{}[metrics]\ntextfile-dir = \"{}\"\n\n{}{}",
        s3_section_keys_only(&env, s3, &bucket, &s3.secret_key, ""),
        textfile.display(),
        env.db_entry("a", &db1),
        env.db_entry("b", &db2)
    ));
    let r = env.run(&["list"]);
    r.expect_code(69)
        .expect_stderr(&s3.endpoint)
        .expect_stderr("certificate")
        .expect_stderr("unknown issuer")
        .expect_stderr("ca-file");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);

    let r = env.run(&["backup"]);
    r.expect_code(69)
        .expect_stderr("unknown issuer")
        .expect_stderr("the local backup");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    // Both databases were backed up locally: the first failure did not stop the run.
    assert_eq!(env.data_files("a").len(), 1, "{}", r.stderr);
    assert_eq!(env.data_files("b").len(), 1, "{}", r.stderr);
    let prom = std::fs::read_to_string(textfile.join("pgbackup.prom")).unwrap();
    for db in ["a", "b"] {
        assert!(
            prom.contains(&format!("pgbackup_last_run_success{{database=\"{db}\"}} 0")),
            "{prom}"
        );
    }
    assert!(prom.contains("pgbackup_run_success 0"), "{prom}");
    // Nothing reached the bucket.
    let listed = s3.aws(&["s3", "ls", "--recursive", &format!("s3://{bucket}/")]);
    assert_eq!(listed.stdout.trim(), "", "{}", listed.stdout);
}

/// The private CA trusted through `SSL_CERT_FILE` (instead of `ca-file`): backup, the objects
/// seen by awscli, and a restore from S3 alone that is identical to the source.
#[test]
fn ssl_cert_file_trusts_a_private_ca_for_backup_and_restore() {
    let c = cluster();
    let s3 = s3_server();
    let ca = s3.ca_file.clone().expect("the test S3 server is https");
    let bucket = s3.bucket("sslcertfile");
    let db = c.create_db("tls_env");
    c.sql(&db, RICH_SCHEMA);
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        s3_section_keys_only(&env, s3, &bucket, &s3.secret_key, "keep-local = false"),
        env.db_entry("e", &db)
    ));
    let run = |args: &[&str]| Run::from(env.cmd(args).env("SSL_CERT_FILE", &ca).output().unwrap());
    run(&["backup"])
        .expect_code(0)
        .expect_stderr("backup complete");
    let listed = s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/e/")]);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
    // Without the variable the same config fails on the certificate.
    env.run(&["list"])
        .expect_code(69)
        .expect_stderr("unknown issuer");
    let dst = format!("tls_env_copy_{}", std::process::id());
    run(&[
        "restore",
        "--db",
        "e",
        "--latest",
        "--target",
        &c.url(&dst),
        "--create",
        "--yes",
    ])
    .expect_code(0);
    assert_eq!(c.fingerprint(&db), c.fingerprint(&dst));
}

/// A certificate of the trusted CA, but for another host name, or expired: 69, and the
/// message says which.
#[test]
fn a_wrong_host_name_or_an_expired_certificate_is_69_saying_which() {
    let s3 = s3_server();
    let env = TestEnv::new();
    for (cert, needle) in [
        ("wrongname", "not valid for 127.0.0.1"),
        ("expired", "expired"),
    ] {
        let port = tls().serve(cert);
        let server = S3Server {
            endpoint: format!("https://127.0.0.1:{port}"),
            // The certificates of tls.py's CA (with Garage, s3.ca_file is stunnel's own CA).
            ca_file: Some(tls().ca()),
            ..s3.clone()
        };
        env.write_config(&s3_section(&env, &server, "any-bucket", "x", ""));
        let r = env.run(&["list"]);
        r.expect_code(69)
            .expect_stderr(&server.endpoint)
            .expect_stderr("certificate")
            .expect_stderr(needle);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}

/// Behind a mandatory proxy every request goes through it (control requests, parts,
/// downloads), NO_PROXY bypasses it, and a dead proxy is 69 naming it.
#[test]
fn https_proxy_carries_every_request_and_no_proxy_bypasses_it() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("proxy");
    let db = c.create_db("tls_proxy");
    crate::s3::fill_two_parts(&db);
    let env = TestEnv::new();
    let log = env.tmp.path().join("proxy.log");
    let port = free_port();
    spawn_for_test_process(&format!(
        "python3 '{}' {port} '{}'",
        repo().join("tests/fixtures/connect_proxy.py").display(),
        log.display()
    ));
    wait_for(std::time::Duration::from_secs(20), "the proxy", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    env.write_config(&format!(
        "{}{}",
        s3_section(
            &env,
            s3,
            &bucket,
            &s3.secret_key,
            "keep-local = false\npart-size-mib = 5"
        ),
        env.db_entry("p", &db)
    ));
    let proxy = format!("http://127.0.0.1:{port}");
    let via = |args: &[&str], no_proxy: Option<&str>| {
        let mut cmd = env.cmd(args);
        cmd.env("HTTPS_PROXY", &proxy);
        if let Some(n) = no_proxy {
            cmd.env("NO_PROXY", n);
        }
        Run::from(cmd.output().unwrap())
    };
    let tunnelled = || -> (usize, u64, u64) {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let moto = s3.endpoint.trim_start_matches("https://");
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(moto)).collect();
        let sum = |k: &str| -> u64 {
            lines
                .iter()
                .filter_map(|l| l.split(k).nth(1)?.split(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        (lines.len(), sum("up="), sum("down="))
    };
    via(&["backup"], None)
        .expect_code(0)
        .expect_stderr("backup complete");
    let object: u64 = s3
        .aws(&["s3", "ls", "--recursive", &format!("s3://{bucket}/")])
        .stdout
        .lines()
        .filter(|l| l.ends_with(".sql.gz"))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    assert!(object > 5 << 20, "two parts expected, {object} bytes");
    // The parts went through the tunnel (its log line is written when the tunnel closes).
    wait_for(
        std::time::Duration::from_secs(10),
        "the tunnels to close",
        || tunnelled().1 >= object,
    );
    // The download of verify goes through it as well.
    let before = tunnelled().2;
    via(&["verify", "--db", "p"], None).expect_code(0);
    wait_for(
        std::time::Duration::from_secs(10),
        "the download tunnel",
        || tunnelled().2 >= before + object,
    );
    // NO_PROXY: straight to the endpoint, the proxy sees nothing.
    let seen = tunnelled().0;
    via(&["backup", "--force"], Some("localhost,127.0.0.1")).expect_code(0);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(tunnelled().0, seen, "NO_PROXY was not honoured");
    // A proxy that is not there: 69, naming the proxy.
    let dead = format!("http://127.0.0.1:{}", free_port());
    Run::from(
        env.cmd(&["list"])
            .env("HTTPS_PROXY", &dead)
            .output()
            .unwrap(),
    )
    .expect_code(69)
    .expect_stderr(&format!("via proxy {dead}"));
}
