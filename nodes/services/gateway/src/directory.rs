//! Where the services are: instances on the bus (from their liveliness tokens)
//! and HTTP services registered with a time to live; which of them to call next
//! (round robin, skipping instances that just failed).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use evospike_bus::Bus;
use evospike_schemas::proto::{ServiceEntry, ServiceInstance};

/// How long an instance that failed a call is skipped, unless a health probe
/// finds it well sooner.
const SKIP_FOR: Duration = Duration::from_secs(30);
/// How long a liveliness query may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_millis(500);

/// One place to send a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A node serving the service's HTTP API over the bus.
    Bus(String),
    /// An HTTP service's base URL.
    Http(String),
}

impl Target {
    /// The instance's name: its node or its URL.
    pub(crate) fn name(&self) -> &str {
        match self {
            Target::Bus(node) => node,
            Target::Http(url) => url,
        }
    }
}

#[derive(Debug)]
struct External {
    url: String,
    expires: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Service → its nodes, with when each was last discovered.
    on_bus: BTreeMap<String, BTreeMap<String, Instant>>,
    discovered: Option<Instant>,
    /// Service → its registered HTTP instances.
    external: BTreeMap<String, Vec<External>>,
    /// Instance → until when it is skipped.
    skipped: HashMap<String, Instant>,
    /// Service → round-robin position.
    next: HashMap<String, usize>,
}

/// The gateway's view of the services.
#[derive(Debug)]
pub(crate) struct Directory {
    bus: Bus,
    state: Mutex<State>,
    /// Discovery older than this is refreshed before routing.
    max_age: Duration,
}

impl Directory {
    pub(crate) fn new(bus: Bus, max_age: Duration) -> Directory {
        Directory {
            bus,
            state: Mutex::new(State::default()),
            max_age,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the bus which service instances are alive. An instance missing
    /// from one answer is kept until it has been missing for `max_age`: a
    /// liveliness query on a busy machine may come back before every token
    /// answered, and one short answer must not empty the directory (a dead
    /// instance is skipped sooner, by the failed call or probe that meets it).
    pub(crate) async fn discover(&self) {
        match self.bus.service_instances("*", DISCOVERY_TIMEOUT).await {
            Ok(found) => {
                let now = Instant::now();
                let max_age = self.max_age;
                let mut state = self.state();
                for (service, node) in found {
                    state.on_bus.entry(service).or_default().insert(node, now);
                }
                state.on_bus.retain(|_, nodes| {
                    nodes.retain(|_, seen| now.duration_since(*seen) <= max_age);
                    !nodes.is_empty()
                });
                state.discovered = Some(now);
            }
            Err(err) => tracing::warn!(%err, "service discovery failed"),
        }
    }

    async fn fresh(&self) {
        let stale = self
            .state()
            .discovered
            .is_none_or(|at| at.elapsed() > self.max_age);
        if stale {
            self.discover().await;
        }
    }

    /// The instances of `service` to try, in order: the ones not skipped, from
    /// the round-robin position on. Rediscovers first when the view is stale or
    /// knows no instance of `service`.
    pub(crate) async fn targets(&self, service: &str) -> Vec<Target> {
        self.fresh().await;
        if self.candidates(service).is_empty() {
            self.discover().await;
        }
        let all = self.candidates(service);
        let mut state = self.state();
        let now = Instant::now();
        state.skipped.retain(|_, until| *until > now);
        let healthy: Vec<Target> = all
            .into_iter()
            .filter(|t| !state.skipped.contains_key(t.name()))
            .collect();
        if healthy.is_empty() {
            return healthy;
        }
        let position = state.next.entry(service.to_owned()).or_insert(0);
        let start = *position % healthy.len();
        *position = position.wrapping_add(1);
        healthy[start..]
            .iter()
            .chain(&healthy[..start])
            .cloned()
            .collect()
    }

    fn candidates(&self, service: &str) -> Vec<Target> {
        let mut state = self.state();
        let now = Instant::now();
        for list in state.external.values_mut() {
            list.retain(|e| e.expires > now);
        }
        let mut targets: Vec<Target> = state
            .on_bus
            .get(service)
            .into_iter()
            .flat_map(BTreeMap::keys)
            .map(|node| Target::Bus(node.clone()))
            .collect();
        targets.extend(
            state
                .external
                .get(service)
                .into_iter()
                .flatten()
                .map(|e| Target::Http(e.url.clone())),
        );
        targets
    }

    /// Skips `target` for a while after a failed call.
    pub(crate) fn mark_failed(&self, target: &Target) {
        self.state()
            .skipped
            .insert(target.name().to_owned(), Instant::now() + SKIP_FOR);
    }

    /// Uses `target` again after it answered a health probe.
    pub(crate) fn mark_ok(&self, target: &Target) {
        self.state().skipped.remove(target.name());
    }

    /// Every known instance of every service (for the health prober).
    pub(crate) fn all_targets(&self) -> Vec<(String, Target)> {
        let names: Vec<String> = {
            let state = self.state();
            state
                .on_bus
                .keys()
                .chain(state.external.keys())
                .cloned()
                .collect()
        };
        let mut all: Vec<(String, Target)> = names
            .into_iter()
            .flat_map(|name| {
                self.candidates(&name)
                    .into_iter()
                    .map(move |t| (name.clone(), t))
            })
            .collect();
        all.sort_by(|a, b| (a.0.as_str(), a.1.name()).cmp(&(b.0.as_str(), b.1.name())));
        all.dedup();
        all
    }

    /// Registers (or renews) an HTTP service instance.
    pub(crate) fn register(&self, service: &str, url: &str, ttl: Duration) {
        let mut state = self.state();
        let list = state.external.entry(service.to_owned()).or_default();
        let expires = Instant::now() + ttl;
        match list.iter_mut().find(|e| e.url == url) {
            Some(existing) => existing.expires = expires,
            None => list.push(External {
                url: url.to_owned(),
                expires,
            }),
        }
        state.skipped.remove(url);
    }

    /// Every service with its instances, by name.
    pub(crate) async fn services(&self) -> Vec<ServiceEntry> {
        self.discover().await;
        let mut names: Vec<String> = {
            let state = self.state();
            state
                .on_bus
                .keys()
                .chain(state.external.keys())
                .cloned()
                .collect()
        };
        names.sort();
        names.dedup();
        let now = Instant::now();
        names
            .into_iter()
            .filter_map(|name| {
                let targets = self.candidates(&name);
                if targets.is_empty() {
                    return None;
                }
                let state = self.state();
                let instances = targets
                    .iter()
                    .map(|t| ServiceInstance {
                        instance: t.name().to_owned(),
                        transport: match t {
                            Target::Bus(_) => "bus",
                            Target::Http(_) => "http",
                        }
                        .to_owned(),
                        healthy: state
                            .skipped
                            .get(t.name())
                            .is_none_or(|until| *until <= now),
                        expires_in_s: match t {
                            Target::Bus(_) => 0,
                            Target::Http(url) => state
                                .external
                                .get(&name)
                                .and_then(|l| l.iter().find(|e| &e.url == url))
                                .map_or(0, |e| {
                                    u32::try_from(
                                        e.expires.saturating_duration_since(now).as_secs(),
                                    )
                                    .unwrap_or(u32::MAX)
                                }),
                        },
                    })
                    .collect();
                Some(ServiceEntry { name, instances })
            })
            .collect()
    }
}
