//! What a backup's bytes went through, stage by stage: the source that produced the stream and
//! its format, then compression, then (optionally) encryption. The write side is built from the job, the
//! manifest records every stage with its parameters (format version 2), and the read side
//! (verify, restore) is built from the manifest, so that a new compressor or format is one
//! variant here and one in `crate::codec`, not an edit in every reader. Pure data.

use serde::{Deserialize, Serialize};

/// How the stream was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (RFC 1952) at `level` 1-9; read with a multi-member decoder, as `zcat` reads it.
    /// With `threads` above 1, written as concatenated members compressed in parallel
    /// (`crate::codec`); one member otherwise.
    Gzip {
        /// The deflate level.
        level: u32,
        /// Compression workers (1: one member, in the calling thread).
        threads: u32,
    },
    /// zstd (RFC 8878) at `level` 1-19, written by `threads` workers (1: in the calling thread);
    /// read frame after frame, as `zstdcat` reads it.
    Zstd {
        /// The zstd level.
        level: u32,
        /// Compression workers (the output does not depend on it being 1 or more; it is
        /// recorded for the manifest's reader, who may wonder).
        threads: u32,
    },
}

impl Compression {
    /// The algorithm's name, as the manifest, the logs and verify's check name have it.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
        }
    }

    /// The level it was (or is to be) written with.
    pub fn level(&self) -> u32 {
        match self {
            Compression::Gzip { level, .. } | Compression::Zstd { level, .. } => *level,
        }
    }

    /// The compression threads.
    pub fn threads(&self) -> u32 {
        match self {
            Compression::Gzip { threads, .. } | Compression::Zstd { threads, .. } => *threads,
        }
    }

    /// The levels an algorithm takes, and its default.
    pub fn levels(algorithm: &str) -> Option<(std::ops::RangeInclusive<u32>, u32)> {
        match algorithm {
            "gzip" => Some((1..=9, 6)),
            "zstd" => Some((1..=19, 3)),
            _ => None,
        }
    }
}

/// The format of the source stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// pg_dump's plain SQL format: restored by psql; its COPY row counts and completion
    /// trailer are read in the stream.
    Plain,
    /// pg_dump's custom archive (`-Fc -Z0`, compressed by the chain): restored by pg_restore,
    /// in parallel and selectively; its structure and row counts are read in the stream
    /// (`crate::archive`).
    Custom,
    /// pg_dump's directory format (`-Fd -j N -Z0`, dumped in parallel), stored as one tar of
    /// its files compressed by the chain: restored by pg_restore like a custom archive; its
    /// files, structure and row counts are read in the stream (`crate::dirdump`).
    Directory,
    /// `pg_dumpall --globals-only`: roles, memberships, role settings, tablespaces, as SQL
    /// for psql against a server (`restore --globals`); its completion trailer is read.
    Globals,
    /// A Redis/Valkey snapshot (RDB) taken over the replication protocol (`[[redis]]`): its
    /// structure, keys per logical database and CRC-64 trailer are read in the stream
    /// (`crate::rdb`).
    Rdb,
}

impl Format {
    /// The name the manifest records.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Custom => "custom",
            Format::Directory => "directory",
            Format::Globals => "globals",
            Format::Rdb => "rdb",
        }
    }

    /// Whether pg_restore restores it (from a seekable file or a directory: restore
    /// decompresses it first), with `--jobs`, `--schema` and `--table`.
    pub fn is_archive(&self) -> bool {
        matches!(self, Format::Custom | Format::Directory)
    }

    /// The program that produces it.
    pub fn program(&self) -> &'static str {
        match self {
            Format::Plain | Format::Custom | Format::Directory => "pg_dump",
            Format::Globals => "pg_dumpall",
            Format::Rdb => "redis SYNC",
        }
    }

    /// The format a name (`[backup] format`, a manifest) stands for.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "plain" => Some(Format::Plain),
            "custom" => Some(Format::Custom),
            "directory" => Some(Format::Directory),
            "globals" => Some(Format::Globals),
            "rdb" => Some(Format::Rdb),
            _ => None,
        }
    }
}

/// One backup's chain: source format, then compression, then encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// What the source produced.
    pub format: Format,
    /// How it was compressed.
    pub compression: Compression,
    /// Encrypted with age after compression (`.age`); the recipients are configuration, not
    /// part of the chain.
    pub encrypted: bool,
}

/// One stage as the manifest records it (`"stages": [...]`, format version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Stage {
    /// What produced the stream: `program` (pg_dump) in `format` (plain).
    Source {
        /// The program.
        program: String,
        /// Its output format.
        format: String,
    },
    /// A compressor.
    Compression {
        /// "gzip" or "zstd".
        algorithm: String,
        /// Its level.
        level: u32,
        /// Its worker threads (zstd).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threads: Option<u32>,
    },
    /// Encryption, after compression: `age` to `recipients` (public keys; the file's header
    /// has them only as opaque stanzas, so the manifest says which keys can open it).
    Encryption {
        /// "age".
        algorithm: String,
        /// The public keys it was encrypted to.
        #[serde(default)]
        recipients: Vec<String>,
    },
    /// A stage this version does not know (written by a newer pgbackup), kept by name so the
    /// error can say which.
    #[serde(other)]
    Unknown,
}

impl Chain {
    /// A plain pg_dump through gzip at `level`.
    pub fn plain_gzip(level: u32) -> Self {
        Self::plain(Compression::Gzip { level, threads: 1 })
    }

