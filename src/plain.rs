//! Plain-format dump text, understood as psql reads it: whole statements, not lines.
//!
//! [`Splitter`] streams dump text and finds statement boundaries the way psql's lexer does:
//! `'...'` (and `''`), `E'...'` (backslash escapes), `"..."` identifiers, `$tag$...$tag$`
//! bodies, `--` and nested `/* */` comments, parentheses (a `;` inside `CREATE RULE ... DO
//! (...; ...)` does not end the statement), `BEGIN ATOMIC ... END` bodies of SQL functions,
//! psql meta-commands (`\connect`, `\restrict`) and `COPY ... FROM stdin;` data blocks, which
//! run to a line that is exactly `\.`. Memory is bounded: only statements whose first word is
//! GRANT, REVOKE, ALTER or COPY are held (up to [`MAX_HELD`]); everything else streams through.
//!
//! On top of it:
//! - [`PrivilegeFilter`] drops exactly the statements `pg_dump --no-owner --no-privileges`
//!   would not have written (`GRANT`, `REVOKE`, `ALTER DEFAULT PRIVILEGES`, `ALTER ... OWNER
//!   TO ...`) and never changes a byte outside them; a dropped statement leaves its line breaks,
//!   so psql's line numbers are the dump's.
//! - [`DumpObserver`] counts the rows of every COPY block (whatever its header's quoting) and
//!   sees pg_dump's completion trailer.

/// Statements held for judging longer than this are passed through unjudged (never one of
/// ours: privilege and COPY statements are short).
pub const MAX_HELD: usize = 1 << 20;

const TRAILER: &[u8] = b"-- PostgreSQL database dump complete";
const TAIL_KEEP: usize = 4096;

/// What a byte of SQL text is, as psql's lexer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Code (keywords, identifiers, punctuation, whitespace).
    Code,
    /// Inside (or delimiting) a string literal, quoted identifier or dollar-quoted body.
    Quoted,
    /// Inside a comment.
    Comment,
    /// A `-` or `/` that may start a comment; the next byte tells (see [`Scanner::step`]).
    Maybe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Q {
    Code,
    /// After `-` or `/` in code.
    MaybeLine,
    MaybeBlock,
    Single,
    Esc,
    EscBackslash,
    Double,
    /// After `$` in code: collecting a possible dollar-quote tag.
    DollarOpen(Vec<u8>),
    /// Inside `$tag$...`: `matched` bytes of the closing `$tag$` seen.
    Dollar {
        tag: Vec<u8>,
        matched: usize,
    },
    Line,
    Block {
        depth: u32,
        star: bool,
        slash: bool,
    },
}

/// The quoting state machine shared by the splitter and the statement tokenizer: one source
/// of truth for what is code, quoted text and comment.
#[derive(Debug, Clone)]
pub struct Scanner {
    q: Q,
    /// Length of the identifier run ending at the previous byte (0: the previous byte was not
    /// an identifier byte), and its first byte.
    word_len: usize,
    word_first: u8,
    /// The previous byte closed an `E'...'` string (so `''` continues it as one).
    closed_esc: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            q: Q::Code,
            word_len: 0,
            word_first: 0,
            closed_esc: false,
        }
    }
}

/// Identifier bytes (letters, digits, `_`, `$`, and every non-ASCII byte).
pub fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_tag_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

impl Scanner {
    /// Whether the scanner is in plain code (not inside a literal, identifier or comment).
    pub fn in_code(&self) -> bool {
        matches!(
            self.q,
            Q::Code | Q::MaybeLine | Q::MaybeBlock | Q::DollarOpen(_)
        )
    }

