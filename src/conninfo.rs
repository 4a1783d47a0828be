//! libpq connection strings: parsing both forms (URI and `key=value`), taking the password out so
//! that it never reaches argv, and masking for display.
//!
//! The parser follows libpq's documented grammar ("Connection Strings" in the PostgreSQL manual)
//! closely enough to split off the password and read `host`, `port`, `user` and `dbname`; the
//! parameters themselves are handed back to libpq (pg_dump, psql) unchanged.

use std::fmt;

/// A parsed connection string: ordered `(keyword, value)` pairs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    params: Vec<(String, String)>,
    /// The masked original text, for display.
    display: String,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({})", self.display)
    }
}

/// Why a connection string could not be parsed. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnInfoError(String);

impl ConnInfo {
    /// Parse a libpq URI (`postgresql://...`, `postgres://...`) or keyword/value string.
    pub fn parse(s: &str) -> Result<Self, ConnInfoError> {
        let s = s.trim();
        let params = if let Some(rest) = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            parse_uri(rest)?
        } else {
            parse_keywords(s)?
        };
        let mut ci = ConnInfo {
            params,
            display: String::new(),
        };
        ci.display = if s.starts_with("postgres") && s.contains("://") {
            mask_uri(s)
        } else {
            ci.render(true)
        };
        Ok(ci)
    }

    /// Build from pairs (used for environment-variable style settings such as `DB_HOST`).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut ci = ConnInfo {
            params: pairs,
            display: String::new(),
        };
        ci.display = ci.render(true);
        ci
    }

    /// The value of a keyword, if present (the last occurrence wins, as in libpq).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Set or replace a keyword.
    pub fn set(&mut self, key: &str, value: &str) {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.to_string(), value.to_string()));
        self.display = self.render(true);
    }

    /// The password embedded in the string, if any.
    pub fn password(&self) -> Option<&str> {
        self.get("password")
    }

    /// A keyword/value string without the password: safe to pass in argv.
    pub fn without_password(&self) -> String {
        self.render(false)
    }

    /// For display: the original form with the password replaced by `***`.
    pub fn masked(&self) -> &str {
        &self.display
    }

    /// `host:port` for display and manifests ("local socket" when no host is set).
    pub fn host_port(&self) -> String {
        let host = self
            .get("host")
            .or_else(|| self.get("hostaddr"))
            .unwrap_or("");
        let host = if host.is_empty() || host.starts_with('/') {
            "local socket".to_string()
        } else {
            host.to_string()
        };
        match self.get("port") {
            Some(p) if !p.is_empty() => format!("{host}:{p}"),
            _ => host,
        }
    }

    fn render(&self, mask: bool) -> String {
        let mut out = String::new();
        for (k, v) in &self.params {
            if k == "password" && !mask {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            if k == "password" {
                out.push_str("***");
            } else {
                out.push_str(&quote_value(v));
            }
        }
        out
    }
}

/// Quote a value for a keyword/value connection string.
pub fn quote_value(v: &str) -> String {
    let needs = v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if !needs {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn parse_keywords(s: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(ConnInfoError(format!(
                "missing \"=\" after \"{key}\" in connection string; write key=value pairs or a postgresql:// URI"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => val.push(c),
                }
            }
            if !closed {
                return Err(ConnInfoError(format!(
                    "unterminated quoted value for \"{key}\" in connection string"
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        val.push(n);
                    }
                } else {
                    val.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err(ConnInfoError("empty keyword in connection string".into()));
        }
        out.push((key, val));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, ConnInfoError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ConnInfoError("invalid percent-encoding in connection URI".into())
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnInfoError("connection URI decodes to invalid UTF-8".into()))
}

fn parse_uri(rest: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let mut out = Vec::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], Some(&before_query[i + 1..])),
        None => (before_query, None),
    };
    let (userinfo, hostspec) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if let Some(ui) = userinfo {
        let (user, pass) = match ui.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (ui, None),
        };
        if !user.is_empty() {
            out.push(("user".into(), percent_decode(user)?));
        }
        if let Some(p) = pass {
            out.push(("password".into(), percent_decode(p)?));
        }
    }
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for h in hostspec.split(',') {
            let (host, port) = if let Some(stripped) = h.strip_prefix('[') {
                let end = stripped
                    .find(']')
                    .ok_or_else(|| ConnInfoError("unterminated [ in connection URI host".into()))?;
                let host = &stripped[..end];
                let port = stripped[end + 1..].strip_prefix(':');
                (host.to_string(), port)
            } else {
                match h.rsplit_once(':') {
                    Some((a, b)) => (a.to_string(), Some(b)),
                    None => (h.to_string(), None),
                }
            };
            hosts.push(percent_decode(&host)?);
            ports.push(port.map(str::to_string).unwrap_or_default());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".into(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            for p in &ports {
                if !p.is_empty() && p.parse::<u16>().is_err() {
                    return Err(ConnInfoError(format!(
                        "invalid port \"{p}\" in connection URI"
                    )));
                }
            }
            out.push(("port".into(), ports.join(",")));
        }
    }
    if let Some(db) = path {
        if !db.is_empty() {
            out.push(("dbname".into(), percent_decode(db)?));
        }
    }
    if let Some(q) = query {
        for kv in q.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                ConnInfoError(format!(
                    "invalid URI query parameter \"{}\": expected key=value",
                    kv.split('=').next().unwrap_or_default()
                ))
            })?;
            out.push((percent_decode(k)?, percent_decode(v)?));
        }
    }
    Ok(out)
}

