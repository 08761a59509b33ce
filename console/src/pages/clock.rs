//! A time limit of the standard as pages show it: its due time in Asia/Shanghai and a countdown
//! the page's script keeps running, late ones marked breached.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::i18n::{Lang, local, span};

/// A time limit (REQ FAULT-5's arrival and repair, CMP-1's response, CMP-4's promise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// `arrival`, `resolution`, `response` or `promise`.
    pub what: &'static str,
    pub due: DateTime<Utc>,
    /// When it was met, if it was.
    pub met: Option<DateTime<Utc>>,
}

impl Clock {
    /// REQ FAULT-5: late when met after the limit, or still unmet past it.
    pub fn breached(&self, now: DateTime<Utc>) -> bool {
        self.met.map_or(now > self.due, |met| met > self.due)
    }

    /// Seconds left (negative when late); none once met.
    pub fn remaining(&self, now: DateTime<Utc>) -> Option<i64> {
        self.met.is_none().then(|| (self.due - now).num_seconds())
    }
}

/// A protobuf time as a UTC time.
pub fn time(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// A clock as the page shows it; the script keeps the countdown running.
pub fn clock_cell(lang: Lang, clock: Option<&Clock>, now: DateTime<Utc>) -> Markup {
    let Some(clock) = clock else {
        return html! { "—" };
    };
    let breached = clock.breached(now);
    html! {
        span.clock.breached[breached] {
            time datetime=(clock.due.to_rfc3339()) { (local(clock.due)) }
            " "
            @match clock.remaining(now) {
                Some(left) => span.countdown
                    data-due=(clock.due.timestamp())
                    data-left=(lang.t("wo.left"))
                    data-late=(lang.t("wo.late")) {
                    @if left >= 0 { (span(left)) " " (lang.t("wo.left")) }
                    @else { (lang.t("wo.late")) " " (span(left)) }
                },
                None => span.met { (lang.t("wo.met")) },
            }
            @if breached { " " strong.badge { (lang.t("wo.breached")) } }
        }
    }
}
