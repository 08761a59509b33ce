//! Commands for piles (a platform-started session, REQ BASE-5 gated by metering): kept in the
//! database until a stream that reports for the pile is connected to this process, then sent on
//! that stream, and done when the pile answers (a `CommandResult` on its stream, durable with the
//! log). One not answered within `command_timeout_ms` goes out again, on whatever stream then
//! reports for the pile, up to `command_attempts` times; piles answer a command id they have
//! answered before without doing it again. Every telemetry replica runs the delivery pass for the
//! streams it holds, so a command reaches the pile wherever its stream landed, and a pile that
//! stops reading its stream holds back only its own commands.

use std::time::Duration;

use prost::Message as _;

use chargemesh_kit::Error;
use chargemesh_kit::db::StoreError;
use chargemesh_proto::telemetry::v1 as pb;

use crate::ingest::Telemetry;
use crate::store::QueuedCommand;

impl Telemetry {
    /// Queues a command for an operator's pile; returns its id.
    pub async fn queue_command(
        &self,
        operator_id: &str,
        mut command: pb::PileCommand,
    ) -> Result<String, Error> {
        let pile_id = command.pile_id.trim().to_owned();
        let what = || Error::NotFound(format!("pile {operator_id}/{pile_id}"));
        let index = self
            .registry
            .index(operator_id, &pile_id)
            .await?
            .ok_or_else(what)?;
        let pile = index.piles.get(&pile_id).ok_or_else(what)?;
        use pb::pile_command::Action as A;
        let per_connector = matches!(
            command.action,
            Some(A::StartCharge(_) | A::StopCharge(_) | A::UnlockConnector(_))
        );
        if command.connector_id.is_empty() && per_connector {
            return Err(Error::bad_field(
                "command.connector_id",
                "is required to start, stop or unlock",
            ));
        }
        if !command.connector_id.is_empty() && !pile.connectors.contains(&command.connector_id) {
            return Err(Error::bad_field(
                "command.connector_id",
                format!(
                    "{} is not a connector of pile {pile_id}",
                    command.connector_id
                ),
            ));
        }
        if command.action.is_none() {
            return Err(Error::bad_field("command.action", "must be set"));
        }
        command.command_id = format!("CMD-{}", uuid::Uuid::now_v7().simple());
        command.pile_id = pile_id.clone();
        self.store()
            .queue_command(&QueuedCommand {
                command_id: command.command_id.clone(),
                operator_id: operator_id.to_owned(),
                station_id: pile.station_id.clone(),
                pile_id,
                command: command.encode_to_vec(),
                queued_at: self.now(),
            })
            .await?;
        Ok(command.command_id)
    }

    /// One delivery pass over the pending commands; returns how many went out.
    pub async fn deliver_commands(&self) -> Result<usize, StoreError> {
        // Resends are paced by wall time: they are about the network.
        let now = chrono::Utc::now();
        let timeout = chrono::Duration::milliseconds(
            i64::try_from(self.settings.command_timeout_ms).unwrap_or(60_000),
        );
        let resend_before = now - timeout;
        let attempts = i32::try_from(self.settings.command_attempts.max(1)).unwrap_or(3);
        let expired = self
            .store()
            .expire_commands(resend_before, attempts)
            .await?;
        if expired > 0 {
            tracing::warn!(expired, "pile commands timed out unanswered");
        }
        if self.streams().is_empty() {
            return Ok(0);
        }
        let mut sent = 0;
        for queued in self.store().open_commands(resend_before, 500).await? {
            let Some(tx) =
                self.streams()
                    .sender_for(&queued.operator_id, &queued.station_id, &queued.pile_id)
            else {
                continue;
            };
            let Ok(command) = pb::PileCommand::decode(queued.command.as_slice()) else {
                tracing::warn!(command = %queued.command_id, "an undecodable command; left queued");
                continue;
            };
            // Room on the stream first: a pile that does not read its stream holds back only
            // its own commands, never another's.
            let Ok(permit) = tx.try_reserve() else {
                continue;
            };
            // Taken for sending; another replica holding a stream for the pile does not send it
            // too.
            if !self
                .store()
                .claim_command(&queued.command_id, now, resend_before, attempts)
                .await?
            {
                continue;
            }
            permit.send(Ok(Box::new(pb::ConnectResponse {
                body: Some(pb::connect_response::Body::Command(command)),
            })));
            sent += 1;
        }
        Ok(sent)
    }

