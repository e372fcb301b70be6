//! Each serving thread's own copy of the verify cache entries it uses.
//!
//! A moka lookup is ~1.5k instructions of a cached request (hashing, an
//! epoch-protected read, a read record for its eviction policy), 3 % of
//! it (BENCHMARKS.md, item 15). A worker thread sees the same few
//! credentials over and over; here it finds them in a plain map first.
//!
//! Nothing here outlives an invalidation: every entry is tagged with the
//! [`VerifyCache`](super::verify::VerifyCache) invalidation epoch read
//! *before* the moka lookup that found it, and is only used while the
//! epoch is still the same. An invalidation bumps the epoch both before
//! and after it drops moka's entries, so a lookup that raced with it is
//! tagged with an epoch that is already gone. Each hit still passes the
//! same expiry, TTL and staleness checks as a moka hit.
//!
//! A moka eviction (capacity) does not reach these copies: they are
//! bounded on their own, and eviction is a memory limit, not a revocation.

use super::verify::Grant;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

/// Entries kept per thread; past this the copy starts again empty.
const CAPACITY: usize = 4096;

pub type CacheKey = [u8; 32];

/// The copy on this thread, of one `VerifyCache` (`owner`) in one epoch.
#[derive(Default)]
struct Copy {
    owner: u64,
    epoch: u64,
    grants: HashMap<Key, Arc<Grant>, BuildHasherDefault<KeyHasher>>,
}

thread_local! {
    static COPY: RefCell<Copy> = RefCell::new(Copy::default());
}

/// The grant this thread copied for `key` from cache `owner` in `epoch`.
pub fn get(owner: u64, epoch: u64, key: &CacheKey) -> Option<Arc<Grant>> {
    COPY.with_borrow(|copy| {
        if copy.owner != owner || copy.epoch != epoch {
            return None;
        }
        copy.grants.get(&Key(*key)).cloned()
    })
}

/// Copies `grant`, found in cache `owner` by a lookup that started in `epoch`.
pub fn put(owner: u64, epoch: u64, key: &CacheKey, grant: &Arc<Grant>) {
    COPY.with_borrow_mut(|copy| {
        if copy.owner != owner || copy.epoch != epoch || copy.grants.len() >= CAPACITY {
            copy.owner = owner;
            copy.epoch = epoch;
            copy.grants.clear();
        }
        copy.grants.insert(Key(*key), grant.clone());
    });
}

/// Drops this thread's copy of `key` (an expired or refused grant).
pub fn forget(key: &CacheKey) {
    COPY.with_borrow_mut(|copy| copy.grants.remove(&Key(*key)));
}

/// A cache key: already a keyed BLAKE3 hash, so its first 8 bytes are as
/// good a hash as any, and no one without the process's key can collide it.
#[derive(PartialEq, Eq)]
struct Key(CacheKey);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_ne_bytes(first));
    }
}

/// Takes the one `u64` a [`Key`] writes as the hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called (by `Key`); fold anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::scope::Scope;

    fn grant(id: &str) -> Arc<Grant> {
        Arc::new(Grant {
            password_id: id.parse().unwrap(),
            user: "alice".into(),
            scope: Scope::default(),
            expires: None,
            verified_at: std::time::Instant::now(),
        })
    }

    /// Owner ids no real cache is given (those count up from 1).
    const OWNER: u64 = u64::MAX - 1;
    const OTHER: u64 = u64::MAX - 2;

    #[test]
    fn a_copy_serves_only_its_cache_and_epoch() {
        let key = [7u8; 32];
        put(OWNER, 5, &key, &grant("p1"));
        assert!(get(OWNER, 5, &key).is_some());
        assert!(get(OWNER, 6, &key).is_none(), "another epoch: invalidated since");
        assert!(get(OTHER, 5, &key).is_none(), "another cache");
        assert!(get(OWNER, 5, &[8u8; 32]).is_none());
        forget(&key);
        assert!(get(OWNER, 5, &key).is_none());
    }

    #[test]
    fn a_newer_epoch_starts_the_copy_again() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        put(OWNER, 5, &a, &grant("p1"));
        put(OWNER, 6, &b, &grant("p2"));
        assert!(get(OWNER, 6, &a).is_none(), "copied in the old epoch");
        assert!(get(OWNER, 6, &b).is_some());
    }

    #[test]
    fn the_copy_is_bounded() {
        for i in 0..=CAPACITY {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            put(OWNER, 1, &key, &grant("p1"));
        }
        COPY.with_borrow(|copy| assert_eq!(copy.grants.len(), 1));
    }
}
