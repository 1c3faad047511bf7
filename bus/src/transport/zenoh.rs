//! The Zenoh transport: one Zenoh session, plus the shared-memory pools that spike
//! publishers lend their send buffers from (made on first use, sized to the data:
//! [`ShmPools`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zenoh::qos::{CongestionControl, Reliability};
use zenoh::query::{ConsolidationMode, QueryTarget};
use zenoh::{Session, Wait};

use super::shm_pool::ShmPools;
use super::{
    check_key_expr, BoxFuture, Declaration, Query, QueryHandler, RawPublisher, Received,
    SampleHandler, SendBuf, Transport,
};
use crate::{BusConfig, BusError};

/// Pools hold this many times the messages a subscription queue holds.
const IN_FLIGHT_FACTOR: usize = 4;

/// A Zenoh session as an evospike transport.
pub(crate) struct ZenohTransport {
    session: Session,
    shm: Option<Arc<ShmPools>>,
}

impl std::fmt::Debug for ZenohTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohTransport")
            .field("zid", &self.session.zid())
            .field("shm", &self.shm)
            .finish()
    }
}

/// A Zenoh error's text without the source location Zenoh appends to it
/// (`… at /…/zenoh-1.10.2/src/net/runtime/orchestrator.rs:388.`): a user has no
/// use for a dependency's file names. A chained cause (`- Caused by …`) is kept,
/// cleaned the same way.
pub(crate) fn zenoh_reason(err: &dyn std::fmt::Display) -> String {
    let text = err.to_string();
    text.split(" - Caused by ")
        .map(strip_location)
        .collect::<Vec<_>>()
        .join(": ")
}

fn strip_location(text: &str) -> &str {
    let Some(at) = text.rfind(" at ") else {
        return text;
    };
    let location = text[at + 4..].trim_end_matches('.');
    let is_location = location
        .rsplit_once(':')
        .is_some_and(|(file, line)| file.ends_with(".rs") && line.parse::<u32>().is_ok());
    if is_location {
        &text[..at]
    } else {
        text
    }
}

impl ZenohTransport {
    pub(crate) async fn open(config: &BusConfig) -> Result<ZenohTransport, BusError> {
        let open_error = |reason: String| BusError::Open {
            transport: "zenoh",
            connect: config.connect.clone(),
            listen: config.listen.clone(),
            reason,
        };
        let session = zenoh::open(config.to_zenoh()?).await.map_err(|err| {
            let reason = zenoh_reason(&err);
            // Zenoh says only "Unable to connect to any of [...]. Timeout!" when no
            // connect endpoint answered; say which, and what to check.
            if !config.connect.is_empty() && reason.ends_with("Timeout!") {
                BusError::Unreachable {
                    endpoints: config.connect.clone(),
                    timeout: config.connect_timeout,
                }
            } else {
                open_error(reason)
            }
        })?;
        // Nothing is mapped yet: the pools are made when the first buffer is lent.
        // A buffer is held by the subscription queues it waits in plus the one
        // being read; room for four times that many lets the sender run ahead of
        // the receivers' releases instead of collecting garbage at every send. A pool
        // found full anyway makes the sender wait for releases (back-pressure).
        let shm = config.shared_memory.then(|| {
            Arc::new(ShmPools::new(
                config.shm_pool_bytes,
                config
                    .queue_capacity
                    .saturating_add(2)
                    .saturating_mul(IN_FLIGHT_FACTOR),
            ))
        });
        Ok(ZenohTransport { session, shm })
    }
}

#[derive(Debug)]
struct Declared<T: Send + Sync>(#[allow(dead_code)] T);

impl<T: Send + Sync + std::fmt::Debug> Declaration for Declared<T> {}

struct ZenohPublisher {
    key: String,
    publisher: zenoh::pubsub::Publisher<'static>,
    shm: Option<Arc<ShmPools>>,
    /// Whether a pool could not lend (warned once; such buffers go the network path).
    shm_failed: AtomicBool,
}

impl std::fmt::Debug for ZenohPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohPublisher")
            .field("key", &self.key)
            .field("shm", &self.shm.is_some())
            .finish()
    }
}

impl RawPublisher for ZenohPublisher {
    fn key(&self) -> &str {
        &self.key
    }

