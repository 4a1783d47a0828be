//! Encryption at rest with age (age-encryption.org/v1): the stage after compression. The one
//! place that names the `age` crate. Files it writes are the ones the `age` CLI decrypts
//! (`age -d -i KEY FILE.sql.gz.age | zcat`), and it reads what the CLI writes to the same keys.
//!
//! Recipients are public keys (`age1...` X25519, `ssh-ed25519`/`ssh-rsa`); identities are the
//! private keys that decrypt, read from a file or a systemd credential only (never argv or the
//! environment), and never printed: their `Debug` shows the source and the public keys.

use std::io::{self, Read, Write};
use std::str::FromStr;

/// One public key a backup is encrypted to.
#[derive(Clone)]
enum Recipient {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl Recipient {
    fn as_dyn(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::Ssh(r) => r,
        }
    }
}

/// The public keys every new backup is encrypted to (`[encryption] recipients`,
/// `recipients-file`), with their text for the manifest and `config show`.
#[derive(Clone)]
pub struct Recipients {
    keys: Vec<Recipient>,
    names: Vec<String>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.names).finish()
    }
}

/// The comment-free, non-empty lines of a recipients or identity file.
fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// A short form of a public key for messages (`age1qy...x7d9`).
fn short(key: &str) -> String {
    let key = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    if key.len() <= 24 {
        return key;
    }
    match (key.get(..12), key.get(key.len() - 6..)) {
        (Some(a), Some(b)) => format!("{a}...{b}"),
        _ => key,
    }
}

impl Recipients {
    /// Parse public keys (each `age1...`, `ssh-ed25519 ...` or `ssh-rsa ...`); `where_` names
    /// each one in an error ("recipients[2]", "recipients-file /etc/... line 3").
    pub fn parse<'a>(
        keys: impl IntoIterator<Item = (String, &'a str)>,
    ) -> Result<Recipients, Vec<(String, String)>> {
        let mut out = Recipients {
            keys: Vec::new(),
            names: Vec::new(),
        };
        let mut problems = Vec::new();
        for (where_, key) in keys {
            let key = key.trim();
            let parsed = if key.starts_with("age1") {
                age::x25519::Recipient::from_str(key)
                    .map(Recipient::X25519)
                    .map_err(|e| format!("\"{}\" is not an age public key: {e}", short(key)))
            } else if key.starts_with("ssh-") {
                age::ssh::Recipient::from_str(key)
                    .map(Recipient::Ssh)
                    .map_err(|e| format!("\"{}\" is not a usable SSH public key: {e:?}; use ssh-ed25519 or ssh-rsa (2048 bits or more)", short(key)))
            } else if key.starts_with("AGE-SECRET-KEY-") {
                Err("is a private key (AGE-SECRET-KEY-...), not a recipient: give its public key (age-keygen -y KEYFILE) here and keep the private key off this list".into())
            } else {
                Err(format!(
                    "\"{}\" is not a public key; use an age key (age1..., from age-keygen) or an SSH public key (ssh-ed25519 ...)",
                    short(key)
                ))
            };
            match parsed {
                Ok(r) => {
                    out.names.push(key.to_string());
                    out.keys.push(r);
                }
                Err(e) => problems.push((where_, e)),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// The recipients of a recipients file's text (one key per line, `#` comments), each
    /// error naming its line.
    pub fn parse_file(text: &str, path: &str) -> Result<Recipients, Vec<(String, String)>> {
        Self::parse(entries(text).map(|(no, l)| (format!("{path} line {no}"), l)))
    }

    /// Both lists in one.
    pub fn extend(&mut self, other: Recipients) {
        self.keys.extend(other.keys);
        self.names.extend(other.names);
    }

    /// The public keys, as configured.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A writer that encrypts what it is given into `out` (a new file key each time). Call
    /// [`Sealed::finish`] at the end, else the file is cut and never decrypts.
    pub fn seal<W: Write>(&self, out: W) -> io::Result<Sealed<W>> {
        let e = age::Encryptor::with_recipients(self.keys.iter().map(Recipient::as_dyn))
            .map_err(|e| io::Error::other(format!("age: {e}")))?;
        Ok(Sealed(e.wrap_output(out)?))
    }
}

/// The age stream writer over `W`.
pub struct Sealed<W: Write>(age::stream::StreamWriter<W>);

impl<W: Write> std::fmt::Debug for Sealed<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed")
    }
}

impl<W: Write> Write for Sealed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Sealed<W> {
    /// Write the last chunk and give the inner writer back.
    pub fn finish(self) -> io::Result<W> {
        self.0.finish()
    }
}

enum Identity {
    X25519(age::x25519::Identity),
    Ssh(age::ssh::Identity),
}

/// The private keys that decrypt backups (`[encryption] identity-file` or
/// `identity-credential`). Never printed: `Debug` shows where they came from and their public
/// keys.
pub struct Identities {
    keys: Vec<Identity>,
    publics: Vec<String>,
    source: String,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("source", &self.source)
            .field("publics", &self.publics)
            .finish_non_exhaustive()
    }
}

