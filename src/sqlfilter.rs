//! Dropping ownership and privilege statements from a plain dump as it streams to psql.
//!
//! A plain dump carries `ALTER ... OWNER TO role;`, `GRANT ...;`, `REVOKE ...;` and
//! `ALTER DEFAULT PRIVILEGES ...;` for the roles of the source server. A test restore into a
//! scratch database, run by a least-privilege role (`pg_read_all_data` + `CREATEDB`), cannot
//! assume those roles; neither can a restore onto a server that lacks them. pg_dump writes each of
//! these statements on one line of its own, outside COPY data, so dropping those lines is exact:
//! the result is what `pg_dump --no-owner --no-privileges` would have written.

/// Lines outside COPY longer than this are passed through unfiltered (never one of ours).
const MAX_LINE: usize = 1 << 20;

/// A streaming line filter; memory is bounded by `MAX_LINE` whatever the dump's size.
#[derive(Debug, Default)]
pub struct PrivilegeFilter {
    line: Vec<u8>,
    /// The current line outgrew `MAX_LINE` and is being passed through.
    passthrough: bool,
    in_copy: bool,
    /// In COPY: the first bytes of the current line and its length, to spot `\.`.
    copy_head: Vec<u8>,
    copy_len: usize,
    /// Statements dropped so far.
    pub dropped: u64,
}

fn is_privilege_statement(line: &[u8]) -> bool {
    let line = line.trim_ascii_end();
    if !line.ends_with(b";") {
        return false;
    }
    line.starts_with(b"GRANT ")
        || line.starts_with(b"REVOKE ")
        || line.starts_with(b"ALTER DEFAULT PRIVILEGES ")
        || (line.starts_with(b"ALTER ") && memchr::memmem::find(line, b" OWNER TO ").is_some())
}

impl PrivilegeFilter {
    /// Filter `chunk`, appending what passes to `out`.
    pub fn process(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while !chunk.is_empty() {
            let nl = memchr::memchr(b'\n', chunk);
            let (part, rest, ends) = match nl {
                Some(i) => (&chunk[..=i], &chunk[i + 1..], true),
                None => (chunk, &chunk[chunk.len()..], false),
            };
            if self.in_copy {
                out.extend_from_slice(part);
                let body = if ends { &part[..part.len() - 1] } else { part };
                if self.copy_head.len() < 2 {
                    let take = (2 - self.copy_head.len()).min(body.len());
                    self.copy_head.extend_from_slice(&body[..take]);
                }
                self.copy_len += body.len();
                if ends {
                    if self.copy_len == 2 && self.copy_head == b"\\." {
                        self.in_copy = false;
                    }
                    self.copy_head.clear();
                    self.copy_len = 0;
                }
            } else if self.passthrough {
                out.extend_from_slice(part);
                if ends {
                    self.passthrough = false;
                }
            } else {
                self.line.extend_from_slice(part);
                if ends {
                    self.end_line(out);
                } else if self.line.len() > MAX_LINE {
                    out.append(&mut self.line);
                    self.passthrough = true;
                }
            }
            chunk = rest;
        }
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        let body = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        if is_privilege_statement(body) {
            self.dropped += 1;
        } else {
            if body.starts_with(b"COPY ") && body.ends_with(b" FROM stdin;") {
                self.in_copy = true;
            }
            out.extend_from_slice(&self.line);
        }
        self.line.clear();
    }

    /// Flush a last line without a newline.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.line.is_empty() {
            if is_privilege_statement(&self.line) {
                self.dropped += 1;
            } else {
                out.append(&mut self.line);
            }
            self.line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "CREATE TABLE public.t (a text);\n\
ALTER TABLE public.t OWNER TO alice;\n\
COPY public.t (a) FROM stdin;\n\
GRANT ALL ON TABLE public.t TO bob;\n\
ALTER TABLE x OWNER TO y;\n\
\\.\n\
GRANT SELECT ON TABLE public.t TO bob;\n\
REVOKE ALL ON SCHEMA public FROM PUBLIC;\n\
ALTER DEFAULT PRIVILEGES FOR ROLE alice IN SCHEMA public GRANT SELECT ON TABLES TO bob;\n\
ALTER SCHEMA public OWNER TO pg_database_owner;\n\
COMMENT ON TABLE public.t IS 'GRANT x;';\n";

    #[test]
    fn drops_privileges_but_never_copy_data() {
        let expected = "CREATE TABLE public.t (a text);\n\
COPY public.t (a) FROM stdin;\n\
GRANT ALL ON TABLE public.t TO bob;\n\
ALTER TABLE x OWNER TO y;\n\
\\.\n\
COMMENT ON TABLE public.t IS 'GRANT x;';\n";
        for size in [1, 2, 5, 17, 4096] {
            let mut f = PrivilegeFilter::default();
            let mut out = Vec::new();
            for c in DUMP.as_bytes().chunks(size) {
                f.process(c, &mut out);
            }
            f.finish(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "chunk {size}");
            assert_eq!(f.dropped, 5);
        }
    }
}
