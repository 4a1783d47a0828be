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