/// Why a backup did not decrypt.
#[derive(Debug)]
pub enum OpenError {
    /// No identity matches any of the file's recipients: the wrong key (a configuration
    /// problem, not a damaged backup).
    NoMatchingKey,
    /// The file is not an age file, or its header is damaged.
    Damaged(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NoMatchingKey => {
                f.write_str("none of the configured identities opens it (encrypted to other keys)")
            }
            OpenError::Damaged(why) => f.write_str(why),
        }
    }
}

impl Identities {
    /// Parse an identity file's text: age keys (`AGE-SECRET-KEY-1...`, one per line, `#`
    /// comments, as `age-keygen` writes them) or one unencrypted OpenSSH private key.
    /// `source` names it in messages ("identity-file /etc/pgbackup/age.key").
    pub fn parse(text: &str, source: &str) -> Result<Identities, String> {
        let mut out = Identities {
            keys: Vec::new(),
            publics: Vec::new(),
            source: source.to_string(),
        };
        if text.trim_start().starts_with("-----BEGIN") {
            let id = age::ssh::Identity::from_buffer(io::BufReader::new(text.as_bytes()), None)
                .map_err(|e| format!("{source} is not an SSH private key age can use: {e}"))?;
            match &id {
                age::ssh::Identity::Unencrypted(_) => {}
                age::ssh::Identity::Encrypted(_) => {
                    return Err(format!("{source} is a passphrase-protected SSH key, which an unattended backup cannot unlock; use an age key (age-keygen) or an SSH key without passphrase, readable only by the pgbackup user"))
                }
                age::ssh::Identity::Unsupported(_) => {
                    return Err(format!(
                        "{source} is an SSH key of a type age does not support; use ssh-ed25519 or ssh-rsa, or an age key (age-keygen)"
                    ))
                }
            }
            if let Ok(r) = age::ssh::Recipient::try_from(id.clone()) {
                out.publics.push(r.to_string());
            }
            out.keys.push(Identity::Ssh(id));
            return Ok(out);
        }
        for (no, line) in entries(text) {
            if line.starts_with("age1") {
                return Err(format!("{source} line {no} is a public key (age1...); the identity is the private key file age-keygen wrote (AGE-SECRET-KEY-1...)"));
            }
            // Never echo the line: it may be a mistyped private key.
            let id = age::x25519::Identity::from_str(line).map_err(|_| {
                format!("{source} line {no} is not an age private key (AGE-SECRET-KEY-1...)")
            })?;
            out.publics.push(id.to_public().to_string());
            out.keys.push(Identity::X25519(id));
        }
        if out.keys.is_empty() {
            return Err(format!(
                "{source} holds no key; put the private key age-keygen wrote (AGE-SECRET-KEY-1...) in it"
            ));
        }
        Ok(out)
    }

    /// Where the keys came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The public keys of these identities (to check them against the recipients).
    pub fn publics(&self) -> &[String] {
        &self.publics
    }

    /// Read the header of the age stream `input` and unlock it with one of these keys; the
    /// reader then gives the plaintext, and fails (never ends early) on a damaged or cut
    /// chunk.
    pub fn open<R: Read>(&self, input: R) -> Result<Opened<R>, OpenError> {
        let d = age::Decryptor::new(input).map_err(damaged)?;
        if d.is_scrypt() {
            return Err(OpenError::Damaged(
                "the file is encrypted with a passphrase, not to a key: pgbackup never writes such files; decrypt it with age -d".into(),
            ));
        }
        let ids = self.keys.iter().map(|k| match k {
            Identity::X25519(i) => i as &dyn age::Identity,
            Identity::Ssh(i) => i as &dyn age::Identity,
        });
        match d.decrypt(ids) {
            Ok(r) => Ok(Opened(r)),
            Err(age::DecryptError::NoMatchingKeys) => Err(OpenError::NoMatchingKey),
            Err(e) => Err(damaged(e)),
        }
    }
}

fn damaged(e: age::DecryptError) -> OpenError {
    OpenError::Damaged(match e {
        age::DecryptError::InvalidHeader => "not an age file, or its header is damaged".into(),
        age::DecryptError::InvalidMac => "the age header's MAC does not match (damaged)".into(),
        age::DecryptError::UnknownFormat => {
            "an age format this pgbackup does not know (a newer age version?)".into()
        }
        e => format!("{e}"),
    })
}

/// The plaintext of an age stream.
pub struct Opened<R: Read>(age::stream::StreamReader<R>);

impl<R: Read> std::fmt::Debug for Opened<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened")
    }
}

impl<R: Read> Read for Opened<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// What a reader of an encrypted backup needs: the identities, or why there are none (for the
/// message that says what could not be checked).
pub type Keys = Result<std::sync::Arc<Identities>, String>;

