//! A pile command from the telemetry stream as a YKC frame, and the pile's reply as the
//! command's result: start (0x34/0x33) and stop (0x36/0x35) on a gun, restart (0x92/0x91),
//! availability through the working parameters (0x52/0x51: locked, or allowed at full output),
//! and a status trigger (0x12, answered by real-time data). What YKC has no frame for is
//! answered rejected at once. Replies are matched by type and gun, not by sequence number.

use std::time::{Duration, Instant};

use chrono::Utc;

use chargemesh_proto::telemetry::v1 as pb;
use pb::telemetry_message::Body;

use crate::Frame;
use crate::message::Message;
use crate::records::RemoteStart;
use crate::session::{AWAIT_CHARGING, End, Known, MAX_REMEMBERED, Pending, Session};
use crate::translate;

impl Session {
    /// A pile command as a YKC frame; the ones YKC cannot carry are answered failed at once.
    pub(crate) async fn on_command(&mut self, command: pb::PileCommand) -> Result<Vec<Frame>, End> {
        use pb::pile_command::Action;
        let code = self.pile.code.clone();
        let gun = if command.connector_id.is_empty() {
            None
        } else {
            match self
                .pile
                .connectors
                .iter()
                .position(|c| *c == command.connector_id)
            {
                Some(i) => Some(i as u8 + 1),
                None => {
                    let detail =
                        format!("{} is not a connector of this pile", command.connector_id);
                    self.result(&command.command_id, pb::CommandOutcome::Failed, detail)
                        .await?;
                    return Ok(Vec::new());
                }
            }
        };
        let needs_gun = |what: &str| format!("{what} needs a connector");
        let mut start_serial = None;
        let (message, reply): (Message, Option<u8>) = match (&command.action, gun) {
            (Some(Action::StartCharge(start)), Some(gun)) => {
                self.serials_made = self.serials_made.wrapping_add(1);
                let serial = translate::new_serial(&code, gun, Utc::now(), self.serials_made);
                self.remember(
                    serial.clone(),
                    Known {
                        gun,
                        order_id: start.order_id.clone(),
                        authorization_ref: start.authorization_ref.clone(),
                        ..Known::default()
                    },
                );
                let message = Message::RemoteStart(RemoteStart {
                    serial: serial.clone(),
                    pile: code,
                    gun,
                    logical_card: translate::logical_card(&start.authorization_ref),
                    physical_card: [0; 8],
                    balance: self.config.remote_start_balance_yuan.saturating_mul(100),
                });
                start_serial = Some(serial);
                (message, Some(0x33))
            }
            (Some(Action::StopCharge(_)), Some(gun)) => {
                for known in self.sessions.values_mut().filter(|k| k.gun == gun) {
                    known.platform_stopped = true;
                }
                if let Some(serial) = self.guns.get(&gun).and_then(|g| g.serial.clone()) {
                    let entry = self.sessions.entry(serial).or_default();
                    entry.gun = gun;
                    entry.platform_stopped = true;
                }
                (Message::RemoteStop { pile: code, gun }, Some(0x35))
            }
            (Some(Action::Reset(reset)), _) => (
                Message::Restart {
                    pile: code,
                    when: if reset.hard { 0x01 } else { 0x02 },
                },
                Some(0x91),
            ),
            (Some(Action::ChangeAvailability(change)), _) => (
                Message::WorkParams {
                    pile: code,
                    locked: u8::from(!change.operative),
                    max_output_pct: 100,
                },
                Some(0x51),
            ),
            (Some(Action::TriggerStatus(_)), _) => {
                let mut out = Vec::new();
                let guns: Vec<u8> = match gun {
                    Some(gun) => vec![gun],
                    None => self.guns().collect(),
                };
                for gun in guns {
                    if let Some(entry) = self.guns.get_mut(&gun) {
                        entry.state = None;
                    }
                    out.extend(self.frame(&Message::ReadRealtime {
                        pile: code.clone(),
                        gun,
                    }));
                }
                self.result(
                    &command.command_id,
                    pb::CommandOutcome::Accepted,
                    "real-time data requested (0x12)".into(),
                )
                .await?;
                return Ok(out);
            }
            (Some(Action::StartCharge(_)), None) => {
                self.result(
                    &command.command_id,
                    pb::CommandOutcome::Failed,
                    needs_gun("a start"),
                )
                .await?;
                return Ok(Vec::new());
            }
            (Some(Action::StopCharge(_)), None) => {
                self.result(
                    &command.command_id,
                    pb::CommandOutcome::Failed,
                    needs_gun("a stop"),
                )
                .await?;
                return Ok(Vec::new());
            }
            (other, _) => {
                let what = match other {
                    Some(Action::UnlockConnector(_)) => "unlocking a connector",
                    Some(Action::GetConfiguration(_)) | Some(Action::SetConfiguration(_)) => {
                        "configuration keys"
                    }
                    _ => "this command",
                };
                self.result(
                    &command.command_id,
                    pb::CommandOutcome::Rejected,
                    format!("YKC 1.6 has no frame for {what}"),
                )
                .await?;
                return Ok(Vec::new());
            }
        };
        if let Some(reply) = reply {
            if self.pending.len() >= MAX_REMEMBERED {
                self.pending.remove(0);
            }
            self.pending.push(Pending {
                command_id: command.command_id,
                reply,
                gun: if reply == 0x33 || reply == 0x35 {
                    gun
                } else {
                    None
                },
                deadline: Instant::now()
                    + Duration::from_secs(if start_serial.is_some() {
                        self.config.start_window_s.max(1)
                    } else {
                        self.config.command_timeout_s.max(1)
                    }),
                serial: start_serial,
            });
        }
        Ok(self.frame(&message).into_iter().collect())
    }

