//! Fairness between tenants: a request rate per API key (a token bucket), and how many event
//! streams and imports one account may hold open at once. Each limit refuses at once rather
//! than queueing, so a tenant over its share holds no memory or database connection here.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::TenantSettings;
use crate::domain::ids::AccountId;

/// How often (in checks) the rate limiter forgets keys whose buckets are full again, so that
/// its map holds only the keys used recently.
const PRUNE_EVERY: u32 = 4096;

/// How long a caller over its stream or import share is told to wait before trying again.
const SLOT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a tenant's request was refused; each says when to try again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The API key sent more requests than its rate and burst allow.
    #[error(
        "rate limit exceeded: this API key may send {rate} requests per second (burst {burst}); retry later"
    )]
    TooFast {
        /// Requests per second allowed.
        rate: u32,
        /// Requests allowed at once after a quiet spell.
        burst: u32,
        /// When the next request would be allowed.
        retry_after: Duration,
    },
    /// The account holds as many of `what` open as it may.
    #[error("this account already has {limit} {what}; retry when one ends")]
    TooMany {
        /// What is limited ("event streams open", "imports running").
        what: &'static str,
        /// How many the account may hold.
        limit: u32,
    },
}

impl Refused {
    /// How long the caller should wait before retrying.
    pub fn retry_after(&self) -> Duration {
        match self {
            Refused::TooFast { retry_after, .. } => *retry_after,
            Refused::TooMany { .. } => SLOT_RETRY_AFTER,
        }
    }
}

/// The limits of one process (each replica enforces its own).
pub struct TenantLimits {
    requests: Option<RequestRate>,
    streams: PerAccount,
    imports: PerAccount,
}

impl TenantLimits {
    /// The limits the settings describe.
    pub fn new(settings: &TenantSettings) -> Self {
        Self {
            requests: RequestRate::new(settings.rate_limit, settings.rate_burst),
            streams: PerAccount::new("event streams open", settings.max_streams_per_account),
            imports: PerAccount::new("imports running", settings.max_imports_per_account),
        }
    }

    /// Takes one request from the bucket of the API key whose hash is `key_hash`.
    pub fn admit_request(&self, key_hash: &[u8]) -> Result<(), Refused> {
        match &self.requests {
            Some(rate) => rate.admit(key_hash),
            None => Ok(()),
        }
    }

    /// A place for one more event stream of `account`, held until the stream ends.
    pub fn stream_slot(&self, account: AccountId) -> Result<AccountSlot, Refused> {
        self.streams.acquire(account)
    }

    /// A place for one more running import of `account`, held until the import ends.
    pub fn import_slot(&self, account: AccountId) -> Result<AccountSlot, Refused> {
        self.imports.acquire(account)
    }
}

/// A token bucket per API key.
struct RequestRate {
    limiter: DefaultKeyedRateLimiter<Vec<u8>>,
    rate: u32,
    burst: u32,
    checks: AtomicU32,
}

impl RequestRate {
    /// The bucket; `None` when the rate is 0 (no limit).
    fn new(rate: u32, burst: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(rate)?;
        let burst = burst.max(1);
        let quota = Quota::per_second(per_second).allow_burst(NonZeroU32::new(burst)?);
        Some(Self {
            limiter: RateLimiter::keyed(quota),
            rate,
            burst,
            checks: AtomicU32::new(0),
        })
    }

    fn admit(&self, key_hash: &[u8]) -> Result<(), Refused> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            self.limiter.retain_recent();
        }
        // Only authenticated keys reach here, so the map cannot be grown by made-up keys.
        let key = key_hash.to_vec();
        self.limiter
            .check_key(&key)
            .map_err(|not_until| Refused::TooFast {
                rate: self.rate,
                burst: self.burst,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }
}

/// How many of one thing each account holds open, within a limit.
struct PerAccount {
    what: &'static str,
    limit: u32,
    open: Arc<Mutex<HashMap<AccountId, u32>>>,
}

impl PerAccount {
    fn new(what: &'static str, limit: u32) -> Self {
        Self {
            what,
            limit,
            open: Arc::default(),
        }
    }

    fn acquire(&self, account: AccountId) -> Result<AccountSlot, Refused> {
        let mut open = self.open.lock().expect("not poisoned");
        let held = open.entry(account).or_insert(0);
        if *held >= self.limit {
            return Err(Refused::TooMany {
                what: self.what,
                limit: self.limit,
            });
        }
        *held += 1;
        Ok(AccountSlot {
            open: self.open.clone(),
            account,
        })
    }
}

/// One account's place under a [`PerAccount`] limit, given back when dropped.
pub struct AccountSlot {
    open: Arc<Mutex<HashMap<AccountId, u32>>>,
    account: AccountId,
}

impl Drop for AccountSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("not poisoned");
        if let Some(held) = open.get_mut(&self.account) {
            *held -= 1;
            // Accounts with nothing open take no room.
            if *held == 0 {
                open.remove(&self.account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rate: u32, burst: u32, streams: u32) -> TenantSettings {
        TenantSettings {
            rate_limit: rate,
            rate_burst: burst,
            max_streams_per_account: streams,
            max_imports_per_account: 1,
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_is_told_when_to_retry() {
        let limits = TenantLimits::new(&settings(10, 3, 1));
        for _ in 0..3 {
            limits.admit_request(b"key-a").expect("within the burst");
        }
        let refused = limits.admit_request(b"key-a").expect_err("over the burst");
        assert!(matches!(
            refused,
            Refused::TooFast {
                rate: 10,
                burst: 3,
                ..
            }
        ));
        assert!(refused.retry_after() > Duration::ZERO);
        assert!(refused.retry_after() <= Duration::from_millis(100));
        // Another key has its own bucket.
        limits
            .admit_request(b"key-b")
            .expect("other key unaffected");
    }

    #[test]
    fn a_rate_of_zero_means_no_limit() {
        let limits = TenantLimits::new(&settings(0, 0, 1));
        for _ in 0..10_000 {
            limits.admit_request(b"key").expect("unlimited");
        }
    }

    #[test]
    fn slots_are_per_account_and_come_back_when_dropped() {
        let limits = TenantLimits::new(&settings(1, 1, 2));
        let (a, b) = (AccountId::generate(), AccountId::generate());
        let first = limits.stream_slot(a).expect("first");
        let _second = limits.stream_slot(a).expect("second");
        let refused = limits.stream_slot(a).err().expect("third refused");
        assert_eq!(
            refused.to_string(),
            "this account already has 2 event streams open; retry when one ends"
        );
        limits.stream_slot(b).expect("other account unaffected");
        drop(first);
        limits.stream_slot(a).expect("a slot came back");
    }

    #[test]
    fn an_account_with_nothing_open_takes_no_room() {
        let limits = TenantLimits::new(&settings(1, 1, 2));
        let slot = limits.import_slot(AccountId::generate()).expect("slot");
        drop(slot);
        assert!(limits.imports.open.lock().unwrap().is_empty());
    }
}