/// Mask the password of a URI in place, keeping everything else as written.
fn mask_uri(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_string();
    };
    let (scheme, rest) = s.split_at(scheme_end + 3);
    let (before_query, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let auth_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(auth_end);
    let authority = match authority.rfind('@') {
        Some(i) => {
            let ui = &authority[..i];
            match ui.split_once(':') {
                Some((u, _)) => format!("{u}:***{}", &authority[i..]),
                None => authority.to_string(),
            }
        }
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}{authority}{path}");
    if let Some(q) = query {
        let masked: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_with_password_is_split_and_masked() {
        let ci = ConnInfo::parse(
            "postgresql://backup:s%3Acret@db.example:5433/clara_main?sslmode=require",
        )
        .unwrap();
        assert_eq!(ci.get("user"), Some("backup"));
        assert_eq!(ci.password(), Some("s:cret"));
        assert_eq!(ci.get("host"), Some("db.example"));
        assert_eq!(ci.get("port"), Some("5433"));
        assert_eq!(ci.get("dbname"), Some("clara_main"));
        assert_eq!(ci.get("sslmode"), Some("require"));
        assert_eq!(
            ci.masked(),
            "postgresql://backup:***@db.example:5433/clara_main?sslmode=require"
        );
        let argv = ci.without_password();
        assert!(!argv.contains("cret"), "{argv}");
        assert_eq!(
            argv,
            "user=backup host=db.example port=5433 dbname=clara_main sslmode=require"
        );
        assert_eq!(ci.host_port(), "db.example:5433");
    }

    #[test]
    fn uri_password_in_query_is_masked() {
        let ci = ConnInfo::parse("postgres:///db?host=/run/postgresql&password=hunter2").unwrap();
        assert_eq!(ci.password(), Some("hunter2"));
        assert!(!ci.masked().contains("hunter2"));
        assert!(!ci.without_password().contains("hunter2"));
        assert_eq!(ci.host_port(), "local socket");
    }

    #[test]
    fn ipv6_and_multi_host() {
        let ci = ConnInfo::parse("postgresql://[::1]:5432,other:6543/x").unwrap();
        assert_eq!(ci.get("host"), Some("::1,other"));
        assert_eq!(ci.get("port"), Some("5432,6543"));
    }

    #[test]
    fn keyword_string_with_quotes() {
        let ci =
            ConnInfo::parse(r"host=localhost dbname='my db' password='it\'s' user = bob").unwrap();
        assert_eq!(ci.get("dbname"), Some("my db"));
        assert_eq!(ci.password(), Some("it's"));
        assert_eq!(ci.get("user"), Some("bob"));
        assert_eq!(
            ci.masked(),
            "host=localhost dbname='my db' password=*** user=bob"
        );
        let argv = ci.without_password();
        assert_eq!(argv, "host=localhost dbname='my db' user=bob");
        // What we render parses back to the same values.
        let again = ConnInfo::parse(&argv).unwrap();
        assert_eq!(again.get("dbname"), Some("my db"));
    }

    #[test]
    fn quoting_round_trips_awkward_values() {
        for v in ["", "a b", "o'neil", r"back\slash", "ünï cødé"] {
            let s = format!("dbname={}", quote_value(v));
            assert_eq!(ConnInfo::parse(&s).unwrap().get("dbname"), Some(v), "{s}");
        }
    }

    #[test]
    fn errors_do_not_leak_password() {
        let e = ConnInfo::parse("host=x password='s3cr3t").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        assert!(ConnInfo::parse("hostx").is_err());
        assert!(ConnInfo::parse("postgresql://h:notaport/db").is_err());
    }
}