    /// Classify the next byte. When the previous byte was [`Class::Maybe`], a result of
    /// [`Class::Comment`] means both are comment; anything else means it was code.
    pub fn step(&mut self, b: u8) -> Class {
        let closed_esc = std::mem::take(&mut self.closed_esc);
        match &mut self.q {
            Q::Code => self.code(b, closed_esc),
            Q::MaybeLine => {
                self.q = Q::Code;
                if b == b'-' {
                    self.q = Q::Line;
                    self.word_len = 0;
                    Class::Comment
                } else {
                    self.code(b, false)
                }
            }
            Q::MaybeBlock => {
                self.q = Q::Code;
                if b == b'*' {
                    self.q = Q::Block {
                        depth: 1,
                        star: false,
                        slash: false,
                    };
                    self.word_len = 0;
                    Class::Comment
                } else {
                    self.code(b, false)
                }
            }
            Q::Single => {
                if b == b'\'' {
                    self.q = Q::Code;
                }
                Class::Quoted
            }
            Q::Esc => {
                match b {
                    b'\\' => self.q = Q::EscBackslash,
                    b'\'' => {
                        self.q = Q::Code;
                        self.closed_esc = true;
                    }
                    _ => {}
                }
                Class::Quoted
            }
            Q::EscBackslash => {
                self.q = Q::Esc;
                Class::Quoted
            }
            Q::Double => {
                if b == b'"' {
                    self.q = Q::Code;
                }
                Class::Quoted
            }
            Q::DollarOpen(tag) => {
                if b == b'$' {
                    let tag = std::mem::take(tag);
                    self.q = Q::Dollar { tag, matched: 0 };
                    self.word_len = 0;
                    Class::Quoted
                } else if (tag.is_empty() && is_tag_start(b))
                    || (!tag.is_empty() && is_ident(b) && b != b'$')
                {
                    tag.push(b);
                    Class::Code
                } else {
                    // Not a dollar quote (`$1`, `a $ b`): the bytes were code after all.
                    let n = tag.len();
                    self.q = Q::Code;
                    self.word_len = n + 1;
                    self.word_first = b'$';
                    self.code(b, false)
                }
            }
            Q::Dollar { tag, matched } => {
                // The closing delimiter is `$tag$`; tags hold no `$`, so a mismatch can only
                // restart the match at a `$`.
                let want = if *matched == 0 || *matched == tag.len() + 1 {
                    b'$'
                } else {
                    tag[*matched - 1]
                };
                if b == want {
                    *matched += 1;
                    if *matched == tag.len() + 2 {
                        self.q = Q::Code;
                    }
                } else {
                    *matched = usize::from(b == b'$');
                }
                Class::Quoted
            }
            Q::Line => {
                if b == b'\n' {
                    self.q = Q::Code;
                }
                Class::Comment
            }
            Q::Block { depth, star, slash } => {
                if *star && b == b'/' {
                    *depth -= 1;
                    *star = false;
                    if *depth == 0 {
                        self.q = Q::Code;
                    }
                } else if *slash && b == b'*' {
                    *depth += 1;
                    *slash = false;
                } else {
                    *star = b == b'*';
                    *slash = b == b'/';
                }
                Class::Comment
            }
        }
    }

