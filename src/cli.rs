//! Command-line definitions (clap derive). No I/O here: the same definitions feed `--help`, the
//! man pages and the shell completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// systemd-native PostgreSQL backups: complete or invisible, loud on failure.
#[derive(Debug, Parser)]
#[command(
    name = "pgbackup",
    version,
    after_help = crate::exit::help_text(),
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,

    /// More output (repeat for more)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,

    /// Less output: only warnings and errors (twice: only errors)
    #[arg(long, short = 'q', global = true, action = clap::ArgAction::Count, conflicts_with = "verbose", help_heading = "Global options")]
    pub quiet: u8,

    /// Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always,
    /// never
    #[arg(long, global = true, value_name = "WHEN", value_enum, default_value_t = Color::Auto, hide_possible_values = true, help_heading = "Global options")]
    pub color: Color,

    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// On a terminal, unless NO_COLOR is set
    Auto,
    /// Always
    Always,
    /// Never
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up the configured databases (all of them, or those named with --db)
    #[command(visible_alias = "run", after_help = crate::exit::help_text())]
    Backup(BackupArgs),
    /// Verify backups: checksum, decompression, completeness, manifest; optionally a test restore
    #[command(after_help = crate::exit::help_text())]
    Verify(VerifyArgs),
    /// Restore a backup (verified first) into its database or another one
    #[command(after_help = crate::exit::help_text())]
    Restore(RestoreArgs),
    /// List backups
    #[command(after_help = crate::exit::help_text())]
    List(ListArgs),
    /// Apply the retention policy: delete old backups, never below keep-min
    #[command(after_help = crate::exit::help_text())]
    Prune(PruneArgs),
    /// Show configuration, storage and the state of every database
    #[command(after_help = crate::exit::help_text())]
    Status(StatusArgs),
    /// Health probe for monitoring: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios plugin convention)
    Check(CheckArgs),
    /// Check or show the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write man pages or shell completions (for packaging)
    #[command(hide = true, subcommand)]
    Generate(GenerateCommand),
    // Named by the setups that run a daemon: answered with what to do instead of clap's nearest
    // command (which was the destructive `restore`).
    /// Not available yet: schedule backups with the systemd timers
    #[command(hide = true)]
    Serve {
        /// Whatever followed.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
}

/// `pgbackup generate ...` (hidden: used by packaging and the drift check).
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Man pages (pgbackup.1, pgbackup-<command>.1, pgbackup-verify.1) into DIR
    Man {
        /// Output directory
        dir: PathBuf,
    },
    /// bash, zsh and fish completions into DIR
    Completions {
        /// Output directory
        dir: PathBuf,
    },
}

/// `pgbackup backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Back up only this database (by configured name); repeatable
    #[arg(long = "db", value_name = "NAME")]
    pub databases: Vec<String>,

    /// Ignore respawn protection (also: FORCE_BACKUP=true)
    #[arg(long)]
    pub force: bool,

    /// Free text stored in the manifest
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    /// Keep backups for this many days (overrides [retention] keep-days and BACKUP_RETENTION_DAYS)
    #[arg(long, value_name = "DAYS")]
    pub retention: Option<u32>,

    /// Only the PostgreSQL databases (postgres), or only the [[redis]] servers (redis);
    /// pgbackup-redis.timer runs `backup --only redis`
    #[arg(long, value_enum, value_name = "KIND", hide_possible_values = true)]
    pub only: Option<OnlyKind>,
}

/// What `backup --only` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnlyKind {
    /// The PostgreSQL databases (and the cluster globals)
    Postgres,
    /// The [[redis]] servers
    Redis,
}

/// `pgbackup prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only this database; repeatable
    #[arg(long = "db", value_name = "NAME")]
    pub databases: Vec<String>,

    /// Show what would be deleted, delete nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Machine-readable output (a JSON array)
    #[arg(long)]
    pub json: bool,

    /// Keep backups for this many days (overrides [retention] keep-days and BACKUP_RETENTION_DAYS)
    #[arg(long, value_name = "DAYS")]
    pub retention: Option<u32>,
}

/// `pgbackup status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Machine-readable output (a JSON object)
    #[arg(long)]
    pub json: bool,
}

