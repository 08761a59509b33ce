//! A per-address budget for what anyone may do without signing in (a driver's complaint from a
//! station's page): at most `per_window` in a sliding `window`, for at most `max_addresses`
//! addresses remembered at once (the stalest forgotten first), so a flood costs the flooder its
//! own budget and the console a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimit {
    per_window: usize,
    window: Duration,
    max_addresses: usize,
    seen: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl RateLimit {
    pub fn new(per_window: usize, window: Duration, max_addresses: usize) -> Self {
        Self {
            per_window: per_window.max(1),
            window,
            max_addresses: max_addresses.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `address` may act now; counts it when it may.
    pub fn admit(&self, address: IpAddr, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains_key(&address) && seen.len() >= self.max_addresses {
            let window = self.window;
            seen.retain(|_, times| {
                times.retain(|t| now.duration_since(*t) < window);
                !times.is_empty()
            });
            if seen.len() >= self.max_addresses
                && let Some(stalest) = seen
                    .iter()
                    .min_by_key(|(_, times)| times.last().copied())
                    .map(|(a, _)| *a)
            {
                seen.remove(&stalest);
            }
        }
        let times = seen.entry(address).or_default();
        times.retain(|t| now.duration_since(*t) < self.window);
        if times.len() >= self.per_window {
            return false;
        }
        times.push(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmp_2_an_address_gets_its_budget_and_others_theirs() {
        let limit = RateLimit::new(2, Duration::from_secs(3600), 100);
        let (a, b): (IpAddr, IpAddr) = (
            "10.0.0.1".parse().expect("a"),
            "10.0.0.2".parse().expect("b"),
        );
        let now = Instant::now();
        assert!(limit.admit(a, now) && limit.admit(a, now));
        assert!(!limit.admit(a, now), "the third within the hour");
        assert!(limit.admit(b, now), "another address is not held back");
        assert!(
            limit.admit(a, now + Duration::from_secs(3601)),
            "the window slid"
        );
    }

    #[test]
    fn the_table_of_addresses_is_bounded() {
        let limit = RateLimit::new(1, Duration::from_secs(3600), 3);
        let now = Instant::now();
        for i in 0..10u8 {
            assert!(limit.admit(
                IpAddr::from([10, 0, 0, i]),
                now + Duration::from_secs(u64::from(i))
            ));
        }
        assert!(limit.seen.lock().expect("lock").len() <= 3);
    }
}
