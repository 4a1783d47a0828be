//! S3-compatible buckets as a [`Storage`]: the protocol (signing, multipart uploads, retries,
//! Object Lock) is `crate::s3`'s; this maps the trait onto it and its failures into the run's
//! errors.

use std::io::Read;

use chrono::{DateTime, Utc};

use super::{check_dir, check_key, ObjectWriter, Storage, StoredFile};
use crate::error::Result;
use crate::s3::{S3Store, S3Writer};

impl ObjectWriter for S3Writer {
    fn commit(self: Box<Self>) -> Result<u64> {
        Ok(self.finish()?)
    }
}

impl Storage for S3Store {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn location(&self) -> String {
        self.location_url()
    }

    fn describe_key(&self, key: &str) -> String {
        S3Store::describe_key(self, key)
    }

    fn list(&self, dir: &str) -> Result<Vec<StoredFile>> {
        check_dir(dir)?;
        Ok(self.object_files(dir)?)
    }

    fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        check_dir(dir)?;
        Ok(self.object_dirs(dir)?)
    }

    fn create(&self, key: &str, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        check_key(key)?;
        Ok(Box::new(self.create_object(key, size_hint)?))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        check_key(key)?;
        Ok(self.put_file(key, bytes)?)
    }

    fn open<'a>(&'a self, key: &str) -> Result<Box<dyn Read + 'a>> {
        check_key(key)?;
        Ok(Box::new(self.open_object(key)?))
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        Ok(self.delete_file(key)?)
    }

    fn locked_until(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        check_key(key)?;
        Ok(self.lock_until(key)?)
    }

    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>> {
        Ok(self.clean_debris(db, &self.db_dir(db))?)
    }

    /// A read-only `list-prefixes` location holds its files flat in the prefix.
    fn flat(&self) -> bool {
        self.is_flat()
    }
}
