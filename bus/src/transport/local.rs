//! The in-process transport: buses of one process that name the same domain meet
//! in a [`Domain`], and a published buffer is handed to every matching subscriber
//! by reference (never copied).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use super::{
    check_key_expr, intersects, BoxFuture, Declaration, Query, QueryHandler, RawPublisher,
    Received, SampleHandler, SendBuf, Transport,
};
use crate::BusError;

/// Registrations of one kind in a domain, keyed by a unique id.
struct Table<T> {
    entries: RwLock<Vec<(u64, String, T)>>,
}

impl<T: Clone> Table<T> {
    fn new() -> Self {
        Table {
            entries: RwLock::new(Vec::new()),
        }
    }

    fn insert(&self, id: u64, key: &str, value: T) {
        self.write().push((id, key.to_string(), value));
    }

    fn remove(&self, id: u64) {
        self.write().retain(|(entry, _, _)| *entry != id);
    }

    fn matching(&self, key_expr: &str) -> Vec<(String, T)> {
        self.read()
            .iter()
            .filter(|(_, key, _)| intersects(key, key_expr))
            .map(|(_, key, value)| (key.clone(), value.clone()))
            .collect()
    }

    // A handler that panicked while a lock was held cannot leave a table half
    // written (every write is one push or retain), so poisoning is ignored.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(u64, String, T)>> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<(u64, String, T)>> {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Everything the buses of one local domain share.
struct Domain {
    next_id: AtomicU64,
    /// Bumped on every subscriber change so publishers can cache their matches.
    generation: AtomicU64,
    subscribers: Table<SampleHandler>,
    queryables: Table<QueryHandler>,
    tokens: Table<()>,
}

impl Domain {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

fn domain(name: &str) -> Arc<Domain> {
    static DOMAINS: OnceLock<Mutex<HashMap<String, Weak<Domain>>>> = OnceLock::new();
    let mut domains = DOMAINS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(domain) = domains.get(name).and_then(Weak::upgrade) {
        return domain;
    }
    let domain = Arc::new(Domain {
        next_id: AtomicU64::new(1),
        generation: AtomicU64::new(0),
        subscribers: Table::new(),
        queryables: Table::new(),
        tokens: Table::new(),
    });
    domains.retain(|_, weak| weak.strong_count() > 0);
    domains.insert(name.to_string(), Arc::downgrade(&domain));
    domain
}

/// The in-process transport.
pub(crate) struct LocalTransport {
    domain: Arc<Domain>,
    name: String,
}

impl std::fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTransport")
            .field("domain", &self.name)
            .finish()
    }
}

impl LocalTransport {
    pub(crate) fn open(domain_name: &str) -> LocalTransport {
        LocalTransport {
            domain: domain(domain_name),
            name: domain_name.to_string(),
        }
    }
}

/// Removes a registration when dropped.
struct Registration {
    domain: Arc<Domain>,
    id: u64,
    table: fn(&Domain) -> &dyn Unregister,
}

trait Unregister {
    fn unregister(&self, id: u64);
}

impl<T: Clone> Unregister for Table<T> {
    fn unregister(&self, id: u64) {
        self.remove(id);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        (self.table)(&self.domain).unregister(self.id);
        self.domain.generation.fetch_add(1, Ordering::Release);
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}

impl Declaration for Registration {}

struct LocalPublisher {
    key: Arc<str>,
    domain: Arc<Domain>,
    /// Subscribers matching `key`, valid while the domain's generation is unchanged.
    cache: Mutex<(u64, Vec<SampleHandler>)>,
}

impl std::fmt::Debug for LocalPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPublisher")
            .field("key", &self.key)
            .finish()
    }
}

impl RawPublisher for LocalPublisher {
    fn key(&self) -> &str {
        &self.key
    }

    fn loan(&self, len: usize) -> Result<SendBuf, BusError> {
        Ok(SendBuf::heap(len))
    }

