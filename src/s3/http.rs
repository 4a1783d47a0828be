//! The one HTTP client of all S3, STS and instance-metadata traffic: ureq over rustls with the
//! ring crypto provider (installed explicitly, once), trust from the system store,
//! `SSL_CERT_FILE` and `[storage.s3] ca-file`, the proxy chosen from `HTTPS_PROXY` /
//! `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`, and timeouts per read and per write, so that a
//! transfer may take as long as it needs while it moves and fails as a stall when nothing moves.
//!
//! Every failure comes back as a [`ReqError`] in words; certificate problems say which
//! (unknown issuer, name mismatch, expired). Nothing here panics on a server's answer.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::http;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// Install ring as the process's rustls crypto provider (idempotent). Also done by every
/// client built here, so a library user cannot meet rustls's "no provider" panic.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// ------------------------------------------------------------------------------------------------
// Endpoints

/// A base URL: scheme and authority (default ports dropped, as the Host header carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// "http" or "https".
    pub scheme: String,
    /// `host[:port]`, lower-case, without a default port.
    pub authority: String,
    /// The host alone (no port, no IPv6 brackets), for NO_PROXY and messages.
    pub host: String,
}

impl Endpoint {
    /// Parse `http(s)://host[:port][/]`; a path, query or user info is refused.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = url.trim().parse().map_err(|e| {
            format!("\"{url}\" is not a URL ({e}); write it as https://host[:port]")
        })?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            _ => {
                return Err(format!(
                    "\"{url}\" needs https:// (or http:// for a server on a trusted network)"
                ))
            }
        };
        let Some(auth) = uri.authority() else {
            return Err(format!("\"{url}\" has no host"));
        };
        if auth.as_str().contains('@') {
            return Err(format!(
                "\"{url}\" carries user information; put the keys in access-key-file/secret-key-file"
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "\"{url}\" has a path; give only scheme, host and port (the bucket is set by bucket and path-style)"
            ));
        }
        let host = auth.host().to_ascii_lowercase();
        let default_port = if scheme == "https" { 443 } else { 80 };
        let authority = match auth.port_u16() {
            Some(p) if p != default_port => format!("{host}:{p}"),
            _ => host.clone(),
        };
        Ok(Endpoint {
            scheme,
            authority,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        })
    }

    /// `scheme://authority`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

// ------------------------------------------------------------------------------------------------
// Proxies

/// The proxy variables as curl and the AWS tools read them, taken once from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `HTTPS_PROXY` / `https_proxy`.
    pub https: Option<String>,
    /// `HTTP_PROXY` / `http_proxy`.
    pub http: Option<String>,
    /// `ALL_PROXY` / `all_proxy`.
    pub all: Option<String>,
    /// `NO_PROXY` / `no_proxy`.
    pub no_proxy: Option<String>,
}

impl ProxyEnv {
    /// Read the variables through `env` (upper case first, then lower case).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> ProxyEnv {
        let get = |n: &str| env(n).or_else(|| env(&n.to_ascii_lowercase()));
        ProxyEnv {
            https: get("HTTPS_PROXY"),
            http: get("HTTP_PROXY"),
            all: get("ALL_PROXY"),
            no_proxy: get("NO_PROXY"),
        }
    }

    /// The proxy for a request to `ep`: by scheme (`HTTPS_PROXY` for https, `HTTP_PROXY` for
    /// http, else `ALL_PROXY`), none when `NO_PROXY` matches the host.
    pub fn proxy_for(&self, ep: &Endpoint) -> Option<&str> {
        let by_scheme = if ep.scheme == "https" {
            self.https.as_deref()
        } else {
            self.http.as_deref()
        };
        let proxy = by_scheme.or(self.all.as_deref())?;
        if self
            .no_proxy
            .as_deref()
            .is_some_and(|np| no_proxy_matches(np, &ep.host, &ep.authority))
        {
            return None;
        }
        Some(proxy)
    }
}

/// Whether a `NO_PROXY` list (comma separated: `*`, host names and domain suffixes with or
/// without a leading dot or `*.`, IP addresses, CIDR blocks, optionally `:port`) covers `host`.
pub fn no_proxy_matches(list: &str, host: &str, authority: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            // host:port entries match that port only.
            if let Some((h, p)) = entry.rsplit_once(':').filter(|(h, p)| {
                !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
            }) {
                return authority == format!("{h}:{p}");
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            if let Some((net, bits)) = entry.split_once('/') {
                return match (ip, net.parse::<std::net::IpAddr>(), bits.parse::<u32>()) {
                    (Some(a), Ok(n), Ok(b)) => in_cidr(a, n, b),
                    _ => false,
                };
            }
            host == entry || host.ends_with(&format!(".{entry}"))
        })
}