    /// A plain pg_dump through `compression`.
    pub fn plain(compression: Compression) -> Self {
        Chain {
            format: Format::Plain,
            compression,
            encrypted: false,
        }
    }

    /// The stages, in stream order, for the manifest; `recipients` are the public keys an
    /// encrypted chain was encrypted to.
    pub fn stages(&self, recipients: &[String]) -> Vec<Stage> {
        let mut stages = vec![
            Stage::Source {
                program: self.format.program().into(),
                format: self.format.name().into(),
            },
            Stage::Compression {
                algorithm: self.compression.name().into(),
                level: self.compression.level(),
                threads: Some(self.compression.threads()),
            },
        ];
        if self.encrypted {
            stages.push(Stage::Encryption {
                algorithm: "age".into(),
                recipients: recipients.to_vec(),
            });
        }
        stages
    }

    /// The chain a manifest records: its `stages` (version 2), else the version 1 fields
    /// (`dump_format`, `compression`, `compression_level`). An unknown stage or algorithm is an
    /// error that says to use a newer pgbackup, never a guess.
    pub fn from_record(
        stages: &[Stage],
        dump_format: &str,
        compression: &str,
        level: u32,
    ) -> Result<Chain, String> {
        if stages.is_empty() {
            return Self::from_names(dump_format, compression, level, None);
        }
        let (mut format, mut compression, mut encrypted) = (None, None, false);
        for s in stages {
            match s {
                Stage::Source { program, format: f }
                    if Format::from_name(f).is_some_and(|k| k.program() == program) =>
                {
                    format = Some(f.as_str())
                }
                Stage::Source { program, .. } => {
                    return Err(format!(
                        "the source {program} is not known to this pgbackup"
                    ))
                }
                Stage::Compression {
                    algorithm,
                    level,
                    threads,
                } => compression = Some((algorithm.as_str(), *level, *threads)),
                Stage::Encryption { algorithm, .. } if algorithm == "age" => encrypted = true,
                Stage::Encryption { algorithm, .. } => {
                    return Err(format!(
                        "the encryption \"{algorithm}\" is not known to this pgbackup"
                    ))
                }
                Stage::Unknown => {
                    return Err(
                        "a stage this pgbackup does not know (written by a newer version)".into(),
                    )
                }
            }
        }
        let format = format.ok_or("no source stage")?;
        let (algorithm, level, threads) = compression.ok_or("no compression stage")?;
        let mut chain = Self::from_names(format, algorithm, level, threads)?;
        chain.encrypted = encrypted;
        Ok(chain)
    }

    fn from_names(
        format: &str,
        algorithm: &str,
        level: u32,
        threads: Option<u32>,
    ) -> Result<Chain, String> {
        let Some(format) = Format::from_name(format) else {
            return Err(format!(
                "the dump format \"{format}\" is not known to this pgbackup"
            ));
        };
        let compression = match algorithm {
            "gzip" => Compression::Gzip {
                level,
                threads: threads.unwrap_or(1),
            },
            "zstd" => Compression::Zstd {
                level,
                threads: threads.unwrap_or(1),
            },
            other => {
                return Err(format!(
                    "the compression \"{other}\" is not known to this pgbackup"
                ))
            }
        };
        Ok(Chain {
            format,
            compression,
            encrypted: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip_through_json_and_unknown_ones_are_refused() {
        let c = Chain::plain_gzip(9);
        let json = serde_json::to_string(&c.stages(&[])).unwrap();
        assert_eq!(
            json,
            r#"[{"stage":"source","program":"pg_dump","format":"plain"},{"stage":"compression","algorithm":"gzip","level":9,"threads":1}]"#
        );
        let back: Vec<Stage> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c.stages(&[]));
        let newer: Vec<Stage> =
            serde_json::from_str(r#"[{"stage":"signature","algorithm":"minisign"}]"#).unwrap();
        assert_eq!(newer, vec![Stage::Unknown]);

        let z = Chain::plain(Compression::Zstd {
            level: 3,
            threads: 2,
        });
        let json = serde_json::to_string(&z.stages(&[])).unwrap();
        assert!(
            json.contains(r#"{"stage":"compression","algorithm":"zstd","level":3,"threads":2}"#),
            "{json}"
        );
        let back: Vec<Stage> = serde_json::from_str(&json).unwrap();
        assert_eq!(Chain::from_record(&back, "", "", 0).unwrap(), z);

        let sealed = Chain {
            encrypted: true,
            ..z
        };
        let json = serde_json::to_string(&sealed.stages(&["age1xyz".into()])).unwrap();
        assert!(
            json.ends_with(r#"{"stage":"encryption","algorithm":"age","recipients":["age1xyz"]}]"#),
            "{json}"
        );
        let back: Vec<Stage> = serde_json::from_str(&json).unwrap();
        assert_eq!(Chain::from_record(&back, "", "", 0).unwrap(), sealed);
        let other: Vec<Stage> =
            serde_json::from_str(r#"[{"stage":"source","program":"pg_dump","format":"plain"},{"stage":"compression","algorithm":"gzip","level":6},{"stage":"encryption","algorithm":"gpg"}]"#).unwrap();
        assert!(Chain::from_record(&other, "", "", 0)
            .unwrap_err()
            .contains("\"gpg\" is not known"));
    }
}
