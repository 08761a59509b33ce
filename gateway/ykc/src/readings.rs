//! What a pile reports becomes telemetry: a gun's real-time data (0x13) its status when it
//! changed, a meter sample while charging (energy relative to the session's start: YKC sends no
//! register before the record), an alarm per newly set hardware fault bit and the start of a
//! session the platform knows; a transaction record (0x3B) the session's end with the pile's own
//! figures, confirmed once durable.

use chrono::Utc;

use chargemesh_proto::telemetry::v1 as pb;
use pb::telemetry_message::Body;

use crate::Frame;
use crate::message::Message;
use crate::records::{Realtime, Transaction};
use crate::session::{AfterDurable, End, Session};
use crate::translate;

impl Session {
    /// A gun's real-time data: its status when it changed, a meter sample while charging, an
    /// alarm per new fault bit, and the start of a session the platform knows.
    pub(crate) fn on_realtime(&mut self, data: &Realtime) -> Vec<pb::TelemetryMessage> {
        let Some(connector) = self.connector(data.gun).cloned() else {
            tracing::info!(pile = %self.pile.code, gun = data.gun, "real-time data of a gun the registry does not list; skipped");
            return Vec::new();
        };
        let Some(state) = translate::connector_state(data) else {
            tracing::info!(pile = %self.pile.code, status = data.status, "real-time data with an undefined status; skipped");
            return Vec::new();
        };
        let now = Self::now_part();
        let mut out = Vec::new();
        let gun = self.guns.entry(data.gun).or_default().clone();
        // A session this connection started or authorised begins when the pile charges under
        // its serial.
        if data.status == 0x03
            && let Some(known) = self.sessions.get_mut(&data.serial)
            && !known.started
        {
            known.started = true;
            let start = Body::SessionStart(pb::SessionStart {
                order_id: known.order_id.clone(),
                authorization_ref: known.authorization_ref.clone(),
                meter_start_kwh: "0.000".into(),
                connector_checked: true,
                charging_confirmed: true,
                any_token: known.any_token,
            });
            let serial = data.serial.clone();
            out.push(self.report(&["start", &serial], connector.clone(), start));
        }
        out.extend(
            translate::new_fault_alarms(gun.faults, data.faults)
                .into_iter()
                .map(|alarm| {
                    self.report(
                        &["alarm", &alarm.code.clone(), &now],
                        connector.clone(),
                        Body::Alarm(alarm),
                    )
                }),
        );
        if gun.state != Some(state) {
            let (fault_code, fault_text) = if state == pb::ConnectorState::Fault {
                let names = translate::fault_names(data.faults);
                (translate::fault_code(data.faults), names.join(", "))
            } else {
                (String::new(), String::new())
            };
            out.push(self.report(
                &["status", &now],
                connector.clone(),
                Body::Status(pb::ConnectorStatus {
                    state: state as i32,
                    fault_code,
                    fault_text,
                }),
            ));
        }
        if data.status == 0x03 && data.in_session() {
            out.push(self.report(
                &["meter", &data.serial, &data.energy.to_string(), &now],
                connector,
                Body::Meter(pb::MeterSample {
                    energy_kwh: translate::kwh(u64::from(data.energy)),
                    power_kw: data.power_w() / 1000.0,
                    voltage: f64::from(data.voltage) / 10.0,
                    current: f64::from(data.current) / 10.0,
                    soc_percent: if data.soc == 0 {
                        -1.0
                    } else {
                        f64::from(data.soc)
                    },
                }),
            ));
        }
        let entry = self.guns.entry(data.gun).or_default();
        entry.state = Some(state);
        entry.faults = data.faults;
        entry.serial = data.in_session().then(|| data.serial.clone());
        out
    }

    /// A transaction record: the session's end, confirmed once durable.
    pub(crate) async fn on_record(
        &mut self,
        record: Transaction,
        sequence: [u8; 2],
    ) -> Result<Vec<Frame>, End> {
        let Some(connector) = self.connector(record.gun).cloned() else {
            tracing::warn!(pile = %self.pile.code, gun = record.gun, serial = %record.serial, "a transaction record of a gun the registry does not list; refused as illegal");
            return Ok(self
                .reply(
                    &Message::TransactionAck {
                        serial: record.serial,
                        result: 0x01,
                    },
                    sequence,
                )
                .into_iter()
                .collect());
        };
        let known = self.sessions.remove(&record.serial).unwrap_or_default();
        if record.meter_stop.saturating_sub(record.meter_start) != u64::from(record.energy) {
            // REQ SETTLE-1: the pile's total is what is settled; its registers are kept in the
            // log for a monitor (real piles send zeros).
            tracing::info!(pile = %self.pile.code, serial = %record.serial, meter_start = record.meter_start, meter_stop = record.meter_stop, energy = record.energy, "a YKC record whose registers disagree with its energy");
        }
        let end = Body::SessionEnd(pb::SessionEnd {
            order_id: known.order_id.clone(),
            // Relative to the session's start, as its start and samples were.
            meter_stop_kwh: if translate::failed_start(record.stop_reason) {
                "0.000".into()
            } else {
                translate::kwh(u64::from(record.energy))
            },
            stop_reason: translate::stop_reason(record.stop_reason, known.platform_stopped),
            end_confirmed: true,
            physically_separated: false,
            // REQ SETTLE-1: what the pile charged, which metering checks against the tariff
            // in force and keeps on the order.
            reported_energy_kwh: translate::kwh(u64::from(record.energy)),
            reported_total_money: translate::yuan(record.amount),
        });
        let mut messages = Vec::new();
        if !known.started && !known.order_id.is_empty() {
            tracing::info!(pile = %self.pile.code, serial = %record.serial, "a record of a platform start never seen charging");
        }
        // The record says when the session ended (a record sent after a reconnect arrives
        // late); a pile clock that cannot be read, or is ahead, gives way to the arrival.
        let now = Utc::now();
        let ended = record
            .end
            .to_utc()
            .ok()
            .filter(|at| *at <= now)
            .unwrap_or(now);
        let message = self.report_at(&["end", &record.serial], connector, end, ended);
        self.waiting.insert(
            message.sequence,
            AfterDurable::ConfirmRecord {
                serial: record.serial.clone(),
                sequence,
            },
        );
        messages.push(message);
        if !self.send(messages).await {
            return Err(End::Upstream);
        }
        Ok(Vec::new())
    }
}