fn in_cidr(a: std::net::IpAddr, n: std::net::IpAddr, bits: u32) -> bool {
    use std::net::IpAddr::{V4, V6};
    match (a, n) {
        (V4(a), V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (V6(a), V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

// ------------------------------------------------------------------------------------------------
// Trust

/// The roots an https client trusts: the system store (or what `SSL_CERT_FILE` /
/// `SSL_CERT_DIR` name instead, as OpenSSL reads them), plus `ca_file` when set.
pub fn trust_roots(ca_file: Option<&Path>) -> Result<Arc<Vec<Certificate<'static>>>, String> {
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        roots.push(Certificate::from_der(c.as_ref()).to_owned());
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read ca-file {}: {e}; give the PEM file of the CA that signed the endpoint's certificate",
                path.display()
            )
        })?;
        let before = roots.len();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => roots.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "ca-file {} is not a PEM certificate file ({e})",
                        path.display()
                    ))
                }
            }
        }
        if roots.len() == before {
            return Err(format!(
                "ca-file {} holds no certificate; it must contain -----BEGIN CERTIFICATE----- blocks",
                path.display()
            ));
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted certificates: the system store is empty (install ca-certificates) and no ca-file is set"
                .into(),
        );
    }
    Ok(Arc::new(roots))
}

// ------------------------------------------------------------------------------------------------
// Clients

/// How to build one client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Trusted roots (https); None for a plain-http-only client.
    pub roots: Option<Arc<Vec<Certificate<'static>>>>,
    /// The proxy URL, when one applies.
    pub proxy: Option<String>,
    /// Connection set-up limit.
    pub connect_timeout: Duration,
    /// No byte read for this long is a stall.
    pub read_timeout: Duration,
    /// No byte written for this long is a stall.
    pub write_timeout: Duration,
}

/// An agent with the settings above: status codes come back as responses (never as errors),
/// redirects are not followed (a signed request must not be replayed elsewhere).
pub fn agent(opts: &ClientOptions) -> Result<ureq::Agent, String> {
    install_crypto_provider();
    let mut tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
    if let Some(roots) = &opts.roots {
        tls = tls.root_certs(RootCerts::Specific(Arc::clone(roots)));
    }
    let proxy = match &opts.proxy {
        Some(p) => Some(
            ureq::Proxy::new(p)
                .map_err(|e| format!("proxy {} is not usable ({e})", mask_userinfo(p)))?,
        ),
        None => None,
    };
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(format!("pgbackup/{}", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .proxy(proxy)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_resolve(Some(opts.connect_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .timeout_per_write(Some(opts.write_timeout))
        .build()
        .new_agent())
}

/// A proxy URL for messages: `http://user:***@host:port`.
pub fn mask_userinfo(url: &str) -> String {
    match url.split_once("://").and_then(|(s, rest)| {
        let (auth, tail) = rest.split_once('@')?;
        let user = auth.split(':').next().unwrap_or_default();
        Some(format!("{s}://{user}:***@{tail}"))
    }) {
        Some(m) => m,
        None => url.to_string(),
    }
}

// ------------------------------------------------------------------------------------------------
// Requests

/// A request body.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// Small, in memory.
    Bytes(&'a [u8]),
    /// Streamed, of a known length.
    Reader(&'a mut (dyn Read + Send), u64),
}

impl std::fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({})", b.len()),
            Body::Reader(_, len) => write!(f, "Reader({len})"),
        }
    }
}

/// An answer of any status.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    body: ureq::Body,
}

impl Response {
    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a stream (downloads).
    pub fn into_reader(self) -> impl Read {
        self.body.into_reader()
    }

    /// The body as text, at most 16 MiB (listings, error documents).
    pub fn text(mut self) -> Result<String, ReqError> {
        self.body
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(transport)
    }
}

/// Why a request failed, in words (never with the URL: it may carry a signature).
#[derive(Debug)]
pub enum ReqError {
    /// The server answered with an error status.
    Status {
        /// HTTP status.
        status: u16,
        /// S3's error code (`NoSuchBucket`, ...), empty when the answer had no document.
        code: String,
        /// S3's message.
        message: String,
        /// The bucket's real region, when the server said (`x-amz-bucket-region`, `<Region>`).
        region: String,
    },
    /// No answer: refused, reset, closed, no route, name not found, or a stall.
    Transport {
        /// What happened.
        detail: String,
        /// Nothing moved within the read/write timeout.
        stalled: bool,
    },
    /// The TLS handshake failed; the text says why and what to do.
    Tls(String),
    /// Reading the local data to send failed.
    Local(io::Error),
    /// No credentials to sign with.
    Credentials(super::creds::CredentialError),
}

