//! Shared memory that follows the data: a session's pool is made when its first
//! spike buffer is lent, sized from what is sent, and grows up to a cap.
//!
//! Zenoh locks every shared-memory segment into RAM (`mlock`) in each process that
//! maps it — the sender and every receiver on the host — so a pool costs its full
//! size in resident memory wherever it is seen, whether or not it is used. Hence:
//!
//! - no pool until a spike buffer is lent: a router, a readout or a service that
//!   publishes no tensors holds none;
//! - a pool holds [`in_flight`](ShmPools::new) messages of the largest size lent so
//!   far (the subscription queue's capacity plus the ones being written and read),
//!   rounded up to a power of two, at least [`MIN_POOL`] and at most the cap
//!   ([`BusConfig::shm_pool_bytes`](crate::BusConfig::shm_pool_bytes));
//! - a larger message makes a new, larger pool; the old one is dropped once all
//!   its buffers are back (checked whenever a buffer is lent or the session flushes).

use std::sync::{Arc, Mutex, MutexGuard};

use zenoh::shm::{
    AllocAlignment, BlockOn, GarbageCollect, JustAlloc, PosixShmProviderBackend, ShmProvider,
    ShmProviderBuilder, ZShmMut,
};
use zenoh::Wait;

/// The smallest pool made (a few small tensors' worth, a handful of pages).
pub(crate) const MIN_POOL: usize = 64 << 10;

/// One shared-memory segment and its allocator.
struct Pool {
    provider: ShmProvider<PosixShmProviderBackend>,
    size: usize,
    /// The largest buffer the empty pool lends: lending it again proves that every
    /// buffer is back (Zenoh's default allocator does not report what is free).
    whole: usize,
}

impl Pool {
    fn new(size: usize) -> Result<Pool, AllocFailed> {
        let provider = ShmProviderBuilder::default_backend((size, pool_alignment()))
            .wait()
            .map_err(|err| AllocFailed {
                pool: size,
                reason: format!("cannot make a shared-memory pool of {size} bytes: {err}"),
            })?;
        let mut pool = Pool {
            provider,
            size,
            whole: 0,
        };
        // The allocator keeps a little of the segment for itself: find the largest
        // buffer by bisection (allocating touches no page of the data).
        let align = evospike_schemas::ALIGNMENT;
        let (mut fits, mut too_big) = (0, size + align);
        while too_big - fits > align {
            let mid = (fits + (too_big - fits) / 2).next_multiple_of(align);
            let mid = mid.min(too_big - align);
            if pool.lends(mid) {
                fits = mid;
            } else {
                too_big = mid;
            }
        }
        pool.whole = fits;
        Ok(pool)
    }

    /// Whether a buffer of `len` bytes can be lent now, without keeping it.
    fn lends(&self, len: usize) -> bool {
        let lent = len > 0
            && self
                .provider
                .alloc(len)
                .with_policy::<JustAlloc>()
                .wait()
                .is_ok();
        if lent {
            // The dropped probe is returned to the allocator at once.
            self.provider.garbage_collect();
        }
        lent
    }

    fn is_idle(&self) -> bool {
        self.provider.garbage_collect();
        self.lends(self.whole)
    }
}

/// The pools of one session: the newest lends, older ones wait for their buffers.
pub(crate) struct ShmPools {
    cap: usize,
    in_flight: usize,
    pools: Mutex<Vec<Arc<Pool>>>,
}

impl std::fmt::Debug for ShmPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmPools")
            .field("cap", &self.cap)
            .field("in_flight", &self.in_flight)
            .field("sizes", &self.sizes())
            .finish()
    }
}

/// Why a pool could not lend a buffer.
#[derive(Debug)]
pub(crate) struct AllocFailed {
    pub(crate) pool: usize,
    pub(crate) reason: String,
}

/// The pools' alignment, [`evospike_schemas::ALIGNMENT`]: the provider aligns every
/// chunk to it, whatever the length asked for, so every loaned buffer can hold an
/// archive read in place.
fn pool_alignment() -> AllocAlignment {
    const POW: u8 = evospike_schemas::ALIGNMENT.trailing_zeros() as u8;
    AllocAlignment::new(POW).unwrap_or_default()
}