/// The message when no identity is configured.
pub const NO_IDENTITY: &str = "no age identity is configured: set [encryption] identity-file (or identity-credential, a systemd credential) to the private key";

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (String, String) {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        (
            id.to_string().expose_secret().to_string(),
            id.to_public().to_string(),
        )
    }

    #[test]
    fn what_is_sealed_opens_with_the_key_and_not_with_another() {
        let (sk, pk) = keypair();
        let (other_sk, other_pk) = keypair();
        let r = Recipients::parse([("r".to_string(), pk.as_str())]).unwrap();
        let mut w = r.seal(Vec::new()).unwrap();
        let data = b"COPY t FROM stdin;\n".repeat(10_000);
        w.write_all(&data).unwrap();
        let file = w.finish().unwrap();
        assert!(file.starts_with(b"age-encryption.org/v1\n"));

        let ids =
            Identities::parse(&format!("# created: now\n# public key: {pk}\n{sk}\n"), "t").unwrap();
        assert_eq!(ids.publics(), std::slice::from_ref(&pk));
        assert!(!format!("{ids:?}").contains(&sk), "Debug printed the key");
        let mut back = Vec::new();
        ids.open(&file[..]).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == data);

        let wrong = Identities::parse(&other_sk, "t").unwrap();
        assert_eq!(wrong.publics(), [other_pk]);
        assert!(matches!(
            wrong.open(&file[..]),
            Err(OpenError::NoMatchingKey)
        ));

        // A cut file is an error at the cut, never a quiet end.
        let cut = &file[..file.len() - 100];
        let mut back = Vec::new();
        assert!(ids.open(cut).unwrap().read_to_end(&mut back).is_err());
        // A damaged header MAC. (A damaged recipient stanza reads as "no matching key": the
        // file key cannot be unwrapped; verify's sha256 check tells the two apart.)
        let mac = file.windows(4).position(|w| w == b"--- ").unwrap() + 10;
        let mut bad = file.clone();
        bad[mac] = if bad[mac] == b'A' { b'B' } else { b'A' };
        assert!(matches!(ids.open(&bad[..]), Err(OpenError::Damaged(_))));
        // A damaged payload chunk fails the read.
        let mut bad = file.clone();
        let last = bad.len() - 20;
        bad[last] ^= 1;
        let mut back = Vec::new();
        assert!(ids.open(&bad[..]).unwrap().read_to_end(&mut back).is_err());
        assert!(matches!(
            ids.open(&b"not age"[..]),
            Err(OpenError::Damaged(_))
        ));
    }

    /// A key pair made for this test only (ssh-keygen -t ed25519 -N "").
    const SSH_PUBLIC: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPUrMrso4VfEcx6/no0hSX1P4VgYchBr5/I9b3X/w7a test@pgbackup";
    const SSH_PRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACAT1KzK7KOFXxHMev56NIUl9T+FYGHIQa+fyPW91/8O2gAAAJBsWUVObFlF
TgAAAAtzc2gtZWQyNTUxOQAAACAT1KzK7KOFXxHMev56NIUl9T+FYGHIQa+fyPW91/8O2g
AAAEDnb67OSKa387Vs9NzbaSY4cV9XMxLJ7bpts3EiUsNDPRPUrMrso4VfEcx6/no0hSX1
P4VgYchBr5/I9b3X/w7aAAAADXRlc3RAcGdiYWNrdXA=
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn an_ssh_key_pair_works_as_recipient_and_identity() {
        let r = Recipients::parse([("r".to_string(), SSH_PUBLIC)]).unwrap();
        let mut w = r.seal(Vec::new()).unwrap();
        w.write_all(b"hello").unwrap();
        let file = w.finish().unwrap();
        let ids = Identities::parse(SSH_PRIVATE, "k").unwrap();
        assert!(
            SSH_PUBLIC.starts_with(&ids.publics()[0]),
            "{:?}",
            ids.publics()
        );
        let mut back = Vec::new();
        ids.open(&file[..]).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello");
    }

    #[test]
    fn bad_keys_are_named_and_private_keys_never_echoed() {
        let (sk, pk) = keypair();
        let e = Recipients::parse([
            ("recipients[0]".to_string(), pk.as_str()),
            ("recipients[1]".to_string(), sk.as_str()),
            ("recipients[2]".to_string(), "age1nope"),
            ("recipients[3]".to_string(), "hello"),
        ])
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].0 == "recipients[1]" && e[0].1.contains("private key"));
        assert!(!format!("{e:?}").contains(&sk), "a private key was echoed");
        let file = format!("# ops team\n\n{pk}\n  \n{SSH_PUBLIC}\n");
        let r = Recipients::parse_file(&file, "/r.txt").unwrap();
        assert_eq!(r.names().len(), 2);

        let e = Identities::parse(&format!("{}x\n", &sk[..sk.len() - 1]), "identity-file /k")
            .unwrap_err();
        assert!(e.contains("/k line 1"), "{e}");
        assert!(!e.contains(&sk[20..]), "the key was echoed: {e}");
        assert!(Identities::parse(&pk, "k")
            .unwrap_err()
            .contains("public key"));
        assert!(Identities::parse("# only a comment\n", "k")
            .unwrap_err()
            .contains("no key"));
    }
}