impl ReqError {
    /// Worth another try: server errors, throttling, request timeouts, transport failures.
    pub fn is_transient(&self) -> bool {
        match self {
            ReqError::Status { status, code, .. } => {
                *status >= 500
                    || *status == 408
                    || *status == 429
                    || code == "RequestTimeout"
                    || code == "SlowDown"
            }
            ReqError::Transport { .. } => true,
            ReqError::Tls(_) | ReqError::Local(_) | ReqError::Credentials(_) => false,
        }
    }

    /// One line for a retry warning.
    pub fn short(&self) -> String {
        match self {
            ReqError::Status { status, code, .. } => {
                format!("HTTP {status} {code}").trim().to_string()
            }
            ReqError::Transport { stalled: true, .. } => {
                "no progress within the stall timeout".into()
            }
            ReqError::Transport { detail, .. } => detail.clone(),
            ReqError::Tls(t) => t.clone(),
            ReqError::Local(e) => e.to_string(),
            ReqError::Credentials(e) => e.to_string(),
        }
    }
}

/// Build the error of an answer with an error status from its document.
pub fn status_error(resp: Response) -> ReqError {
    let status = resp.status;
    let header_region = resp.header("x-amz-bucket-region").unwrap_or("").to_string();
    let body = resp.text().unwrap_or_default();
    let doc = super::xml::error_document(&body);
    ReqError::Status {
        status,
        code: doc.code,
        message: doc.message,
        region: if header_region.is_empty() {
            doc.region
        } else {
            header_region
        },
    }
}

/// Send one request. Error statuses are answers (`Ok`); only a request that got no answer is
/// an `Err`.
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Body,
) -> Result<Response, ReqError> {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let result = match body {
        Body::Empty => b
            .header("content-length", "0")
            .body(())
            .map_err(|e| ReqError::Transport {
                detail: format!("bad request: {e}"),
                stalled: false,
            })
            .map(|r| agent.run(r)),
        Body::Bytes(bytes) => b
            .header("content-length", bytes.len().to_string())
            .body(bytes)
            .map_err(|e| ReqError::Transport {
                detail: format!("bad request: {e}"),
                stalled: false,
            })
            .map(|r| agent.run(r)),
        Body::Reader(reader, len) => {
            let mut reader = LocalReads {
                inner: reader,
                error: None,
            };
            let sent = b
                .header("content-length", len.to_string())
                .body(ureq::SendBody::from_reader(&mut reader))
                .map_err(|e| ReqError::Transport {
                    detail: format!("bad request: {e}"),
                    stalled: false,
                })
                .map(|r| agent.run(r));
            if let Some(e) = reader.error.take() {
                return Err(ReqError::Local(e));
            }
            sent
        }
    }?;
    let resp = result.map_err(from_ureq)?;
    let (parts, body) = resp.into_parts();
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// Remembers a failure of the local reader, so that it is not mistaken for a network one.
struct LocalReads<'a> {
    inner: &'a mut (dyn Read + Send),
    error: Option<io::Error>,
}

impl Read for LocalReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.error = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// An io::Error from reading a response body.
fn transport(e: ureq::Error) -> ReqError {
    from_ureq(e)
}

/// A ureq failure in words.
pub fn from_ureq(e: ureq::Error) -> ReqError {
    if let Some(t) = tls_problem(&e) {
        return ReqError::Tls(t);
    }
    let stalled =
        |k: io::ErrorKind| matches!(k, io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock);
    match e {
        ureq::Error::Timeout(t) => ReqError::Transport {
            detail: format!("timed out ({t})"),
            stalled: true,
        },
        ureq::Error::Io(io) => ReqError::Transport {
            stalled: stalled(io.kind()),
            detail: io.to_string(),
        },
        ureq::Error::HostNotFound => ReqError::Transport {
            detail: "the host name does not resolve".into(),
            stalled: false,
        },
        ureq::Error::ConnectionFailed => ReqError::Transport {
            detail: "the connection failed".into(),
            stalled: false,
        },
        ureq::Error::ConnectProxyFailed(m) => ReqError::Transport {
            detail: format!("the proxy refused the connection: {m}"),
            stalled: false,
        },
        other => ReqError::Transport {
            detail: other.to_string(),
            stalled: false,
        },
    }
}

/// A TLS failure anywhere in the error's chain, described for an operator.
fn tls_problem(e: &ureq::Error) -> Option<String> {
    let rustls_err: Option<&rustls::Error> = match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        ureq::Error::Tls(m) => return Some(format!("TLS failed: {m}")),
        _ => None,
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut found = rustls_err;
    while found.is_none() {
        let Some(s) = source else { break };
        found = s.downcast_ref::<rustls::Error>();
        source = s.source();
    }
    found.map(describe_tls)
}

