//! The steady state over time: every acknowledgement (and every status change on the
//! regulator's stream) is kept with when it came, so a run prints its last stretch on its own
//! and window by window, and its whole steady state as a timeline. Once an opening's backlog
//! has drained, the last stretch is the fleet's steady state; a tail that comes in bursts (a
//! stall every few seconds) looks different from one spread evenly (a saturated machine); and a
//! spell that comes at the same time from the start in runs of different lengths is the mesh's
//! (a periodic task), not the run's ending.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::percentile;

/// The end of a run whose acknowledgements are also timed on their own.
pub(super) const LAST_STRETCH: Duration = Duration::from_secs(60);

/// How wide each window of the last stretch is.
const WINDOW: Duration = Duration::from_secs(5);

/// How wide each window of the whole steady state's timeline is.
const TIMELINE_WINDOW: Duration = Duration::from_secs(30);

/// An acknowledgement (or a change's arrival): when it came (milliseconds of the wall clock,
/// which every client process on the machine shares) and how long it took (microseconds).
pub(super) type TimedAck = (u64, u64);

/// Milliseconds of the wall clock now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// `latency`, acknowledged now.
pub(super) fn timed_ack(latency: Duration) -> TimedAck {
    (now_ms(), latency.as_micros() as u64)
}

/// The wall clock's milliseconds at `at`, an instant of this process.
pub(super) fn wall_ms(at: Instant) -> u64 {
    let now = Instant::now();
    match at.checked_duration_since(now) {
        Some(ahead) => now_ms() + ahead.as_millis() as u64,
        None => now_ms().saturating_sub(now.duration_since(at).as_millis() as u64),
    }
}

/// The run's times on the wall clock: when it started and when it ends.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Span {
    pub(super) fn of(started: Instant, until: Instant) -> Self {
        Self {
            start_ms: wall_ms(started),
            end_ms: wall_ms(until),
        }
    }

    /// When the run's last stretch begins.
    fn stretch_from(&self) -> u64 {
        self.end_ms.saturating_sub(LAST_STRETCH.as_millis() as u64)
    }

    /// Those of `acks` that came in the run's last stretch.
    fn last_stretch(&self, acks: &[TimedAck]) -> Vec<TimedAck> {
        let from = self.stretch_from();
        acks.iter().copied().filter(|(at, _)| *at >= from).collect()
    }
}

/// The acknowledgements of one window.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Window {
    /// Its start, from `origin`.
    pub from: Duration,
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// `acks` in windows of `width` counted from `origin_ms` (those before it in the first);
/// empty windows are left out.
pub(super) fn windows(acks: &[TimedAck], width: Duration, origin_ms: u64) -> Vec<Window> {
    let width_ms = (width.as_millis() as u64).max(1);
    let mut by_window: std::collections::BTreeMap<u64, Vec<Duration>> = Default::default();
    for (at, us) in acks {
        by_window
            .entry(at.saturating_sub(origin_ms) / width_ms)
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

/// The latencies of `acks`, sorted.
pub(super) fn sorted(acks: &[TimedAck]) -> Vec<Duration> {
    let mut all: Vec<Duration> = acks
        .iter()
        .map(|(_, us)| Duration::from_micros(*us))
        .collect();
    all.sort_unstable();
    all
}

/// A duration in milliseconds, as the benchmark prints them.
pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Rows of `windows` of `what` (acks, changes), each with its start as `label` gives it.
fn rows(windows: &[Window], what: &str, label: impl Fn(&Window) -> String) -> String {
    windows
        .iter()
        .map(|w| {
            format!(
                "{}: {} {what}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                label(w),
                w.count,
                ms(w.p50),
                ms(w.p99),
                ms(w.max)
            )
        })
        .collect::<Vec<_>>()
        .join("\n                        ")
}

/// Prints the status changes that reached the regulator's stream in the last stretch.
pub(super) fn print_stream(changes: &[TimedAck], span: Span) {
    let all = sorted(&span.last_stretch(changes));
    println!(
        "  ... in the last {} s  p50 {:.2} ms   p99 {:.2} ms   ({} changes)",
        LAST_STRETCH.as_secs(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        all.len()
    );
    print_timeline(changes, "changes", span);
}

/// Prints `timed` (acks, changes) of the whole steady state in windows from the run's start.
fn print_timeline(timed: &[TimedAck], what: &str, span: Span) {
    let timeline = windows(timed, TIMELINE_WINDOW, span.start_ms);
    if !timeline.is_empty() {
        println!(
            "  ... by {} s from the run's start\n                        {}",
            TIMELINE_WINDOW.as_secs(),
            rows(&timeline, what, |w| format!("t+{:>4} s", w.from.as_secs()))
        );
    }
}

/// Prints the last stretch's acknowledgements, together and window by window, then the whole
/// steady state's as a timeline from the run's start.
pub(super) fn print(acks: &[TimedAck], span: Span) {
    let late = span.last_stretch(acks);
    let all = sorted(&late);
    println!(
        "  ... in the last {} s  p50 {:.2} ms   p99 {:.2} ms   p99.9 {:.2} ms   ({} acknowledged: the steady state once an opening's backlog has drained)",
        LAST_STRETCH.as_secs(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        ms(percentile(&all, 0.999)),
        all.len()
    );
    let last = windows(&late, WINDOW, span.stretch_from());
    if !last.is_empty() {
        println!(
            "  ... by {} s window     {}",
            WINDOW.as_secs(),
            rows(&last, "acks", |w| format!("{:>3} s", w.from.as_secs()))
        );
    }
    print_timeline(acks, "acks", span);
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
        let w = windows(&acks, Duration::from_secs(5), 0);
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
    fn windows_count_from_their_origin() {
        // The run started at 100 s: an acknowledgement at 431 s is in the timeline's window
        // from 330 s; one before the origin falls in the first.
        let acks = [(431_000, 5_000), (99_000, 1_000)];
        let w = windows(&acks, Duration::from_secs(30), 100_000);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].from, w[0].count), (Duration::ZERO, 1));
        assert_eq!((w[1].from, w[1].count), (Duration::from_secs(330), 1));
    }

    #[test]
    fn the_last_stretch_is_the_minute_before_the_end() {
        let span = Span {
            start_ms: 0,
            end_ms: 600_000,
        };
        let acks = [(539_999, 1), (540_000, 2), (599_999, 3), (600_500, 4)];
        let late: Vec<u64> = span.last_stretch(&acks).iter().map(|a| a.1).collect();
        assert_eq!(late, [2, 3, 4]);
    }

    #[test]
    fn an_instant_maps_to_the_wall_clock_both_ways() {
        let now = Instant::now();
        let wall = now_ms();
        let ahead = wall_ms(now + Duration::from_secs(60));
        assert!(ahead.abs_diff(wall + 60_000) < 250, "{ahead} vs {wall}");
        // A machine up for less than a minute has no instant a minute back: half a second then
        // (still four times the tolerance, so the sign of the offset is checked).
        let (back_ms, at) = [60_000, 500]
            .into_iter()
            .find_map(|ms| Some((ms, now.checked_sub(Duration::from_millis(ms))?)))
            .expect("the machine has been up for half a second");
        let behind = wall_ms(at);
        assert!(behind.abs_diff(wall - back_ms) < 250, "{behind} vs {wall}");
    }

    #[test]
    fn no_acknowledgements_no_windows() {
        assert!(windows(&[], Duration::from_secs(5), 0).is_empty());
    }
}
