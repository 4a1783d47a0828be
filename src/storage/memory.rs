//! A storage in memory, for the fast test tier and as the conformance suite's reference.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{check_dir, check_key, split_key, ObjectWriter, Storage, StoredFile};
use crate::catalog;
use crate::error::{Error, Result};

/// A storage in memory: for the fast test tier (operations tested in milliseconds, without a
/// file system or a server) and as the reference the conformance suite holds the others to.
/// It commits as S3 does (data first, then sidecar and manifest), and a write that was never
/// committed nor dropped (a killed run: `mem::forget`) stays as an incomplete upload until
/// [`Storage::clean_incomplete`] removes it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: std::sync::Arc<std::sync::Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    /// Key -> content and when it was written.
    objects: std::collections::BTreeMap<String, (Vec<u8>, chrono::DateTime<chrono::Utc>)>,
    /// Writes in progress (or abandoned by a killed run), by id: their keys.
    pending: std::collections::BTreeMap<u64, String>,
    next_id: u64,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set the time an object was written (to test ages: debris, retention).
    pub fn set_modified(&self, key: &str, at: chrono::DateTime<chrono::Utc>) {
        if let Some(o) = self.state().objects.get_mut(key) {
            o.1 = at;
        }
    }
}

/// A write into [`MemoryStorage`].
#[derive(Debug)]
struct MemoryWriter {
    store: MemoryStorage,
    id: u64,
    key: String,
    buf: Vec<u8>,
}

impl Write for MemoryWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        self.store.state().pending.remove(&self.id);
    }
}

impl ObjectWriter for MemoryWriter {
    fn commit(mut self: Box<Self>) -> Result<u64> {
        let data = std::mem::take(&mut self.buf);
        let n = data.len() as u64;
        let mut st = self.store.state();
        st.pending.remove(&self.id);
        st.objects
            .insert(self.key.clone(), (data, chrono::Utc::now()));
        Ok(n)
    }
}

impl Storage for MemoryStorage {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn location(&self) -> String {
        "memory:".into()
    }

    fn list(&self, dir: &str) -> Result<Vec<StoredFile>> {
        check_dir(dir)?;
        Ok(self
            .state()
            .objects
            .iter()
            .filter(|(k, _)| split_key(k).0 == dir)
            .map(|(k, (data, at))| StoredFile {
                name: split_key(k).1.to_string(),
                size: data.len() as u64,
                modified: Some(*at),
            })
            .collect())
    }

    fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        check_dir(dir)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out: Vec<String> = self
            .state()
            .objects
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split_once('/').map(|(d, _)| d.to_string()))
            .collect();
        out.dedup();
        Ok(out)
    }

    fn create(&self, key: &str, _size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        check_key(key)?;
        let id = {
            let mut st = self.state();
            st.next_id += 1;
            let id = st.next_id;
            st.pending.insert(id, key.to_string());
            id
        };
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            id,
            key: key.to_string(),
            buf: Vec::new(),
        }))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        check_key(key)?;
        self.state()
            .objects
            .insert(key.to_string(), (bytes.to_vec(), chrono::Utc::now()));
        Ok(())
    }

    fn open<'a>(&'a self, key: &str) -> Result<Box<dyn io::Read + 'a>> {
        check_key(key)?;
        let data = self
            .state()
            .objects
            .get(key)
            .map(|o| o.0.clone())
            .ok_or_else(|| Error::Input {
                what: "object",
                path: PathBuf::from(format!("memory:{key}")),
                source: io::Error::from(io::ErrorKind::NotFound),
            })?;
        Ok(Box::new(io::Cursor::new(data)))
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.state().objects.remove(key);
        Ok(())
    }

    /// Abandoned writes, and what an interrupted commit leaves (data first, as in S3): a data
    /// object without its sidecar, a sidecar or manifest without data.
    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let files = self.files(db)?;
        let dir = self.db_dir(db);
        let mut st = self.state();
        let abandoned: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, k)| split_key(k).0 == dir)
            .map(|(id, _)| *id)
            .collect();
        for id in abandoned {
            if let Some(k) = st.pending.remove(&id) {
                removed.push(format!("abandoned write of {k}"));
            }
        }
        for f in catalog::debris_in(db, &files) {
            st.objects.remove(&self.key_of(db, &f.name));
            removed.push(format!("orphaned {}", f.name));
        }
        Ok(removed)
    }
}
