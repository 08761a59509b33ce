//! The load a benchmark pile offers: when it heartbeats, changes state and samples its meter,
//! as a pure schedule over instants (shared by the native and the OCPP fleets).

use std::time::{Duration, Instant};

use super::fleet::FleetOptions;
use crate::sim::Rng;

/// What a pile does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    Heartbeat,
    /// Its connector changes state: charging when `true`.
    Status(bool),
    /// A meter sample while charging, the register in Wh.
    Meter(u64),
}

/// When a pile does each thing: heartbeats at a fixed interval and meter samples at a fixed
/// interval while charging (as an OCPP charge point's heartbeat and sample intervals), each pile
/// at its own phase, so the fleet is not a chorus; status changes at exponential intervals, the
/// independent events they are.
///
/// What a pile owes after time away from its platform is what a real one sends: heartbeats are
/// not queued (the first comes one interval after the connect), status changes that happened
/// meanwhile are not replayed (the report that opens every connection carries the state now),
/// and the meter samples of a charge in progress are (OCPP queues a transaction's meter values).
///
/// A pile stays in each state for a time around its own mean, charging `2 * status_every_s *
/// charging_share` and idle the rest of `2 * status_every_s`, so status changes come every
/// `status_every_s` on average and the share of the fleet charging stays `charging_share`
/// (with one mean for both states every fleet would drift to half its piles charging).
pub(super) struct Schedule {
    rng: Rng,
    /// Seconds between heartbeats, mean seconds between status changes, seconds between meter
    /// samples.
    intervals: (f64, f64, f64),
    charging_share: f64,
    next: (Instant, Instant, Instant),
    charging: bool,
    register_wh: u64,
}

impl Schedule {
    pub(super) fn new(opts: &FleetOptions, seed: u64) -> Self {
        Self::starting(
            (opts.heartbeat_s, opts.status_every_s, opts.meter_every_s),
            opts.charging_share,
            seed,
            Instant::now(),
        )
    }

    fn starting(intervals: (f64, f64, f64), charging_share: f64, seed: u64, now: Instant) -> Self {
        let mut rng = Rng::new(seed);
        let charging = (rng.draw() % 1000) as f64 / 1000.0 < charging_share;
        let register_wh = 1_000_000 + rng.draw() % 1_000_000;
        let mut this = Self {
            rng,
            intervals,
            charging_share: charging_share.clamp(0.0, 1.0),
            next: (now, now, now),
            charging,
            register_wh,
        };
        let in_state = this.mean_in_state();
        this.next = (
            now + this.phase(intervals.0),
            now + this.gap(in_state),
            now + this.phase(intervals.2),
        );
        this
    }

    /// Whether the pile is charging now.
    pub(super) fn charging(&self) -> bool {
        self.charging
    }

