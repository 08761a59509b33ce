//! The telemetry streams this process holds and whom each reports for, so a command for a pile
//! finds the most specific live stream: the pile's own, its station's, its operator's. Streams
//! are kept by the scope they report for, so registering, dropping and finding one costs the same
//! with a hundred thousand piles connected as with ten (a reconnect storm drops and registers
//! them all at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tonic::Status;

use chargemesh_kit::Principal;
use chargemesh_proto::telemetry::v1 as pb;

/// What goes out on a stream: each answer boxed, so a stream's channel (tokio allocates its slots
/// 32 at a time when it opens) costs 32 pointers rather than 32 answers.
pub type Outbound = mpsc::Sender<Result<Box<pb::ConnectResponse>, Status>>;

/// Whom a stream reports for: one pile, a whole station, or a whole operator (a platform).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Pile(String, String, String),
    Station(String, String),
    Operator(String),
}

impl Scope {
    /// The scope of a reporting principal; `None` for one that reports for no pile.
    fn of(principal: &Principal) -> Option<Self> {
        match principal {
            Principal::Pile {
                operator_id,
                station_id,
                pile_id,
            } => Some(Self::Pile(
                operator_id.clone(),
                station_id.clone(),
                pile_id.clone(),
            )),
            Principal::Station {
                operator_id,
                station_id,
            } => Some(Self::Station(operator_id.clone(), station_id.clone())),
            Principal::Operator { operator_id } => Some(Self::Operator(operator_id.clone())),
            _ => None,
        }
    }
}

/// The streams this process holds, by the scope they report for, oldest first within one.
#[derive(Debug, Default)]
pub struct Streams {
    next: AtomicU64,
    live: Mutex<HashMap<Scope, Vec<(u64, Outbound)>>>,
}

/// Keeps a stream registered while it lives.
#[derive(Debug)]
pub struct Registration {
    streams: Arc<Streams>,
    key: Option<(Scope, u64)>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some((scope, id)) = self.key.take() else {
            return;
        };
        if let Ok(mut live) = self.streams.live.lock()
            && let Some(held) = live.get_mut(&scope)
        {
            held.retain(|(each, _)| *each != id);
            if held.is_empty() {
                live.remove(&scope);
            }
        }
    }
}

impl Streams {
    pub fn register(self: &Arc<Self>, principal: Principal, tx: Outbound) -> Registration {
        let key = Scope::of(&principal).map(|scope| {
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut live) = self.live.lock() {
                live.entry(scope.clone()).or_default().push((id, tx));
            }
            (scope, id)
        });
        Registration {
            streams: self.clone(),
            key,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.live.lock().map_or(true, |live| live.is_empty())
    }

    /// The most specific live stream for the pile: its own, its station's, its operator's.
    pub fn sender_for(&self, operator: &str, station: &str, pile: &str) -> Option<Outbound> {
        let live = self.live.lock().ok()?;
        [
            Scope::Pile(operator.into(), station.into(), pile.into()),
            Scope::Station(operator.into(), station.into()),
            Scope::Operator(operator.into()),
        ]
        .iter()
        .filter_map(|scope| live.get(scope))
        .flat_map(|held| held.iter())
        .find(|(_, tx)| !tx.is_closed())
        .map(|(_, tx)| tx.clone())
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

    #[test]
    fn a_station_stream_serves_its_piles_and_a_closed_stream_is_passed_over() {
        let streams = Arc::new(Streams::default());
        let (closed_tx, closed_rx) = mpsc::channel(1);
        let (station_tx, _station_rx) = mpsc::channel(1);
        let closed = streams.register(
            Principal::Pile {
                operator_id: "OP".into(),
                station_id: "S1".into(),
                pile_id: "P1".into(),
            },
            closed_tx,
        );
        drop(closed_rx);
        let station = streams.register(
            Principal::Station {
                operator_id: "OP".into(),
                station_id: "S1".into(),
            },
            station_tx.clone(),
        );
        assert!(
            streams
                .sender_for("OP", "S1", "P1")
                .is_some_and(|s| s.same_channel(&station_tx))
        );
        assert!(streams.sender_for("OP", "S2", "P1").is_none());
        let staff = streams.register(
            Principal::Service {
                name: "reporting".into(),
            },
            mpsc::channel(1).0,
        );
        drop(staff);
        drop(station);
        drop(closed);
        assert!(
            streams.is_empty(),
            "every stream gone with its registration"
        );
    }
}
