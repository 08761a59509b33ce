//! Commands for piles (a platform-started session, REQ BASE-5 gated by metering): kept in the
//! database until a stream that reports for the pile is connected to this process, then sent on
//! that stream and marked delivered, once. Every telemetry replica runs the delivery pass for the
//! streams it holds, so a command reaches the pile wherever its stream landed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use tokio::sync::mpsc;
use tonic::Status;

use chargemesh_kit::db::StoreError;
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::telemetry::v1 as pb;

use crate::ingest::Telemetry;
use crate::store::QueuedCommand;

type Outbound = mpsc::Sender<Result<pb::ConnectResponse, Status>>;

/// The streams this process holds, with whom they report for.
#[derive(Debug, Default)]
pub struct Streams {
    next: AtomicU64,
    live: Mutex<Vec<(u64, Principal, Outbound)>>,
}

/// Keeps a stream registered while it lives.
#[derive(Debug)]
pub struct Registration {
    streams: Arc<Streams>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut live) = self.streams.live.lock() {
            live.retain(|(id, _, _)| *id != self.id);
        }
    }
}

/// Whether a stream of `principal` reports for the pile.
fn covers(principal: &Principal, operator: &str, station: &str, pile: &str) -> bool {
    match principal {
        Principal::Operator { operator_id } => operator_id == operator,
        Principal::Station {
            operator_id,
            station_id,
        } => operator_id == operator && station_id == station,
        Principal::Pile {
            operator_id,
            station_id,
            pile_id,
        } => operator_id == operator && station_id == station && pile_id == pile,
        _ => false,
    }
}

impl Streams {
    pub fn register(self: &Arc<Self>, principal: Principal, tx: Outbound) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = self.live.lock() {
            live.push((id, principal, tx));
        }
        Registration {
            streams: self.clone(),
            id,
        }
    }

    fn is_empty(&self) -> bool {
        self.live.lock().map_or(true, |live| live.is_empty())
    }

    /// The most specific live stream for the pile: its own, its station's, its operator's.
    fn sender_for(&self, operator: &str, station: &str, pile: &str) -> Option<Outbound> {
        let live = self.live.lock().ok()?;
        let rank = |p: &Principal| match p {
            Principal::Pile { .. } => 0,
            Principal::Station { .. } => 1,
            _ => 2,
        };
        live.iter()
            .filter(|(_, p, tx)| covers(p, operator, station, pile) && !tx.is_closed())
            .min_by_key(|(_, p, _)| rank(p))
            .map(|(_, _, tx)| tx.clone())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_goes_to_the_pile_s_own_stream_first_then_its_station_s_then_its_operator_s() {
        let streams = Arc::new(Streams::default());
        let (op_tx, _op_rx) = mpsc::channel(1);
        let (pile_tx, _pile_rx) = mpsc::channel(1);
        let _op = streams.register(
            Principal::Operator {
                operator_id: "OP".into(),
            },
            op_tx.clone(),
        );
        let sender = streams
            .sender_for("OP", "S1", "P1")
            .expect("the operator's");
        assert!(sender.same_channel(&op_tx));
        {
            let _pile = streams.register(
                Principal::Pile {
                    operator_id: "OP".into(),
                    station_id: "S1".into(),
                    pile_id: "P1".into(),
                },
                pile_tx.clone(),
            );
            let sender = streams
                .sender_for("OP", "S1", "P1")
                .expect("the pile's own");
            assert!(sender.same_channel(&pile_tx));
            assert!(
                streams
                    .sender_for("OP", "S1", "P2")
                    .is_some_and(|s| s.same_channel(&op_tx))
            );
        }
        // Gone with its stream.
        assert!(
            streams
                .sender_for("OP", "S1", "P1")
                .is_some_and(|s| s.same_channel(&op_tx))
        );
        assert!(streams.sender_for("OTHER", "S1", "P1").is_none());
    }
}