    fn code(&mut self, b: u8, closed_esc: bool) -> Class {
        let word_len = self.word_len;
        let word_first = self.word_first;
        if is_ident(b) && !(b == b'$' && word_len == 0) {
            if word_len == 0 {
                self.word_first = b;
            }
            self.word_len = word_len + 1;
            return Class::Code;
        }
        self.word_len = 0;
        match b {
            b'\'' => {
                self.q = if closed_esc || (word_len == 1 && matches!(word_first, b'e' | b'E')) {
                    Q::Esc
                } else {
                    Q::Single
                };
                Class::Quoted
            }
            b'"' => {
                self.q = Q::Double;
                Class::Quoted
            }
            b'$' => {
                self.q = Q::DollarOpen(Vec::new());
                Class::Code
            }
            b'-' => {
                self.q = Q::MaybeLine;
                Class::Maybe
            }
            b'/' => {
                self.q = Q::MaybeBlock;
                Class::Maybe
            }
            _ => Class::Code,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Tokens of one (held) statement

/// A token at parenthesis depth 0 of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word (keyword or identifier), as written.
    Word(String),
    /// A `"quoted"` identifier, decoded (`""` is `"`).
    Ident(String),
    /// A string literal or dollar-quoted body.
    Literal,
    /// A parenthesized group.
    Group,
    /// Any other punctuation byte.
    Punct(u8),
}

impl Tok {
    fn is_word(&self, w: &str) -> bool {
        matches!(self, Tok::Word(x) if x.eq_ignore_ascii_case(w))
    }

    /// The identifier's text (bare or quoted).
    pub fn name(&self) -> Option<&str> {
        match self {
            Tok::Word(s) | Tok::Ident(s) => Some(s),
            _ => None,
        }
    }
}

/// The depth-0 tokens of one statement (comments dropped, parenthesized groups collapsed).
pub fn tokens(stmt: &[u8]) -> Vec<Tok> {
    let mut sc = Scanner::default();
    let mut out: Vec<Tok> = Vec::new();
    let mut depth = 0u32;
    let mut word: Vec<u8> = Vec::new();
    // Inside a `"..."` identifier: its text so far.
    let mut ident: Option<Vec<u8>> = None;
    // The previous byte closed a `"..."` identifier (so `""` continues it).
    let mut closed_ident = false;
    let mut in_literal = false;
    let mut held: Option<u8> = None;
    fn flush(word: &mut Vec<u8>, out: &mut Vec<Tok>, depth: u32) {
        if !word.is_empty() {
            if depth == 0 {
                out.push(Tok::Word(String::from_utf8_lossy(word).into_owned()));
            }
            word.clear();
        }
    }
    for &b in stmt {
        let was_double = matches!(sc.q, Q::Double);
        let was_code = sc.in_code();
        let class = sc.step(b);
        let now_double = matches!(sc.q, Q::Double);
        // A held `-` or `/` that did not start a comment was punctuation.
        if let Some(h) = held.take() {
            if class != Class::Comment && depth == 0 {
                out.push(Tok::Punct(h));
            }
        }
        let reopened = std::mem::take(&mut closed_ident);
        if was_code && now_double {
            flush(&mut word, &mut out, depth);
            ident = Some(match (reopened, out.last()) {
                // `"a""b"` is one identifier holding a quote.
                (true, Some(Tok::Ident(prev))) if depth == 0 => {
                    let mut t = prev.clone().into_bytes();
                    out.pop();
                    t.push(b'"');
                    t
                }
                _ => Vec::new(),
            });
            continue;
        }
        if was_double && now_double {
            if let Some(t) = &mut ident {
                t.push(b);
            }
            continue;
        }
        if was_double {
            if let Some(t) = ident.take() {
                if depth == 0 {
                    out.push(Tok::Ident(String::from_utf8_lossy(&t).into_owned()));
                }
            }
            closed_ident = true;
            continue;
        }
        match class {
            Class::Quoted => {
                flush(&mut word, &mut out, depth);
                if !in_literal && depth == 0 {
                    out.push(Tok::Literal);
                }
                in_literal = !sc.in_code();
            }
            Class::Comment => flush(&mut word, &mut out, depth),
            Class::Maybe => {
                flush(&mut word, &mut out, depth);
                held = Some(b);
            }
            Class::Code => {
                in_literal = false;
                if is_ident(b) && matches!(sc.q, Q::Code) {
                    word.push(b);
                    continue;
                }
                flush(&mut word, &mut out, depth);
                match b {
                    b'(' => depth += 1,
                    b')' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            out.push(Tok::Group);
                        }
                    }
                    b'$' => {}
                    b if b.is_ascii_whitespace() => {}
                    b if depth == 0 && matches!(sc.q, Q::Code) => out.push(Tok::Punct(b)),
                    _ => {}
                }
            }
        }
    }
    flush(&mut word, &mut out, depth);
    if let Some(t) = ident {
        if depth == 0 {
            out.push(Tok::Ident(String::from_utf8_lossy(&t).into_owned()));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Streaming statements

/// What the splitter hands over.
pub trait Sink {
    /// Bytes that are not part of a held statement, in order (between statements, statements
    /// that are not held, COPY data).
    fn pass(&mut self, bytes: &[u8]);
    /// A held statement (first word GRANT, REVOKE, ALTER or COPY), from its first byte to its
    /// terminating `;`, whole.
    fn statement(&mut self, stmt: &[u8]);
    /// A COPY data line ended (not the `\.` line).
    fn copy_row(&mut self) {}
    /// The `\.` line of a COPY block ended.
    fn copy_end(&mut self) {}
    /// A statement (held or not) ended at its `;`.
    fn statement_end(&mut self) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between statements.
    Between,
    /// A `-` or `/` between statements that may start a comment.
    BetweenMaybe,
    /// A psql meta-command line (`\connect ...`): to the end of the line.
    Meta,
    /// In a statement: `held` when its bytes are being held for judging.
    Stmt { held: bool },
    /// After `COPY ... FROM stdin;`: the rest of that line.
    AfterCopy,
    /// COPY data lines.
    Copy,
}

/// Finds statements in streamed dump text (see the module documentation).
#[derive(Debug)]
pub struct Splitter {
    sc: Scanner,
    mode: Mode,
    held: Vec<u8>,
    /// The statement's first word (lower case, at most 16 bytes), once it is complete, and
    /// its second.
    first: Vec<u8>,
    first_done: bool,
    second: Vec<u8>,
    second_done: bool,
    paren: u32,
    begin: u32,
    /// First letters of the first identifiers (psql's CREATE FUNCTION heuristic).
    idents: [u8; 4],
    ident_count: usize,
    /// The word being read (lower case, at most 16 bytes).
    word: Vec<u8>,
    /// The previous top-level word was `from`; `from stdin` was seen.
    prev_from: bool,
    from_stdin: bool,
    /// In COPY data: the first bytes of the current line and its length.
    copy_head: [u8; 2],
    copy_len: usize,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter {
            sc: Scanner::default(),
            mode: Mode::Between,
            held: Vec::new(),
            first: Vec::new(),
            first_done: false,
            second: Vec::new(),
            second_done: false,
            paren: 0,
            begin: 0,
            idents: [0; 4],
            ident_count: 0,
            word: Vec::new(),
            prev_from: false,
            from_stdin: false,
            copy_head: [0; 2],
            copy_len: 0,
        }
    }
}

/// Whether a statement starting with these words is held for judging: `Some` once that is
/// known (`second` is None while the second word is still being read).
fn watched(first: &[u8], second: Option<&[u8]>) -> Option<bool> {
    match first {
        b"grant" | b"revoke" | b"alter" | b"copy" => Some(true),
        // CREATE EXTENSION and CREATE SCHEMA: what a restore must not create again.
        b"create" => second.map(|w| matches!(w, b"extension" | b"schema")),
        _ => Some(false),
    }
}

/// Whether the tokens are those of `COPY ... FROM stdin`.
pub fn is_copy_from_stdin(toks: &[Tok]) -> bool {
    toks.first().is_some_and(|t| t.is_word("copy"))
        && toks
            .windows(2)
            .any(|w| w[0].is_word("from") && w[1].is_word("stdin"))
}

impl Splitter {
    /// Feed the next chunk of dump text.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl Sink) {
        let mut i = 0;
        // Where the bytes not yet handed over (or held) begin.
        let mut start = 0;
        while i < chunk.len() {
            match self.mode {
                Mode::Copy => match memchr::memchr(b'\n', &chunk[i..]) {
                    Some(off) => {
                        self.copy_line_part(&chunk[i..i + off]);
                        let end = i + off + 1;
                        if self.copy_len == 2 && self.copy_head == *b"\\." {
                            sink.pass(&chunk[start..end]);
                            start = end;
                            sink.copy_end();
                            self.mode = Mode::Between;
                        } else {
                            sink.copy_row();
                        }
                        self.copy_len = 0;
                        i = end;
                    }
                    None => {
                        self.copy_line_part(&chunk[i..]);
                        i = chunk.len();
                    }
                },
                Mode::AfterCopy | Mode::Meta => match memchr::memchr(b'\n', &chunk[i..]) {
                    Some(off) => {
                        i += off + 1;
                        if self.mode == Mode::AfterCopy {
                            self.copy_len = 0;
                            self.mode = Mode::Copy;
                        } else {
                            self.mode = Mode::Between;
                        }
                    }
                    None => i = chunk.len(),
                },
                Mode::Between | Mode::BetweenMaybe => {
                    let b = chunk[i];
                    let was_maybe = self.mode == Mode::BetweenMaybe;
                    let class = self.sc.step(b);
                    if class == Class::Comment {
                        self.mode = Mode::Between;
                    } else if class == Class::Maybe && !was_maybe {
                        self.mode = Mode::BetweenMaybe;
                    } else if !was_maybe && b == b'\\' {
                        self.mode = Mode::Meta;
                    } else if !was_maybe && b.is_ascii_whitespace() {
                    } else {
                        // A statement starts here, or at the `-`/`/` before (when that byte is
                        // in this chunk; one passed with the previous chunk stays passed, and
                        // the statement, starting with punctuation, is not one we hold).
                        let at = if was_maybe && i > start { i - 1 } else { i };
                        sink.pass(&chunk[start..at]);
                        start = at;
                        self.begin_statement();
                        if was_maybe {
                            self.first_done = true;
                        }
                        self.mode = Mode::Stmt { held: true };
                        self.stmt_byte(b, class);
                        if let Some(end) = self.after_byte(chunk, i, &mut start, sink) {
                            i = end;
                            continue;
                        }
                    }
                    i += 1;
                }
                Mode::Stmt { .. } => {
                    let b = chunk[i];
                    let class = self.sc.step(b);
                    self.stmt_byte(b, class);
                    match self.after_byte(chunk, i, &mut start, sink) {
                        Some(end) => i = end,
                        None => i += 1,
                    }
                }
            }
        }
        // What this chunk leaves: a held statement keeps its bytes, the rest is handed over.
        if self.mode == (Mode::Stmt { held: true }) {
            self.held.extend_from_slice(&chunk[start..]);
            if self.held.len() > MAX_HELD {
                let held = std::mem::take(&mut self.held);
                sink.pass(&held);
                self.mode = Mode::Stmt { held: false };
            }
        } else {
            sink.pass(&chunk[start..]);
        }
    }

    /// The end of the text: a statement without its `;` is handed over as it is.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            sink.pass(&held);
        }
    }

    /// Whether the text so far ended outside any statement and COPY block.
    pub fn at_rest(&self) -> bool {
        matches!(self.mode, Mode::Between | Mode::Meta) && self.sc.in_code()
    }

    fn begin_statement(&mut self) {
        self.held.clear();
        self.first.clear();
        self.first_done = false;
        self.second.clear();
        self.second_done = false;
        self.paren = 0;
        self.begin = 0;
        self.idents = [0; 4];
        self.ident_count = 0;
        self.word.clear();
        self.prev_from = false;
        self.from_stdin = false;
    }

    fn copy_line_part(&mut self, part: &[u8]) {
        let take = 2usize.saturating_sub(self.copy_len).min(part.len());
        if take > 0 {
            self.copy_head[self.copy_len..self.copy_len + take].copy_from_slice(&part[..take]);
        }
        self.copy_len += part.len();
    }

    /// Track words, parentheses and BEGIN/END of one statement byte.
    fn stmt_byte(&mut self, b: u8, class: Class) {
        if class == Class::Code && is_ident(b) && matches!(self.sc.q, Q::Code) {
            if self.word.len() < 16 {
                self.word.push(b.to_ascii_lowercase());
            }
            return;
        }
        self.end_word();
        if class == Class::Code && matches!(self.sc.q, Q::Code) {
            match b {
                b'(' => self.paren += 1,
                b')' => self.paren = self.paren.saturating_sub(1),
                _ => {}
            }
        }
    }

    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let w = std::mem::take(&mut self.word);
        if !self.first_done {
            self.first_done = true;
            self.first = w.clone();
        } else if !self.second_done {
            self.second_done = true;
            self.second = w.clone();
        }
        if self.paren == 0 {
            self.from_stdin |= self.prev_from && w == b"stdin";
            self.prev_from = w == b"from";
        }
        // psql's heuristic: in CREATE [OR REPLACE] FUNCTION|PROCEDURE, BEGIN ... END (and CASE
        // ... END inside it) hold semicolons.
        if self.ident_count < 4
            && matches!(
                w.as_slice(),
                b"create" | b"function" | b"procedure" | b"or" | b"replace"
            )
        {
            self.idents[self.ident_count] = w[0];
        }
        self.ident_count += 1;
        let i = self.idents;
        let in_routine = i[0] == b'c'
            && (i[1] == b'f'
                || i[1] == b'p'
                || (i[1] == b'o' && i[2] == b'r' && (i[3] == b'f' || i[3] == b'p')));
        if in_routine && self.paren == 0 {
            match w.as_slice() {
                b"begin" => self.begin += 1,
                b"case" if self.begin >= 1 => self.begin += 1,
                b"end" if self.begin > 0 => self.begin -= 1,
                _ => {}
            }
        }
    }

    /// After a statement byte at `i`: release a statement that is not watched, or end the
    /// statement at a top-level `;`. Returns the index to go on at when the statement ended.
    fn after_byte(
        &mut self,
        chunk: &[u8],
        i: usize,
        start: &mut usize,
        sink: &mut impl Sink,
    ) -> Option<usize> {
        let second = self.second_done.then_some(self.second.as_slice());
        let decided = if self.first_done {
            watched(&self.first, second)
        } else {
            None
        };
        if self.mode == (Mode::Stmt { held: true }) && decided == Some(false) {
            let held = std::mem::take(&mut self.held);
            sink.pass(&held);
            self.mode = Mode::Stmt { held: false };
        }
        let ends =
            chunk[i] == b';' && matches!(self.sc.q, Q::Code) && self.paren == 0 && self.begin == 0;
        if !ends {
            return None;
        }
        let end = i + 1;
        let copy = self.first == b"copy" && self.from_stdin;
        if self.mode == (Mode::Stmt { held: true }) {
            self.held.extend_from_slice(&chunk[*start..end]);
            let stmt = std::mem::take(&mut self.held);
            sink.statement(&stmt);
        } else {
            sink.pass(&chunk[*start..end]);
        }
        sink.statement_end();
        self.mode = if copy { Mode::AfterCopy } else { Mode::Between };
        *start = end;
        Some(end)
    }
}

