//! The asset service's charge points (`chargemesh.asset.v1.ChargePointService`): profile 2
//! passwords, the gateway's authentication of a charge point, the unknown charge points an
//! operator is shown, and the operator's authorisation tokens.

use chargemesh_kit::time::{opt_timestamp, to_timestamp};
use chargemesh_proto::asset::v1::charge_point_service_server::{
    ChargePointService, ChargePointServiceServer,
};
use tonic::{Response, Status};

use super::*;
use crate::domain::charge_points::{self as cp, Verdict};

/// The charge point API, beside the registry it reads.
#[derive(Debug, Clone)]
pub struct ChargePointApi(pub AssetApi);

impl ChargePointApi {
    pub fn into_server(self) -> ChargePointServiceServer<Self> {
        ChargePointServiceServer::new(self)
    }
}

fn mesh_only(p: &Principal, what: &str) -> Result<(), Error> {
    if matches!(p, Principal::Service { .. }) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!(
            "{what} is for the gateway's protocol edges only"
        )))
    }
}

fn token_status(status: IdTokenStatus) -> pb::IdTokenStatus {
    match status {
        IdTokenStatus::Accepted => pb::IdTokenStatus::Accepted,
        IdTokenStatus::Blocked => pb::IdTokenStatus::Blocked,
        IdTokenStatus::Expired => pb::IdTokenStatus::Expired,
    }
}

fn token_to_pb(t: &IdToken) -> pb::IdToken {
    pb::IdToken {
        operator_id: t.operator_id.clone(),
        token: t.token.clone(),
        status: token_status(t.status) as i32,
        expiry_time: opt_timestamp(t.expires_at),
        note: t.note.clone(),
        update_time: Some(to_timestamp(t.updated_at)),
    }
}

impl AssetApi {
    /// Who sees or manages the operator's whole registry (tokens, unknown charge points).
    fn whole_operator(p: &Principal, operator_id: &str, access: Access) -> Result<(), Error> {
        let target = Target {
            operator_id,
            ..Target::default()
        };
        Self::check(p, target, access, || format!("operator {operator_id}"))
    }

    async fn set_password(
        &self,
        p: &Principal,
        r: pb::SetChargePointPasswordRequest,
    ) -> Result<pb::SetChargePointPasswordResponse, Error> {
        let op = operator_of(p, &r.operator_id)?;
        let (current, _) = self
            .load_pile(p, &op, r.pile_id.trim(), Access::Write)
            .await?;
        if !current.value.protocol.is_ocpp() {
            return Err(Error::bad_field(
                "pile_id",
                "is not an OCPP pile: only OCPP charge points have a password",
            ));
        }
        // REQ NETSEC-1: security profile 2's password, kept only as a salted hash.
        cp::validate_password(&r.password)?;
        let hash = cp::hash_password(&r.password, &cp::new_salt()?);
        let now = self.clock.now();
        let mut next = current.value.clone();
        next.password_set_at = Some(now);
        next.updated_at = now;
        let change = self.change(
            p,
            "pile",
            &op,
            &next.pile_id,
            "set-password",
            "",
            Some(&current.value),
            &next,
        );
        self.store
            .set_charge_point_password(&next, current.version, &hash, &change)
            .await?;
        self.announce(&change).await;
        Ok(pb::SetChargePointPasswordResponse {
            charge_point_id: next.charge_point_id,
            set_time: Some(to_timestamp(now)),
        })
    }

