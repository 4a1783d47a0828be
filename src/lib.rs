//! pgbackup: systemd-native PostgreSQL backups.
//!
//! Every backup is complete or invisible (temp file, fsync, rename), every failure is loud (exit
//! code, log line, sd-notify STATUS), and secrets never reach argv, logs or manifests.
//! `main.rs` only parses the command line and maps errors to exit codes; the commands live in
//! [`commands`], pure logic in [`catalog`], [`conninfo`] and [`config`], and everything that
//! touches a child process in [`postgres`].

pub mod archive;
pub mod catalog;
pub mod chain;
pub mod cli;
pub mod codec;
pub mod commands;
pub mod config;
pub mod conninfo;
pub mod crypt;
pub mod dbprops;
pub mod dirdump;
pub mod error;
pub mod exit;
pub mod fsutil;
pub mod job;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod observer;
pub mod ops;
pub mod pipeline;
pub mod plain;
pub mod postgres;
pub mod progress;
pub mod rdb;
pub mod redis;
pub mod redis_feed;
pub mod redis_server;
pub mod report;
pub mod retention;
pub mod run;
pub mod s3;
pub mod secret;
pub mod signals;
pub mod source;
pub mod state;
pub mod storage;
pub mod text;
pub mod verify;
