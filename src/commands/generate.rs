//! `pgbackup generate man|completions DIR`: the man pages and shell completions, generated from
//! the clap definitions so they never disagree with `--help`. The output is committed (`man/`,
//! `packaging/completions/`) and a test fails when it drifts.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, GenerateCommand};
use crate::error::{Error, Result};

const MAIN_EXTRA: &str = r#".SH ENVIRONMENT
Environment variables override the configuration file; command\-line flags override both.
Empty values count as unset.
.TP
\fBPGBACKUP_CONFIG\fR
configuration file (default \fI/etc/pgbackup/pgbackup.toml\fR)
.TP
\fBBACKUP_LOCAL_DIR\fR, \fBBACKUP_DIR\fR
[storage] local\-dir
.TP
\fBBACKUP_COMPRESSION_LEVEL\fR, \fBRESPAWN_PROTECTION_HOURS\fR, \fBBACKUP_DUMP_TIMEOUT\fR
the [backup] keys of the same meaning
.TP
\fBBACKUP_RETENTION_DAYS\fR
[retention] keep\-days
.TP
\fBMETRICS_DIR\fR
[metrics] textfile\-dir
.TP
\fBFORCE_BACKUP\fR=true
as \fB\-\-force\fR
.TP
\fBDATABASE_URL\fR, \fBDATABASE_URL_FILE\fR, \fBDB_HOST\fR, \fBDB_PORT\fR, \fBDB_NAME\fR, \fBDB_USER\fR, \fBDB_USER_FILE\fR, \fBDB_PASSWORD_FILE\fR
a database to back up, as the common shell\-script setups define it
.TP
\fBPGHOST\fR, \fBPGPORT\fR, \fBPGUSER\fR, \fBPGPASSFILE\fR, ...
read by libpq (pg_dump, psql) itself
.TP
\fBCREDENTIALS_DIRECTORY\fR
set by systemd's LoadCredential=; where \fBpassword\-credential\fR is looked up
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR, \fBJOURNAL_STREAM\fR
set by systemd: STATUS lines, watchdog pings, journal priorities
.SH FILES
.TP
\fI/etc/pgbackup/pgbackup.toml\fR
configuration, see \fBpgbackup.toml\fR(5)
.TP
\fI/var/lib/pgbackup/<database>/<database>_<YYYYMMDD>_<HHMMSS>.sql.gz\fR
a backup (UTC time), with \fI.sha256\fR (sha256sum \-c format) and \fI.json\fR (manifest) beside it
.TP
\fI/var/lib/pgbackup/.pgbackup.lock\fR, \fI.pgbackup\-state.json\fR
the run lock and the last runs' state
.TP
\fI/var/lib/prometheus/node\-exporter/pgbackup.prom\fR
metrics for node_exporter's textfile collector
.SH EXAMPLES
.nf
pgbackup config check
pgbackup backup \-\-db clara \-\-description "before the migration"
pgbackup list \-\-json
pgbackup\-verify \-\-test\-restore
pgbackup restore \-\-db clara \-\-latest \-\-target postgresql://postgres@localhost/clara_copy \-\-create
pgbackup prune \-\-dry\-run
pgbackup check \-\-max\-age 26
cd /var/lib/pgbackup/clara && sha256sum \-c clara_20261123_020013.sql.gz.sha256
.fi
"#;

const SEE_ALSO: &str = r#".SH "SEE ALSO"
\fBpgbackup.toml\fR(5), \fBpgbackup\-verify\fR(1), \fBpg_dump\fR(1), \fBpsql\fR(1), \fBsystemd.service\fR(5)
"#;

/// Fixed, so that regenerating the pages is reproducible (the drift check compares bytes).
const MAN_DATE: &str = "2026-11-23";

fn render(cmd: clap::Command, extra: &str) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone())
        .date(MAN_DATE)
        .source(concat!("pgbackup ", env!("CARGO_PKG_VERSION")))
        .manual("pgbackup manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(crate::exit::roff().as_bytes());
    out.extend_from_slice(SEE_ALSO.as_bytes());
    Ok(out)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|source| Error::Output {
            what: "generated file",
            path,
            source,
        })
}

/// Run `generate`.
pub fn run(cmd: &GenerateCommand) -> Result<()> {
    let mut top = Cli::command();
    top.build();
    match cmd {
        GenerateCommand::Man { dir } => {
            write(
                dir,
                "pgbackup.1",
                &render(top.clone(), MAIN_EXTRA).map_err(io_err(dir))?,
            )?;
            // `verify` gets the page of its second name, pgbackup-verify(1), below.
            for sub in top
                .get_subcommands()
                .filter(|s| !s.is_hide_set() && !matches!(s.get_name(), "help" | "verify"))
            {
                let name = format!("pgbackup-{}", sub.get_name());
                let page = sub
                    .clone()
                    .name(name.clone())
                    .bin_name(format!("pgbackup {}", sub.get_name()));
                write(
                    dir,
                    &format!("{name}.1"),
                    &render(page, "").map_err(io_err(dir))?,
                )?;
            }
            let verify = top
                .find_subcommand("verify")
                .expect("verify is a subcommand")
                .clone()
                .name("pgbackup-verify")
                .bin_name("pgbackup-verify")
                .about("Verify pgbackup backups (the same program as `pgbackup verify`)")
                .long_about(
                    "pgbackup-verify is pgbackup called by a second name: it behaves exactly like \
                     `pgbackup verify`. Checks each backup's SHA-256 against its sidecar, \
                     decompresses it fully, requires pg_dump's completion trailer and compares the \
                     manifest; with --test-restore it also restores into a scratch database, compares \
                     every table's row count with the manifest and drops the scratch database. \
                     Results are appended to each backup's manifest. The systemd unit \
                     pgbackup-verify.service runs `pgbackup-verify --test-restore` weekly.",
                );
            write(
                dir,
                "pgbackup-verify.1",
                &render(verify, "").map_err(io_err(dir))?,
            )?;
            Ok(())
        }
        GenerateCommand::Completions { dir } => {
            use clap_complete::Shell;
            for (shell, file) in [
                (Shell::Bash, "pgbackup.bash"),
                (Shell::Zsh, "_pgbackup"),
                (Shell::Fish, "pgbackup.fish"),
            ] {
                let mut buf = Vec::new();
                clap_complete::generate(shell, &mut top, "pgbackup", &mut buf);
                write(dir, file, &buf)?;
            }
            Ok(())
        }
    }
}

fn io_err(dir: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Output {
        what: "generated file",
        path: dir.to_path_buf(),
        source,
    }
}
