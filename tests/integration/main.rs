#![allow(clippy::unwrap_used)]

//! Integration tests: the real `pgbackup` binary against a real, ephemeral PostgreSQL cluster.
//! One test binary (ripgrep's layout); the cluster is shared, every test has its own databases
//! and directories.

mod harness;

/// Round trips, respawn protection, list, zero-config and environment overrides.
mod backup;
/// Broken configurations: exit 78 naming the key.
mod config;
/// Man pages and completions: generated, committed, no drift, lint-clean.
mod docs;
/// Encryption at rest with age: the age CLI decrypts our files, wrong or missing keys are 78,
/// damage is 65.
mod encryption;
/// Every failure path: unreachable servers, killed dumps, full disks, locks, timeouts.
mod failures;
/// Faithful restores of a hostile dataset: pg_dump of original and copy identical.
mod fidelity;
/// Compressions and formats: zstd (and gzip) round trips, the CLI tools read our files.
mod formats;
/// Cluster globals: pg_dumpall --globals-only backed up, listed, verified, restore --globals.
mod globals;
/// Retention, metrics (promtool, node_exporter), alert rules, sd-notify, journal, status, check.
mod operations;
mod redis;
mod restore;
/// S3 upload and listing against moto with signature checking.
mod s3;
/// S3 credentials: AWS environment, shared files, web identity (STS), instance metadata.
mod s3_creds;
/// S3 Object Lock: locked writes, retention of versions, delete markers.
mod s3_lock;
/// S3 over https: private CAs, SSL_CERT_FILE, certificate failures.
mod s3_tls;
/// The secret audit: no password in argv, child environments, outputs, files or debris.
mod secrets;
/// The conformance suite every storage (local, S3) passes.
mod storage;
/// The defects found under faults and hostile input, one test each.
mod torture;
/// verify, pgbackup-verify and test restores; restore with all its options.
mod verify;
