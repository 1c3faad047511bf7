//! The model cache: at most `capacity` models, least recently used out first.
//!
//! Two kinds of key:
//!
//! - a **request key** names what a request asked for (a model and a version, an
//!   alias, or "the latest");
//! - an **entry key** names what was loaded (a model and its exact version). A
//!   request key resolves to an entry key once its model is loaded.
//!
//! The rules:
//!
//! - **Single flight.** Requests for a key that is loading wait for that load; a
//!   model is fetched once however many ask at the same time.
//! - **Pinning.** A request holds a [`Lease`] on its model while it runs, and a
//!   request waiting for a load holds a pin on the model to be; a model with pins
//!   is never evicted, nor is one still loading (it is not in the cache yet).
//! - **Over capacity.** When every cached model is pinned, a new model is still
//!   admitted and the cache holds more than `capacity` models for a while; as
//!   soon as a lease ends, the least recently used unpinned models are evicted
//!   until it fits again. Requests never wait for room and never fail for it.
//! - A failed load caches nothing: the next request tries again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use evospike_http::ApiError;
use tokio::sync::watch;

/// What a load produces: the entry key and the value, or why it failed.
type Loaded<V> = Result<(String, V), ApiError>;

/// The cache's counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered from the cache.
    pub hits: AtomicU64,
    /// Requests that had to wait for a load (their own or another's).
    pub misses: AtomicU64,
    /// Models evicted.
    pub evictions: AtomicU64,
    /// Models loaded into the cache (a load that resolved to a model already
    /// cached does not count).
    pub loads: AtomicU64,
    /// Loads failed.
    pub load_failures: AtomicU64,
}

struct Entry<V> {
    value: V,
    pins: u32,
    last_used: u64,
}

struct Pending<V> {
    pins: u32,
    rx: watch::Receiver<Option<Loaded<V>>>,
}

struct State<V> {
    entries: HashMap<String, Entry<V>>,
    resolved: HashMap<String, String>,
    pending: HashMap<String, Pending<V>>,
    clock: u64,
}

/// An LRU cache of loaded models with pinning and single-flight loads (see the
/// module docs).
pub struct Cache<V> {
    capacity: usize,
    state: Mutex<State<V>>,
    stats: Stats,
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A model in use: it stays cached while the lease lives.
pub struct Lease<V: Clone + Send + Sync + 'static> {
    cache: Arc<Cache<V>>,
    key: String,
    value: V,
}

impl<V: Clone + Send + Sync + 'static> std::fmt::Debug for Lease<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish()
    }
}

impl<V: Clone + Send + Sync + 'static> Lease<V> {
    /// The model.
    pub fn value(&self) -> &V {
        &self.value
    }
}

impl<V: Clone + Send + Sync + 'static> Drop for Lease<V> {
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        if let Some(entry) = state.entries.get_mut(&self.key) {
            entry.pins = entry.pins.saturating_sub(1);
        }
        self.cache.trim(&mut state);
    }
}

/// A request waiting for a load; it holds a pin on the model to be, given back
/// if the request is dropped before it takes its lease.
struct Waiter<V: Clone + Send + Sync + 'static> {
    cache: Arc<Cache<V>>,
    key: String,
    rx: watch::Receiver<Option<Loaded<V>>>,
    done: bool,
}

impl<V: Clone + Send + Sync + 'static> Waiter<V> {
    async fn wait(mut self) -> Result<Lease<V>, ApiError> {
        let result = match self.rx.wait_for(Option::is_some).await {
            Ok(value) => value
                .clone()
                .unwrap_or_else(|| Err(ApiError::unavailable("the model's load was abandoned", 1))),
            Err(_) => Err(ApiError::unavailable("the model's load was abandoned", 1)),
        };
        self.done = true;
        let (key, value) = result?;
        Ok(Lease {
            cache: self.cache.clone(),
            key,
            value,
        })
    }
}

