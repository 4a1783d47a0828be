//! The observer of a Redis (or Valkey) RDB snapshot: it walks the stream as it passes, with
//! no buffering of values, and says whether it is whole: the `REDIS` magic and a version this
//! code knows, every opcode and value through to the EOF opcode, and the CRC-64 trailer.
//! Along the way it counts the keys (and the keys with a TTL) of every logical database and
//! keeps the small `AUX` fields (`redis-ver`, `ctime`, ...). Pure: bytes in, facts out.
//!
//! The format (rdb.h, rdb.c of Redis 7): `REDIS` + four version digits, then opcodes:
//! `0xFA` AUX (two strings), `0xFB` RESIZEDB (two lengths), `0xFE` SELECTDB (a length),
//! `0xFC`/`0xFD` a key's expiry (8/4 bytes), `0xF8` IDLE (a length), `0xF9` FREQ (a byte),
//! `0xF7` MODULE_AUX, `0xF5` FUNCTION2 (a string: a Functions library), `0xF4` SLOT_INFO
//! (three lengths), or a value type byte followed by the key (a string) and the value; `0xFF`
//! EOF, then (version 5 on) the CRC-64/Jones of everything before it, little-endian (zero when
//! the server runs with `rdbchecksum no`).

use std::collections::BTreeMap;

/// The newest RDB version this code reads (Redis 7.4 writes 12; 7.2 and Valkey 8 write 11;
/// 7.0 writes 10).
pub const MAX_VERSION: u32 = 12;

/// One step of walking a value: what to read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A length (1, 2, 5 or 9 bytes).
    Len,
    /// A string: a length and that many bytes, an integer (1, 2 or 4 bytes), or LZF-compressed
    /// (two lengths and the compressed bytes).
    Str,
    /// A string kept as text when short (AUX fields).
    KeptStr,
    /// Exactly this many bytes.
    Raw(u8),
    /// An old-style (ZSET type 3) score: a length byte (253-255 for NaN/+inf/-inf) and the digits.
    OldDouble,
    /// A length N, then N times the steps given.
    Count(&'static [Step]),
    /// A module value: opcodes (a length each) with their operand, to the EOF opcode 0.
    ModuleOps,
}

use Step::*;

const STRING: &[Step] = &[Str];
const LIST_OR_SET: &[Step] = &[Count(&[Str])];
const ZSET: &[Step] = &[Count(&[Str, OldDouble])];
const ZSET_2: &[Step] = &[Count(&[Str, Raw(8)])];
const HASH: &[Step] = &[Count(&[Str, Str])];
const QUICKLIST_2: &[Step] = &[Count(&[Len, Str])];
const MODULE_2: &[Step] = &[Len, ModuleOps];
// Streams: listpack nodes (master ID, listpack), length, last ID, [first ID, max deleted ID,
// entries added], consumer groups (name, last ID, [entries read], PEL of ID + delivery time
// and count, consumers (name, seen time, [active time], PEL of IDs)).
const PEL: Step = Count(&[Raw(16), Raw(8), Len]);
const CONSUMER_PEL: Step = Count(&[Raw(16)]);
const STREAM_1: &[Step] = &[
    Count(&[Str, Str]),
    Len,
    Len,
    Len,
    Count(&[Str, Len, Len, PEL, Count(&[Str, Raw(8), CONSUMER_PEL])]),
];
const STREAM_2: &[Step] = &[
    Count(&[Str, Str]),
    Len,
    Len,
    Len,
    Len,
    Len,
    Len,
    Len,
    Len,
    Count(&[Str, Len, Len, Len, PEL, Count(&[Str, Raw(8), CONSUMER_PEL])]),
];
const STREAM_3: &[Step] = &[
    Count(&[Str, Str]),
    Len,
    Len,
    Len,
    Len,
    Len,
    Len,
    Len,
    Len,
    Count(&[
        Str,
        Len,
        Len,
        Len,
        PEL,
        Count(&[Str, Raw(8), Raw(8), CONSUMER_PEL]),
    ]),
];
// Top-level opcodes with fixed operands.
const AUX: &[Step] = &[KeptStr, KeptStr];
const RESIZEDB: &[Step] = &[Len, Len];
const SLOT_INFO: &[Step] = &[Len, Len, Len];
const ONE_LEN: &[Step] = &[Len];