// ------------------------------------------------------------------------------------------------
// The privilege filter

/// Whether pg_dump `--no-owner --no-privileges` would have left this statement out.
pub fn is_privilege_statement(stmt: &[u8]) -> bool {
    let t = tokens(stmt);
    let Some(first) = t.first() else {
        return false;
    };
    if first.is_word("grant") || first.is_word("revoke") {
        return true;
    }
    if !first.is_word("alter") {
        return false;
    }
    if t.len() >= 3 && t[1].is_word("default") && t[2].is_word("privileges") {
        return true;
    }
    // ALTER <object type> <name> [(args)] [USING method] OWNER TO <role> [;]
    let body: Vec<&Tok> = t
        .iter()
        .filter(|x| !matches!(x, Tok::Punct(b';')))
        .collect();
    let n = body.len();
    n >= 5
        && body[n - 3].is_word("owner")
        && body[n - 2].is_word("to")
        && body[n - 1].name().is_some()
        && ![
            "column",
            "rename",
            "set",
            "constraint",
            "attribute",
            "value",
            "to",
        ]
        .iter()
        .any(|w| body[n - 4].is_word(w))
}

/// Drops the statements `pg_dump --no-owner --no-privileges` would not have written; every
/// other byte passes unchanged, and a dropped statement leaves its line breaks.
#[derive(Debug, Default)]
pub struct PrivilegeFilter {
    splitter: Splitter,
    out: FilterOut,
}

