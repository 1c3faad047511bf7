//! A service's durable state behind one small trait, [`Store`]: string keys to
//! bytes in a few named [`Table`]s, read one key or a key prefix, and write a
//! batch atomically. The registry keeps its models here, the training service its jobs.
//!
//! [`RedbStore`] keeps it in one [`redb`] file under the data directory. Every
//! batch is one redb write transaction, committed durably (fsync) before
//! [`Store::write`] returns, so a crash leaves either the whole batch or none of it.

use std::path::{Path, PathBuf};

use redb::TableDefinition;

/// A table of a store: a name, fixed by the service that owns the store.
///
/// ```
/// use evospike_http::store::Table;
/// const JOBS: Table = Table::new("jobs");
/// assert_eq!(JOBS.name(), "jobs");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Table(&'static str);

impl Table {
    /// The table called `name`.
    pub const fn new(name: &'static str) -> Table {
        Table(name)
    }

    /// Its name.
    pub const fn name(self) -> &'static str {
        self.0
    }

    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.0)
    }
}

/// One change in a batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// Sets `key` to the bytes.
    Put(Table, String, Vec<u8>),
    /// Removes `key`.
    Delete(Table, String),
}

/// The store failed.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: cannot {action}")]
pub struct StoreError {
    /// The store's file.
    pub path: PathBuf,
    /// What failed (`open`, `read`, `write`).
    pub action: &'static str,
    /// Why.
    #[source]
    pub source: Box<redb::Error>,
}

/// Durable key-value tables.
pub trait Store: Send + Sync + 'static {
    /// The value of `key`, if any.
    ///
    /// # Errors
    /// The store cannot be read.
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every entry whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// The store cannot be read.
    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Applies `batch` atomically and durably.
    ///
    /// # Errors
    /// The store cannot be written; nothing of the batch was applied.
    fn write(&self, batch: Vec<Write>) -> Result<(), StoreError>;
}

/// A [`Store`] in one redb file.
#[derive(Debug)]
pub struct RedbStore {
    path: PathBuf,
    db: redb::Database,
}

impl RedbStore {
    /// Opens (creating when missing) the store at `path` with `tables`.
    ///
    /// # Errors
    /// The file cannot be opened or is not a redb database, or another process
    /// has it open.
    pub fn open(path: &Path, tables: &[Table]) -> Result<RedbStore, StoreError> {
        let fail = |source: redb::Error| StoreError {
            path: path.to_owned(),
            action: "open",
            source: Box::new(source),
        };
        let db = redb::Database::create(path).map_err(|e| fail(e.into()))?;
        // Create the tables once so reads never meet a missing one.
        let txn = db.begin_write().map_err(|e| fail(e.into()))?;
        for &table in tables {
            txn.open_table(table.def()).map_err(|e| fail(e.into()))?;
        }
        txn.commit().map_err(|e| fail(e.into()))?;
        Ok(RedbStore {
            path: path.to_owned(),
            db,
        })
    }

    fn error(&self, action: &'static str, source: impl Into<redb::Error>) -> StoreError {
        StoreError {
            path: self.path.clone(),
            action,
            source: Box::new(source.into()),
        }
    }
}

impl Store for RedbStore {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error("read", e))?;
        let t = txn
            .open_table(table.def())
            .map_err(|e| self.error("read", e))?;
        let value = t.get(key).map_err(|e| self.error("read", e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error("read", e))?;
        let t = txn
            .open_table(table.def())
            .map_err(|e| self.error("read", e))?;
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(|e| self.error("read", e))? {
            let (key, value) = entry.map_err(|e| self.error("read", e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            out.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }

    fn write(&self, batch: Vec<Write>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.error("write", e))?;
        for write in &batch {
            match write {
                Write::Put(table, key, value) => {
                    let mut t = txn
                        .open_table(table.def())
                        .map_err(|e| self.error("write", e))?;
                    t.insert(key.as_str(), value.as_slice())
                        .map_err(|e| self.error("write", e))?;
                }
                Write::Delete(table, key) => {
                    let mut t = txn
                        .open_table(table.def())
                        .map_err(|e| self.error("write", e))?;
                    t.remove(key.as_str()).map_err(|e| self.error("write", e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.error("write", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: Table = Table::new("models");
    const VERSIONS: Table = Table::new("versions");

    #[test]
    fn batches_survive_reopening_and_scans_stop_at_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = RedbStore::open(&path, &[MODELS, VERSIONS]).unwrap();
            store
                .write(vec![
                    Write::Put(VERSIONS, "a/1".into(), b"one".to_vec()),
                    Write::Put(VERSIONS, "a/2".into(), b"two".to_vec()),
                    Write::Put(VERSIONS, "ab/1".into(), b"other".to_vec()),
                ])
                .unwrap();
            store
                .write(vec![Write::Delete(VERSIONS, "a/2".into())])
                .unwrap();
        }
        let store = RedbStore::open(&path, &[MODELS, VERSIONS]).unwrap();
        let a: Vec<_> = store.scan(VERSIONS, "a/").unwrap();
        assert_eq!(a, vec![("a/1".to_owned(), b"one".to_vec())]);
        assert_eq!(
            store.get(VERSIONS, "ab/1").unwrap(),
            Some(b"other".to_vec())
        );
        assert_eq!(store.get(MODELS, "a").unwrap(), None);
    }
}