/// `pgbackup check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// CRITICAL when the newest backup of a database is older than this
    #[arg(long, value_name = "HOURS", default_value_t = 26.0)]
    pub max_age: f64,

    /// Only this database; repeatable
    #[arg(long = "db", value_name = "NAME")]
    pub databases: Vec<String>,

    /// WARNING below this much free space on the backup file system (CRITICAL below half of it)
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub min_free_percent: f64,

    /// Do not test that the configured databases accept connections
    #[arg(long)]
    pub no_connect: bool,
}

/// `pgbackup verify` (also installed as `pgbackup-verify`).
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only backups of this database; repeatable
    #[arg(long = "db", value_name = "NAME")]
    pub databases: Vec<String>,

    /// Every backup, not only the latest of each database
    #[arg(long, conflicts_with = "latest")]
    pub all: bool,

    /// The latest backup of each database (the default)
    #[arg(long)]
    pub latest: bool,

    /// Also restore into a scratch database, compare row counts with the manifest, drop it
    #[arg(long)]
    pub test_restore: bool,

    /// With --test-restore: keep the scratch database for inspection (its name is printed)
    #[arg(long, requires = "test_restore")]
    pub keep_scratch: bool,

    /// Machine-readable output (a JSON array)
    #[arg(long)]
    pub json: bool,

    /// Backups to verify: file paths or backup names (e.g. clara_20261123_020013.sql.gz)
    #[arg(value_name = "BACKUP", conflicts_with_all = ["all", "latest"])]
    pub backups: Vec<String>,
}

/// `pgbackup restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The database whose backup to restore (configured name)
    #[arg(long = "db", value_name = "NAME")]
    pub database: Option<String>,

    /// The latest backup of --db
    #[arg(long, conflicts_with_all = ["backup", "file"])]
    pub latest: bool,

    /// A backup by name (e.g. clara_20261123_020013.sql.gz)
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    pub backup: Option<String>,

    /// A backup file by path (its .sha256 sidecar must sit beside it)
    #[arg(long, value_name = "PATH")]
    pub file: Option<std::path::PathBuf>,

    /// Restore into this database instead (libpq URI or keyword string); the original stays
    /// untouched. For a Redis snapshot: redis://[user@]host:port or unix:///path (the password
    /// of the configured [[redis]] entry, else REDISCLI_AUTH)
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// Create the target database if it does not exist
    #[arg(long)]
    pub create: bool,

    /// Drop and recreate the target first (its connections are terminated)
    #[arg(long)]
    pub clean: bool,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Skip the safety backup of the target before a destructive restore
    #[arg(long)]
    pub no_safety_backup: bool,

    /// With --file: restore a dump that has no .sha256 sidecar (a `pg_dump | gzip` file of an
    /// old script); its decompression and completion trailer are still checked first
    #[arg(long, visible_alias = "unverified", requires = "file")]
    pub no_sidecar: bool,

    /// Restore in one transaction: all or nothing
    #[arg(long)]
    pub single_transaction: bool,

    /// Skip ownership and privilege statements (for a server without the original roles)
    #[arg(long)]
    pub no_owner: bool,

    /// Custom format: pg_restore jobs in parallel (default: the CPUs)
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,

    /// Custom format: restore only this schema (repeatable)
    #[arg(long = "schema", value_name = "NAME")]
    pub schemas: Vec<String>,

    /// Custom format: restore only this table (repeatable; with its data)
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,

    /// Custom format: where the decompressed archive goes while pg_restore reads it (default: the backup root)
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<std::path::PathBuf>,

    /// Restore the cluster globals (roles, memberships, role settings, tablespaces) of the latest
    /// `_globals` backup (or --backup/--file) into the server of --target (default: the
    /// configured databases' server)
    #[arg(long, conflicts_with = "database")]
    pub globals: bool,

    /// A Redis snapshot into the data directory of a STOPPED Redis (its `dir`) instead of by
    /// replication: dump.rdb, and an AOF base with its manifest for appendonly yes; the files
    /// there are moved aside first
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub redis_dir: Option<std::path::PathBuf>,

    /// With --globals: show what would be created and altered, change nothing
    #[arg(long, requires = "globals")]
    pub dry_run: bool,
}

/// `pgbackup list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this database
    #[arg(long = "db", value_name = "NAME")]
    pub databases: Vec<String>,

    /// Machine-readable output (a JSON array)
    #[arg(long)]
    pub json: bool,
}

/// `pgbackup config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration; list every problem and exit 78 if there is one
    Check,
    /// Print the effective configuration (file + environment), secrets masked
    Show,
}
