//! Where the configuration's secrets and small files come from: [`Files`], injected into
//! validation so that it can be checked without touching the disk (a test passes its own); the
//! process reads them from disk ([`Disk`]).

use std::path::Path;

use crate::secret::Secret;

/// The files a configuration names: secret files (passwords, S3 keys), systemd credentials and
/// small text files (a user name), and whether a program or CA file exists.
pub trait Files {
    /// A secret: a regular file of at most 64 KiB, not empty; a warning when others can read it.
    fn secret(&self, path: &Path, warnings: &mut Vec<String>) -> Result<Secret, String>;
    /// A small text file.
    fn text(&self, path: &Path) -> std::io::Result<String>;
    /// Whether `path` is a regular file.
    fn is_file(&self, path: &Path) -> bool;
}

/// The files on disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct Disk;

impl Files for Disk {
    fn secret(&self, path: &Path, warnings: &mut Vec<String>) -> Result<Secret, String> {
        read_secret_file(path, warnings)
    }

    fn text(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
}

/// Read a secret from a file; warn when others can read it. Only a regular file of at most
/// 64 KiB: a FIFO or /dev/zero named by mistake must not hang the run.
fn read_secret_file(path: &Path, warnings: &mut Vec<String>) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let text = crate::verify::read_regular(path, 64 << 10)
        .and_then(|b| String::from_utf8(b).map_err(|_| std::io::Error::other("not UTF-8 text")));
    match text {
        Ok(s) => {
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o077 != 0 {
                    warnings.push(format!(
                        "{} is readable by other users; chmod 600 it",
                        path.display()
                    ));
                }
            }
            let s = Secret::new(s);
            if s.expose().is_empty() {
                return Err(format!("{} is empty; put the password in it", path.display()));
            }
            Ok(s)
        }
        Err(e) => Err(format!(
            "cannot read {}: {e}; create it (mode 0600, readable by the pgbackup user) or fix the path",
            path.display()
        )),
    }
}
