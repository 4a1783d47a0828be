//! S3 credentials from every source users have, in the order the AWS tools use: keys given to
//! pgbackup, the AWS_* environment, the shared files with AWS_PROFILE, web identity through STS
//! (Kubernetes IRSA), and EC2 instance metadata (IMDSv2), with temporary credentials refreshed
//! during a long upload. `config show` and `status` name the source, never a secret.

use std::process::Stdio;

use crate::harness::*;
use crate::s3::s3_section;

/// `[storage.s3]` for `bucket` with the server's CA and no keys at all.
fn keyless_section(s3: &S3Server, bucket: &str, extra: &str) -> String {
    format!(
        "[storage.s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nregion = \"{}\"\nca-file = \"{}\"\n{extra}\n",
        s3.endpoint,
        s3.region,
        s3.ca_file.as_ref().expect("https test server").display()
    )
}

fn objects(s3: &S3Server, bucket: &str, db: &str) -> usize {
    s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/{db}/")])
        .stdout
        .lines()
        .count()
}

/// A loopback fake from tests/fixtures/aws_fakes.py; returns its port.
fn start_fake(args: &[String], cwd: &std::path::Path) -> u16 {
    let port = free_port();
    let mut line = format!(
        "cd '{}' && '{}' '{}' {} {port}",
        cwd.display(),
        venv_bin("python3").display(),
        repo().join("tests/fixtures/aws_fakes.py").display(),
        args[0]
    );
    for a in &args[1..] {
        line.push_str(&format!(" '{a}'"));
    }
    spawn_for_test_process(&line);
    wait_for(std::time::Duration::from_secs(20), "the AWS fake", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    port
}

#[test]
fn aws_environment_keys_and_config_keys_in_the_aws_order() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("awsenv");
    let db = c.create_db("cred_env");
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        keyless_section(s3, &bucket, ""),
        env.db_entry("e", &db)
    ));
    let with_aws = |args: &[&str], ak: &str, sk: &str| {
        Run::from(
            env.cmd(args)
                .env("AWS_ACCESS_KEY_ID", ak)
                .env("AWS_SECRET_ACCESS_KEY", sk)
                .output()
                .unwrap(),
        )
    };
    with_aws(&["backup"], &s3.access_key, &s3.secret_key)
        .expect_code(0)
        .expect_stderr("uploaded");
    assert_eq!(objects(s3, &bucket, "e"), 3);
    let shown = with_aws(&["config", "show"], &s3.access_key, &s3.secret_key);
    shown.expect_code(0);
    assert!(
        shown
            .stdout
            .contains("environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"),
        "{}",
        shown.stdout
    );
    let status = with_aws(&["status", "--json"], &s3.access_key, &s3.secret_key);
    status.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        v["s3_credentials"]
            .as_str()
            .unwrap()
            .contains("AWS_ACCESS_KEY_ID"),
        "{}",
        status.stdout
    );
    for out in [&shown.stdout, &status.stdout, &status.stderr] {
        assert!(!out.contains(&s3.secret_key), "secret shown: {out}");
    }
    // Keys in the config come first: wrong AWS_* variables do not matter then.
    env.write_config(&format!(
        "{}{}",
        s3_section(&env, s3, &bucket, &s3.secret_key, ""),
        env.db_entry("e", &db)
    ));
    with_aws(&["backup", "--force"], "AKIAWRONG", "wrong-secret")
        .expect_code(0)
        .expect_stderr("uploaded");
    let shown = with_aws(&["config", "show"], "AKIAWRONG", "wrong-secret");
    assert!(shown.stdout.contains("access-key-file"), "{}", shown.stdout);
    // One of a pair is a configuration error naming the missing one.
    env.write_config(&format!(
        "{}{}",
        keyless_section(s3, &bucket, ""),
        env.db_entry("e", &db)
    ));
    Run::from(
        env.cmd(&["config", "check"])
            .env("AWS_ACCESS_KEY_ID", &s3.access_key)
            .output()
            .unwrap(),
    )
    .expect_code(78)
    .expect_stderr("AWS_SECRET_ACCESS_KEY");
}