/// The steps of a value of RDB type `t`, or `None` for a type this code does not know.
fn value_steps(t: u8) -> Option<&'static [Step]> {
    Some(match t {
        0 => STRING,
        1 | 2 | 14 => LIST_OR_SET,
        3 => ZSET,
        4 => HASH,
        5 => ZSET_2,
        7 => MODULE_2,
        // Encoded in one string: zipmap, ziplist, intset, listpack.
        9..=13 | 16 | 17 | 20 => STRING,
        15 => STREAM_1,
        18 => QUICKLIST_2,
        19 => STREAM_2,
        21 => STREAM_3,
        _ => return None,
    })
}

/// The type names, for messages.
fn type_name(t: u8) -> &'static str {
    match t {
        0 => "string",
        1 | 10 | 14 | 18 => "list",
        2 | 11 | 20 => "set",
        3 | 5 | 12 | 17 => "sorted set",
        4 | 9 | 13 | 16 => "hash",
        6 | 7 => "module value",
        15 | 19 | 21 => "stream",
        _ => "unknown",
    }
}

/// One level of the walk: steps to go through `left` more times.
#[derive(Debug, Clone)]
struct Frame {
    steps: &'static [Step],
    at: usize,
    left: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The 9-byte header.
    Header,
    /// Opcodes and values.
    Body,
    /// After the EOF opcode: the 8-byte checksum.
    Checksum,
    /// Done (anything more is an error).
    End,
    /// A problem was found; nothing more is read.
    Failed,
}

/// Keys of one logical database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DbKeys {
    /// Keys.
    pub keys: u64,
    /// Keys with a TTL.
    pub expires: u64,
}

/// The observer: feed it the snapshot's bytes in any pieces.
#[derive(Debug)]
pub struct RdbObserver {
    phase: Phase,
    /// Bytes fed but not yet used, from `start` on (a cursor, not a drain: a chunk holds
    /// hundreds of small keys and values, and shifting the rest after each was quadratic).
    buf: Vec<u8>,
    start: usize,
    /// Bytes of a string's payload still to pass over.
    skip: u64,
    /// A kept string's payload, while it is being read.
    kept: Option<Vec<u8>>,
    stack: Vec<Frame>,
    crc: Crc64,
    offset: u64,
    version: u32,
    db: u64,
    keys: BTreeMap<u64, DbKeys>,
    /// The next key carries an expiry.
    expiry: bool,
    /// The AUX string read last (a field's name, waiting for its value).
    aux_name: Option<String>,
    aux: BTreeMap<String, String>,
    functions: u64,
    checksum: Option<u64>,
    problem: Option<String>,
}

// Slice-by-16 tables (32 KiB): several times the speed of the one-table default, over every
// byte of a snapshot.
static CRC64: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// The running CRC-64 of the bytes before the trailer.
struct Crc64(crc::Digest<'static, u64, crc::Table<16>>);

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crc64")
    }
}

const TRAILING: &str = "has bytes after the end of the snapshot (its checksum)";

/// Kept AUX values longer than this are cut (they are informational).
const AUX_MAX: usize = 256;

impl Default for RdbObserver {
    fn default() -> Self {
        RdbObserver {
            phase: Phase::Header,
            buf: Vec::new(),
            start: 0,
            skip: 0,
            kept: None,
            stack: Vec::new(),
            crc: Crc64(CRC64.digest()),
            offset: 0,
            version: 0,
            db: 0,
            keys: BTreeMap::new(),
            expiry: false,
            aux_name: None,
            aux: BTreeMap::new(),
            functions: 0,
            checksum: None,
            problem: None,
        }
    }
}