fn describe_tls(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let fix = "if the endpoint uses a private CA, set [storage.s3] ca-file to its PEM certificate (or SSL_CERT_FILE)";
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!(
                "its TLS certificate is not trusted: unknown issuer (signed by a CA that is not in the trust store); {fix}"
            ),
            C::NotValidForName => {
                "its TLS certificate is not valid for this host name; connect by the name the certificate was issued for, or have it reissued".into()
            }
            C::NotValidForNameContext { expected, presented } => format!(
                "its TLS certificate is not valid for {} (it is for {}); connect by a name the certificate was issued for, or have it reissued",
                server_name(expected),
                if presented.is_empty() {
                    "no name".to_string()
                } else {
                    presented.iter().map(|p| presented_name(p)).collect::<Vec<_>>().join(", ")
                }
            ),
            C::Expired => "its TLS certificate has expired; renew it on the server".into(),
            C::ExpiredContext { not_after, .. } => format!(
                "its TLS certificate expired on {}; renew it on the server (or check this machine's clock)",
                unix_date(not_after.as_secs())
            ),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "its TLS certificate is not valid yet; check this machine's clock".into()
            }
            C::Revoked => "its TLS certificate has been revoked".into(),
            C::BadSignature => "its TLS certificate has a bad signature".into(),
            other => format!("its TLS certificate was refused ({other:?}); {fix}"),
        },
        other => format!("the TLS handshake failed: {other}"),
    }
}

/// A name the certificate presents, as rustls renders it (`DnsName("x")`), as plain text.
fn presented_name(p: &str) -> String {
    match p.split_once('(') {
        Some((_, rest)) => rest.trim_end_matches(')').trim_matches('"').to_string(),
        None => p.to_string(),
    }
}

fn server_name(n: &rustls::pki_types::ServerName) -> String {
    match n {
        rustls::pki_types::ServerName::DnsName(d) => d.as_ref().to_string(),
        rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => format!("{n:?}"),
    }
}

fn unix_date(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised_and_checked() {
        let e = Endpoint::parse("https://S3.Example.com:443/").unwrap();
        assert_eq!(e.authority, "s3.example.com");
        assert_eq!(e.url(), "https://s3.example.com");
        let e = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.host.as_str()),
            ("127.0.0.1:9000", "127.0.0.1")
        );
        let e = Endpoint::parse("https://[::1]:9000").unwrap();
        assert_eq!(e.host, "::1");
        for bad in [
            "s3.example.com",
            "ftp://h",
            "https://h/bucket",
            "https://k:s@h",
            "https://h?x=1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_proxy_follows_the_scheme_and_no_proxy() {
        let env = ProxyEnv {
            https: Some("http://proxy:3128".into()),
            http: Some("http://plain:3128".into()),
            all: None,
            no_proxy: Some("localhost, .internal,10.0.0.0/8,minio:9000".into()),
        };
        let ep = |u: &str| Endpoint::parse(u).unwrap();
        assert_eq!(
            env.proxy_for(&ep("https://s3.amazonaws.com")),
            Some("http://proxy:3128")
        );
        assert_eq!(
            env.proxy_for(&ep("http://s3.example.com")),
            Some("http://plain:3128")
        );
        assert_eq!(env.proxy_for(&ep("https://localhost:9000")), None);
        assert_eq!(env.proxy_for(&ep("https://s3.corp.internal")), None);
        assert_eq!(env.proxy_for(&ep("https://internal")), None);
        assert_eq!(env.proxy_for(&ep("https://10.1.2.3")), None);
        assert_eq!(
            env.proxy_for(&ep("https://11.1.2.3")),
            Some("http://proxy:3128")
        );
        assert_eq!(env.proxy_for(&ep("http://minio:9000")), None);
        assert_eq!(
            env.proxy_for(&ep("http://minio:9001")),
            Some("http://plain:3128")
        );
        assert!(no_proxy_matches("*", "anything", "anything"));
        assert!(!no_proxy_matches(
            "example.com",
            "notexample.com",
            "notexample.com"
        ));
        let only_all = ProxyEnv {
            all: Some("socks5://s".into()),
            ..Default::default()
        };
        assert_eq!(only_all.proxy_for(&ep("https://h")), Some("socks5://s"));
        let env_fn = |k: &str| (k == "https_proxy").then(|| "http://lower:1".to_string());
        assert_eq!(
            ProxyEnv::from_env(&env_fn).https.as_deref(),
            Some("http://lower:1")
        );
    }

    #[test]
    fn proxy_credentials_are_masked() {
        assert_eq!(
            mask_userinfo("http://u:pw@proxy:3128"),
            "http://u:***@proxy:3128"
        );
        assert_eq!(mask_userinfo("http://proxy:3128"), "http://proxy:3128");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let e = trust_roots(Some(&p)).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = trust_roots(Some(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(e.contains("cannot read ca-file"), "{e}");
    }
}
