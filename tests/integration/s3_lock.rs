//! Immutable backups: S3 Object Lock. Every object is written with its retain-until date;
//! retention deletes the specific versions of our keys, keeps (and reports) what is still
//! locked, and removes the hidden versions behind delete markers once their locks expire.

use crate::harness::*;
use crate::s3::s3_section;

/// A bucket with Object Lock enabled (and so versioning).
fn locked_bucket(s3: &S3Server, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    s3.aws(&[
        "s3api",
        "create-bucket",
        "--bucket",
        &name,
        "--object-lock-enabled-for-bucket",
    ])
    .expect_code(0);
    name
}

fn versions(s3: &S3Server, bucket: &str, prefix: &str) -> (Vec<String>, Vec<String>) {
    let r = s3.aws(&[
        "s3api",
        "list-object-versions",
        "--bucket",
        bucket,
        "--prefix",
        prefix,
    ]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
    let keys = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .map(|o| o["Key"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    (keys("Versions"), keys("DeleteMarkers"))
}

/// Shorten the lock of every version of `key` to two seconds from now (governance mode lets a
/// user with s3:BypassGovernanceRetention do it), as if the lock period had passed.
fn expire_lock_soon(s3: &S3Server, bucket: &str, key: &str) {
    let r = s3.aws(&[
        "s3api",
        "list-object-versions",
        "--bucket",
        bucket,
        "--prefix",
        key,
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let until = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for ver in v["Versions"].as_array().unwrap() {
        if ver["Key"].as_str() != Some(key) {
            continue;
        }
        s3.aws(&[
            "s3api",
            "put-object-retention",
            "--bucket",
            bucket,
            "--key",
            key,
            "--version-id",
            ver["VersionId"].as_str().unwrap(),
            "--bypass-governance-retention",
            "--retention",
            &format!("Mode=GOVERNANCE,RetainUntilDate={until}"),
        ])
        .expect_code(0);
    }
}

#[test]
fn object_lock_writes_locked_objects_and_retention_keeps_them_until_the_date() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = locked_bucket(s3, "lock");
    let db = c.create_db("s3lock");
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}[retention]\nkeep-days = 0\nkeep-min = 1\n\n{}",
        s3_section(
            &env,
            s3,
            &bucket,
            &s3.secret_key,
            "object-lock = \"governance\"\nobject-lock-days = 1\nabort-incomplete-after-hours = 0"
        ),
        env.db_entry("lk", &db)
    ));
    env.run(&["config", "check"]).expect_code(0);
    for i in 0..3 {
        // A second apart: two runs within one second would name the newer backup one second
        // ahead, in the future, and retention rightly keeps the older one then (no lock line).
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let r = env.run(&["backup", "--force"]);
        r.expect_code(0).expect_stderr("uploaded");
        if i > 0 {
            // The older backup would be deleted, but its lock keeps it: reported, no failure.
            r.expect_stderr("locked until");
        }
    }
    let notes = env.tmp.path().join("notes.txt");
    std::fs::write(&notes, "not a backup").unwrap();
    s3.aws(&[
        "s3",
        "cp",
        notes.to_str().unwrap(),
        &format!("s3://{bucket}/backups/lk/notes.txt"),
    ])
    .expect_code(0);
    let mut names: Vec<String> = versions(s3, &bucket, "backups/lk/")
        .0
        .into_iter()
        .filter(|k| k.ends_with(".sql.gz"))
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "{names:?}");

    // Every object of a backup carries the lock, a day ahead.
    for key in [
        names[0].clone(),
        format!("{}.sha256", names[0]),
        format!("{}.json", names[0]),
    ] {
        let head = s3.aws(&["s3api", "head-object", "--bucket", &bucket, "--key", &key]);
        head.expect_code(0);
        let h: serde_json::Value = serde_json::from_str(&head.stdout).unwrap();
        assert_eq!(h["ObjectLockMode"], "GOVERNANCE", "{key}: {}", head.stdout);
        let until =
            chrono::DateTime::parse_from_rfc3339(h["ObjectLockRetainUntilDate"].as_str().unwrap())
                .unwrap();
        let ahead = until.with_timezone(&chrono::Utc) - chrono::Utc::now();
        assert!(
            ahead > chrono::Duration::hours(23) && ahead < chrono::Duration::hours(25),
            "{key}: {ahead}"
        );
    }

    // list and prune --dry-run say which are locked and until when.
    let list = env.run(&["list", "--json"]);
    list.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let locked = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["locked_until"].is_string())
        .count();
    assert_eq!(locked, 3, "{}", list.stdout);
    env.run(&["list"]).expect_code(0);
    let dry = env.run(&["prune", "--dry-run", "--json"]);
    dry.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    let s3_rows: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["location"] == "s3")
        .collect();
    assert_eq!(
        s3_rows.iter().filter(|r| r["action"] == "locked").count(),
        2,
        "{}",
        dry.stdout
    );
    assert!(s3_rows
        .iter()
        .filter(|r| r["action"] == "locked")
        .all(|r| r["locked_until"].is_string()));
    let human = env.run(&["prune", "--dry-run"]);
    assert!(
        human.stdout.contains("kept: locked until"),
        "{}",
        human.stdout
    );

    // When the oldest one's lock has passed, prune deletes all its versions: no version and no
    // delete marker of its keys is left (a plain DELETE would only have hidden them).
    for suffix in ["", ".sha256", ".json"] {
        expire_lock_soon(s3, &bucket, &format!("{}{suffix}", names[0]));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let r = env.run(&["prune"]);
    r.expect_code(0);
    assert!(r.stdout.contains("deleted"), "{}", r.stdout);
    let (vers, markers) = versions(s3, &bucket, &names[0]);
    assert!(
        vers.is_empty() && markers.is_empty(),
        "{vers:?} {markers:?}"
    );
    // The second one is still locked and still a backup; the foreign key was never touched.
    let (vers, _) = versions(s3, &bucket, "backups/lk/");
    assert!(
        vers.contains(&names[1]) && vers.contains(&names[2]),
        "{vers:?}"
    );
    assert!(vers.iter().any(|k| k.ends_with("notes.txt")));

    // Someone deleted the second backup the plain way (delete markers; the locked versions
    // stay, hidden and billed). Once the locks pass, prune removes versions and markers.
    for suffix in ["", ".sha256", ".json"] {
        let key = format!("{}{suffix}", names[1]);
        s3.aws(&["s3api", "delete-object", "--bucket", &bucket, "--key", &key])
            .expect_code(0);
    }
    let (_, markers) = versions(s3, &bucket, &names[1]);
    assert_eq!(markers.len(), 3, "{markers:?}");
    env.run(&["prune"]).expect_code(0);
    // Still locked: nothing removed yet.
    assert_eq!(versions(s3, &bucket, &names[1]).1.len(), 3);
    for suffix in ["", ".sha256", ".json"] {
        expire_lock_soon(s3, &bucket, &format!("{}{suffix}", names[1]));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    env.run(&["prune"]).expect_code(0);
    let (vers, markers) = versions(s3, &bucket, &names[1]);
    assert!(
        vers.is_empty() && markers.is_empty(),
        "{vers:?} {markers:?}"
    );
    // The newest backup was never touched and still restores.
    env.run(&["verify", "--db", "lk"]).expect_code(0);
}

#[test]
fn object_lock_on_a_bucket_without_it_is_a_configuration_error() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("nolock");
    let db = c.create_db("s3nolock");
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        s3_section(
            &env,
            s3,
            &bucket,
            &s3.secret_key,
            "object-lock = \"compliance\"\nobject-lock-days = 30"
        ),
        env.db_entry("nl", &db)
    ));
    env.run(&["config", "check"])
        .expect_code(78)
        .expect_stderr("does not have Object Lock enabled");
    env.run(&["backup"])
        .expect_code(78)
        .expect_stderr("does not have Object Lock enabled")
        .expect_stderr("the local backup");
    // Nothing was written to the bucket.
    let listed = s3.aws(&["s3", "ls", "--recursive", &format!("s3://{bucket}/")]);
    assert_eq!(listed.stdout.trim(), "");
    // A mode without days, or days without a mode, is refused before anything runs.
    env.write_config(&format!(
        "{}{}",
        s3_section(
            &env,
            s3,
            &bucket,
            &s3.secret_key,
            "object-lock = \"forever\""
        ),
        env.db_entry("nl", &db)
    ));
    env.run(&["config", "check"])
        .expect_code(78)
        .expect_stderr("storage.s3.object-lock")
        .expect_stderr("object-lock-days");
}