/// What a parse step found: done, or more bytes needed.
enum Got<T> {
    Value(T),
    More,
}

impl RdbObserver {
    /// Feed the next chunk of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            match self.phase {
                Phase::Failed => return,
                Phase::End => {
                    self.fail(TRAILING.into());
                    return;
                }
                _ => {}
            }
            if self.skip > 0 {
                let n = (self.skip.min(chunk.len() as u64)) as usize;
                self.consume_skipped(&chunk[..n]);
                chunk = &chunk[n..];
                continue;
            }
            // Small structures are parsed from `pending`; take what may be needed (a step
            // reads at most 9 bytes before it turns into a skip).
            let take = chunk.len().min(64 * 1024);
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            self.run();
        }
    }

    /// The bytes fed and not yet used.
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn fail(&mut self, why: String) {
        if self.problem.is_none() {
            self.problem = Some(why);
        }
        self.phase = Phase::Failed;
        self.buf.clear();
        self.start = 0;
        self.skip = 0;
    }

    fn consume_skipped(&mut self, bytes: &[u8]) {
        self.crc.0.update(bytes);
        self.offset += bytes.len() as u64;
        self.skip -= bytes.len() as u64;
        if let Some(k) = &mut self.kept {
            let room = AUX_MAX.saturating_sub(k.len());
            k.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        if self.skip == 0 {
            self.kept_done();
        }
    }

    /// Use `n` bytes from the front of `pending`.
    fn used(&mut self, n: usize) {
        if self.phase != Phase::Checksum {
            self.crc.0.update(&self.buf[self.start..self.start + n]);
        }
        self.offset += n as u64;
        self.start += n;
    }

    /// Parse what `pending` holds, as far as it goes.
    fn run(&mut self) {
        loop {
            if self.skip > 0 {
                // A string's payload: what pending holds of it, then the rest from the chunks.
                let n = (self.skip.min(self.pending().len() as u64)) as usize;
                if n == 0 {
                    return;
                }
                let (from, to) = (self.start, self.start + n);
                self.start = to;
                let bytes = std::mem::take(&mut self.buf);
                self.consume_skipped(&bytes[from..to]);
                self.buf = bytes;
                continue;
            }
            let progressed = match self.phase {
                Phase::Header => self.header(),
                Phase::Body => self.body(),
                Phase::Checksum => self.trailer(),
                Phase::End => {
                    if !self.pending().is_empty() {
                        self.fail(TRAILING.into());
                    }
                    false
                }
                Phase::Failed => false,
            };
            if !progressed {
                return;
            }
        }
    }

    fn header(&mut self) -> bool {
        if self.pending().len() < 9 {
            if !b"REDIS".starts_with(&self.pending()[..self.pending().len().min(5)]) {
                self.fail(self.not_rdb());
            }
            return false;
        }
        if &self.pending()[..5] != b"REDIS" {
            self.fail(self.not_rdb());
            return false;
        }
        let digits = &self.pending()[5..9];
        let version = std::str::from_utf8(digits)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok());
        match version {
            Some(v) if (1..=MAX_VERSION).contains(&v) => {
                self.version = v;
                self.used(9);
                self.phase = Phase::Body;
                true
            }
            Some(v) => {
                self.fail(format!(
                    "RDB version {v} is newer than this pgbackup reads (up to {MAX_VERSION}); verify and restore it with a newer pgbackup"
                ));
                false
            }
            None => {
                self.fail("the RDB header's version is not four digits".into());
                false
            }
        }
    }

    fn not_rdb(&self) -> String {
        "does not start with the RDB magic \"REDIS\" (not a Redis snapshot)".into()
    }

    /// One opcode, or one step of the value being walked.
    fn body(&mut self) -> bool {
        if let Some(frame) = self.stack.last_mut() {
            if frame.at == frame.steps.len() {
                frame.left -= 1;
                if frame.left == 0 {
                    self.stack.pop();
                } else {
                    frame.at = 0;
                }
                return true;
            }
            let step = frame.steps[frame.at];
            return match self.step(step) {
                Got::More => false,
                Got::Value(()) => true,
            };
        }
        let Some(&op) = self.pending().first() else {
            return false;
        };
        let at = self.offset;
        let push = |s: &mut Self, steps: &'static [Step]| {
            s.used(1);
            s.stack.push(Frame {
                steps,
                at: 0,
                left: 1,
            });
            true
        };
        match op {
            0xFF => {
                self.used(1);
                if self.expiry {
                    self.fail(format!("an expiry at offset {at} is followed by no key"));
                    return false;
                }
                if self.version >= 5 {
                    self.phase = Phase::Checksum;
                } else {
                    self.phase = Phase::End;
                    self.checksum = Some(0);
                }
                true
            }
            0xFE => {
                if self.pending().len() < 2 {
                    return false;
                }
                match read_len(&self.pending()[1..]) {
                    Got::More => false,
                    Got::Value(None) => {
                        self.fail(format!("a SELECTDB at offset {at} has no valid number"));
                        false
                    }
                    Got::Value(Some((n, used))) => {
                        self.used(1 + used);
                        self.db = n;
                        true
                    }
                }
            }
            0xFA => push(self, AUX),
            0xFB => push(self, RESIZEDB),
            0xF4 => push(self, SLOT_INFO),
            0xF8 => push(self, ONE_LEN),
            0xF9 => {
                if self.pending().len() < 2 {
                    return false;
                }
                self.used(2);
                true
            }
            0xFC | 0xFD => {
                let n = if op == 0xFC { 9 } else { 5 };
                if self.pending().len() < n {
                    return false;
                }
                self.used(n);
                self.expiry = true;
                true
            }
            0xF7 => push(self, MODULE_2),
            0xF5 => {
                self.functions += 1;
                push(self, STRING)
            }
            0xF6 => {
                self.fail(format!(
                    "a Functions library at offset {at} in the format of Redis 7.0's release candidates (opcode 0xF6), which this pgbackup does not read"
                ));
                false
            }
            t => match value_steps(t) {
                Some(steps) => {
                    self.used(1);
                    let entry = self.keys.entry(self.db).or_default();
                    entry.keys += 1;
                    if std::mem::take(&mut self.expiry) {
                        entry.expires += 1;
                    }
                    // The key, then the value.
                    self.stack.push(Frame {
                        steps,
                        at: 0,
                        left: 1,
                    });
                    self.stack.push(Frame {
                        steps: STRING,
                        at: 0,
                        left: 1,
                    });
                    true
                }
                None => {
                    let what = if t == 6 {
                        "a module value in the pre-release format (type 6)".to_string()
                    } else {
                        format!("value type {t}")
                    };
                    self.fail(format!(
                        "{what} at offset {at} is unknown to this pgbackup (RDB version {}): a newer Redis or a module wrote it",
                        self.version
                    ));
                    false
                }
            },
        }
    }

    /// Carry out one step of the current frame.
    fn step(&mut self, step: Step) -> Got<()> {
        let at = self.offset;
        let advance = |s: &mut Self| {
            if let Some(f) = s.stack.last_mut() {
                f.at += 1;
            }
        };
        match step {
            Len => match read_len(self.pending()) {
                Got::More => Got::More,
                Got::Value(None) => {
                    self.fail(format!("an invalid length at offset {at}"));
                    Got::More
                }
                Got::Value(Some((_, used))) => {
                    self.used(used);
                    advance(self);
                    Got::Value(())
                }
            },
            Raw(n) => {
                if self.pending().len() < n as usize {
                    return Got::More;
                }
                self.used(n as usize);
                advance(self);
                Got::Value(())
            }
            OldDouble => {
                let Some(&b) = self.pending().first() else {
                    return Got::More;
                };
                let n = if b >= 253 { 1 } else { 1 + b as usize };
                if self.pending().len() < n {
                    return Got::More;
                }
                self.used(n);
                advance(self);
                Got::Value(())
            }
            Str | KeptStr => match read_string_head(self.pending()) {
                Got::More => Got::More,
                Got::Value(None) => {
                    self.fail(format!("an invalid string encoding at offset {at}"));
                    Got::More
                }
                Got::Value(Some((head, payload))) => {
                    advance(self);
                    if step == KeptStr {
                        self.kept = Some(Vec::new());
                    }
                    self.used(head);
                    if payload == 0 {
                        if step == KeptStr {
                            // An integer-encoded value: its bytes are the number.
                            self.kept_done();
                        }
                    } else {
                        self.skip = payload;
                    }
                    Got::Value(())
                }
            },
            Count(body) => match read_len(self.pending()) {
                Got::More => Got::More,
                Got::Value(None) => {
                    self.fail(format!("an invalid count at offset {at}"));
                    Got::More
                }
                Got::Value(Some((n, used))) => {
                    self.used(used);
                    advance(self);
                    if n > 0 {
                        self.stack.push(Frame {
                            steps: body,
                            at: 0,
                            left: n,
                        });
                    }
                    Got::Value(())
                }
            },
            ModuleOps => match read_len(self.pending()) {
                Got::More => Got::More,
                Got::Value(None) => {
                    self.fail(format!("an invalid module opcode at offset {at}"));
                    Got::More
                }
                Got::Value(Some((op, used))) => {
                    let operand: &'static [Step] = match op {
                        0 => {
                            self.used(used);
                            advance(self);
                            return Got::Value(());
                        }
                        1 | 2 => ONE_LEN,
                        3 => &[Raw(4)],
                        4 => &[Raw(8)],
                        5 => STRING,
                        _ => {
                            self.fail(format!("an unknown module opcode {op} at offset {at}"));
                            return Got::More;
                        }
                    };
                    self.used(used);
                    // Stay on ModuleOps (not advanced): the operand first, then the next opcode.
                    self.stack.push(Frame {
                        steps: operand,
                        at: 0,
                        left: 1,
                    });
                    Got::Value(())
                }
            },
        }
    }

    /// A kept string is complete: an AUX field's name or value.
    fn kept_done(&mut self) {
        let Some(bytes) = self.kept.take() else {
            return;
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match self.aux_name.take() {
            None => self.aux_name = Some(text),
            Some(name) => {
                self.aux.insert(name, text);
            }
        }
    }

    fn trailer(&mut self) -> bool {
        if self.pending().len() < 8 {
            return false;
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.pending()[..8]);
        let stored = u64::from_le_bytes(b);
        self.used(8);
        let computed = std::mem::replace(&mut self.crc, Crc64(CRC64.digest()))
            .0
            .finalize();
        if stored != 0 && stored != computed {
            self.fail(format!(
                "the CRC-64 trailer is {stored:016x} but the snapshot's bytes give {computed:016x} (corrupt)"
            ));
            return false;
        }
        self.checksum = Some(stored);
        self.phase = Phase::End;
        true
    }

    /// Why the stream so far is not a whole snapshot; `None` when it is.
    pub fn incomplete_reason(&self) -> Option<String> {
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        match self.phase {
            Phase::End => None,
            Phase::Header => Some(if self.offset == 0 && self.pending().is_empty() {
                "is empty (no RDB header)".into()
            } else {
                "ends inside the RDB header".into()
            }),
            _ => Some(format!(
                "ends after {} bytes, before the snapshot's end (no EOF opcode and checksum): truncated",
                self.offset + self.pending().len() as u64
            )),
        }
    }

    /// The RDB version (0 before the header was read).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Keys per logical database.
    pub fn keys(&self) -> &BTreeMap<u64, DbKeys> {
        &self.keys
    }

    /// The AUX fields (`redis-ver`, `redis-bits`, `ctime`, `used-mem`, `aof-base`, ...).
    pub fn aux(&self) -> &BTreeMap<String, String> {
        &self.aux
    }

    /// Functions libraries in the snapshot.
    pub fn functions(&self) -> u64 {
        self.functions
    }

    /// The stored checksum once read: `Some(0)` when the server wrote none (`rdbchecksum no`).
    pub fn checksum(&self) -> Option<u64> {
        self.checksum
    }

    /// What the stream is, for a message: type names of the values known here.
    pub fn describe_type(t: u8) -> &'static str {
        type_name(t)
    }
}

