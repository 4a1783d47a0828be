//! A password or key that must never be printed: `Debug` and `Display` show `***`.

use std::fmt;

/// A secret string. Read it with [`Secret::expose`] only where it is handed to a child process
/// through a 0600 file.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret; a trailing newline (as `echo pw > file` leaves) is removed.
    pub fn new(s: impl Into<String>) -> Self {
        let mut s = s.into();
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        Secret(s)
    }

    /// The secret's value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2\n");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }
}
