//! A follower's saved position, written at most once per interval. A follower that applies
//! what it reads idempotently (a replay changes nothing) need not commit its position after
//! every batch: at a fleet's rate that was a commit, and a WAL flush, per batch. Held back, the
//! position costs at most one interval of replay after a crash.

use std::time::Duration;

use tokio::time::Instant;

/// The position applied and the one saved.
#[derive(Debug)]
pub struct Checkpoint<T> {
    every: Duration,
    saved_at: Option<Instant>,
    unsaved: Option<T>,
}

impl<T> Checkpoint<T> {
    /// Saves at most once per `every` (zero: every position at once).
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            saved_at: None,
            unsaved: None,
        }
    }

    /// Everything up to `position` is applied. Returns it when it is to be saved now: the first
    /// position, or one `every` after the last save; else it is held until [`Checkpoint::due`].
    pub fn advance(&mut self, position: T, now: Instant) -> Option<T> {
        let due = self.saved_at.is_none_or(|at| now >= at + self.every);
        if due {
            self.saved_at = Some(now);
            self.unsaved = None;
            Some(position)
        } else {
            self.unsaved = Some(position);
            None
        }
    }

    /// When the held position is to be saved; `None` when nothing is held.
    pub fn due(&self) -> Option<Instant> {
        // A position is only held after a save (the first is saved at once).
        self.unsaved.as_ref()?;
        self.saved_at.map(|at| at + self.every)
    }

    /// The held position, to save now (when due, or when the follower stops).
    pub fn take(&mut self, now: Instant) -> Option<T> {
        let position = self.unsaved.take()?;
        self.saved_at = Some(now);
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_position_is_saved_at_once_and_the_next_within_the_interval_is_held() {
        let every = Duration::from_secs(1);
        let start = Instant::now();
        let mut c = Checkpoint::new(every);
        assert_eq!(c.due(), None);
        assert_eq!(c.advance(1, start), Some(1));
        assert_eq!(c.due(), None, "nothing held");
        assert_eq!(c.advance(2, start + Duration::from_millis(10)), None);
        assert_eq!(c.advance(3, start + Duration::from_millis(20)), None);
        assert_eq!(
            c.due(),
            Some(start + every),
            "the newest held until a second after the save"
        );
        assert_eq!(
            c.advance(4, start + every),
            Some(4),
            "an interval on: saved"
        );
        assert_eq!(c.due(), None);
    }

    #[test]
    fn a_held_position_taken_when_due_starts_the_next_interval() {
        let every = Duration::from_secs(1);
        let start = Instant::now();
        let mut c = Checkpoint::new(every);
        c.advance("a", start);
        c.advance("b", start + Duration::from_millis(500));
        assert_eq!(c.take(start + every), Some("b"));
        assert_eq!(c.take(start + every), None, "taken once");
        assert_eq!(
            c.advance("c", start + every + Duration::from_millis(1)),
            None
        );
        assert_eq!(c.due(), Some(start + every + every));
    }

    #[test]
    fn with_no_interval_every_position_is_saved() {
        let start = Instant::now();
        let mut c = Checkpoint::new(Duration::ZERO);
        assert_eq!(c.advance(1, start), Some(1));
        assert_eq!(c.advance(2, start), Some(2));
    }
}
