//! S3-compatible buckets as a [`Storage`]: the protocol (signing, multipart uploads, retries,
//! Object Lock) is `crate::s3`'s; this maps the trait onto it and its failures into the run's
//! errors.

use std::io::{Read, Write};

use chrono::{DateTime, Utc};

use super::{ObjectWriter, Storage, StoredFile};
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

    fn describe(&self, db: &str, file: &str) -> String {
        self.describe_key(db, file)
    }

    fn databases(&self) -> Result<Vec<String>> {
        Ok(self.database_names()?)
    }

    fn files(&self, db: &str) -> Result<Vec<StoredFile>> {
        Ok(self.object_files(db)?)
    }

    fn create(
        &self,
        db: &str,
        file: &str,
        size_hint: Option<u64>,
    ) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(self.create_object(db, file, size_hint)?))
    }

    fn put(&self, db: &str, file: &str, bytes: &[u8]) -> Result<()> {
        Ok(self.put_file(db, file, bytes)?)
    }

    fn open<'a>(&'a self, db: &str, file: &str) -> Result<Box<dyn Read + 'a>> {
        Ok(Box::new(self.open_object(db, file)?))
    }

    /// S3's own download: resumed with a Range, with progress on a terminal.
    fn fetch(&self, db: &str, file: &str, out: &mut dyn Write) -> Result<u64> {
        Ok(self.fetch_object(db, file, out)?)
    }

    fn delete(&self, db: &str, file: &str) -> Result<()> {
        Ok(self.delete_file(db, file)?)
    }

    fn locked_until(&self, db: &str, file: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.lock_until(db, file)?)
    }

    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>> {
        Ok(self.clean_debris(db)?)
    }
}
