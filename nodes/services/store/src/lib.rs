//! The state services keep across restarts, behind one small trait, [`Store`]:
//! string keys to bytes in a few named tables; read one key, a key prefix or a
//! run of keys from a start; write a batch atomically.
//!
//! [`RedbStore`] keeps it in one [`redb`] file under the service's data
//! directory: embedded, no server. Every batch is one redb write transaction,
//! committed durably (fsync) before [`Store::write`] returns, so a crash leaves
//! either the whole batch or none of it. A server-backed store can implement the
//! same trait when users outgrow one machine.

use std::path::{Path, PathBuf};

use redb::{ReadableTable as _, TableDefinition};

/// A table, by name. A service declares its tables as constants and opens the
/// store with all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Table(pub &'static str);

impl Table {
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

    /// At most `limit` entries with keys after `after` (all keys when `None`),
    /// in key order.
    ///
    /// # Errors
    /// The store cannot be read.
    fn scan_after(
        &self,
        table: Table,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// The last entry in key order, if any.
    ///
    /// # Errors
    /// The store cannot be read.
    fn last(&self, table: Table) -> Result<Option<(String, Vec<u8>)>, StoreError>;

    /// How many entries `table` holds.
    ///
    /// # Errors
    /// The store cannot be read.
    fn len(&self, table: Table) -> Result<u64, StoreError>;

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
    /// Opens (creating when missing) the store at `path`, with `tables`.
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

    fn scan_after(
        &self,
        table: Table,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        use std::ops::Bound;
        let txn = self.db.begin_read().map_err(|e| self.error("read", e))?;
        let t = txn
            .open_table(table.def())
            .map_err(|e| self.error("read", e))?;
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for entry in t
            .range::<&str>((start, Bound::Unbounded))
            .map_err(|e| self.error("read", e))?
            .take(limit)
        {
            let (key, value) = entry.map_err(|e| self.error("read", e))?;
            out.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }

    fn last(&self, table: Table) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error("read", e))?;
        let t = txn
            .open_table(table.def())
            .map_err(|e| self.error("read", e))?;
        let last = t.last().map_err(|e| self.error("read", e))?;
        Ok(last.map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
    }

    fn len(&self, table: Table) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata as _;
        let txn = self.db.begin_read().map_err(|e| self.error("read", e))?;
        let t = txn
            .open_table(table.def())
            .map_err(|e| self.error("read", e))?;
        t.len().map_err(|e| self.error("read", e))
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

    const MODELS: Table = Table("models");
    const VERSIONS: Table = Table("versions");

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

    #[test]
    fn runs_after_a_key_and_the_last_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb"), &[VERSIONS]).unwrap();
        assert_eq!(store.last(VERSIONS).unwrap(), None);
        store
            .write(
                (1..=5)
                    .map(|i| Write::Put(VERSIONS, format!("{i:04}"), vec![i]))
                    .collect(),
            )
            .unwrap();
        let keys = |v: Vec<(String, Vec<u8>)>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(
            keys(store.scan_after(VERSIONS, Some("0002"), 2).unwrap()),
            ["0003", "0004"]
        );
        assert_eq!(keys(store.scan_after(VERSIONS, None, 1).unwrap()), ["0001"]);
        assert_eq!(store.last(VERSIONS).unwrap().unwrap().0, "0005");
        assert_eq!(store.len(VERSIONS).unwrap(), 5);
    }
}
