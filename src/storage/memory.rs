//! A storage in memory, for the fast test tier and as the conformance suite's reference.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{ObjectWriter, Storage, StoredFile};
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
    /// `(db, file)` -> content and when it was written.
    objects: std::collections::BTreeMap<(String, String), (Vec<u8>, chrono::DateTime<chrono::Utc>)>,
    /// Writes in progress (or abandoned by a killed run), by id.
    pending: std::collections::BTreeMap<u64, (String, String)>,
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
    pub fn set_modified(&self, db: &str, file: &str, at: chrono::DateTime<chrono::Utc>) {
        if let Some(o) = self
            .state()
            .objects
            .get_mut(&(db.to_string(), file.to_string()))
        {
            o.1 = at;
        }
    }
}

/// A write into [`MemoryStorage`].
#[derive(Debug)]
struct MemoryWriter {
    store: MemoryStorage,
    id: u64,
    key: (String, String),
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

    fn databases(&self) -> Result<Vec<String>> {
        let mut dbs: Vec<String> = self
            .state()
            .objects
            .keys()
            .map(|(d, _)| d.clone())
            .filter(|d| catalog::is_valid_dir_name(d))
            .collect();
        dbs.dedup();
        Ok(dbs)
    }

    fn files(&self, db: &str) -> Result<Vec<StoredFile>> {
        Ok(self
            .state()
            .objects
            .iter()
            .filter(|((d, _), _)| d == db)
            .map(|((_, f), (data, at))| StoredFile {
                name: f.clone(),
                size: data.len() as u64,
                modified: Some(*at),
            })
            .collect())
    }

    fn create(
        &self,
        db: &str,
        file: &str,
        _size_hint: Option<u64>,
    ) -> Result<Box<dyn ObjectWriter>> {
        let key = (db.to_string(), file.to_string());
        let id = {
            let mut st = self.state();
            st.next_id += 1;
            let id = st.next_id;
            st.pending.insert(id, key.clone());
            id
        };
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            id,
            key,
            buf: Vec::new(),
        }))
    }

    fn put(&self, db: &str, file: &str, bytes: &[u8]) -> Result<()> {
        self.state().objects.insert(
            (db.to_string(), file.to_string()),
            (bytes.to_vec(), chrono::Utc::now()),
        );
        Ok(())
    }

    fn open<'a>(&'a self, db: &str, file: &str) -> Result<Box<dyn io::Read + 'a>> {
        let data = self
            .state()
            .objects
            .get(&(db.to_string(), file.to_string()))
            .map(|o| o.0.clone())
            .ok_or_else(|| Error::Input {
                what: "object",
                path: PathBuf::from(format!("memory:{db}/{file}")),
                source: io::Error::from(io::ErrorKind::NotFound),
            })?;
        Ok(Box::new(io::Cursor::new(data)))
    }

    fn delete(&self, db: &str, file: &str) -> Result<()> {
        self.state()
            .objects
            .remove(&(db.to_string(), file.to_string()));
        Ok(())
    }

    /// Abandoned writes, and what an interrupted commit leaves (data first, as in S3): a data
    /// object without its sidecar, a sidecar or manifest without data.
    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let files = self.files(db)?;
        let mut st = self.state();
        let abandoned: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, (d, _))| d == db)
            .map(|(id, _)| *id)
            .collect();
        for id in abandoned {
            if let Some((_, f)) = st.pending.remove(&id) {
                removed.push(format!("abandoned write of {f}"));
            }
        }
        for f in catalog::debris_in(db, &files) {
            st.objects.remove(&(db.to_string(), f.name.clone()));
            removed.push(format!("orphaned {}", f.name));
        }
        Ok(removed)
    }
}
