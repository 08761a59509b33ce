//! The telemetry streams this process holds and whom each reports for, so a command for a pile
//! finds the most specific live stream: the pile's own, its station's, its operator's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tonic::Status;

use chargemesh_kit::Principal;
use chargemesh_proto::telemetry::v1 as pb;

pub type Outbound = mpsc::Sender<Result<pb::ConnectResponse, Status>>;

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

    pub fn is_empty(&self) -> bool {
        self.live.lock().map_or(true, |live| live.is_empty())
    }

    /// The most specific live stream for the pile: its own, its station's, its operator's.
    pub fn sender_for(&self, operator: &str, station: &str, pile: &str) -> Option<Outbound> {
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
