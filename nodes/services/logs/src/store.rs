//! The stored log: records in order of arrival, numbered from 1, in an embedded
//! store; the oldest go first past a maximum count.

use std::path::Path;

use evospike_schemas::proto::{LogLevel, LogPage, LogQuery, LogRecord, StoredLog};
use evospike_store::{RedbStore, Store, StoreError, Table, Write};
use prost::Message as _;

/// `seq` (20 digits, so key order is number order) → LogRecord (protobuf).
const LOGS: Table = Table("logs");

/// How many records a query returns when it does not say.
pub const DEFAULT_LIMIT: u32 = 1000;
/// How many records a query returns at most.
pub const MAX_LIMIT: u32 = 10_000;

/// A query or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The query is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key(seq: u64) -> String {
    format!("{seq:020}")
}

/// The level a query names, or all levels for `""`.
pub fn parse_level(text: &str) -> Result<LogLevel, LogError> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "" | "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "error" => LogLevel::Error,
        other => {
            return Err(LogError::Invalid(format!(
                "`{other}` is not a log level (trace, debug, info, warn, error)"
            )))
        }
    })
}

/// The stored log.
#[derive(Debug)]
pub struct LogStore {
    store: RedbStore,
    next: u64,
    max_records: u64,
}

impl LogStore {
    /// Opens (creating when missing) the log in `dir`, keeping at most
    /// `max_records` records.
    ///
    /// # Errors
    /// The store cannot be opened.
    pub fn open(dir: &Path, max_records: u64) -> Result<LogStore, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            LogError::Invalid(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
        let store = RedbStore::open(&dir.join("logs.redb"), &[LOGS])?;
        let next = match store.last(LOGS)? {
            Some((k, _)) => k.parse::<u64>().unwrap_or(0) + 1,
            None => 1,
        };
        Ok(LogStore {
            store,
            next,
            max_records: max_records.max(1),
        })
    }

    /// Stores `records` in one durable write, dropping the oldest past the
    /// maximum; returns the sequence number of the last one.
    ///
    /// # Errors
    /// The store cannot be written; nothing was stored.
    pub fn append(&mut self, records: &[LogRecord]) -> Result<u64, LogError> {
        let mut batch: Vec<Write> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Write::Put(LOGS, key(self.next + i as u64), r.encode_to_vec()))
            .collect();
        let held = self.store.len(LOGS)? + records.len() as u64;
        if held > self.max_records {
            let excess = usize::try_from(held - self.max_records).unwrap_or(usize::MAX);
            batch.extend(
                self.store
                    .scan_after(LOGS, None, excess)?
                    .into_iter()
                    .map(|(k, _)| Write::Delete(LOGS, k)),
            );
        }
        self.store.write(batch)?;
        self.next += records.len() as u64;
        Ok(self.next - 1)
    }

    /// The records `query` asks for, oldest first.
    ///
    /// # Errors
    /// A malformed query ([`LogError::Invalid`]), or the store cannot be read.
    pub fn query(&self, query: &LogQuery) -> Result<LogPage, LogError> {
        let min_level = parse_level(&query.level)? as i32;
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        } as usize;
        let mut page = LogPage {
            logs: Vec::new(),
            last_seq: query.after_seq,
        };
        let mut after = (query.after_seq > 0).then(|| key(query.after_seq));
        loop {
            let chunk = self.store.scan_after(LOGS, after.as_deref(), 4096)?;
            let Some((last_key, _)) = chunk.last() else {
                break;
            };
            after = Some(last_key.clone());
            for (k, bytes) in chunk {
                let seq = k.parse::<u64>().unwrap_or(0);
                page.last_seq = seq;
                let Ok(record) = LogRecord::decode(bytes.as_slice()) else {
                    continue;
                };
                let wanted = (query.node.is_empty() || record.node == query.node)
                    && record.level >= min_level
                    && record.timestamp_unix_ns >= query.since_unix_ns;
                if wanted {
                    page.logs.push(StoredLog {
                        seq,
                        record: Some(record),
                    });
                    if page.logs.len() == limit {
                        return Ok(page);
                    }
                }
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(node: &str, level: LogLevel, t: u64, message: &str) -> LogRecord {
        LogRecord {
            timestamp_unix_ns: t,
            level: level as i32,
            node: node.into(),
            target: "test".into(),
            message: message.into(),
            fields: Default::default(),
        }
    }

    #[test]
    fn records_survive_a_reopen_in_order_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = LogStore::open(dir.path(), 100).unwrap();
            log.append(&[
                record("a", LogLevel::Info, 10, "one"),
                record("b", LogLevel::Error, 20, "two"),
            ])
            .unwrap();
        }
        let mut log = LogStore::open(dir.path(), 100).unwrap();
        assert_eq!(
            log.append(&[record("a", LogLevel::Warn, 30, "three")])
                .unwrap(),
            3
        );
        let all = log.query(&LogQuery::default()).unwrap();
        let messages: Vec<_> = all
            .logs
            .iter()
            .map(|l| l.record.as_ref().unwrap().message.as_str())
            .collect();
        assert_eq!(messages, ["one", "two", "three"]);
        assert_eq!(all.last_seq, 3);
        let a = log
            .query(&LogQuery {
                node: "a".into(),
                level: "warn".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(a.logs.len(), 1);
        assert_eq!(a.logs[0].seq, 3);
        let since = log
            .query(&LogQuery {
                since_unix_ns: 15,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(since.logs.len(), 2);
        let follow = log
            .query(&LogQuery {
                after_seq: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(follow.logs.len(), 1);
        assert!(matches!(
            log.query(&LogQuery {
                level: "loud".into(),
                ..Default::default()
            }),
            Err(LogError::Invalid(_))
        ));
    }

    #[test]
    fn the_oldest_go_past_the_maximum_and_numbers_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path(), 3).unwrap();
        for t in 0..5 {
            log.append(&[record("a", LogLevel::Info, t, &t.to_string())])
                .unwrap();
        }
        let page = log.query(&LogQuery::default()).unwrap();
        let seqs: Vec<u64> = page.logs.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        let page = log
            .query(&LogQuery {
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.logs.len(), 2);
        assert_eq!(page.last_seq, 4);
    }
}
