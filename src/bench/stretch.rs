//! The run's last stretch, timed on its own and window by window: once an opening's backlog has
//! drained, its acknowledgements are the fleet's steady state, and a tail that comes in bursts
//! (a stall every few seconds) looks different from one spread evenly (a saturated machine).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::percentile;

/// The end of a run whose acknowledgements are also timed on their own.
pub(super) const LAST_STRETCH: Duration = Duration::from_secs(60);

/// How wide each window of the last stretch is.
const WINDOW: Duration = Duration::from_secs(5);

/// Whether now is in the last stretch of a run that ends at `until`.
pub(super) fn in_last_stretch(until: std::time::Instant) -> bool {
    std::time::Instant::now() + LAST_STRETCH >= until
}

/// An acknowledgement of the last stretch: when it came (milliseconds of the wall clock, which
/// every client process on the machine shares) and how long it took (microseconds).
pub(super) type LateAck = (u64, u64);

/// `latency`, acknowledged now.
pub(super) fn late_ack(latency: Duration) -> LateAck {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_millis() as u64, latency.as_micros() as u64)
}

/// The acknowledgements of one window.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Window {
    /// Its start, from the first acknowledgement of the stretch.
    pub from: Duration,
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// `acks` in windows of `width`, from the first acknowledgement on; empty windows are left out.
pub(super) fn windows(acks: &[LateAck], width: Duration) -> Vec<Window> {
    let Some(start) = acks.iter().map(|(at, _)| *at).min() else {
        return Vec::new();
    };
    let width_ms = (width.as_millis() as u64).max(1);
    let mut by_window: std::collections::BTreeMap<u64, Vec<Duration>> = Default::default();
    for (at, us) in acks {
        by_window
            .entry((at - start) / width_ms)
            .or_default()
            .push(Duration::from_micros(*us));
    }
    by_window
        .into_iter()
        .map(|(index, mut latencies)| {
            latencies.sort_unstable();
            Window {
                from: Duration::from_millis(index * width_ms),
                count: latencies.len(),
                p50: percentile(&latencies, 0.50),
                p99: percentile(&latencies, 0.99),
                max: latencies.last().copied().unwrap_or_default(),
            }
        })
        .collect()
}

/// The latencies of `late`, sorted.
fn sorted(late: &[LateAck]) -> Vec<Duration> {
    let mut all: Vec<Duration> = late
        .iter()
        .map(|(_, us)| Duration::from_micros(*us))
        .collect();
    all.sort_unstable();
    all
}

/// Prints the status changes that reached the regulator's stream in the last stretch.
pub(super) fn print_stream(changes: &[LateAck]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let all = sorted(changes);
    println!(
        "  ... in the last {} s  p50 {:.2} ms   p99 {:.2} ms   ({} changes)",
        LAST_STRETCH.as_secs(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        all.len()
    );
}

/// Prints the last stretch's acknowledgements: together, then window by window.
pub(super) fn print(acks: &[LateAck]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let all = sorted(acks);
    println!(
        "  ... in the last {} s  p50 {:.2} ms   p99 {:.2} ms   p99.9 {:.2} ms   ({} acknowledged: the steady state once an opening's backlog has drained)",
        LAST_STRETCH.as_secs(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        ms(percentile(&all, 0.999)),
        all.len()
    );
    let rows: Vec<String> = windows(acks, WINDOW)
        .iter()
        .map(|w| {
            format!(
                "{:>3} s: {} acks, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                w.from.as_secs(),
                w.count,
                ms(w.p50),
                ms(w.p99),
                ms(w.max)
            )
        })
        .collect();
    if !rows.is_empty() {
        println!(
            "  ... by {} s window     {}",
            WINDOW.as_secs(),
            rows.join("\n                        ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_fall_in_the_window_they_came_in() {
        // A stall at 12 s: two slow acknowledgements in the third window, quick ones around it.
        let acks = [
            (1_000, 2_000),
            (1_900, 4_000),
            (6_500, 3_000),
            (13_000, 900_000),
            (14_999, 1_200_000),
            (11_000, 1_000),
        ];
        let w = windows(&acks, Duration::from_secs(5));
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].from, Duration::ZERO);
        assert_eq!(w[0].count, 2);
        assert_eq!(w[0].max, Duration::from_millis(4));
        assert_eq!(w[1].from, Duration::from_secs(5));
        assert_eq!(w[1].count, 1);
        assert_eq!(w[2].from, Duration::from_secs(10));
        assert_eq!(w[2].count, 3);
        assert_eq!(w[2].max, Duration::from_millis(1_200));
        assert_eq!(w[2].p50, Duration::from_millis(900));
    }

    #[test]
    fn no_acknowledgements_no_windows() {
        assert!(windows(&[], Duration::from_secs(5)).is_empty());
    }
}
