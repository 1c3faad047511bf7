//! Files stored by content: `blobs/<sha256>` under the data directory.
//!
//! A blob is written to `tmp/` while it is hashed ([`BlobWriter`]), then — once
//! its hash is known and checked — flushed to disk (fsync) and renamed into
//! `blobs/` in one step, and the directory is synced. A reader therefore only
//! ever sees complete blobs; a writer that stops midway (client gone, process
//! killed) leaves at most a file in `tmp/`, which [`BlobStore::open`] clears.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The blob directory.
#[derive(Debug)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

/// Where finishing a blob failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content does not hash to what the client declared.
    #[error("the body's sha256 is {actual}, not the declared {declared}")]
    Mismatch {
        /// What the client said.
        declared: String,
        /// What the body hashes to.
        actual: String,
    },
    /// The disk failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was tried.
        action: &'static str,
        /// On which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BlobError {
    let path = path.to_owned();
    move |source| BlobError::Io {
        action,
        path,
        source,
    }
}

impl BlobStore {
    /// Opens the blob store under `data_dir`, removing what unfinished writes left.
    ///
    /// # Errors
    /// The directories cannot be created or cleared.
    pub fn open(data_dir: &Path) -> Result<BlobStore, BlobError> {
        let blobs = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("clear", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
        Ok(BlobStore { blobs, tmp })
    }

    /// The path of the blob with this sha256 (hex).
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.blobs.join(sha256)
    }

    /// The directory for temporary files.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Files in the temporary directory (tests check that none is left behind).
    pub fn pending_files(&self) -> usize {
        fs::read_dir(&self.tmp).map_or(0, |d| d.count())
    }

    /// The hashes of every stored blob.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn hashes(&self) -> Result<Vec<String>, BlobError> {
        let entries = fs::read_dir(&self.blobs).map_err(io_err("list", &self.blobs))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.blobs))?;
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    /// Removes the blob with this hash.
    ///
    /// # Errors
    /// The file cannot be removed.
    pub fn remove(&self, sha256: &str) -> Result<(), BlobError> {
        let path = self.path(sha256);
        fs::remove_file(&path).map_err(io_err("remove", &path))
    }

    /// Starts a new blob.
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub fn writer(&self) -> Result<BlobWriter, BlobError> {
        let path = self
            .tmp
            .join(format!("upload-{:016x}", rand::random::<u64>()));
        let file = File::create(&path).map_err(io_err("create", &path))?;
        Ok(BlobWriter {
            file,
            path,
            hasher: Sha256::new(),
            size: 0,
            done: false,
        })
    }
}

/// A blob being written: hashed as it goes, invisible until [`BlobWriter::finish`].
/// Dropping it unfinished removes the temporary file.
#[derive(Debug)]
pub struct BlobWriter {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    done: bool,
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its sha256, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl BlobWriter {
    /// Appends `bytes`.
    ///
    /// # Errors
    /// The disk failed.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.file
            .write_all(bytes)
            .map_err(io_err("write", &self.path))?;
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks the hash against `declared` (when given), then makes the blob
    /// durable and visible under its hash.
    ///
    /// # Errors
    /// [`BlobError::Mismatch`] (the temporary file is removed), or the disk failed.
    pub fn finish(
        mut self,
        store: &BlobStore,
        declared: Option<&str>,
    ) -> Result<Stored, BlobError> {
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if let Some(declared) = declared {
            if !declared.eq_ignore_ascii_case(&sha256) {
                return Err(BlobError::Mismatch {
                    declared: declared.to_owned(),
                    actual: sha256,
                });
            }
        }
        self.file.sync_all().map_err(io_err("sync", &self.path))?;
        let target = store.path(&sha256);
        if target.exists() {
            // Same content already stored: nothing to add.
            let _ = fs::remove_file(&self.path);
        } else {
            fs::rename(&self.path, &target).map_err(io_err("store", &target))?;
            File::open(&store.blobs)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync", &store.blobs))?;
        }
        self.done = true;
        Ok(Stored {
            sha256,
            size: self.size,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_by_hash_and_a_wrong_declared_hash_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        w.write(b"hello").unwrap();
        let stored = w.finish(&store, None).unwrap();
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(
            stored,
            Stored {
                sha256: sha.into(),
                size: 5
            }
        );
        assert_eq!(fs::read(store.path(sha)).unwrap(), b"hello");

        let mut w = store.writer().unwrap();
        w.write(b"other").unwrap();
        let err = w.finish(&store, Some(sha)).unwrap_err();
        assert!(matches!(err, BlobError::Mismatch { .. }), "{err}");
        assert_eq!(store.pending_files(), 0);

        let mut w = store.writer().unwrap();
        w.write(b"half").unwrap();
        drop(w);
        assert_eq!(
            store.pending_files(),
            0,
            "an unfinished blob leaves nothing"
        );
    }

    #[test]
    fn opening_clears_what_a_killed_writer_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let w = store.writer().unwrap();
        std::mem::forget(w); // as if the process died mid-upload
        assert_eq!(store.pending_files(), 1);
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(store.pending_files(), 0);
    }
}