/// The CRC-64 (Jones, as Redis computes it) of `bytes`: an RDB's trailer is this of every byte
/// before it, little-endian.
pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64.checksum(bytes)
}

/// The RDB version in a snapshot's first 9 bytes (`None`: not an RDB header).
pub fn header_version(head: &[u8]) -> Option<u32> {
    if head.len() < 9 || &head[..5] != b"REDIS" {
        return None;
    }
    std::str::from_utf8(&head[5..9]).ok()?.parse().ok()
}

/// The keys of every logical database as the manifest's list of counts: schema `db<N>`,
/// table `keys`, rows the number of keys (the one list that verify and a test restore compare).
pub fn key_counts(keys: &BTreeMap<u64, DbKeys>) -> Vec<crate::catalog::TableRows> {
    keys.iter()
        .map(|(db, k)| crate::catalog::TableRows {
            schema: format!("db{db}"),
            table: "keys".into(),
            rows: k.keys,
        })
        .collect()
}

/// A length at the front of `b`: its value and how many bytes it took; `None` inside for an
/// encoded (special) form or an invalid first byte.
fn read_len(b: &[u8]) -> Got<Option<(u64, usize)>> {
    let Some(&first) = b.first() else {
        return Got::More;
    };
    match first >> 6 {
        0 => Got::Value(Some(((first & 0x3F) as u64, 1))),
        1 => match b.get(1) {
            None => Got::More,
            Some(&second) => Got::Value(Some(((((first & 0x3F) as u64) << 8) | second as u64, 2))),
        },
        2 => {
            let n = match first {
                0x80 => 4,
                0x81 => 8,
                _ => return Got::Value(None),
            };
            if b.len() < 1 + n {
                return Got::More;
            }
            let v = b[1..1 + n]
                .iter()
                .fold(0u64, |acc, &x| (acc << 8) | x as u64);
            Got::Value(Some((v, 1 + n)))
        }
        _ => Got::Value(None),
    }
}