    /// Runs delivery passes every `every` until aborted.
    pub fn spawn_command_delivery(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = this.deliver_commands().await {
                    tracing::warn!(%error, "command delivery pass failed");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chargemesh_kit::Principal;
    use chargemesh_kit::db::TestDatabase;
    use tokio::sync::mpsc;

    use super::*;
    use crate::store::{self, QueuedCommand};

    fn pile(pile_id: &str) -> Principal {
        Principal::Pile {
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: pile_id.into(),
        }
    }

    fn command(n: u32, pile_id: &str) -> QueuedCommand {
        let command = pb::PileCommand {
            command_id: format!("CMD-{n}"),
            pile_id: pile_id.into(),
            connector_id: format!("{pile_id}-1"),
            action: None,
        };
        QueuedCommand {
            command_id: command.command_id.clone(),
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: pile_id.into(),
            command: command.encode_to_vec(),
            queued_at: chrono::Utc::now(),
        }
    }

    /// A telemetry of its own SQLite store; its registry is never asked here.
    async fn telemetry(db: &TestDatabase) -> Telemetry {
        let _ = rustls::crypto::ring::default_provider().install_default();
        db.database
            .migrate(store::MIGRATIONS)
            .await
            .expect("migrated");
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let nowhere = chargemesh_kit::tls::mesh_channel("https://127.0.0.1:1", Arc::new(client))
            .expect("channel");
        let registry = Arc::new(crate::registry::Registry::new(
            crate::registry::AssetClient::new(nowhere),
            std::time::Duration::from_secs(30),
        ));
        let bus = Arc::new(chargemesh_kit::events::InProcessBus::new());
        Telemetry::new(
            store::for_database(&db.database),
            registry,
            Arc::new(chargemesh_kit::clock::SystemClock),
            crate::ChangeFeed::new(0, bus),
            crate::TelemetrySettings::default(),
        )
    }

    #[tokio::test]
    async fn a_pile_that_stops_reading_holds_back_only_its_own_commands() {
        let db = TestDatabase::sqlite("telemetry").await.expect("db");
        let telemetry = telemetry(&db).await;
        // P1's stream takes one message and is never read; P2's is.
        let (stalled, _never_read) = mpsc::channel(1);
        let (live, mut read) = mpsc::channel(8);
        let _p1 = telemetry.streams.register(pile("P1"), stalled);
        let _p2 = telemetry.streams.register(pile("P2"), live);
        for n in 0..5 {
            telemetry
                .store
                .queue_command(&command(n, "P1"))
                .await
                .expect("queued");
        }
        telemetry
            .store
            .queue_command(&command(9, "P2"))
            .await
            .expect("queued");
        let sent = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            telemetry.deliver_commands(),
        )
        .await
        .expect("a pass never waits for a pile")
        .expect("pass");
        assert_eq!(sent, 2, "one fits P1's stream; P2's goes");
        let Ok(Ok(response)) = read.try_recv() else {
            panic!("P2 has its command");
        };
        let Some(pb::connect_response::Body::Command(got)) = response.body else {
            panic!("a command");
        };
        assert_eq!(got.command_id, "CMD-9");
        let mut queued = 0;
        for n in 0..5 {
            let record = telemetry
                .store
                .command("OP", &format!("CMD-{n}"))
                .await
                .expect("read")
                .expect("kept");
            if record.state == "queued" {
                queued += 1;
            }
        }
        assert_eq!(
            queued, 4,
            "what did not fit waits, queued, for the next pass"
        );
    }
}