#[test]
fn shared_credentials_files_with_aws_profile() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("profile");
    let db = c.create_db("cred_profile");
    let env = TestEnv::new();
    let home = env.tmp.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = AKIAWRONGDEFAULT\naws_secret_access_key = nope\n\n[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3.access_key, s3.secret_key
        ),
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/config"),
        format!(
            "[default]\nregion = us-east-1\n\n[profile cfg]\nregion = {}\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3.region, s3.access_key, s3.secret_key
        ),
    )
    .unwrap();
    env.write_config(&format!(
        "{}{}",
        keyless_section(s3, &bucket, ""),
        env.db_entry("p", &db)
    ));
    let run = |args: &[&str], profile: Option<&str>| {
        let mut cmd = env.cmd(args);
        cmd.env("HOME", &home)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        if let Some(p) = profile {
            cmd.env("AWS_PROFILE", p);
        }
        Run::from(cmd.output().unwrap())
    };
    run(&["backup"], Some("ci"))
        .expect_code(0)
        .expect_stderr("uploaded");
    let shown = run(&["config", "show"], Some("ci"));
    assert!(
        shown.stdout.contains(".aws/credentials, profile ci"),
        "{}",
        shown.stdout
    );
    run(&["backup", "--force"], Some("cfg"))
        .expect_code(0)
        .expect_stderr("uploaded");
    assert_eq!(objects(s3, &bucket, "p"), 6);
    // The default profile's keys are wrong: the refusal names where they came from.
    run(&["backup", "--force"], None)
        .expect_code(69)
        .expect_stderr("refused the credentials")
        .expect_stderr("profile default");
    run(&["backup", "--force"], Some("nope"))
        .expect_code(78)
        .expect_stderr("AWS_PROFILE is nope");
    // Nothing anywhere: every source is named.
    let bare = Run::from(
        env.cmd(&["backup", "--force"])
            .env("HOME", env.tmp.path().join("empty-home"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap(),
    );
    bare.expect_code(78)
        .expect_stderr("no S3 credentials found")
        .expect_stderr("AWS_PROFILE")
        .expect_stderr("AWS_WEB_IDENTITY_TOKEN_FILE");
}

#[test]
fn web_identity_through_sts_as_kubernetes_irsa_does() {
    let c = cluster();
    let s3 = s3_server();
    let (sts_ak, sts_sk) = s3.sts_key.clone().expect("moto");
    let role = s3.role_arn.clone().expect("moto");
    let bucket = s3.bucket("irsa");
    let db = c.create_db("cred_irsa");
    let env = TestEnv::new();
    let port = start_fake(
        &[
            "sts".into(),
            s3.endpoint.clone(),
            s3.ca_file.as_ref().unwrap().display().to_string(),
            sts_ak,
            sts_sk,
        ],
        env.tmp.path(),
    );
    let token = env.tmp.path().join("token");
    let token_text = "eyJhbGciOiJSUzI1NiJ9.irsa-test-token-7f3a.sig";
    std::fs::write(&token, token_text).unwrap();
    env.write_config(&format!(
        "{}{}",
        keyless_section(s3, &bucket, "keep-local = false"),
        env.db_entry("w", &db)
    ));
    let run = |args: &[&str], role: &str| {
        Run::from(
            env.cmd(args)
                .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
                .env("AWS_ROLE_ARN", role)
                .env("AWS_ENDPOINT_URL_STS", format!("http://127.0.0.1:{port}"))
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .unwrap(),
        )
    };
    let r = run(&["backup"], &role);
    r.expect_code(0).expect_stderr("backup complete");
    assert!(!r.stderr.contains(token_text), "{}", r.stderr);
    assert_eq!(objects(s3, &bucket, "w"), 3);
    // The STS call was the unsigned form AWS documents, carrying the token from the file.
    let log = std::fs::read_to_string(env.tmp.path().join(format!("{port}.log"))).unwrap();
    assert!(log.contains("Action=AssumeRoleWithWebIdentity"), "{log}");
    assert!(log.contains("irsa-test-token-7f3a"), "{log}");
    let status = run(&["status"], &role);
    status.expect_code(0);
    assert!(
        status.stdout.contains("web identity (role "),
        "{}",
        status.stdout
    );
    assert!(!status.stdout.contains(token_text));
    // A token STS refuses (expired): 69, naming STS, the role and what it said.
    std::fs::write(&token, "eyJ.expired.sig").unwrap();
    let r = run(&["backup", "--force"], &role);
    r.expect_code(69)
        .expect_stderr("AssumeRoleWithWebIdentity")
        .expect_stderr(&role)
        .expect_stderr("ExpiredTokenException");
    // A token file that is not there: 69, naming the file.
    std::fs::remove_file(&token).unwrap();
    run(&["backup", "--force"], &role)
        .expect_code(69)
        .expect_stderr("cannot read the web identity token");
}

#[test]
fn instance_metadata_credentials_are_refreshed_during_a_long_upload() {
    let c = cluster();
    let s3 = s3_server();
    let (sts_ak, sts_sk) = s3.sts_key.clone().expect("moto");
    let bucket = s3.bucket("imds");
    let db = c.create_db("cred_imds");
    let env = TestEnv::new();
    let count = env.tmp.path().join("fetches");
    // Credentials valid for 3 s: they must be fetched again before the upload ends.
    let port = start_fake(
        &[
            "imds".into(),
            s3.endpoint.clone(),
            s3.ca_file.as_ref().unwrap().display().to_string(),
            sts_ak,
            sts_sk,
            s3.role_arn.clone().unwrap(),
            "3".into(),
            count.display().to_string(),
        ],
        env.tmp.path(),
    );
    // A dump that keeps its pipe open for 5 s after the data: the upload's last part and its
    // completion come after the first credentials expired.
    let wrapper = env.tmp.path().join("slow_pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) exec '{0}/pg_dump' --version;; esac\n'{0}/pg_dump' \"$@\"; rc=$?; sleep 5; exit $rc\n",
            c.bindir.display()
        ),
    )
    .unwrap();
    set_mode(&wrapper, 0o755);
    env.write_config(&format!(
        "{}[backup]\npg-dump-path = \"{}\"\npsql-path = \"{}/psql\"\n\n{}",
        keyless_section(s3, &bucket, "keep-local = false"),
        wrapper.display(),
        c.bindir.display(),
        env.db_entry("m", &db)
    ));
    let imds = format!("http://127.0.0.1:{port}");
    let r = Run::from(
        env.cmd(&["backup"])
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds)
            .output()
            .unwrap(),
    );
    r.expect_code(0).expect_stderr("backup complete");
    assert_eq!(objects(s3, &bucket, "m"), 3);
    let fetches = std::fs::read_to_string(&count).unwrap().lines().count();
    assert!(
        fetches >= 2,
        "credentials fetched {fetches} time(s): no refresh"
    );
    let shown = Run::from(
        env.cmd(&["status"])
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds)
            .output()
            .unwrap(),
    );
    assert!(
        shown
            .stdout
            .contains("EC2 instance metadata (IMDSv2 at http://127.0.0.1"),
        "{}",
        shown.stdout
    );
    // No metadata service where one was named: 69, saying so.
    let dead = format!("http://127.0.0.1:{}", free_port());
    Run::from(
        env.cmd(&["backup", "--force"])
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &dead)
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    )
    .expect_code(69)
    .expect_stderr("EC2 instance metadata at");
}