    /// A uniform draw in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.rng.draw() % 1_000_000) as f64 + 1.0) / 1_000_001.0
    }

    /// An exponential interval around `mean` seconds.
    fn gap(&mut self, mean: f64) -> Duration {
        let u = self.uniform();
        Duration::from_secs_f64((-u.ln() * mean).max(0.05))
    }

    /// Where in a `period` of seconds a pile's first one falls.
    fn phase(&mut self, period: f64) -> Duration {
        let u = self.uniform();
        Duration::from_secs_f64(u * period)
    }

    fn period(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds.max(0.05))
    }

    /// The pile (re)connects at `now`: status changes that fell due while it was away happen
    /// without a report of their own and the next heartbeat is an interval away. Call it before
    /// the report that opens the connection, which carries the state it leaves.
    pub(super) fn connected(&mut self, now: Instant) {
        while self.next.1 <= now {
            let at = self.next.1;
            self.change_state(at);
        }
        self.next.0 = now + Self::period(self.intervals.0);
    }

    /// Mean seconds the pile stays in the state it is in.
    fn mean_in_state(&self) -> f64 {
        let share = if self.charging {
            self.charging_share
        } else {
            1.0 - self.charging_share
        };
        2.0 * self.intervals.1 * share
    }

    /// The status changes at `at`; a charge that begins samples its meter from then on.
    fn change_state(&mut self, at: Instant) {
        self.charging = !self.charging;
        let in_state = self.mean_in_state();
        self.next.1 = at + self.gap(in_state);
        if self.charging {
            self.next.2 = at + Self::period(self.intervals.2);
        }
    }

    /// What comes next and when, unless the run ends first.
    fn peek(&self, until: Instant) -> Option<Instant> {
        let (beat, status, meter) = self.next;
        let at = beat
            .min(status)
            .min(if self.charging { meter } else { until });
        (at < until).then_some(at)
    }

    /// Takes what is due at `at` (from `peek`) and schedules its next time.
    fn take(&mut self, at: Instant) -> Due {
        if at == self.next.1 {
            self.change_state(at);
            Due::Status(self.charging)
        } else if at == self.next.2 && self.charging {
            self.next.2 = at + Self::period(self.intervals.2);
            self.register_wh += 30;
            Due::Meter(self.register_wh)
        } else {
            self.next.0 = at + Self::period(self.intervals.0);
            Due::Heartbeat
        }
    }

    /// Waits for what comes next before `until`; `None` when the run ends first.
    pub(super) async fn next(&mut self, until: Instant) -> Option<Due> {
        let at = self.peek(until)?;
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        Some(self.take(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVALS: (f64, f64, f64) = (60.0, 300.0, 30.0);

    /// Every event from the schedule's position until `to`, with its time.
    fn events(schedule: &mut Schedule, to: Instant) -> Vec<(Instant, Due)> {
        let mut out = Vec::new();
        while let Some(at) = schedule.peek(to) {
            out.push((at, schedule.take(at)));
        }
        out
    }

    #[test]
    fn a_pile_sends_at_its_means() {
        let t0 = Instant::now();
        let mut schedule = Schedule::starting(INTERVALS, 0.3, 7, t0);
        let day = events(&mut schedule, t0 + Duration::from_secs(86_400));
        let beats = day.iter().filter(|(_, d)| *d == Due::Heartbeat).count();
        let changes = day
            .iter()
            .filter(|(_, d)| matches!(d, Due::Status(_)))
            .count();
        assert!((1_300..1_600).contains(&beats), "{beats} heartbeats a day");
        assert!(
            (230..350).contains(&changes),
            "{changes} status changes a day"
        );
    }

    #[test]
    fn the_share_of_the_fleet_charging_stays_as_asked() {
        let t0 = Instant::now();
        let (mut charging, mut total) = (Duration::ZERO, Duration::ZERO);
        for seed in 1..200 {
            let mut schedule = Schedule::starting(INTERVALS, 0.3, seed, t0);
            let (mut since, mut state) = (t0, schedule.charging());
            for (at, due) in events(&mut schedule, t0 + Duration::from_secs(6 * 3_600)) {
                if let Due::Status(now_charging) = due {
                    if state {
                        charging += at - since;
                    }
                    total += at - since;
                    (since, state) = (at, now_charging);
                }
            }
        }
        let share = charging.as_secs_f64() / total.as_secs_f64();
        assert!(
            (0.25..0.35).contains(&share),
            "{share:.3} of the time charging"
        );
    }

    #[test]
    fn a_pile_back_after_time_away_owes_no_heartbeat_and_replays_no_status_change() {
        for seed in 1..50 {
            let t0 = Instant::now();
            let mut schedule = Schedule::starting(INTERVALS, 0.5, seed, t0);
            let back = t0 + Duration::from_secs(1_800);
            schedule.connected(back);
            let owed = events(&mut schedule, back + Duration::from_millis(1));
            assert!(
                owed.iter().all(|(_, d)| matches!(d, Due::Meter(_))),
                "seed {seed}: {owed:?}"
            );
            let after = events(&mut schedule, back + Duration::from_secs(600));
            assert!(after.iter().any(|(_, d)| *d == Due::Heartbeat));
        }
    }

    #[test]
    fn a_charge_samples_its_meter_from_when_it_began() {
        for seed in 1..50 {
            let t0 = Instant::now();
            let mut schedule = Schedule::starting(INTERVALS, 0.0, seed, t0);
            let mut began = None;
            for (at, due) in events(&mut schedule, t0 + Duration::from_secs(7_200)) {
                match due {
                    Due::Status(true) => began = Some(at),
                    Due::Status(false) => began = None,
                    Due::Meter(_) => {
                        let began = began.expect("a sample while charging");
                        assert!(at > began, "seed {seed}: a sample dated before its charge");
                    }
                    Due::Heartbeat => {}
                }
            }
        }
    }
}
