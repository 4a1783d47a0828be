//! pg_dump's directory format (`pg_dump -Fd -j N`) as pgbackup stores it: one uncompressed tar
//! of the dump's files (in the order pg_dump finished them), compressed (and encrypted) by
//! the chain like any other stream. Read here as it streams by, pushed, with bounded memory:
//! [`TarParser`] splits the tar into files, and [`DirectoryObserver`] checks that the dump is
//! whole (the tar's end marker, `toc.dat` read to the end of its table of contents, and every
//! data file it names present and complete, large objects included) and counts the COPY rows of
//! every table, as the other observers do.
//!
//! The tar is the ustar/GNU layout `tar -x` reads: 512-byte headers, bodies padded to 512
//! bytes, two zero blocks at the end. Only regular files with plain names (what pg_dump writes)
//! and the directory entry of a hand-made `tar -C dir .` are accepted: a link, a device or a
//! path is an error, so an unpacker of this stream never writes outside its directory.

use std::collections::{HashMap, HashSet};

use crate::archive::{is_data_file_name, ArchiveObserver, CopyRows};
use crate::catalog::TableRows;

const BLOCK: usize = 512;

/// What the tar stream holds, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum TarEvent<'a> {
    /// A regular file begins.
    File {
        /// Its name (a leading `./` removed).
        name: &'a str,
        /// Its size.
        size: u64,
    },
    /// The next bytes of the current file.
    Data(&'a [u8]),
    /// The current file is complete.
    FileEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TarState {
    Header,
    Body {
        left: u64,
        pad: usize,
    },
    /// One zero block seen: the next must be zero too.
    Zero,
    /// The end marker was read; only zero padding may follow.
    Ended,
    Failed,
}

/// A tar stream, pushed: [`TarParser::feed`] calls back with the files and their bytes.
#[derive(Debug)]
pub struct TarParser {
    state: TarState,
    held: Vec<u8>,
    name: String,
    bytes: u64,
    error: Option<String>,
}

impl Default for TarParser {
    fn default() -> Self {
        TarParser {
            state: TarState::Header,
            held: Vec::with_capacity(BLOCK),
            name: String::new(),
            bytes: 0,
            error: None,
        }
    }
}

/// A numeric field: octal (NUL/space padded), or GNU base-256 for larger values.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    let s = std::str::from_utf8(&text).ok()?;
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

impl TarParser {
    /// Feed the next bytes; `on` gets the files as they come.
    pub fn feed(&mut self, mut input: &[u8], on: &mut dyn FnMut(TarEvent<'_>)) {
        while !input.is_empty() {
            match self.state {
                TarState::Failed => return,
                TarState::Body { left, pad } if left > 0 => {
                    let n = left.min(input.len() as u64) as usize;
                    on(TarEvent::Data(&input[..n]));
                    self.bytes += n as u64;
                    input = &input[n..];
                    self.state = TarState::Body {
                        left: left - n as u64,
                        pad,
                    };
                    if left == n as u64 {
                        on(TarEvent::FileEnd);
                    }
                }
                TarState::Body { pad, .. } => {
                    let n = pad.min(input.len());
                    self.bytes += n as u64;
                    input = &input[n..];
                    self.state = if n == pad {
                        TarState::Header
                    } else {
                        TarState::Body {
                            left: 0,
                            pad: pad - n,
                        }
                    };
                }
                TarState::Header | TarState::Zero | TarState::Ended => {
                    let n = (BLOCK - self.held.len()).min(input.len());
                    self.held.extend_from_slice(&input[..n]);
                    self.bytes += n as u64;
                    input = &input[n..];
                    if self.held.len() == BLOCK {
                        let block = std::mem::take(&mut self.held);
                        self.block(&block, on);
                        self.held = block;
                        self.held.clear();
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: String) {
        if self.error.is_none() {
            self.error = Some(format!("not a readable tar at byte {}: {e}", self.bytes));
        }
        self.state = TarState::Failed;
    }

    fn block(&mut self, b: &[u8], on: &mut dyn FnMut(TarEvent<'_>)) {
        let zero = b.iter().all(|x| *x == 0);
        match (self.state, zero) {
            (TarState::Header, true) => self.state = TarState::Zero,
            (TarState::Zero, true) => self.state = TarState::Ended,
            (TarState::Ended, true) => {}
            (TarState::Zero, false) => self.fail("a lone zero block inside the archive".into()),
            (TarState::Ended, false) => self.fail("data after the end-of-archive marker".into()),
            (_, false) => self.header(b, on),
            _ => {}
        }
    }

    fn header(&mut self, b: &[u8], on: &mut dyn FnMut(TarEvent<'_>)) {
        let stored = number(&b[148..156]);
        let sum: u64 = b
            .iter()
            .enumerate()
            .map(|(i, x)| {
                if (148..156).contains(&i) {
                    u64::from(b' ')
                } else {
                    u64::from(*x)
                }
            })
            .sum();
        if stored != Some(sum) {
            return self
                .fail("a header whose checksum does not match (damaged, or not a tar)".into());
        }
        let Some(size) = number(&b[124..136]) else {
            return self.fail("a header with an unreadable size".into());
        };
        let mut name = cstr(&b[0..100]).to_vec();
        if &b[257..262] == b"ustar" && b[263] == b'0' {
            // POSIX ustar: a prefix may hold the leading part of a long name.
            let prefix = cstr(&b[345..500]);
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        let name = name.strip_prefix("./").unwrap_or(&name).to_string();
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        match b[156] {
            b'0' | 0 => {}
            // The directory itself (`tar -C dir .`): nothing to unpack.
            b'5' if name.is_empty() || name == "." || name == "./" => {
                self.state = TarState::Header;
                return;
            }
            t => {
                return self.fail(format!(
                    "\"{}\" is not a regular file (tar type '{}'); a pg_dump directory holds only files",
                    name.escape_default(),
                    (t as char).escape_default()
                ))
            }
        }
        if !is_data_file_name(&name) {
            return self.fail(format!(
                "\"{}\" is not a name pg_dump gives the files of a directory-format dump",
                name.escape_default()
            ));
        }
        self.name = name;
        on(TarEvent::File {
            name: &self.name,
            size,
        });
        self.state = TarState::Body { left: size, pad };
        if size == 0 {
            on(TarEvent::FileEnd);
        }
    }

    /// Whether the stream ended after the end-of-archive marker.
    pub fn is_ended(&self) -> bool {
        self.state == TarState::Ended && self.held.is_empty()
    }

    /// Why the stream could not be read, if it could not.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Where the stream stands, for a message about a cut one.
    fn cut_where(&self) -> String {
        match self.state {
            TarState::Body { left, .. } if left > 0 => format!(
                "inside {} ({left} bytes of it missing)",
                self.name.escape_default()
            ),
            _ => "before the tar's end-of-archive marker".into(),
        }
    }
}

/// Files of a directory-format dump the checks care about, by name: its row count when it is
/// whole.
#[derive(Debug)]
struct Current {
    name: String,
    rows: CopyRows,
    /// The table of contents (`toc.dat`).
    toc: bool,
    /// A large-object table of contents (`blobs.toc`, `blobs_<id>.toc`): its lines name blob
    /// files, kept here until the line ends.
    blobs: Option<Vec<u8>>,
}

/// Watches a directory-format dump go by as a tar: checks that it is whole, counts the rows of
/// every table's COPY data.
#[derive(Debug, Default)]
pub struct DirectoryObserver {
    tar: TarParser,
    toc: Option<ArchiveObserver>,
    current: Option<Current>,
    /// Whole files seen, with the rows their data holds.
    files: HashMap<String, u64>,
    /// Blob files named by the large-object tables of contents.
    blob_files: HashSet<String>,
    error: Option<String>,
}

impl DirectoryObserver {
    /// Feed the next bytes of the tar stream.
    pub fn feed(&mut self, input: &[u8]) {
        let Self {
            tar,
            toc,
            current,
            files,
            blob_files,
            error,
        } = self;
        tar.feed(input, &mut |ev| match ev {
            TarEvent::File { name, .. } => {
                if files.contains_key(name) {
                    error.get_or_insert_with(|| format!("{name} is in the tar twice"));
                }
                let is_toc = name == "toc.dat";
                if is_toc {
                    *toc = Some(ArchiveObserver::toc_of_directory());
                }
                *current = Some(Current {
                    name: name.to_string(),
                    rows: CopyRows::default(),
                    toc: is_toc,
                    blobs: (name.ends_with(".toc") && name.starts_with("blobs")).then(Vec::new),
                });
            }
            TarEvent::Data(d) => {
                let Some(c) = current.as_mut() else { return };
                if c.toc {
                    if let Some(t) = toc.as_mut() {
                        t.feed(d);
                    }
                } else if let Some(buf) = c.blobs.as_mut() {
                    buf.extend_from_slice(d);
                    if buf.len() > 64 << 10 && memchr::memchr(b'\n', buf).is_none() {
                        error.get_or_insert_with(|| {
                            format!("{} has a line longer than 64 KiB: not a large-object table of contents", c.name)
                        });
                        c.blobs = None;
                        return;
                    }
                    while let Some(nl) = memchr::memchr(b'\n', buf) {
                        let line: Vec<u8> = buf.drain(..=nl).collect();
                        let line = String::from_utf8_lossy(&line);
                        // "<oid> blob_<oid>.dat"
                        if let Some(file) = line.split_whitespace().nth(1) {
                            blob_files.insert(file.to_string());
                        }
                    }
                } else {
                    c.rows.feed(d);
                }
            }
            TarEvent::FileEnd => {
                if let Some(c) = current.take() {
                    files.insert(c.name, c.rows.rows());
                }
            }
        });
    }

    /// Why the dump is not whole; `None` when it is.
    pub fn incomplete_reason(&self) -> Option<String> {
        if let Some(e) = self.tar.error().or(self.error.as_deref()) {
            return Some(e.to_string());
        }
        if !self.tar.is_ended() {
            return Some(format!("the tar ends {}: truncated", self.tar.cut_where()));
        }
        let Some(toc) = &self.toc else {
            return Some("the tar holds no toc.dat: not a pg_dump directory-format dump".into());
        };
        if let Some(why) = toc.incomplete_reason() {
            return Some(format!("toc.dat: {why}"));
        }
        let compressed = toc.header().is_some_and(|h| h.compressed);
        let present = |f: &str| {
            self.files.contains_key(f)
                || (compressed
                    && [".gz", ".lz4", ".zst"]
                        .iter()
                        .any(|s| self.files.contains_key(&format!("{f}{s}"))))
        };
        let mut missing: Vec<String> = toc
            .data_files()
            .into_iter()
            .filter(|d| !present(&d.file))
            .map(|d| {
                if d.schema.is_empty() {
                    format!("{} ({} {})", d.file, d.desc, d.tag)
                } else {
                    format!("{} ({} {}.{})", d.file, d.desc, d.schema, d.tag)
                }
            })
            .collect();
        let mut blobs: Vec<&String> = self.blob_files.iter().filter(|f| !present(f)).collect();
        blobs.sort();
        missing.extend(blobs.into_iter().map(|f| format!("{f} (a large object)")));
        if missing.is_empty() {
            return None;
        }
        let n = missing.len();
        missing.truncate(5);
        Some(format!(
            "the dump lacks {n} data file{} its table of contents names: {}{}",
            if n == 1 { "" } else { "s" },
            missing.join(", "),
            if n > 5 { ", ..." } else { "" }
        ))
    }

    /// Row counts of every table whose data file was read whole.
    pub fn into_tables(self) -> Vec<TableRows> {
        let Some(toc) = &self.toc else {
            return Vec::new();
        };
        if toc.header().is_some_and(|h| h.compressed) {
            return Vec::new();
        }
        toc.data_files()
            .into_iter()
            .filter(|d| d.desc == "TABLE DATA" && d.copy)
            .filter_map(|d| {
                Some(TableRows {
                    rows: *self.files.get(&d.file)?,
                    schema: d.schema,
                    table: d.tag,
                })
            })
            .collect()
    }

    /// What the dump creates itself: `(extensions, schemas)`.
    pub fn created(&self) -> (Vec<String>, Vec<String>) {
        self.toc
            .as_ref()
            .map(ArchiveObserver::created)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Found by fuzzing: toc.dat's error named the end of the read it came in, not where the
    /// bad entry starts, so the message depended on how the stream was cut into reads.
    #[test]
    fn the_same_answer_however_the_stream_is_cut() {
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/directory_observer/crash-9a4266f1e3ed0d182de0cd66d700da8820c8c15b"
        ))
        .unwrap();
        let (&cut, bytes) = data.split_first().unwrap();
        let mut whole = DirectoryObserver::default();
        whole.feed(bytes);
        let mut chunked = DirectoryObserver::default();
        for c in bytes.chunks(usize::from(cut).max(1)) {
            chunked.feed(c);
        }
        assert_eq!(whole.incomplete_reason(), chunked.incomplete_reason());
        assert_eq!(whole.created(), chunked.created());
        assert_eq!(whole.into_tables(), chunked.into_tables());
    }

    /// A tar of `files` as the tar crate writes it (GNU headers), with its end marker.
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, *body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn events(bytes: &[u8], chunk: usize) -> (Vec<(String, Vec<u8>)>, TarParser) {
        let mut p = TarParser::default();
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for c in bytes.chunks(chunk.max(1)) {
            p.feed(c, &mut |e| match e {
                TarEvent::File { name, .. } => out.push((name.to_string(), Vec::new())),
                TarEvent::Data(d) => out.last_mut().unwrap().1.extend_from_slice(d),
                TarEvent::FileEnd => {}
            });
        }
        (out, p)
    }

    #[test]
    fn files_come_out_whole_in_any_chunking_and_a_cut_tar_is_not_ended() {
        let big = vec![7u8; 3000];
        let t = tar_of(&[("toc.dat", b"PGDMP"), ("3347.dat", &big), ("e.dat", b"")]);
        for chunk in [1, 7, 511, 512, 513, 100_000] {
            let (files, p) = events(&t, chunk);
            assert!(p.is_ended(), "chunk {chunk}");
            assert_eq!(files.len(), 3);
            assert_eq!(files[1], ("3347.dat".to_string(), big.clone()));
        }
        for cut in [100, 600, 2000, t.len() - 512] {
            let (_, p) = events(&t[..cut], 64);
            assert!(!p.is_ended(), "cut at {cut}");
        }
    }

    #[test]
    fn links_paths_and_damage_are_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "toc.dat", "/etc/passwd").unwrap();
        let (_, p) = events(&b.into_inner().unwrap(), 512);
        assert!(
            p.error().unwrap().contains("not a regular file"),
            "{:?}",
            p.error()
        );

        let (_, p) = events(&tar_of(&[("sub/x.dat", b"1")]), 512);
        assert!(
            p.error().unwrap().contains("is not a name"),
            "{:?}",
            p.error()
        );

        let mut t = tar_of(&[("toc.dat", b"x")]);
        t[10] ^= 1;
        let (_, p) = events(&t, 512);
        assert!(p.error().unwrap().contains("checksum"), "{:?}", p.error());
        assert_eq!(
            number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]),
            Some(2 << 24)
        );
    }

    /// A real `pg_dump -Fd -Z0` of PostgreSQL 15 (tests/fixtures/directory-pg15.tar: a table
    /// with 1,000 rows, one in another schema with a multi-line value, an empty table, a large
    /// object): whole, with its rows; without one data file, or one large object, or cut,
    /// not whole, saying which.
    #[test]
    fn reads_what_pg_dump_15_wrote_and_names_a_missing_file() {
        let t = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/directory-pg15.tar"
        ))
        .unwrap();
        let observe = |bytes: &[u8]| {
            let mut o = DirectoryObserver::default();
            for c in bytes.chunks(4096) {
                o.feed(c);
            }
            o
        };
        let o = observe(&t);
        assert_eq!(o.incomplete_reason(), None);
        let (_, schemas) = o.created();
        assert!(schemas.contains(&"s2".to_string()), "{schemas:?}");
        let mut rows: Vec<(String, u64)> = o
            .into_tables()
            .into_iter()
            .map(|t| (format!("{}.{}", t.schema, t.table), t.rows))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                ("public.empty_t".to_string(), 0),
                ("public.t".to_string(), 1_000),
                ("s2.u".to_string(), 2)
            ]
        );

        // Rebuild it without one file at a time.
        let (files, _) = events(&t, 4096);
        for drop in ["3348.dat", "blob_16417.dat"] {
            let kept: Vec<(&str, &[u8])> = files
                .iter()
                .filter(|(n, _)| n != drop)
                .map(|(n, b)| (n.as_str(), b.as_slice()))
                .collect();
            let why = observe(&tar_of(&kept)).incomplete_reason().unwrap();
            assert!(why.contains(drop), "{why}");
        }
        let why = observe(&t[..t.len() / 2]).incomplete_reason().unwrap();
        assert!(why.contains("truncated"), "{why}");
        let no_toc: Vec<(&str, &[u8])> = files
            .iter()
            .filter(|(n, _)| n != "toc.dat")
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let why = observe(&tar_of(&no_toc)).incomplete_reason().unwrap();
        assert!(why.contains("no toc.dat"), "{why}");
    }
}