    fn loan(&self, len: usize) -> Result<SendBuf, BusError> {
        let Some(pools) = self
            .shm
            .as_ref()
            .filter(|pools| len > 0 && len <= pools.cap())
        else {
            // No shared memory, or a buffer larger than the cap: the network path.
            return Ok(SendBuf::Vec(vec![0; len]));
        };
        match pools.alloc(len) {
            Ok(buf) => Ok(SendBuf::Shm(buf)),
            Err(err) => {
                // Shared memory only saves copies: a host whose /dev/shm is full or
                // too small still delivers every tensor, copied at the receiver.
                if !self.shm_failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        key = %self.key,
                        len,
                        pool = err.pool,
                        reason = %err.reason,
                        "no shared memory for this publisher's tensors: sending them over the network path (copied at the receiver) instead"
                    );
                }
                Ok(SendBuf::Vec(vec![0; len]))
            }
        }
    }

    fn put(&self, buf: SendBuf) -> Result<(), BusError> {
        let result = match buf {
            SendBuf::Shm(buf) => self.publisher.put(buf).wait(),
            SendBuf::Vec(buf) => self.publisher.put(buf).wait(),
            // Zenoh lends shared memory or a Vec; an aligned heap buffer would need a
            // silent copy here, so it is refused like the local transport refuses ours.
            SendBuf::Heap(_) => {
                return Err(BusError::Publish {
                    key: self.key.clone(),
                    reason: "the zenoh transport sends only buffers it lent".into(),
                })
            }
        };
        result.map_err(|err| BusError::Publish {
            key: self.key.clone(),
            reason: zenoh_reason(&err),
        })
    }

    fn has_subscribers(&self) -> Result<bool, BusError> {
        self.publisher
            .matching_status()
            .wait()
            .map(|status| status.matching())
            .map_err(|err| BusError::Publish {
                key: self.key.clone(),
                reason: zenoh_reason(&err),
            })
    }
}