    /// The pile accepted the start of `serial` (0x33): it waits for the charging.
    pub(crate) fn await_charging(&mut self, serial: &str, gun: u8) {
        match self
            .pending
            .iter_mut()
            .find(|p| p.reply == 0x33 && p.serial.as_deref() == Some(serial))
        {
            Some(pending) => pending.reply = AWAIT_CHARGING,
            None => {
                tracing::info!(pile = %self.pile.code, gun, serial, "a YKC start accepted that no command waits for");
            }
        }
    }

    /// The session of `serial` charges: the start that made it is done.
    pub(crate) async fn started(&mut self, serial: &str) -> Result<(), End> {
        let Some(at) = self.pending.iter().position(|p| {
            matches!(p.reply, 0x33 | AWAIT_CHARGING) && p.serial.as_deref() == Some(serial)
        }) else {
            return Ok(());
        };
        let pending = self.pending.remove(at);
        self.result(
            &pending.command_id,
            pb::CommandOutcome::Accepted,
            format!("started, serial {serial}"),
        )
        .await
    }

    /// The pile's reply `kind` (for `gun`) settles the oldest command waiting for it.
    pub(crate) async fn resolve(
        &mut self,
        kind: u8,
        gun: Option<u8>,
        done: bool,
        detail: String,
    ) -> Result<(), End> {
        let Some(at) = self
            .pending
            .iter()
            .position(|p| p.reply == kind && (p.gun.is_none() || p.gun == gun))
        else {
            tracing::info!(pile = %self.pile.code, kind, "a YKC reply to no command waiting");
            return Ok(());
        };
        let pending = self.pending.remove(at);
        let outcome = if done {
            pb::CommandOutcome::Accepted
        } else {
            pb::CommandOutcome::Rejected
        };
        self.result(&pending.command_id, outcome, detail).await
    }

    /// Sends a command's result on the stream.
    pub(crate) async fn result(
        &mut self,
        command_id: &str,
        outcome: pb::CommandOutcome,
        detail: String,
    ) -> Result<(), End> {
        let message = self.report(
            &["result", command_id],
            String::new(),
            Body::CommandResult(pb::CommandResult {
                command_id: command_id.to_owned(),
                outcome: outcome as i32,
                detail: detail.chars().take(500).collect(),
            }),
        );
        if self.send(vec![message]).await {
            Ok(())
        } else {
            Err(End::Upstream)
        }
    }
}
