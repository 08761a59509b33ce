//! Follows the journals of dispatch, metering and complaints (`JournalService/ReadJournal`) into
//! reporting's facts. A journal is numbered in commit order, so each pass reads exactly what
//! follows its position; the facts keep each record's greatest version, so reading an entry again
//! (after a crash between keeping facts and the position) changes nothing.

use std::sync::Arc;
use std::time::Duration;

use chargemesh_kit::tls::MeshChannel;

use chargemesh_proto::journal::v1 as pb;
use chargemesh_proto::journal::v1::journal_service_client::JournalServiceClient;

use crate::store::ReportingStore;

const PAGE: i32 = 500;

/// One pass over a journal: reads everything new and keeps it. Returns how many facts changed.
pub async fn pass(
    source: &str,
    client: &mut JournalServiceClient<MeshChannel>,
    store: &dyn ReportingStore,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut position = store.position(source).await?;
    let mut after = position;
    let mut changed = 0;
    loop {
        let page = client
            .read_journal(pb::ReadJournalRequest {
                after_sequence: after,
                limit: PAGE,
            })
            .await?
            .into_inner();
        let Some(last) = page.entries.last().map(|e| e.sequence) else {
            break;
        };
        changed += store.apply(source, &page.entries).await?;
        after = last;
        if last > position {
            position = last;
            store.set_position(source, position).await?;
        }
        if page.entries.len() < PAGE as usize {
            break;
        }
    }
    Ok(changed)
}

/// Follows `source` every `every` until the task is aborted.
pub fn spawn(
    source: &'static str,
    channel: MeshChannel,
    store: Arc<dyn ReportingStore>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = JournalServiceClient::new(channel);
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match pass(source, &mut client, store.as_ref()).await {
                Ok(0) => {}
                Ok(changed) => tracing::debug!(source, changed, "journal facts kept"),
                Err(error) => tracing::warn!(source, %error, "journal follower interrupted"),
            }
        }
    })
}
