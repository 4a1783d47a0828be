//! `pgbackup config show`: the effective configuration as TOML, with where each value came
//! from and every secret masked.

use std::path::Path;

use serde::Serialize;

use super::Config;

impl Config {
    /// The effective configuration as TOML, secrets masked (for `pgbackup config show`).
    pub fn to_display_toml(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct Shown<'a> {
            storage: ShownStorage<'a>,
            backup: ShownBackup<'a>,
            retention: ShownRetention,
            metrics: ShownMetrics<'a>,
            verify: ShownVerify<'a>,
            log: ShownLog<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            encryption: Option<ShownEncryption<'a>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            database: Vec<ShownDb<'a>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            redis: Vec<ShownRedis<'a>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownRedis<'a> {
            name: &'a str,
            address: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            user: Option<&'a str>,
            password: &'a str,
            stall_timeout_secs: u64,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownEncryption<'a> {
            recipients: &'a [String],
            identity: String,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownLog<'a> {
            target: &'a str,
            syslog_socket: &'a Path,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownRetention {
            #[serde(skip_serializing_if = "Option::is_none")]
            keep_days: Option<u32>,
            keep_daily: u32,
            keep_weekly: u32,
            keep_monthly: u32,
            keep_min: u32,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownMetrics<'a> {
            textfile_dir: String,
            file: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownVerify<'a> {
            restore_url: &'a str,
            restore_timeout_secs: u64,
            redis_server_path: String,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownStorage<'a> {
            local_dir: &'a Path,
            #[serde(skip_serializing_if = "Option::is_none")]
            s3: Option<ShownS3<'a>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownS3<'a> {
            bucket: &'a str,
            endpoint: &'a str,
            region: &'a str,
            prefix: &'a str,
            credentials: String,
            path_style: bool,
            storage_class: &'a str,
            server_side_encryption: &'a str,
            part_size_mib: usize,
            keep_local: bool,
            list_prefixes: &'a [String],
            stall_timeout_secs: u64,
            abort_incomplete_after_hours: u64,
            ca_file: String,
            object_lock: String,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownBackup<'a> {
            format: &'a str,
            globals: bool,
            compression: &'a str,
            compression_level: u32,
            compression_threads: u32,
            respawn_protection_hours: u32,
            dump_timeout_secs: u64,
            pg_dump_path: String,
            psql_path: String,
            pg_restore_path: String,
            #[serde(skip)]
            _p: std::marker::PhantomData<&'a ()>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownDb<'a> {
            name: &'a str,
            url: &'a str,
            password: &'a str,
            extensions: &'a [String],
            pg_dump_args: &'a [String],
        }
        let tools = self.tools();
        let shown = Shown {
            storage: ShownStorage {
                local_dir: &self.local_dir,
                s3: self.s3.as_ref().map(|c| ShownS3 {
                    bucket: &c.bucket,
                    endpoint: c.endpoint.as_deref().unwrap_or("(AWS)"),
                    region: &c.region,
                    prefix: &c.prefix,
                    credentials: crate::s3::creds::describe(&c.credentials),
                    path_style: c.path_style,
                    storage_class: c.storage_class.as_deref().unwrap_or("(bucket default)"),
                    server_side_encryption: c.server_side_encryption.as_deref().unwrap_or("(none)"),
                    part_size_mib: c.part_size >> 20,
                    keep_local: c.keep_local,
                    list_prefixes: &c.list_prefixes,
                    stall_timeout_secs: c.stall_timeout.as_secs(),
                    abort_incomplete_after_hours: c.abort_incomplete_after.as_secs() / 3600,
                    ca_file: c
                        .ca_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "(system store)".into()),
                    object_lock: match c.object_lock {
                        Some(l) => {
                            format!("{} for {} days", l.mode.header().to_lowercase(), l.days)
                        }
                        None => "(off)".into(),
                    },
                }),
            },
            backup: ShownBackup {
                format: self.format.name(),
                globals: self.globals,
                compression: self.compression.name(),
                compression_level: self.compression_level,
                compression_threads: self.compression.threads(),
                respawn_protection_hours: self.respawn_protection_hours,
                dump_timeout_secs: self.dump_timeout.map(|d| d.as_secs()).unwrap_or(0),
                pg_dump_path: tools.pg_dump.display().to_string(),
                psql_path: tools.psql.display().to_string(),
                pg_restore_path: tools.pg_restore.display().to_string(),
                _p: std::marker::PhantomData,
            },
            retention: ShownRetention {
                keep_days: self.retention.keep_days,
                keep_daily: self.retention.keep_daily,
                keep_weekly: self.retention.keep_weekly,
                keep_monthly: self.retention.keep_monthly,
                keep_min: self.retention.keep_min,
            },
            metrics: ShownMetrics {
                textfile_dir: self
                    .textfile_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "(not set: no metrics file)".into()),
                file: &self.metrics_file,
            },
            verify: ShownVerify {
                restore_url: self
                    .verify_target
                    .as_ref()
                    .map(|t| t.conn.masked())
                    .unwrap_or("(each backup's own server)"),
                restore_timeout_secs: self
                    .verify_restore_timeout
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                redis_server_path: self
                    .redis_server_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(redis-server or valkey-server from PATH)".into()),
            },
            log: ShownLog {
                target: match self.log_target {
                    crate::log::LogTarget::Auto => "auto",
                    crate::log::LogTarget::Journal => "journal",
                    crate::log::LogTarget::Stderr => "stderr",
                    crate::log::LogTarget::Syslog => "syslog",
                },
                syslog_socket: &self.syslog_socket,
            },
            encryption: (self.encrypt_to.is_some() || self.keys.is_ok()).then(|| ShownEncryption {
                recipients: self
                    .encrypt_to
                    .as_ref()
                    .map(crate::crypt::Recipients::names)
                    .unwrap_or_default(),
                identity: match &self.keys {
                    Ok(ids) => ids.source().to_string(),
                    Err(why) => format!("(none: {why})"),
                },
            }),
            database: self
                .databases
                .iter()
                .map(|d| ShownDb {
                    name: d.name(),
                    url: d.target.conn.masked(),
                    password: match (&d.target.password_source, &d.target.password) {
                        (Some(s), _) => s.as_str(),
                        (None, Some(_)) => "(embedded in url, masked)",
                        (None, None) => "(libpq: PGPASSWORD, PGPASSFILE or ~/.pgpass)",
                    },
                    extensions: &d.extensions,
                    pg_dump_args: &d.pg_dump_args,
                })
                .collect(),
            redis: self
                .redis
                .iter()
                .map(|r| ShownRedis {
                    name: &r.name,
                    address: r.addr.to_string(),
                    user: r.user.as_deref(),
                    password: r.password_source.as_deref().unwrap_or("(none)"),
                    stall_timeout_secs: self.redis_stall.get(&r.name).map_or(60, |d| d.as_secs()),
                })
                .collect(),
        };
        let mut out = format!(
            "# effective configuration\n# file: {}\n# environment overrides: {}\n",
            self.source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none (built-in defaults)".into()),
            if self.env_overrides.is_empty() {
                "none".to_string()
            } else {
                self.env_overrides.join(", ")
            }
        );
        if self.databases.is_empty() {
            out.push_str(
                "# no [[database]]: every connectable database of the server that libpq's defaults reach is backed up\n",
            );
        }
        out.push_str(&toml::to_string_pretty(&shown).unwrap_or_default());
        out
    }
}
