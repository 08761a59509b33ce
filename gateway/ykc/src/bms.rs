//! A pile's BMS frames (GB/T 27930 through YKC, `design/ykc.md` §4.2): the handshake (0x15),
//! parameters (0x17) and end summary (0x19) are kept with the session as vehicle data (the
//! telemetry log keeps them with the session's serial and order, for disputes and fault
//! analysis); the error and abort frames (0x1B, 0x1D, 0x21) raise an alarm; the 15-second
//! demand and state frames (0x23, 0x25) are only logged.

use chargemesh_proto::telemetry::v1 as pb;
use pb::telemetry_message::Body;

use crate::fields::hex;
use crate::records::Bms;
use crate::session::{End, Session};

/// The BMS frames kept with the session.
const KEPT: [u8; 3] = [0x15, 0x17, 0x19];
/// The BMS frames that raise an alarm.
const ALARMS: [u8; 3] = [0x1B, 0x1D, 0x21];

fn alarm_text(kind: u8) -> &'static str {
    match kind {
        0x1B => "message timeouts",
        0x1D => "BMS abort",
        _ => "charger abort",
    }
}

impl Session {
    /// A BMS frame of `kind` from the pile.
    pub(crate) async fn on_bms(&mut self, kind: u8, bms: Bms) -> Result<(), End> {
        tracing::debug!(pile = %self.pile.code, kind, serial = %bms.serial, bytes = bms.data.len(), "a YKC BMS frame");
        let Some(connector) = self.connector(bms.gun).cloned() else {
            tracing::info!(pile = %self.pile.code, gun = bms.gun, kind, "a YKC BMS frame of a gun the registry does not list; skipped");
            return Ok(());
        };
        let identity = [
            "bms".to_owned(),
            format!("{kind}"),
            bms.serial.clone(),
            hex(&bms.data),
        ];
        let identity: Vec<&str> = identity.iter().map(String::as_str).collect();
        let report = if KEPT.contains(&kind) {
            let order_id = self
                .sessions
                .get(&bms.serial)
                .map(|known| known.order_id.clone())
                .unwrap_or_default();
            // The same frame sent again is the same report.
            self.report(
                &identity,
                connector,
                Body::VehicleData(pb::VehicleData {
                    session_ref: bms.serial,
                    order_id,
                    kind: format!("ykc.0x{kind:02X}"),
                    data: bms.data,
                }),
            )
        } else if ALARMS.contains(&kind) {
            self.report(
                &identity,
                connector,
                Body::Alarm(pb::Alarm {
                    code: format!("ykc.bms.0x{kind:02X}"),
                    severity: pb::AlarmSeverity::Warning as i32,
                    text: format!(
                        "YKC {} for session {}: {}",
                        alarm_text(kind),
                        bms.serial,
                        hex(&bms.data)
                    )
                    .chars()
                    .take(200)
                    .collect(),
                }),
            )
        } else {
            return Ok(());
        };
        if self.send(vec![report]).await {
            Ok(())
        } else {
            Err(End::Upstream)
        }
    }
}
