//! Commands for piles (a platform-started session, REQ BASE-5 gated by metering): kept in the
//! database until a stream that reports for the pile is connected to this process, then sent on
//! that stream and marked delivered, once. Every telemetry replica runs the delivery pass for the
//! streams it holds, so a command reaches the pile wherever its stream landed.

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
        if !pile.connectors.contains(&command.connector_id) {
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
        if self.streams().is_empty() {
            return Ok(0);
        }
        let mut sent = 0;
        for queued in self.store().pending_commands(500).await? {
            let Some(tx) =
                self.streams()
                    .sender_for(&queued.operator_id, &queued.station_id, &queued.pile_id)
            else {
                continue;
            };
            let Ok(command) = pb::PileCommand::decode(queued.command.as_slice()) else {
                tracing::warn!(command = %queued.command_id, "an undecodable command; dropped");
                self.store()
                    .mark_delivered(&queued.command_id, self.now())
                    .await?;
                continue;
            };
            // Marked first: a command is delivered at most once, never twice.
            if !self
                .store()
                .mark_delivered(&queued.command_id, self.now())
                .await?
            {
                continue;
            }
            let message = pb::ConnectResponse {
                body: Some(pb::connect_response::Body::Command(command)),
            };
            if tx.send(Ok(message)).await.is_ok() {
                sent += 1;
            } else {
                tracing::warn!(command = %queued.command_id, "the stream closed while the command was sent");
            }
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