    fn put(&self, buf: SendBuf) -> Result<(), BusError> {
        let bytes = match buf {
            SendBuf::Heap(bytes) => bytes,
            SendBuf::Vec(_) | SendBuf::Shm(_) => {
                return Err(BusError::Publish {
                    key: self.key.to_string(),
                    reason: "the local transport sends only buffers it lent".into(),
                })
            }
        };
        let payload = Arc::new(bytes);
        // The cache stays locked while handlers run (they only queue the sample), so
        // the data path allocates nothing but the shared payload's Arc.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.domain.generation.load(Ordering::Acquire);
        if cache.0 != generation {
            let matches = self.domain.subscribers.matching(&self.key);
            *cache = (
                generation,
                matches.into_iter().map(|(_, handler)| handler).collect(),
            );
        }
        for handler in &cache.1 {
            handler(Received::Local {
                key: self.key.clone(),
                payload: payload.clone(),
            });
        }
        Ok(())
    }

    fn has_subscribers(&self) -> Result<bool, BusError> {
        Ok(!self.domain.subscribers.matching(&self.key).is_empty())
    }
}

impl LocalTransport {
    fn register<T: Clone>(
        &self,
        table: fn(&Domain) -> &Table<T>,
        unregister: fn(&Domain) -> &dyn Unregister,
        key: &str,
        value: T,
    ) -> Box<dyn Declaration> {
        let id = self.domain.id();
        table(&self.domain).insert(id, key, value);
        self.domain.generation.fetch_add(1, Ordering::Release);
        Box::new(Registration {
            domain: self.domain.clone(),
            id,
            table: unregister,
        })
    }
}

impl Transport for LocalTransport {
    fn name(&self) -> &'static str {
        "local"
    }

    fn declare_publisher(&self, key: &str) -> Result<Box<dyn RawPublisher>, BusError> {
        check_key_expr("publisher", key)?;
        Ok(Box::new(LocalPublisher {
            key: Arc::from(key),
            domain: self.domain.clone(),
            cache: Mutex::new((u64::MAX, Vec::new())),
        }))
    }

    fn declare_subscriber(
        &self,
        key_expr: &str,
        handler: SampleHandler,
    ) -> Result<Box<dyn Declaration>, BusError> {
        check_key_expr("subscriber", key_expr)?;
        Ok(self.register(|d| &d.subscribers, |d| &d.subscribers, key_expr, handler))
    }

    fn declare_queryable(
        &self,
        key_expr: &str,
        handler: QueryHandler,
    ) -> Result<Box<dyn Declaration>, BusError> {
        check_key_expr("queryable", key_expr)?;
        Ok(self.register(|d| &d.queryables, |d| &d.queryables, key_expr, handler))
    }

    fn get<'a>(
        &'a self,
        key_expr: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>, BusError>> {
        Box::pin(async move {
            check_key_expr("query", key_expr)?;
            let queryables = self.domain.queryables.matching(key_expr);
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            for (key, handler) in queryables {
                let tx = tx.clone();
                // Each query owns a sender: when every queryable has replied or dropped
                // its query, the channel closes and the caller stops waiting.
                handler(Query::new(key, payload.clone(), move |bytes| {
                    tx.send(bytes).map_err(|_| BusError::Query {
                        key: "local".into(),
                        reason: "the caller stopped waiting".into(),
                    })
                }));
            }
            drop(tx);
            let mut rx = rx;
            let mut replies = Vec::new();
            let deadline = tokio::time::Instant::now() + timeout;
            while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                replies.push(reply);
            }
            Ok(replies)
        })
    }

    fn declare_token(&self, key: &str) -> Result<Box<dyn Declaration>, BusError> {
        check_key_expr("liveliness token", key)?;
        Ok(self.register(|d| &d.tokens, |d| &d.tokens, key, ()))
    }

    fn flush(&self, _timeout: Duration) -> BoxFuture<'_, Result<bool, BusError>> {
        // Local payloads live as long as a receiver holds them: nothing to wait for.
        Box::pin(async { Ok(true) })
    }

    fn live_tokens<'a>(
        &'a self,
        key_expr: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, BusError>> {
        Box::pin(async move {
            check_key_expr("liveliness query", key_expr)?;
            let mut keys: Vec<String> = self
                .domain
                .tokens
                .matching(key_expr)
                .into_iter()
                .map(|(key, _)| key)
                .collect();
            keys.sort();
            keys.dedup();
            Ok(keys)
        })
    }
}
