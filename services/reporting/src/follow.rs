//! Follows the telemetry component's status log with `WatchStatusChanges`, from the last change
//! recorded, so the history has every change once and in order, across restarts of either side.

use std::sync::Arc;
use std::time::Duration;

use chargemesh_kit::tls::MeshChannel;

use chargemesh_proto::regulator::v2 as pb;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;

use crate::store::ReportingStore;

/// Follows until the task is aborted, reconnecting after errors.
pub fn spawn(source: MeshChannel, store: Arc<dyn ReportingStore>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = follow_once(source.clone(), store.as_ref()).await {
                tracing::warn!(%error, "status history follower interrupted; resuming");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn follow_once(
    source: MeshChannel,
    store: &dyn ReportingStore,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cursor = store.last_cursor().await?;
    let request = pb::WatchStatusChangesRequest {
        from_start: cursor.is_none(),
        cursor: cursor.unwrap_or_default(),
    };
    let mut stream = StatusServiceClient::new(source)
        .watch_status_changes(request)
        .await?
        .into_inner();
    while let Some(batch) = stream.message().await? {
        let new = store.record(&batch.changes).await?;
        tracing::debug!(
            received = batch.changes.len(),
            new,
            "status history recorded"
        );
    }
    Ok(())
}