impl ShmPools {
    /// Pools of at most `cap` bytes, each sized for `in_flight` messages.
    pub(crate) fn new(cap: usize, in_flight: usize) -> ShmPools {
        ShmPools {
            cap: cap.next_multiple_of(evospike_schemas::ALIGNMENT),
            in_flight: in_flight.max(1),
            pools: Mutex::new(Vec::new()),
        }
    }

    /// The largest buffer a pool can lend.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Pool>>> {
        // Every change is one push or retain: a panic cannot leave it half made.
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sizes of the pools held now, oldest first (empty before the first loan).
    pub(crate) fn sizes(&self) -> Vec<usize> {
        self.lock().iter().map(|pool| pool.size).collect()
    }

    /// The size a pool for messages of `len` bytes gets.
    fn size_for(&self, len: usize) -> usize {
        len.saturating_mul(self.in_flight)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .clamp(MIN_POOL.min(self.cap), self.cap)
    }

    /// The pool to lend `len` bytes from: the newest, or a new larger one when the
    /// newest was sized for smaller messages. Drops old pools that are idle.
    fn pool_for(&self, len: usize) -> Result<Arc<Pool>, AllocFailed> {
        let mut pools = self.lock();
        let wanted = self.size_for(len);
        let newest = pools.last().filter(|pool| pool.size >= wanted).cloned();
        let pool = match newest {
            Some(pool) => pool,
            None => {
                let pool = Arc::new(Pool::new(wanted)?);
                tracing::debug!(size = wanted, message = len, "shared-memory pool made");
                pools.push(pool.clone());
                pool
            }
        };
        let newest = pools.len() - 1;
        let mut index = 0;
        pools.retain(|old| {
            index += 1;
            index - 1 == newest || Arc::strong_count(old) > 1 || !old.is_idle()
        });
        Ok(pool)
    }

    /// Lends `len` bytes (0 < `len` ≤ [`cap`](Self::cap)), blocking while the pool
    /// is full until receivers release buffers: back-pressure, never loss.
    pub(crate) fn alloc(&self, len: usize) -> Result<ZShmMut, AllocFailed> {
        let pool = self.pool_for(len)?;
        pool.provider
            .alloc(len)
            .with_policy::<BlockOn<GarbageCollect>>()
            .wait()
            .map_err(|err| AllocFailed {
                pool: pool.size,
                reason: format!("{err:?}"),
            })
    }

    /// Whether every buffer lent has come back (so the process may exit without
    /// losing its last messages); drops the old pools that are idle.
    pub(crate) fn is_idle(&self) -> bool {
        let mut pools = self.lock();
        let newest_idle = pools.last().is_none_or(|pool| pool.is_idle());
        let last = pools.len().saturating_sub(1);
        let mut index = 0;
        pools.retain(|old| {
            index += 1;
            index - 1 == last || !old.is_idle()
        });
        newest_idle && pools.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_idle_only_when_every_buffer_is_back() {
        let pool = Pool::new(MIN_POOL).unwrap();
        assert!(
            pool.whole > MIN_POOL / 2 && pool.whole <= MIN_POOL,
            "{}",
            pool.whole
        );
        assert!(pool.is_idle());
        let lent = pool.provider.alloc(16).wait().unwrap();
        assert!(!pool.is_idle());
        drop(lent);
        assert!(pool.is_idle());
        assert!(pool.is_idle(), "probing leaves the pool idle");
    }

    #[test]
    fn no_pool_until_a_buffer_is_lent() {
        let pools = ShmPools::new(64 << 20, 8);
        assert!(pools.sizes().is_empty());
        assert!(pools.is_idle());
    }

    #[test]
    fn pools_are_sized_from_the_messages_and_capped() {
        let pools = ShmPools::new(4 << 20, 8);
        // Small messages: the minimum pool.
        let small = pools.alloc(100).unwrap();
        assert_eq!(pools.sizes(), vec![MIN_POOL]);
        // 8 in flight × 64 KiB = 512 KiB: a new pool; the first is still lent from.
        let large = pools.alloc(64 << 10).unwrap();
        assert_eq!(pools.sizes(), vec![MIN_POOL, 512 << 10]);
        // Messages near the cap get a pool of the cap, not more.
        drop(small);
        let huge = pools.alloc(3 << 20).unwrap();
        assert_eq!(pools.sizes().last(), Some(&(4 << 20)));
        // The idle old pools are gone once their buffers are back.
        drop(large);
        drop(huge);
        assert!(pools.is_idle());
        assert_eq!(pools.sizes(), vec![4 << 20]);
    }
}