    async fn authenticate(
        &self,
        p: &Principal,
        r: pb::AuthenticateChargePointRequest,
    ) -> Result<pb::AuthenticateChargePointResponse, Error> {
        use pb::authenticate_charge_point_request::Credential;
        mesh_only(p, "AuthenticateChargePoint")?;
        let id = r.charge_point_id.trim();
        let unknown = || Error::NotFound(format!("charge point {id}"));
        let row = self.store.charge_point(id).await?.ok_or_else(unknown)?;
        let pile = self
            .store
            .pile(&row.operator_id, &row.pile_id)
            .await?
            .ok_or_else(unknown)?
            .value;
        let by_ykc_source = matches!(r.credential, Some(Credential::YkcSource(_)));
        match r.credential {
            Some(Credential::Password(password)) => {
                let matches = row
                    .password_hash
                    .as_deref()
                    .is_some_and(|stored| cp::password_matches(stored, &password));
                if !matches {
                    return Err(Error::Unauthenticated(format!(
                        "charge point {id}: wrong or unset password (NETSEC-1)"
                    )));
                }
            }
            Some(Credential::Certificate(subject)) => {
                let operator = self
                    .store
                    .operator(&row.operator_id)
                    .await?
                    .ok_or_else(unknown)?
                    .value;
                if subject.issuer_operator_id != row.operator_id
                    || subject.common_name.trim() != id
                    || subject.organization.trim() != operator.name.trim()
                {
                    return Err(Error::Unauthenticated(format!(
                        "charge point {id}: the certificate (CN {:?}, O {:?}, CA of {}) is not its operator's (NETSEC-1)",
                        subject.common_name, subject.organization, subject.issuer_operator_id
                    )));
                }
            }
            // REQ NETSEC-1: YKC carries no credential; the pile must be a YKC pile and have
            // arrived from a network its operator's piles are allow-listed on.
            Some(Credential::YkcSource(source)) => {
                if pile.protocol != PileProtocol::Ykc {
                    return Err(Error::PermissionDenied(format!(
                        "charge point {id} is not a YKC pile (NETSEC-1)"
                    )));
                }
                if !source.operator_ids.iter().any(|o| o == &row.operator_id) {
                    return Err(Error::PermissionDenied(format!(
                        "YKC pile {id} of operator {} connected from a network not allow-listed for it (NETSEC-1)",
                        row.operator_id
                    )));
                }
            }
            None => {
                return Err(Error::bad_field("credential", "must be set"));
            }
        }
        if pile.protocol == PileProtocol::Ykc && !by_ykc_source {
            return Err(Error::PermissionDenied(format!(
                "charge point {id} is a YKC pile: it connects to the YKC edge (NETSEC-1)"
            )));
        }
        Ok(pb::AuthenticateChargePointResponse {
            operator_id: pile.operator_id,
            station_id: pile.station_id,
            pile_id: pile.pile_id,
            protocol: protocol_to_pb(pile.protocol) as i32,
        })
    }

    async fn record_unknown(
        &self,
        p: &Principal,
        r: pb::RecordUnknownChargePointRequest,
    ) -> Result<pb::RecordUnknownChargePointResponse, Error> {
        mesh_only(p, "RecordUnknownChargePoint")?;
        let op = r.operator_id.trim();
        let id = r.charge_point_id.trim();
        if op.is_empty() || id.is_empty() || id.len() > cp::CHARGE_POINT_ID_MAX {
            return Err(Error::bad_field(
                "charge_point_id",
                "an operator and a charge point id of at most 48 characters are required",
            ));
        }
        let detail: String = r.detail.chars().take(500).collect();
        self.store
            .note_unknown_charge_point(op, id, &detail, self.clock.now())
            .await?;
        Ok(pb::RecordUnknownChargePointResponse {})
    }

    async fn list_unknown(
        &self,
        p: &Principal,
        r: pb::ListUnknownChargePointsRequest,
    ) -> Result<pb::ListUnknownChargePointsResponse, Error> {
        let op = operator_of(p, &r.operator_id)?;
        Self::whole_operator(p, &op, Access::Read)?;
        let page = page_from(&r.page_token, r.page_size)?;
        let seen = self
            .store
            .list_unknown_charge_points(&[Filter::Eq("operator_id", op)], &page)
            .await?;
        Ok(pb::ListUnknownChargePointsResponse {
            next_page_token: next_token(&seen, &page, |x| (&x.operator_id, &x.charge_point_id)),
            unknown_charge_points: seen
                .iter()
                .map(|u| pb::UnknownChargePoint {
                    operator_id: u.operator_id.clone(),
                    charge_point_id: u.charge_point_id.clone(),
                    first_seen_time: Some(to_timestamp(u.first_seen)),
                    last_seen_time: Some(to_timestamp(u.last_seen)),
                    attempts: u.attempts,
                    detail: u.detail.clone(),
                })
                .collect(),
        })
    }

    async fn put_token(
        &self,
        p: &Principal,
        r: pb::PutIdTokenRequest,
    ) -> Result<pb::PutIdTokenResponse, Error> {
        let input = r
            .id_token
            .ok_or_else(|| Error::bad_field("id_token", "must be set"))?;
        let op = operator_of(p, &input.operator_id)?;
        if !Self::can_write_operator(p, &op) {
            return Err(Error::PermissionDenied(format!(
                "operator {op}'s tokens are not {p}'s to manage"
            )));
        }
        let token = cp::validate_token("id_token.token", &input.token)?;
        let status = match pb::IdTokenStatus::try_from(input.status) {
            Ok(pb::IdTokenStatus::Accepted) => IdTokenStatus::Accepted,
            Ok(pb::IdTokenStatus::Blocked) => IdTokenStatus::Blocked,
            Ok(pb::IdTokenStatus::Expired) => IdTokenStatus::Expired,
            _ => {
                return Err(Error::bad_field(
                    "id_token.status",
                    "must be ACCEPTED, BLOCKED or EXPIRED",
                ));
            }
        };
        let note = input.note.trim();
        if note.chars().count() > 200 {
            return Err(Error::bad_field(
                "id_token.note",
                "is longer than 200 characters",
            ));
        }
        let now = self.clock.now();
        let next = IdToken {
            operator_id: op.clone(),
            token,
            status,
            expires_at: input
                .expiry_time
                .as_ref()
                .map(|t| {
                    from_timestamp(t).ok_or_else(|| {
                        Error::bad_field("id_token.expiry_time", "is not a valid time")
                    })
                })
                .transpose()?,
            note: note.to_owned(),
            created_at: now,
            updated_at: now,
        };
        let change = self.change(
            p,
            "id_token",
            &op,
            &next.token,
            "put",
            "",
            None::<&IdToken>,
            &next,
        );
        let saved = self.store.put_id_token(&next, &change).await?;
        Ok(pb::PutIdTokenResponse {
            id_token: Some(token_to_pb(&saved)),
        })
    }