impl Transport for ZenohTransport {
    fn name(&self) -> &'static str {
        "zenoh"
    }

    fn declare_publisher(&self, key: &str) -> Result<Box<dyn RawPublisher>, BusError> {
        check_key_expr("publisher", key)?;
        let publisher = self
            .session
            .declare_publisher(key.to_string())
            .congestion_control(CongestionControl::Block)
            .reliability(Reliability::Reliable)
            .wait()
            .map_err(|err| BusError::Declare {
                what: "publisher",
                key: key.to_string(),
                reason: zenoh_reason(&err),
            })?;
        Ok(Box::new(ZenohPublisher {
            key: key.to_string(),
            publisher,
            shm: self.shm.clone(),
            shm_failed: AtomicBool::new(false),
        }))
    }

    fn declare_subscriber(
        &self,
        key_expr: &str,
        handler: SampleHandler,
    ) -> Result<Box<dyn Declaration>, BusError> {
        check_key_expr("subscriber", key_expr)?;
        let subscriber = self
            .session
            .declare_subscriber(key_expr.to_string())
            .callback(move |sample| handler(Received::Zenoh(sample)))
            .wait()
            .map_err(|err| BusError::Declare {
                what: "subscriber",
                key: key_expr.to_string(),
                reason: zenoh_reason(&err),
            })?;
        Ok(Box::new(Declared(subscriber)))
    }

    fn declare_queryable(
        &self,
        key_expr: &str,
        handler: QueryHandler,
    ) -> Result<Box<dyn Declaration>, BusError> {
        check_key_expr("queryable", key_expr)?;
        let declared: zenoh::key_expr::KeyExpr<'static> =
            zenoh::key_expr::KeyExpr::try_from(key_expr.to_string()).map_err(|err| {
                BusError::Declare {
                    what: "queryable",
                    key: key_expr.to_string(),
                    reason: zenoh_reason(&err),
                }
            })?;
        let queryable = self
            .session
            .declare_queryable(key_expr.to_string())
            .callback(move |query: zenoh::query::Query| {
                let key = query.key_expr().as_str().to_string();
                // Reply on the queryable's own key when it is concrete, so replies of
                // several queryables to one wildcard query stay apart.
                let reply_on = if declared.contains('*') {
                    query.key_expr().clone().into_owned()
                } else {
                    declared.clone()
                };
                let payload = query
                    .payload()
                    .map(|p| p.to_bytes().into_owned())
                    .unwrap_or_default();
                let reply_key = key.clone();
                handler(Query::new(key, payload, move |bytes| {
                    query
                        .reply(reply_on, bytes)
                        .wait()
                        .map_err(|err| BusError::Query {
                            key: reply_key,
                            reason: zenoh_reason(&err),
                        })
                }));
            })
            .wait()
            .map_err(|err| BusError::Declare {
                what: "queryable",
                key: key_expr.to_string(),
                reason: zenoh_reason(&err),
            })?;
        Ok(Box::new(Declared(queryable)))
    }

    fn get<'a>(
        &'a self,
        key_expr: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>, BusError>> {
        Box::pin(async move {
            check_key_expr("query", key_expr)?;
            let query_error = |reason: String| BusError::Query {
                key: key_expr.to_string(),
                reason,
            };
            let replies = self
                .session
                .get(key_expr.to_string())
                // Every matching queryable answers (e.g. every node's health), unmerged.
                .target(QueryTarget::All)
                .consolidation(ConsolidationMode::None)
                .payload(payload)
                .timeout(timeout)
                .await
                .map_err(|err| query_error(zenoh_reason(&err)))?;
            let mut out = Vec::new();
            while let Ok(reply) = replies.recv_async().await {
                match reply.result() {
                    Ok(sample) => out.push(sample.payload().to_bytes().into_owned()),
                    Err(err) => {
                        let text = err
                            .payload()
                            .try_to_string()
                            .map(|s| s.into_owned())
                            .unwrap_or_default();
                        // Zenoh reports the timeout itself as an error reply.
                        if !text.to_ascii_lowercase().contains("timeout") {
                            return Err(query_error(text));
                        }
                    }
                }
            }
            Ok(out)
        })
    }

    fn declare_token(&self, key: &str) -> Result<Box<dyn Declaration>, BusError> {
        check_key_expr("liveliness token", key)?;
        let token = self
            .session
            .liveliness()
            .declare_token(key.to_string())
            .wait()
            .map_err(|err| BusError::Declare {
                what: "liveliness token",
                key: key.to_string(),
                reason: zenoh_reason(&err),
            })?;
        Ok(Box::new(Declared(token)))
    }

    fn flush(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, BusError>> {
        Box::pin(async move {
            let Some(pools) = &self.shm else {
                return Ok(true);
            };
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                if pools.is_idle() {
                    return Ok(true);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(false);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    }

    fn shm_pool_bytes(&self) -> usize {
        self.shm
            .as_ref()
            .map_or(0, |pools| pools.sizes().iter().sum())
    }

    fn live_tokens<'a>(
        &'a self,
        key_expr: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, BusError>> {
        Box::pin(async move {
            check_key_expr("liveliness query", key_expr)?;
            let replies = self
                .session
                .liveliness()
                .get(key_expr.to_string())
                .timeout(timeout)
                .await
                .map_err(|err| BusError::Query {
                    key: key_expr.to_string(),
                    reason: zenoh_reason(&err),
                })?;
            let mut keys = Vec::new();
            while let Ok(reply) = replies.recv_async().await {
                if let Ok(sample) = reply.result() {
                    keys.push(sample.key_expr().as_str().to_string());
                }
            }
            keys.sort();
            keys.dedup();
            Ok(keys)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::zenoh_reason;

    #[test]
    fn zenoh_errors_lose_their_source_locations() {
        let text = "Unable to connect to any of [tcp/127.0.0.1:9]. Timeout! at \
                    /root/.cargo/registry/src/x/zenoh-1.10.2/src/net/runtime/orchestrator.rs:388.";
        assert_eq!(
            zenoh_reason(&text),
            "Unable to connect to any of [tcp/127.0.0.1:9]. Timeout!"
        );
        let chained = "Can not create a new TCP listener at /a/b.rs:12. - Caused by \
                       Address already in use at /c/d.rs:3.";
        assert_eq!(
            zenoh_reason(&chained),
            "Can not create a new TCP listener: Address already in use"
        );
        assert_eq!(zenoh_reason(&"no location at all"), "no location at all");
    }
}