#[derive(Debug, Default)]
struct FilterOut {
    buf: Vec<u8>,
    dropped: u64,
}

impl Sink for FilterOut {
    fn pass(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn statement(&mut self, stmt: &[u8]) {
        if is_privilege_statement(stmt) {
            self.dropped += 1;
            let newlines = stmt.iter().filter(|&&b| b == b'\n').count();
            self.buf.extend(std::iter::repeat_n(b'\n', newlines));
        } else {
            self.buf.extend_from_slice(stmt);
        }
    }
}

impl PrivilegeFilter {
    /// Filter `chunk`, appending what passes to `out`.
    pub fn process(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.splitter.feed(chunk, &mut self.out);
        out.append(&mut self.out.buf);
    }

    /// The end of the dump.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.splitter.finish(&mut self.out);
        out.append(&mut self.out.buf);
    }

    /// Statements dropped so far.
    pub fn dropped(&self) -> u64 {
        self.out.dropped
    }
}

// ------------------------------------------------------------------------------------------------
// The dump observer

use crate::catalog::TableRows;

/// Watches plain-format dump text go by: counts COPY rows per table, keeps the tail.
#[derive(Debug, Default)]
pub struct DumpObserver {
    splitter: Splitter,
    rows: RowCounter,
    tail: Vec<u8>,
    /// pg_dumpall's trailer instead of pg_dump's.
    cluster: bool,
}

/// pg_dumpall's completion trailer.
const CLUSTER_TRAILER: &[u8] = b"-- PostgreSQL database cluster dump complete";