    async fn list_tokens(
        &self,
        p: &Principal,
        r: pb::ListIdTokensRequest,
    ) -> Result<pb::ListIdTokensResponse, Error> {
        let op = operator_of(p, &r.operator_id)?;
        Self::whole_operator(p, &op, Access::Read)?;
        let page = page_from(&r.page_token, r.page_size)?;
        let tokens = self
            .store
            .list_id_tokens(&[Filter::Eq("operator_id", op)], &page)
            .await?;
        Ok(pb::ListIdTokensResponse {
            next_page_token: next_token(&tokens, &page, |x| (&x.operator_id, &x.token)),
            id_tokens: tokens.iter().map(token_to_pb).collect(),
        })
    }

    async fn authorize_token(
        &self,
        p: &Principal,
        r: pb::AuthorizeIdTokenRequest,
    ) -> Result<pb::AuthorizeIdTokenResponse, Error> {
        let op = operator_of(p, &r.operator_id)?;
        let pile_id = match p {
            Principal::Pile { pile_id, .. } => pile_id.clone(),
            _ => r.pile_id.trim().to_owned(),
        };
        let (_, station) = self.load_pile(p, &op, &pile_id, Access::Read).await?;
        let token = cp::validate_token("token", &r.token)?;
        let listed = self.store.id_token(&op, &token).await?;
        let (status, method) = match cp::authorize(
            listed.as_ref(),
            station.accept_any_id_token,
            self.clock.now(),
        ) {
            Verdict::AnyToken => (
                pb::IdTokenStatus::Accepted,
                pb::AuthorizationMethod::AnyToken,
            ),
            Verdict::Listed(status) => (
                status.map_or(pb::IdTokenStatus::Unknown, token_status),
                pb::AuthorizationMethod::IdTokenList,
            ),
        };
        Ok(pb::AuthorizeIdTokenResponse {
            status: status as i32,
            expiry_time: opt_timestamp(listed.and_then(|t| t.expires_at)),
            method: method as i32,
        })
    }
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ChargePointService for ChargePointApi {
    async fn set_charge_point_password(
        &self,
        request: Request<pb::SetChargePointPasswordRequest>,
    ) -> R<pb::SetChargePointPasswordResponse> {
        let p = principal(&request)?;
        reply(self.0.set_password(&p, request.into_inner()).await)
    }

    async fn authenticate_charge_point(
        &self,
        request: Request<pb::AuthenticateChargePointRequest>,
    ) -> R<pb::AuthenticateChargePointResponse> {
        let p = principal(&request)?;
        reply(self.0.authenticate(&p, request.into_inner()).await)
    }

    async fn record_unknown_charge_point(
        &self,
        request: Request<pb::RecordUnknownChargePointRequest>,
    ) -> R<pb::RecordUnknownChargePointResponse> {
        let p = principal(&request)?;
        reply(self.0.record_unknown(&p, request.into_inner()).await)
    }

    async fn list_unknown_charge_points(
        &self,
        request: Request<pb::ListUnknownChargePointsRequest>,
    ) -> R<pb::ListUnknownChargePointsResponse> {
        let p = principal(&request)?;
        reply(self.0.list_unknown(&p, request.into_inner()).await)
    }

    async fn put_id_token(
        &self,
        request: Request<pb::PutIdTokenRequest>,
    ) -> R<pb::PutIdTokenResponse> {
        let p = principal(&request)?;
        reply(self.0.put_token(&p, request.into_inner()).await)
    }

    async fn list_id_tokens(
        &self,
        request: Request<pb::ListIdTokensRequest>,
    ) -> R<pb::ListIdTokensResponse> {
        let p = principal(&request)?;
        reply(self.0.list_tokens(&p, request.into_inner()).await)
    }

    async fn authorize_id_token(
        &self,
        request: Request<pb::AuthorizeIdTokenRequest>,
    ) -> R<pb::AuthorizeIdTokenResponse> {
        let p = principal(&request)?;
        reply(self.0.authorize_token(&p, request.into_inner()).await)
    }
}