/// A string's head at the front of `b`: how many bytes the head takes (the length, or the
/// whole of an integer) and how many payload bytes follow it.
fn read_string_head(b: &[u8]) -> Got<Option<(usize, u64)>> {
    let Some(&first) = b.first() else {
        return Got::More;
    };
    if first >> 6 != 3 {
        return match read_len(b) {
            Got::More => Got::More,
            Got::Value(None) => Got::Value(None),
            Got::Value(Some((n, used))) => Got::Value(Some((used, n))),
        };
    }
    match first & 0x3F {
        // Integers of 1, 2, 4 bytes: the head is the whole string.
        0 => fixed(b, 2),
        1 => fixed(b, 3),
        2 => fixed(b, 5),
        // LZF: compressed length, uncompressed length, then the compressed bytes.
        3 => {
            let Got::Value(c) = read_len(&b[1..]) else {
                return Got::More;
            };
            let Some((clen, used1)) = c else {
                return Got::Value(None);
            };
            let Got::Value(u) = read_len(&b[1 + used1..]) else {
                return Got::More;
            };
            let Some((_, used2)) = u else {
                return Got::Value(None);
            };
            Got::Value(Some((1 + used1 + used2, clen)))
        }
        _ => Got::Value(None),
    }
}

fn fixed(b: &[u8], n: usize) -> Got<Option<(usize, u64)>> {
    if b.len() < n {
        Got::More
    } else {
        Got::Value(Some((n, 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small snapshot built by hand: header, AUX, SELECTDB, RESIZEDB, keys of several
    /// types (one with an expiry), a second database, EOF and the checksum.
    fn sample() -> Vec<u8> {
        let mut v = b"REDIS0011".to_vec();
        let s = |v: &mut Vec<u8>, x: &[u8]| {
            v.push(x.len() as u8);
            v.extend_from_slice(x);
        };
        v.push(0xFA);
        s(&mut v, b"redis-ver");
        s(&mut v, b"7.2.4");
        v.push(0xFA);
        s(&mut v, b"ctime");
        v.extend_from_slice(&[0xC2, 1, 2, 3, 4]); // a 32-bit integer string
        v.extend_from_slice(&[0xFE, 0, 0xFB, 3, 1]);
        v.push(0); // string
        s(&mut v, b"k1");
        s(&mut v, b"hello");
        v.extend_from_slice(&[0xFC, 1, 2, 3, 4, 5, 6, 7, 8]);
        v.push(0);
        s(&mut v, b"ttl");
        v.extend_from_slice(&[0xC0, 42]); // an 8-bit integer string
        v.push(5); // zset 2
        s(&mut v, b"z");
        v.push(2);
        s(&mut v, b"a");
        v.extend_from_slice(&1.5f64.to_le_bytes());
        s(&mut v, b"b");
        v.extend_from_slice(&2.5f64.to_le_bytes());
        v.push(0xFE);
        v.push(3);
        v.push(4); // hash
        s(&mut v, b"h");
        v.push(1);
        s(&mut v, b"f");
        // An LZF string: compressed length 3, uncompressed 10, three bytes.
        v.extend_from_slice(&[0xC3, 3, 10, 9, 9, 9]);
        v.push(0xFF);
        let crc = CRC64.checksum(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    }

    fn observe(bytes: &[u8], piece: usize) -> RdbObserver {
        let mut o = RdbObserver::default();
        for c in bytes.chunks(piece.max(1)) {
            o.feed(c);
        }
        o
    }

    #[test]
    fn crc64_is_redis_s() {
        // The check value of CRC-64/Jones as Redis' crc64.c tests it.
        assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn a_whole_snapshot_in_any_pieces() {
        let bytes = sample();
        for piece in [1, 2, 3, 7, 64, bytes.len()] {
            let o = observe(&bytes, piece);
            assert_eq!(o.incomplete_reason(), None, "piece {piece}");
            assert_eq!(o.version(), 11);
            assert_eq!(o.aux().get("redis-ver").map(String::as_str), Some("7.2.4"));
            assert_eq!(
                o.keys().get(&0),
                Some(&DbKeys {
                    keys: 3,
                    expires: 1
                })
            );
            assert_eq!(
                o.keys().get(&3),
                Some(&DbKeys {
                    keys: 1,
                    expires: 0
                })
            );
        }
    }

    #[test]
    fn every_cut_is_incomplete_and_every_flip_is_caught() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            let o = observe(&bytes[..cut], 5);
            assert!(o.incomplete_reason().is_some(), "cut at {cut} passed");
        }
        for i in 9..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            let o = observe(&b, 4);
            assert!(
                o.incomplete_reason().is_some(),
                "a flipped bit at {i} passed"
            );
        }
    }

    #[test]
    fn trailing_bytes_a_newer_version_and_not_an_rdb() {
        let mut b = sample();
        b.push(0);
        assert!(observe(&b, 3)
            .incomplete_reason()
            .unwrap()
            .contains("after the end"));
        let mut b = sample();
        b[5..9].copy_from_slice(b"0099");
        assert!(observe(&b, 100)
            .incomplete_reason()
            .unwrap()
            .contains("newer than this pgbackup"));
        assert!(observe(b"-ERR no", 100)
            .incomplete_reason()
            .unwrap()
            .contains("RDB magic"));
        assert!(observe(b"", 1)
            .incomplete_reason()
            .unwrap()
            .contains("empty"));
    }

    #[test]
    fn no_checksum_is_accepted_as_such() {
        let mut b = sample();
        let n = b.len();
        b[n - 8..].copy_from_slice(&[0; 8]);
        let o = observe(&b, 10);
        assert_eq!(o.incomplete_reason(), None);
        assert_eq!(o.checksum(), Some(0));
    }
}