#[derive(Debug, Default)]
struct RowCounter {
    tables: Vec<TableRows>,
    copy: Option<TableRows>,
    /// COPY blocks whose target could not be read (counted, so the proof can say so).
    unnamed: u64,
    /// Extensions and schemas the dump creates itself.
    extensions: Vec<String>,
    schemas: Vec<String>,
}

impl Sink for RowCounter {
    fn pass(&mut self, _bytes: &[u8]) {}

    fn statement(&mut self, stmt: &[u8]) {
        let t = tokens(stmt);
        if t.first().is_some_and(|w| w.is_word("create")) {
            // CREATE EXTENSION [IF NOT EXISTS] name ...; CREATE SCHEMA [IF NOT EXISTS] name ...
            let kind = t.get(1);
            let rest = if t.get(2).is_some_and(|w| w.is_word("if")) {
                5
            } else {
                2
            };
            if let Some(name) = t.get(rest).and_then(Tok::name) {
                if kind.is_some_and(|k| k.is_word("extension")) {
                    self.extensions.push(name.to_string());
                } else if kind.is_some_and(|k| k.is_word("schema"))
                    && !name.eq_ignore_ascii_case("authorization")
                {
                    self.schemas.push(name.to_string());
                }
            }
            return;
        }
        if !is_copy_from_stdin(&t) {
            return;
        }
        // COPY schema.table [(cols)] FROM stdin
        match (
            t.get(1).and_then(Tok::name),
            t.get(2),
            t.get(3).and_then(Tok::name),
        ) {
            (Some(schema), Some(Tok::Punct(b'.')), Some(table)) => {
                self.copy = Some(TableRows {
                    schema: schema.to_string(),
                    table: table.to_string(),
                    rows: 0,
                })
            }
            _ => {
                self.unnamed += 1;
                self.copy = Some(TableRows {
                    schema: String::new(),
                    table: String::new(),
                    rows: 0,
                });
            }
        }
    }

    fn copy_row(&mut self) {
        if let Some(c) = &mut self.copy {
            c.rows += 1;
        }
    }

    fn copy_end(&mut self) {
        if let Some(c) = self.copy.take() {
            if !c.table.is_empty() {
                self.tables.push(c);
            }
        }
    }
}

impl DumpObserver {
    /// Whether this observes pg_dumpall output.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// An observer of `pg_dumpall` output (its trailer says "cluster dump complete").
    pub fn cluster() -> Self {
        DumpObserver {
            cluster: true,
            ..Default::default()
        }
    }

