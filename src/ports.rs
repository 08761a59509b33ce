//! Free loopback ports for the processes a benchmark or a test starts.
//!
//! Binding port 0 and letting it go hands out a port from the kernel's ephemeral range, the
//! same range every outgoing connection on the machine draws its source port from: between the
//! probe and the child's own bind, a connection elsewhere can take it ("Address already in
//! use"). The ports handed out here lie outside that range, are picked at random (so processes
//! picking at the same time rarely collide) and are checked bindable on 127.0.0.1.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};

/// Below this no port is handed out: well-known and registered services live there.
const LOWEST: u16 = 10_000;
/// How many random ports are tried before giving up.
const ATTEMPTS: usize = 200;
/// What Linux uses when the range cannot be read, and what other systems are assumed to use.
const DEFAULT_EPHEMERAL: RangeInclusive<u16> = 32_768..=60_999;

/// A port on 127.0.0.1 that was free a moment ago and that outgoing connections do not draw
/// from.
pub fn free_port() -> std::io::Result<u16> {
    let candidates = outside(&ephemeral_range());
    let state = RandomState::new();
    static CALLS: AtomicU64 = AtomicU64::new(0);
    for attempt in 0..ATTEMPTS {
        let mut hasher = state.build_hasher();
        hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
        hasher.write_usize(attempt);
        hasher.write_u32(std::process::id());
        let port = pick(&candidates, hasher.finish());
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port among {ATTEMPTS} tried outside the ephemeral range"),
    ))
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
fn ephemeral_range() -> RangeInclusive<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    let low = parts.next()?.ok()?;
    let high = parts.next()?.ok()?;
    (low <= high).then_some(low..=high)
}

/// The ports from [`LOWEST`] up that lie outside `ephemeral`: below it when there is room
/// there, else above it.
fn outside(ephemeral: &RangeInclusive<u16>) -> RangeInclusive<u16> {
    const ROOM: u16 = 2_000;
    if ephemeral.start().saturating_sub(LOWEST) >= ROOM {
        LOWEST..=ephemeral.start() - 1
    } else if u16::MAX - ephemeral.end() >= ROOM {
        ephemeral.end() + 1..=u16::MAX
    } else {
        // No room on either side: the whole range above the well-known ports, as port 0 would.
        LOWEST..=u16::MAX
    }
}

fn pick(candidates: &RangeInclusive<u16>, random: u64) -> u16 {
    let span = u64::from(candidates.end() - candidates.start()) + 1;
    let offset = u16::try_from(random % span).unwrap_or(0);
    candidates.start() + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_lie_below_linux_default_ephemeral_range() {
        assert_eq!(outside(&(32_768..=60_999)), 10_000..=32_767);
    }

    #[test]
    fn ports_lie_above_a_range_that_starts_low() {
        assert_eq!(outside(&(1_024..=40_000)), 40_001..=65_535);
    }

    #[test]
    fn a_range_covering_everything_leaves_the_ports_above_the_well_known() {
        assert_eq!(outside(&(1_024..=65_000)), 10_000..=65_535);
    }

    #[test]
    fn the_kernel_range_is_read_from_its_two_numbers() {
        assert_eq!(parse_range("32768\t60999\n"), Some(32_768..=60_999));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("garbage"), None);
    }

    #[test]
    fn picks_stay_inside_the_candidates() {
        let candidates = 10_000..=32_767;
        for random in [0, 1, 22_767, 22_768, u64::MAX] {
            assert!(candidates.contains(&pick(&candidates, random)));
        }
    }

    #[test]
    fn a_free_port_is_bindable_and_outside_the_ephemeral_range() {
        let port = free_port().expect("a free port");
        assert!(!ephemeral_range().contains(&port));
        TcpListener::bind(("127.0.0.1", port)).expect("still free");
    }
}
