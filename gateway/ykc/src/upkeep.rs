//! What the edge keeps a logged-in pile up to date with, beyond answering it:
//!
//! - its billing model (REQ MON-10, BASE-3): the station's tariff is read again every
//!   `tariff_refresh_s` (from [`TariffSource`], shared by the station's piles); when the model
//!   of the version in force differs from the one the pile has (a new version scheduled, or the
//!   time come for one), the model is set with 0x58 while the pile's guns are idle, and the
//!   pile's 0x57 answer recorded: a refusal raises an alarm and is not retried for that model;
//! - its clock: 0x56 right after the login and then every `time_sync_s` (a day).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use chargemesh_kit::tariff::Tariff;
use chargemesh_proto::telemetry::v1 as pb;
use pb::telemetry_message::Body;

use crate::records::BillingModel;
use crate::session::{End, Session};
use crate::station_tariffs::TariffSource;
use crate::{Cp56Time, Frame, Message};

/// A pile's billing model and clock, as the edge keeps them.
pub(crate) struct Upkeep {
    source: Arc<dyn TariffSource>,
    /// The station's tariff as last read.
    pub(crate) tariff: Tariff,
    tariff_read: Instant,
    /// The model code the pile has, as it said (0x05) or was given (0x0A, 0x57 done).
    pile_model: Option<String>,
    /// A 0x58 sent, with when, waiting for its 0x57.
    sent: Option<(String, Instant)>,
    /// The last model the pile refused: not sent again.
    refused: Option<String>,
    time_synced: Instant,
}

impl Upkeep {
    pub(crate) fn new(source: Arc<dyn TariffSource>, tariff: Tariff) -> Self {
        Self {
            source,
            tariff,
            tariff_read: Instant::now(),
            pile_model: None,
            sent: None,
            refused: None,
            time_synced: Instant::now(),
        }
    }

    /// The pile said which model it has (0x05), or was given one (0x0A).
    pub(crate) fn pile_has(&mut self, model: &str) {
        self.pile_model = Some(model.to_owned());
    }
}

/// REQ MON-10: whether the model in force is to be set on the pile now: it differs from the
/// pile's (or the pile never said), the pile has not refused it, no setting is in flight and
/// no gun is charging (a model changed mid-session would price the session's rest with it).
pub(crate) fn model_to_set(
    pile_model: Option<&str>,
    in_force: &str,
    refused: Option<&str>,
    in_flight: bool,
    guns_idle: bool,
) -> bool {
    pile_model != Some(in_force) && refused != Some(in_force) && !in_flight && guns_idle
}

impl Session {
    /// The billing model of the tariff in force, or why there is none.
    pub(crate) fn billing_model(&self) -> Result<BillingModel, String> {
        let version = self
            .upkeep
            .tariff
            .in_force(Utc::now())
            .ok_or_else(|| "the station has no tariff in force".to_owned())?;
        crate::tariff::billing_model(&self.pile.code, version)
    }

    /// Whether every gun is idle: none in a session, no remote start waiting for its answer.
    fn guns_idle(&self) -> bool {
        !self
            .guns
            .values()
            .any(|g| g.serial.is_some() || g.state == Some(pb::ConnectorState::Charging))
            && !self.pending.iter().any(|p| p.reply == 0x33)
    }

    /// Once a second: the time sync when due; the tariff read again and the model set when
    /// due.
    pub(crate) async fn upkeep(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        let code = self.pile.code.clone();
        if self.upkeep.time_synced.elapsed() >= Duration::from_secs(self.config.time_sync_s.max(1))
        {
            self.upkeep.time_synced = Instant::now();
            out.extend(self.frame(&Message::TimeSync {
                pile: code.clone(),
                time: Cp56Time::from_utc(Utc::now()),
            }));
        }
        let timeout = Duration::from_secs(self.config.command_timeout_s.max(1));
        if let Some((model, at)) = &self.upkeep.sent
            && at.elapsed() > timeout
        {
            tracing::warn!(pile = %code, model, "a YKC pile did not answer a model setting in time; it is tried again");
            self.upkeep.sent = None;
        }
        let refresh = Duration::from_secs(self.config.tariff_refresh_s.max(1));
        if self.upkeep.tariff_read.elapsed() < refresh {
            return out;
        }
        self.upkeep.tariff_read = Instant::now();
        if let Some(tariff) = self.upkeep.source.tariff(&self.pile).await {
            self.upkeep.tariff = tariff;
        }
        let model = match self.billing_model() {
            Ok(model) => model,
            Err(reason) => {
                tracing::debug!(pile = %code, %reason, "no billing model to keep a YKC pile on");
                return out;
            }
        };
        if model_to_set(
            self.upkeep.pile_model.as_deref(),
            &model.model,
            self.upkeep.refused.as_deref(),
            self.upkeep.sent.is_some(),
            self.guns_idle(),
        ) {
            tracing::info!(pile = %code, from = ?self.upkeep.pile_model, to = %model.model, "setting a YKC pile's billing model (MON-10)");
            self.upkeep.sent = Some((model.model.clone(), Instant::now()));
            out.extend(self.frame(&Message::ModelSet(model)));
        }
        out
    }

    /// The pile's answer to a model setting (0x57): its model now, or an alarm that the pile
    /// cannot bill by the tariff in force.
    pub(crate) async fn on_model_set_reply(&mut self, result: u8) -> Result<(), End> {
        let Some((model, _)) = self.upkeep.sent.take() else {
            tracing::info!(pile = %self.pile.code, result, "a YKC model setting answer nothing waited for");
            return Ok(());
        };
        if result == 0x01 {
            tracing::info!(pile = %self.pile.code, %model, "a YKC pile took its billing model");
            self.upkeep.pile_model = Some(model);
            self.upkeep.refused = None;
            return Ok(());
        }
        tracing::warn!(pile = %self.pile.code, %model, "a YKC pile refused its billing model (MON-10)");
        let alarm = self.report(
            &["model refused", &model, &Self::now_part()],
            String::new(),
            Body::Alarm(pb::Alarm {
                code: "ykc.model_refused".into(),
                severity: pb::AlarmSeverity::Warning as i32,
                text: format!(
                    "the pile refused billing model {model} of the tariff in force (MON-10); it bills by {}",
                    self.upkeep.pile_model.as_deref().unwrap_or("an unknown model")
                ),
            }),
        );
        self.upkeep.refused = Some(model);
        if self.send(vec![alarm]).await {
            Ok(())
        } else {
            Err(End::Upstream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::model_to_set;

    #[test]
    fn mon_10_a_pile_is_given_the_model_in_force_only_while_its_guns_are_idle() {
        assert!(model_to_set(Some("0001"), "0002", None, false, true));
        assert!(
            !model_to_set(Some("0001"), "0002", None, false, false),
            "charging"
        );
        assert!(
            !model_to_set(Some("0002"), "0002", None, false, true),
            "has it"
        );
        assert!(
            !model_to_set(Some("0001"), "0002", None, true, true),
            "in flight"
        );
    }

    #[test]
    fn mon_10_a_refused_model_is_not_sent_again_but_a_newer_one_is() {
        assert!(!model_to_set(
            Some("0001"),
            "0002",
            Some("0002"),
            false,
            true
        ));
        assert!(model_to_set(
            Some("0001"),
            "0003",
            Some("0002"),
            false,
            true
        ));
        assert!(
            model_to_set(None, "0002", None, false, true),
            "a pile that never said is given it"
        );
    }
}
