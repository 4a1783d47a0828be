//! The node_exporter textfile-collector file, `<textfile-dir>/pgbackup.prom`.
//!
//! Written in the classic Prometheus text format by hand rather than with prometheus-client:
//! that crate emits OpenMetrics, whose counters node_exporter's textfile collector reads as
//! untyped and whose `info` metrics make it reject the whole file (a node_exporter field note). The
//! format is small and fixed; a test runs it through `promtool check metrics` and a real
//! node_exporter. Written atomically (temp + rename), mode 0644 so node_exporter can read it.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::state::State;
use crate::storage::{LocalStorage, Storage};

/// The metrics file's name.
pub const FILE_NAME: &str = "pgbackup.prom";

/// Backups kept on disk for one database.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskUsage {
    /// Complete backups.
    pub count: u64,
    /// Their data files' bytes.
    pub bytes: u64,
}

/// Count the complete backups of every database under `root`.
pub fn disk_usage(root: &Path, database: &str) -> DiskUsage {
    LocalStorage::reading(root)
        .complete_backups(database)
        .unwrap_or_default()
        .iter()
        .fold(DiskUsage::default(), |acc, e| DiskUsage {
            count: acc.count + 1,
            bytes: acc.bytes + e.size,
        })
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(String, f64)>,
}

/// Render the metrics text for `state` and the backups under `root`.
pub fn render(state: &State, root: &Path) -> String {
    let mut dbs: Vec<String> = state.databases.keys().cloned().collect();
    for d in LocalStorage::reading(root).databases().unwrap_or_default() {
        if !dbs.contains(&d) {
            dbs.push(d);
        }
    }
    dbs.sort();
    let ts =
        |t: &Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis() as f64 / 1000.0);
    let b = |v: Option<bool>| v.map(|v| if v { 1.0 } else { 0.0 });
    let mut families = vec![
        Family {
            name: "pgbackup_last_run_success",
            kind: "gauge",
            help: "Whether the last backup attempt of the database succeeded (1) or failed (0).",
            samples: vec![],
        },
        Family {
            name: "pgbackup_last_run_timestamp_seconds",
            kind: "gauge",
            help: "When the last backup attempt of the database ended.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_last_success_timestamp_seconds",
            kind: "gauge",
            help: "When the last successful backup of the database ended.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_last_failure_timestamp_seconds",
            kind: "gauge",
            help: "When the last failed backup attempt of the database ended.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_last_duration_seconds",
            kind: "gauge",
            help: "Duration of the last successful backup.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_last_size_bytes",
            kind: "gauge",
            help: "Size of the last successful backup's data file.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_backups",
            kind: "gauge",
            help: "Complete backups kept on local storage.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_backups_bytes",
            kind: "gauge",
            help: "Bytes of the complete backups kept on local storage.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_last_verify_success",
            kind: "gauge",
            help:
                "Whether the last verification of the database's backup passed (1) or failed (0).",
            samples: vec![],
        },
        Family {
            name: "pgbackup_last_verify_timestamp_seconds",
            kind: "gauge",
            help: "When the database's backup was last verified.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_last_test_restore_duration_seconds",
            kind: "gauge",
            help: "Duration of the last test restore.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_runs_total",
            kind: "counter",
            help: "Backup attempts of the database.",
            samples: vec![],
        },
        Family {
            name: "pgbackup_failures_total",
            kind: "counter",
            help: "Failed backup attempts of the database.",
            samples: vec![],
        },
    ];
    let empty = crate::state::DbState::default();
    let mut info = Vec::new();
    for db in &dbs {
        let s = state.databases.get(db).unwrap_or(&empty);
        let disk = disk_usage(root, db);
        let values = [
            b(s.last_run_ok),
            ts(&s.last_run_at),
            ts(&s.last_success_at),
            ts(&s.last_failure_at),
            s.last_duration_secs,
            s.last_size_bytes.map(|v| v as f64),
            Some(disk.count as f64),
            Some(disk.bytes as f64),
            b(s.last_verify_ok),
            ts(&s.last_verify_at),
            s.last_test_restore_secs,
            Some(s.runs_total as f64),
            Some(s.failures_total as f64),
        ];
        for (f, v) in families.iter_mut().zip(values) {
            if let Some(v) = v {
                f.samples
                    .push((format!("{{database=\"{}\"}}", escape_label(db)), v));
            }
        }
        if let Some((format, compression)) = &s.last_format {
            info.push((
                format!(
                    "{{database=\"{}\",format=\"{}\",compression=\"{}\",encryption=\"{}\"}}",
                    escape_label(db),
                    escape_label(format),
                    escape_label(compression),
                    escape_label(s.last_encryption.as_deref().unwrap_or("none"))
                ),
                1.0,
            ));
        }
    }
    families.push(Family {
        name: "pgbackup_last_backup_info",
        kind: "gauge",
        help: "The format, compression and encryption of the last successful backup (always 1).",
        samples: info,
    });
    families.push(Family {
        name: "pgbackup_scratch_databases_left",
        kind: "gauge",
        help: "Scratch databases of test restores that could not be dropped (drop them by hand).",
        samples: vec![(String::new(), state.leftover_scratch.len() as f64)],
    });
    families.push(Family {
        name: "pgbackup_run_success",
        kind: "gauge",
        help: "Whether the last whole backup run succeeded for every database (1) or not (0).",
        samples: b(state.last_run_ok)
            .map(|v| vec![(String::new(), v)])
            .unwrap_or_default(),
    });
    families.push(Family {
        name: "pgbackup_run_timestamp_seconds",
        kind: "gauge",
        help: "When the last whole backup run ended.",
        samples: ts(&state.last_run_at)
            .map(|v| vec![(String::new(), v)])
            .unwrap_or_default(),
    });
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, v) in &f.samples {
            let _ = writeln!(out, "{}{labels} {v}", f.name);
        }
    }
    out
}

/// Write the metrics file into `dir` atomically. A missing directory is reported, not created:
/// it belongs to node_exporter's package.
pub fn write(dir: &Path, file_name: &str, state: &State, root: &Path) -> std::io::Result<()> {
    let text = render(state, root);
    let mut tmp = tempfile::Builder::new()
        .prefix(".pgbackup.prom.")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(dir.join(file_name)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_classic_text_format() {
        let d = tempfile::tempdir().unwrap();
        let mut st = State::default();
        st.databases.insert(
            "clara".into(),
            crate::state::DbState {
                last_run_ok: Some(true),
                runs_total: 3,
                failures_total: 1,
                last_format: Some(("custom".into(), "zstd".into())),
                ..Default::default()
            },
        );
        st.last_run_ok = Some(false);
        let text = render(&st, d.path());
        assert!(
            text.contains(
                "# TYPE pgbackup_runs_total counter\npgbackup_runs_total{database=\"clara\"} 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("pgbackup_last_run_success{database=\"clara\"} 1\n"));
        assert!(text.contains("pgbackup_run_success 0\n"));
        assert!(
            text.contains("pgbackup_last_backup_info{database=\"clara\",format=\"custom\",compression=\"zstd\",encryption=\"none\"} 1\n"),
            "{text}"
        );
        assert!(
            !text.contains("pgbackup_last_verify_success"),
            "no sample, no family"
        );
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