impl<V: Clone + Send + Sync + 'static> Drop for Waiter<V> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.cache.lock();
        match state.pending.get_mut(&self.key) {
            Some(p) if p.rx.same_channel(&self.rx) => p.pins = p.pins.saturating_sub(1),
            _ => {
                // The load finished (under the lock, before this): the pin moved
                // to the entry.
                let loaded = self.rx.borrow().clone();
                if let Some(Ok((key, _))) = loaded {
                    if let Some(entry) = state.entries.get_mut(&key) {
                        entry.pins = entry.pins.saturating_sub(1);
                    }
                    self.cache.trim(&mut state);
                }
            }
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// A cache of at most `capacity` models (at least 1).
    pub fn new(capacity: usize) -> Arc<Cache<V>> {
        Arc::new(Cache {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                entries: HashMap::new(),
                resolved: HashMap::new(),
                pending: HashMap::new(),
                clock: 0,
            }),
            stats: Stats::default(),
        })
    }

    /// Its size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Its counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<V>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model `key` resolves to, leased: from the cache when it is there
    /// (unless `refresh`), else from `load` — run once for all who ask while it
    /// runs, as a task of its own, so a caller that gives up does not cancel it.
    /// `load` yields the model's entry key and the model.
    ///
    /// # Errors
    /// The load's error.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        refresh: bool,
        load: F,
    ) -> Result<Lease<V>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Loaded<V>> + Send + 'static,
    {
        let waiter = {
            let mut state = self.lock();
            if !refresh {
                if let Some(lease) = self.hit(&mut state, key) {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(lease);
                }
            }
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            let rx = match state.pending.get_mut(key) {
                Some(pending) => {
                    pending.pins += 1;
                    pending.rx.clone()
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    state.pending.insert(
                        key.to_owned(),
                        Pending {
                            pins: 1,
                            rx: rx.clone(),
                        },
                    );
                    let job = tokio::spawn(load());
                    let cache = self.clone();
                    let key = key.to_owned();
                    tokio::spawn(async move {
                        let result = match job.await {
                            Ok(result) => result,
                            Err(err) => Err(ApiError::internal(&err)),
                        };
                        cache.finish(&key, &tx, result);
                    });
                    rx
                }
            };
            Waiter {
                cache: self.clone(),
                key: key.to_owned(),
                rx,
                done: false,
            }
        };
        waiter.wait().await
    }

    fn hit(self: &Arc<Self>, state: &mut State<V>, key: &str) -> Option<Lease<V>> {
        let entry_key = state.resolved.get(key)?.clone();
        state.clock += 1;
        let clock = state.clock;
        let entry = state.entries.get_mut(&entry_key)?;
        entry.pins += 1;
        entry.last_used = clock;
        Some(Lease {
            cache: self.clone(),
            key: entry_key,
            value: entry.value.clone(),
        })
    }

    /// A load ended: its waiters' pins move to the entry, and they are told.
    fn finish(&self, key: &str, tx: &watch::Sender<Option<Loaded<V>>>, result: Loaded<V>) {
        let mut state = self.lock();
        let pins = match state.pending.get(key) {
            Some(p) if p.rx.same_channel(&tx.subscribe()) => {
                state.pending.remove(key).map_or(0, |p| p.pins)
            }
            _ => 0,
        };
        let result = match result {
            Ok((entry_key, value)) => {
                if !state.entries.contains_key(&entry_key) {
                    // Not when the key resolved to a model already cached.
                    self.stats.loads.fetch_add(1, Ordering::Relaxed);
                }
                state.clock += 1;
                let clock = state.clock;
                let entry = state.entries.entry(entry_key.clone()).or_insert(Entry {
                    value,
                    pins: 0,
                    last_used: clock,
                });
                entry.pins += pins;
                entry.last_used = clock;
                let value = entry.value.clone();
                state.resolved.insert(key.to_owned(), entry_key.clone());
                Ok((entry_key, value))
            }
            Err(err) => {
                self.stats.load_failures.fetch_add(1, Ordering::Relaxed);
                Err(err)
            }
        };
        // Sent under the lock, so that a waiter dropped from now on finds its pin
        // on the entry.
        tx.send_replace(Some(result));
        self.trim(&mut state);
    }

    /// Evicts least recently used unpinned models while over capacity.
    fn trim(&self, state: &mut State<V>) {
        while state.entries.len() > self.capacity {
            let victim = state
                .entries
                .iter()
                .filter(|(_, e)| e.pins == 0)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            state.entries.remove(&victim);
            state.resolved.retain(|_, v| *v != victim);
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(model = %victim, "evicted from the model cache");
        }
    }

    /// The model under entry key `key`, if cached (it is not leased).
    pub fn cached(&self, key: &str) -> Option<V> {
        self.lock().entries.get(key).map(|e| e.value.clone())
    }

    /// Every cached model with its pins, most recently used first.
    pub fn list(&self) -> Vec<(V, u32)> {
        let state = self.lock();
        let mut entries: Vec<_> = state.entries.values().collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        entries.iter().map(|e| (e.value.clone(), e.pins)).collect()
    }

    /// Models cached now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    type Loads = Arc<AtomicUsize>;

    fn loader(
        loads: &Loads,
        entry: &str,
        delay_ms: u64,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Loaded<String>> + Send>> {
        let (loads, entry) = (loads.clone(), entry.to_owned());
        move || {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                loads.fetch_add(1, Ordering::SeqCst);
                if entry == "broken" {
                    return Err(ApiError::not_found("no such model"));
                }
                Ok((entry.clone(), format!("model {entry}")))
            })
        }
    }

    #[tokio::test]
    async fn concurrent_requests_load_a_model_once() {
        let cache = Cache::<String>::new(2);
        let loads = Loads::default();
        let gets = (0..8).map(|_| {
            let (cache, load) = (cache.clone(), loader(&loads, "a/1", 20));
            async move { cache.get("a", false, load).await }
        });
        let leases = futures_join(gets).await;
        assert!(leases
            .iter()
            .all(|l| l.as_ref().unwrap().value() == "model a/1"));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        drop(leases);
        let again = cache
            .get("a", false, loader(&loads, "a/1", 0))
            .await
            .unwrap();
        assert_eq!(again.value(), "model a/1");
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().hits.load(Ordering::SeqCst), 1);
        // Another key (an alias, say) resolving to the same model shares its entry.
        let alias = cache
            .get("a@prod", false, loader(&loads, "a/1", 0))
            .await
            .unwrap();
        assert_eq!(alias.value(), "model a/1");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.stats().loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_least_recently_used_unpinned_model_goes_first() {
        let cache = Cache::<String>::new(2);
        let loads = Loads::default();
        let a = cache
            .get("a", false, loader(&loads, "a/1", 0))
            .await
            .unwrap();
        drop(
            cache
                .get("b", false, loader(&loads, "b/1", 0))
                .await
                .unwrap(),
        );
        // a is in use: loading c must evict b, not a.
        drop(
            cache
                .get("c", false, loader(&loads, "c/1", 0))
                .await
                .unwrap(),
        );
        assert!(cache.cached("a/1").is_some());
        assert!(cache.cached("b/1").is_none());
        assert_eq!(cache.stats().evictions.load(Ordering::SeqCst), 1);
        drop(a);
        // Now a is the least recently used.
        drop(
            cache
                .get("c", false, loader(&loads, "c/1", 0))
                .await
                .unwrap(),
        );
        drop(
            cache
                .get("d", false, loader(&loads, "d/1", 0))
                .await
                .unwrap(),
        );
        assert!(cache.cached("a/1").is_none());
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn pinned_models_overflow_the_cache_until_released() {
        let cache = Cache::<String>::new(1);
        let loads = Loads::default();
        let a = cache
            .get("a", false, loader(&loads, "a/1", 0))
            .await
            .unwrap();
        let b = cache
            .get("b", false, loader(&loads, "b/1", 0))
            .await
            .unwrap();
        assert_eq!(cache.len(), 2, "both are in use");
        assert_eq!(a.value(), "model a/1");
        drop(a);
        assert_eq!(cache.len(), 1);
        assert!(cache.cached("b/1").is_some(), "b is still in use");
        drop(b);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_releases_its_pin_and_failures_are_not_cached() {
        let cache = Cache::<String>::new(1);
        let loads = Loads::default();
        let slow = cache.get("a", false, loader(&loads, "a/1", 50));
        assert!(tokio::time::timeout(Duration::from_millis(5), slow)
            .await
            .is_err());
        // The load went on; its only waiter is gone, so it is unpinned.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(
            cache
                .get("b", false, loader(&loads, "b/1", 0))
                .await
                .unwrap(),
        );
        assert!(cache.cached("a/1").is_none(), "a was unpinned and evicted");

        let err = cache
            .get("x", false, loader(&loads, "broken", 0))
            .await
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 404);
        assert!(cache
            .get("x", false, loader(&loads, "broken", 0))
            .await
            .is_err());
        assert_eq!(cache.stats().load_failures.load(Ordering::SeqCst), 2);
    }

    async fn futures_join<T>(
        futures: impl Iterator<Item = impl Future<Output = T> + Send + 'static>,
    ) -> Vec<T>
    where
        T: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}