    /// Feed the next chunk of dump text.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.keep_tail(chunk);
        self.splitter.feed(chunk, &mut self.rows);
    }

    fn keep_tail(&mut self, chunk: &[u8]) {
        if chunk.len() >= TAIL_KEEP {
            self.tail.clear();
            self.tail
                .extend_from_slice(&chunk[chunk.len() - TAIL_KEEP..]);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > 2 * TAIL_KEEP {
                let cut = self.tail.len() - TAIL_KEEP;
                self.tail.drain(..cut);
            }
        }
    }

    /// Whether the text so far ends with pg_dump's completion trailer (optionally followed by
    /// the `\unrestrict` line of pg_dump 15.14+ and blank lines), outside any COPY block.
    pub fn is_complete(&self) -> bool {
        let trailer = if self.cluster {
            CLUSTER_TRAILER
        } else {
            TRAILER
        };
        let Some(pos) = memchr::memmem::rfind(&self.tail, trailer) else {
            return false;
        };
        let after = &self.tail[pos + trailer.len()..];
        after
            .split(|&b| b == b'\n')
            .map(|l| l.trim_ascii())
            .all(|l| l.is_empty() || l.starts_with(b"\\unrestrict ") || l == b"--")
            && self.rows.copy.is_none()
            && self.splitter.at_rest()
    }

    /// Row counts of every table seen.
    pub fn into_tables(self) -> Vec<TableRows> {
        self.rows.tables
    }

    /// What the dump creates itself: `(extensions, schemas)`.
    pub fn created(&self) -> (Vec<String>, Vec<String>) {
        (self.rows.extensions.clone(), self.rows.schemas.clone())
    }

    /// COPY blocks whose table name could not be read (their rows are not in the proof).
    pub fn unnamed_copies(&self) -> u64 {
        self.rows.unnamed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn filter_in_chunks(input: &[u8], size: usize) -> (Vec<u8>, u64) {
        let mut f = PrivilegeFilter::default();
        let mut out = Vec::new();
        for c in input.chunks(size.max(1)) {
            f.process(c, &mut out);
        }
        f.finish(&mut out);
        (out, f.dropped())
    }

    /// Pieces of dump text and whether pg_dump -O -x would have left them out.
    fn pieces() -> Vec<(&'static str, bool)> {
        vec![
            ("CREATE TABLE public.t (a text);", false),
            ("ALTER TABLE public.t OWNER TO alice;", true),
            ("GRANT SELECT ON TABLE public.t TO bob;", true),
            ("REVOKE ALL ON SCHEMA public FROM PUBLIC;", true),
            ("ALTER DEFAULT PRIVILEGES FOR ROLE alice IN SCHEMA public GRANT SELECT ON TABLES TO bob;", true),
            ("ALTER SCHEMA public OWNER TO pg_database_owner;", true),
            ("ALTER LARGE OBJECT 16386 OWNER TO alice;", true),
            ("ALTER FUNCTION public.f(integer, text) OWNER TO alice;", true),
            ("ALTER OPERATOR CLASS public.c USING btree OWNER TO alice;", true),
            // The issue's defect, the other way round: a quoted name across two lines.
            ("ALTER TABLE public.\"multi\nline data\" OWNER TO postgres;", true),
            ("GRANT ALL ON TABLE \"we\"\"ird;\n\" TO \"role\nname\";", true),
            // Look alike, but are not ownership statements.
            ("ALTER TABLE public.t RENAME COLUMN owner TO x;", false),
            ("ALTER TABLE public.t RENAME owner TO x;", false),
            ("ALTER DATABASE d SET owner TO 'x';", false),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT owner_to CHECK ((a <> 'OWNER TO x'));", false),
            ("COMMENT ON TABLE public.t IS 'GRANT x;';", false),
            // The issue's defect: privilege lines inside bodies and literals.
            ("CREATE FUNCTION public.f() RETURNS void\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\nGRANT USAGE ON SCHEMA public TO rw_reader;\nALTER TABLE x OWNER TO y;\nEND;\n$$;", false),
            ("CREATE FUNCTION public.g() RETURNS text\n    LANGUAGE sql\n    AS $_$\nSELECT 'it''s $$ not the end';\nREVOKE ALL ON t FROM u;\n$_$;", false),
            ("CREATE FUNCTION public.h() RETURNS text LANGUAGE plpgsql AS $body$ BEGIN RETURN $in$\nGRANT x;\n$in$; END $body$;", false),
            ("COMMENT ON FUNCTION public.f() IS 'line one\nGRANT USAGE ON SCHEMA public TO rw_reader;\nALTER TABLE x OWNER TO y;\n';", false),
            ("COMMENT ON TABLE public.t IS E'it\\'s\nREVOKE ALL ON t FROM u;\n\\\\';", false),
            ("CREATE VIEW public.v AS SELECT 'a'';GRANT x;' AS x, \"col;\nGRANT\" FROM t;", false),
            ("CREATE RULE r AS ON INSERT TO public.t DO ALSO (INSERT INTO public.log VALUES (1); GRANT_x_fake();\n);", false),
            ("CREATE FUNCTION public.atomic() RETURNS integer LANGUAGE sql BEGIN ATOMIC SELECT 1;\nSELECT CASE WHEN true THEN 2 END;\nEND;", false),
            ("CREATE TABLE public.a$b (\"$$\" text, c$ text);", false),
            ("SELECT pg_catalog.set_config('search_path', '', false);", false),
            ("CREATE FUNCTION public.p(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1 + 1';", false),
            ("/* GRANT ALL; 'unterminated quote in a comment */ CREATE TABLE public.u (a int);", false),
            ("CREATE TABLE public.w (a int /* nested /* GRANT x; */ still comment */, b int);", false),
        ]
    }

    const COPY_BLOCK: &str = "COPY public.\"multi\nline\" (a, \"b\"\"c\") FROM stdin;\nGRANT ALL ON t TO u;\n'\t\"\t$$\nALTER TABLE x OWNER TO y;\n\\\\.\n\\.x\n\\.\n";

    #[test]
    fn the_issue_examples() {
        let dump = format!(
            "--\n-- Name: f; Type: FUNCTION\n--\n\n{}\n\n{}\n\n{COPY_BLOCK}\n{}\n",
            pieces()[16].0,
            pieces()[9].0,
            pieces()[1].0,
        );
        let expected = format!(
            "--\n-- Name: f; Type: FUNCTION\n--\n\n{}\n\n\n\n\n{COPY_BLOCK}\n\n",
            pieces()[16].0,
        );
        for size in [1, 2, 3, 5, 17, 4096] {
            let (out, dropped) = filter_in_chunks(dump.as_bytes(), size);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "chunk {size}");
            assert_eq!(dropped, 2, "chunk {size}");
        }
    }

    #[test]
    fn each_piece_is_judged_as_pg_dump_would() {
        for (text, drop) in pieces() {
            let (out, dropped) = filter_in_chunks(format!("{text}\n").as_bytes(), 4096);
            assert_eq!(dropped == 1, drop, "{text}");
            if !drop {
                assert_eq!(out, format!("{text}\n").as_bytes(), "{text}");
            } else {
                assert!(out.iter().all(|&b| b == b'\n'), "{text}");
            }
        }
    }

    #[test]
    fn copy_rows_are_counted_whatever_the_header_quoting() {
        let dump = format!(
            "{COPY_BLOCK}COPY \"My Schema\".\"we\"\"ird.tab\" FROM stdin;\n\\.\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict x\n"
        );
        for size in [1, 2, 7, 4096] {
            let mut o = DumpObserver::default();
            for c in dump.as_bytes().chunks(size) {
                o.feed(c);
            }
            assert!(o.is_complete(), "chunk {size}");
            let t = o.into_tables();
            assert_eq!(t.len(), 2, "chunk {size}: {t:?}");
            assert_eq!(
                (t[0].schema.as_str(), t[0].table.as_str(), t[0].rows),
                ("public", "multi\nline", 5)
            );
            assert_eq!(
                (t[1].schema.as_str(), t[1].table.as_str(), t[1].rows),
                ("My Schema", "we\"ird.tab", 0)
            );
        }
    }

    #[test]
    fn what_the_dump_creates_is_seen() {
        let mut o = DumpObserver::default();
        o.feed(b"CREATE SCHEMA extensions;\nCREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA extensions;\nCREATE EXTENSION hstore WITH SCHEMA public;\nCREATE TABLE t (schema int);\nCREATE SCHEMA \"We\"\"ird\";\n");
        assert_eq!(
            o.created(),
            (
                vec!["citext".to_string(), "hstore".to_string()],
                vec!["extensions".to_string(), "We\"ird".to_string()]
            )
        );
    }

    #[test]
    fn a_trailer_inside_a_body_or_copy_is_not_the_end() {
        for dump in [
            "COPY public.t (a) FROM stdin;\n-- PostgreSQL database dump complete\n",
            "CREATE FUNCTION f() RETURNS int AS $$\n-- PostgreSQL database dump complete\n",
            "COMMENT ON TABLE t IS '\n-- PostgreSQL database dump complete\n",
        ] {
            let mut o = DumpObserver::default();
            o.feed(dump.as_bytes());
            assert!(!o.is_complete(), "{dump}");
        }
    }

    /// Counts statements and keeps the text, to see where psql would cut.
    #[derive(Default)]
    struct Cuts {
        text: Vec<u8>,
        stmts: Vec<String>,
    }

    impl Sink for Cuts {
        fn pass(&mut self, b: &[u8]) {
            self.text.extend_from_slice(b);
        }
        fn statement(&mut self, b: &[u8]) {
            self.text.extend_from_slice(b);
        }
        fn statement_end(&mut self) {
            self.stmts
                .push(String::from_utf8_lossy(&self.text).trim().to_string());
            self.text.clear();
        }
    }

    #[test]
    fn statements_end_where_psql_ends_them() {
        let dump = r#"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO l VALUES (1); DELETE FROM l);
CREATE FUNCTION f() RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT 1;
  SELECT CASE WHEN true THEN 1 END;
END;
CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO l VALUES (2); END;
\connect -reuse-previous=on "dbname='x;y'"
SELECT 'a;b', "c;d", $q$;$q$, E'\';', 1 -- ;
;
BEGIN;
END;
"#;
        for size in [1, 3, 4096] {
            let mut cuts = Cuts::default();
            let mut sp = Splitter::default();
            for c in dump.as_bytes().chunks(size) {
                sp.feed(c, &mut cuts);
            }
            assert_eq!(cuts.stmts.len(), 6, "chunk {size}: {:#?}", cuts.stmts);
            assert!(cuts.stmts[1].ends_with("END;") && cuts.stmts[1].contains("SELECT 1;"));
            assert!(cuts.stmts[2].starts_with("CREATE OR REPLACE PROCEDURE"));
            assert!(
                cuts.stmts[3].starts_with("\\connect") && cuts.stmts[3].ends_with("-- ;\n;"),
                "{:?}",
                cuts.stmts[3]
            );
        }
    }

    #[test]
    fn tokens_decode_quoted_identifiers() {
        let t = tokens(b"COPY \"a\"\"b\".\"c\nd\" (x) FROM stdin;");
        assert_eq!(
            t,
            vec![
                Tok::Word("COPY".into()),
                Tok::Ident("a\"b".into()),
                Tok::Punct(b'.'),
                Tok::Ident("c\nd".into()),
                Tok::Group,
                Tok::Word("FROM".into()),
                Tok::Word("stdin".into()),
                Tok::Punct(b';'),
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// The filter's output is the input with exactly the privilege statements replaced by
        /// their line breaks: not a byte changes outside them, whatever the chunking.
        #[test]
        fn filter_changes_nothing_but_the_statements_it_drops(
            picks in proptest::collection::vec((0usize..100, 0usize..4), 1..40),
            chunk in 1usize..64,
        ) {
            let ps = pieces();
            let mut input = String::from("--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET standard_conforming_strings = on;\n");
            let mut expected = input.clone();
            let mut drops = 0;
            for (p, sep) in picks {
                let sep = ["\n", "\n\n", "\n-- a comment; with 'quotes\n\n", "\n/* GRANT ; */\n"][sep];
                if p >= ps.len() {
                    input.push_str(COPY_BLOCK);
                    expected.push_str(COPY_BLOCK);
                    input.push_str(sep);
                    expected.push_str(sep);
                    continue;
                }
                let (text, drop) = ps[p];
                input.push_str(text);
                if drop {
                    drops += 1;
                    expected.extend(std::iter::repeat_n('\n', text.matches('\n').count()));
                } else {
                    expected.push_str(text);
                }
                input.push_str(sep);
                expected.push_str(sep);
            }
            let (out, dropped) = filter_in_chunks(input.as_bytes(), chunk);
            prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
            prop_assert_eq!(dropped, drops);
        }
    }
}
