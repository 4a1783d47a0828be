//! The observer of a backup's stream, by format: the one thing that judges whether a dump is
//! whole (pg_dump's or pg_dumpall's trailer; a custom archive's every data block) and reads its
//! row counts, for the backup pass and the verify pass alike. Pure: bytes in, facts out.

use crate::archive::ArchiveObserver;
use crate::catalog::TableRows;
use crate::chain::Format;
use crate::plain::DumpObserver;

/// The observer of a stream in its format: it reads the stream as it passes, counts the rows
/// of every table and says whether the stream is whole.
#[derive(Debug)]
pub enum Observer {
    /// A plain SQL dump.
    Plain(DumpObserver),
    /// A custom-format archive.
    Custom(ArchiveObserver),
    /// A directory-format dump, as a tar.
    Directory(Box<crate::dirdump::DirectoryObserver>),
    /// A Redis snapshot.
    Rdb(Box<crate::rdb::RdbObserver>),
}

impl Observer {
    /// A new observer of a stream in `format`.
    pub fn of(format: Format) -> Observer {
        match format {
            Format::Plain => Observer::Plain(DumpObserver::default()),
            Format::Custom => Observer::Custom(ArchiveObserver::default()),
            Format::Directory => Observer::Directory(Box::default()),
            Format::Globals => Observer::Plain(DumpObserver::cluster()),
            Format::Rdb => Observer::Rdb(Box::default()),
        }
    }

    /// Feed the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            Observer::Plain(o) => o.feed(chunk),
            Observer::Custom(o) => o.feed(chunk),
            Observer::Directory(o) => o.feed(chunk),
            Observer::Rdb(o) => o.feed(chunk),
        }
    }

    /// Why the stream so far is not whole; `None` when it is.
    pub fn incomplete_reason(&self) -> Option<String> {
        match self {
            Observer::Plain(o) if o.is_cluster() => (!o.is_complete()).then(|| {
                "ended without pg_dumpall's completion trailer (the dump is incomplete or not pg_dumpall output)".to_string()
            }),
            Observer::Plain(o) => (!o.is_complete()).then(|| {
                "ended without pg_dump's completion trailer (the dump is incomplete or not a pg_dump plain dump)".to_string()
            }),
            Observer::Custom(o) => o.incomplete_reason(),
            Observer::Directory(o) => o.incomplete_reason(),
            Observer::Rdb(o) => o.incomplete_reason(),
        }
    }

    /// What the stream creates itself: `(extensions, schemas)`.
    pub fn created(&self) -> (Vec<String>, Vec<String>) {
        match self {
            Observer::Plain(o) => o.created(),
            Observer::Custom(o) => o.created(),
            Observer::Directory(o) => o.created(),
            Observer::Rdb(_) => (Vec::new(), Vec::new()),
        }
    }

    /// COPY blocks whose table name could not be read (plain dumps only).
    pub fn unnamed_copies(&self) -> u64 {
        match self {
            Observer::Plain(o) => o.unnamed_copies(),
            Observer::Custom(_) | Observer::Directory(_) | Observer::Rdb(_) => 0,
        }
    }

    /// A Redis snapshot's own facts (RDB version, keys with a TTL, functions); `None` for
    /// the other formats.
    pub fn rdb_facts(&self) -> Option<crate::catalog::RedisFacts> {
        match self {
            Observer::Rdb(o) => Some(crate::catalog::RedisFacts {
                rdb_version: o.version(),
                volatile: o.keys().iter().map(|(db, k)| (*db, k.expires)).collect(),
                functions: o.functions(),
                ..Default::default()
            }),
            _ => None,
        }
    }

    /// Row counts of every table seen; for a Redis snapshot, the keys of every logical
    /// database, as schema `db<N>`, table `keys` (the manifest's and verify's one list of
    /// counts to compare).
    pub fn into_tables(self) -> Vec<TableRows> {
        match self {
            Observer::Plain(o) => o.into_tables(),
            Observer::Custom(o) => o.into_tables(),
            Observer::Directory(o) => (*o).into_tables(),
            Observer::Rdb(o) => crate::rdb::key_counts(o.keys()),
        }
    }
}
