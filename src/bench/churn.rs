//! Registry changes during a fleet's steady state, as an operator's platform makes them: a pile
//! registered now and then while the fleet reports. Each change is announced to telemetry's
//! registry cache, so the acknowledgements show what a change costs the fleet's reports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chargemesh_proto::asset::v1 as asset;

use crate::demo;
use crate::pki::{self, DEMO_OPERATOR_ID};

/// The piles registered during the run, one every `every` until `until`; each at the fleet's
/// first station, with an id no pile of the fleet has. Returns how many were registered.
pub(super) async fn register_piles(
    gateway: SocketAddr,
    pki: pki::PkiDir,
    every: Duration,
    until: Instant,
) -> anyhow::Result<u64> {
    let mut client = demo::asset_client(gateway, &pki.files("operator"))?;
    let mut registered = 0;
    let mut tick = tokio::time::interval_at((Instant::now() + every).into(), every);
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            return Ok(registered);
        }
        let pile = format!("F0-NEW{registered}");
        client
            .create_pile(asset::CreatePileRequest {
                pile: Some(demo::pile(
                    DEMO_OPERATOR_ID,
                    "F0",
                    &pile,
                    asset::PileType::Ac,
                    7.0,
                )),
            })
            .await?;
        registered += 1;
    }
}
