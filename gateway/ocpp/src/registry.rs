//! What a charge point's connection asks of the registry (the asset component): the pile's
//! connectors and ledger entry, the verdict on an id token, and the listing of a charge point
//! the registry does not know.

use std::time::Duration;

use chargemesh_kit::identity::request_as;
use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use chargemesh_proto::asset::v1::charge_point_service_client::ChargePointServiceClient;

use crate::edge::{ChargePoint, Upstreams};
use crate::translate::{Ledger, TokenStatus, TokenVerdict};

/// How long a token's verdict is waited for.
const TOKEN_LOOKUP: Duration = Duration::from_secs(10);

/// Registry calls of this process's charge points in flight at once. Thousands of charge points
/// connect together after a restart; past this they wait here, in turn, rather than all reach
/// the asset component at once over the one mesh connection and be refused there.
static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(256);

/// What the registry records of the pile: its connectors in registry order (OCPP connector,
/// or EVSE, n is the n-th) and its ledger entry. A pile the registry does not know has neither
/// (its boot is then rejected by telemetry).
pub async fn registered(
    upstreams: &Upstreams,
    charge_point: &ChargePoint,
) -> Result<(Vec<String>, Option<Ledger>), tonic::Status> {
    let _turn = LOOKUPS.acquire().await;
    let mut client = AssetServiceClient::new(upstreams.registry.clone());
    match client
        .get_pile(request_as(
            &charge_point.principal,
            asset::GetPileRequest {
                operator_id: charge_point.operator_id.clone(),
                pile_id: charge_point.pile_id.clone(),
            },
        ))
        .await
    {
        Ok(response) => Ok(response
            .into_inner()
            .pile
            .map(|p| {
                (
                    p.connectors.into_iter().map(|c| c.connector_id).collect(),
                    Some(Ledger {
                        vendor: p.manufacturer,
                        model: p.model,
                        serial: p.serial_number,
                    }),
                )
            })
            .unwrap_or_default()),
        Err(status) if status.code() == tonic::Code::NotFound => Ok((Vec::new(), None)),
        Err(status) => Err(status),
    }
}

/// The registry's verdict on a token; `None` when it cannot be read now (within the
/// charger's patience: a CALL unanswered for long is sent again).
pub async fn authorize(
    registry: &MeshChannel,
    charge_point: &ChargePoint,
    token: &str,
) -> Option<TokenVerdict> {
    let _turn = LOOKUPS.acquire().await;
    let mut client = ChargePointServiceClient::new(registry.clone());
    let asked = client.authorize_id_token(request_as(
        &charge_point.principal,
        asset::AuthorizeIdTokenRequest {
            operator_id: charge_point.operator_id.clone(),
            pile_id: charge_point.pile_id.clone(),
            token: token.to_owned(),
        },
    ));
    let Ok(answer) = tokio::time::timeout(TOKEN_LOOKUP, asked).await else {
        tracing::warn!("the token list did not answer in time");
        return None;
    };
    match answer {
        Ok(answer) => {
            let answer = answer.into_inner();
            let status = match asset::IdTokenStatus::try_from(answer.status) {
                Ok(asset::IdTokenStatus::Accepted) => TokenStatus::Accepted,
                Ok(asset::IdTokenStatus::Blocked) => TokenStatus::Blocked,
                Ok(asset::IdTokenStatus::Expired) => TokenStatus::Expired,
                _ => TokenStatus::Unknown,
            };
            Some(TokenVerdict {
                status,
                expiry: answer
                    .expiry_time
                    .as_ref()
                    .and_then(chargemesh_kit::time::from_timestamp),
                any_token: answer.method == asset::AuthorizationMethod::AnyToken as i32,
            })
        }
        // A token the list cannot hold (too long, unprintable) is on no list.
        Err(status) if status.code() == tonic::Code::InvalidArgument => Some(TokenVerdict {
            status: TokenStatus::Unknown,
            expiry: None,
            any_token: false,
        }),
        Err(status) => {
            tracing::warn!(%status, "the token list could not be read");
            None
        }
    }
}

/// Lists a charge point whose boot telemetry refused because the registry does not know
/// its pile (it connected with a valid certificate of its operator).
pub async fn note_unknown(registry: &MeshChannel, charge_point: &ChargePoint, detail: String) {
    let note = asset::RecordUnknownChargePointRequest {
        operator_id: charge_point.operator_id.clone(),
        charge_point_id: charge_point.charge_point_id.clone(),
        detail,
    };
    if let Err(error) = ChargePointServiceClient::new(registry.clone())
        .record_unknown_charge_point(crate::edge::as_edge(note))
        .await
    {
        tracing::warn!(%error, "an unknown charge point could not be listed");
    }
}
