//! The registry as staff read it: every station with its lifecycle state and what its next
//! step needs (REQ BASE-1, BASE-2: acceptance, filing, connection, trial operation,
//! commissioning), and a station's piles with their metrology certificates, an expired or
//! soon expiring verification marked (REQ BASE-5, EQ-4: a pile without a valid certificate is
//! not settled).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use maud::html;

use chargemesh_proto::asset::v1 as asset;

use crate::i18n::{Lang, china};
use crate::mesh::as_person;
use crate::pages::layout::{Notice, page};
use crate::web::Shared;

/// Days before its end a certificate is shown as expiring.
const EXPIRING_DAYS: i64 = 30;

/// What a station in `state` needs next, as a text key; none once commissioned.
pub fn next_step(state: asset::StationState) -> Option<&'static str> {
    use asset::StationState as S;
    match state {
        S::Registered => Some("reg.next.accept"),
        S::Accepted => Some("reg.next.file"),
        S::Filed => Some("reg.next.connect"),
        S::Connected => Some("reg.next.trial"),
        S::TrialOperation => Some("reg.next.commission"),
        _ => None,
    }
}

fn state_name(lang: Lang, state: i32) -> &'static str {
    use asset::StationState as S;
    match S::try_from(state) {
        Ok(S::Registered) => lang.t("reg.state.registered"),
        Ok(S::Accepted) => lang.t("reg.state.accepted"),
        Ok(S::Filed) => lang.t("reg.state.filed"),
        Ok(S::Connected) => lang.t("reg.state.connected"),
        Ok(S::TrialOperation) => lang.t("reg.state.trial"),
        Ok(S::Commissioned) => lang.t("reg.state.commissioned"),
        _ => "?",
    }
}

/// A certificate's standing on `today` (REQ BASE-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Valid,
    /// Ends within [`EXPIRING_DAYS`]: this many days left.
    Expiring(i64),
    Expired,
    /// Its date could not be read.
    Unknown,
}

pub fn standing(valid_until: &str, today: NaiveDate) -> Standing {
    match NaiveDate::parse_from_str(valid_until, "%Y-%m-%d") {
        Ok(until) if until < today => Standing::Expired,
        Ok(until) if (until - today).num_days() <= EXPIRING_DAYS => {
            Standing::Expiring((until - today).num_days())
        }
        Ok(_) => Standing::Valid,
        Err(_) => Standing::Unknown,
    }
}

/// GET /registry.
pub async fn stations(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/registry") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let listed = app
        .gateway
        .asset()
        .list_stations(as_person(
            &session.token,
            asset::ListStationsRequest {
                operator_id: session.person.operator_id.clone(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await;
    let (stations, notice) = match listed {
        Ok(listed) => (listed.into_inner().stations, None),
        Err(status) => (
            Vec::new(),
            Some(Notice::Refused(status.message().to_owned())),
        ),
    };
    let body = html! {
        table.orders {
            thead { tr {
                th { (t("wo.station")) } th { (t("reg.name")) } th { (t("reg.area")) }
                th { (t("reg.state")) } th { (t("reg.next")) }
            } }
            tbody {
                @for s in &stations {
                    @let state = asset::StationState::try_from(s.state).unwrap_or_default();
                    tr {
                        td { a href={ "/registry/" (s.station_id) } { (s.station_id) } }
                        td { (s.name) }
                        td { (s.area_code) }
                        td { (state_name(lang, s.state)) }
                        td { @match next_step(state) { Some(key) => (t(key)), None => "—" } }
                    }
                }
            }
        }
    };
    page(&ctx, t("reg.title"), notice.as_ref(), body).into_response()
}

/// GET /registry/{station}: its piles and their certificates.
pub async fn station(
    State(app): State<Shared>,
    Path(station_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, &format!("/registry/{station_id}")) {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let operator_id = session.person.operator_id.clone();
    let listed = app
        .gateway
        .asset()
        .list_piles(as_person(
            &session.token,
            asset::ListPilesRequest {
                operator_id: operator_id.clone(),
                station_id: station_id.clone(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await;
    let piles = match listed {
        Ok(listed) => listed.into_inner().piles,
        Err(status) => {
            let refused = Notice::Refused(status.message().to_owned());
            let code = if status.code() == tonic::Code::NotFound {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_GATEWAY
            };
            return (code, page(&ctx, &station_id, Some(&refused), html! {})).into_response();
        }
    };
    let mut asked = tokio::task::JoinSet::new();
    for (i, pile) in piles.iter().enumerate() {
        let mut client = app.gateway.asset();
        let request = as_person(
            &session.token,
            asset::ListMetrologyCertificatesRequest {
                operator_id: operator_id.clone(),
                pile_id: pile.pile_id.clone(),
            },
        );
        asked.spawn(async move {
            let certificates = client
                .list_metrology_certificates(request)
                .await
                .map(|r| r.into_inner().certificates)
                .unwrap_or_default();
            (i, certificates)
        });
    }
    let mut certificates = vec![Vec::new(); piles.len()];
    while let Some(Ok((i, found))) = asked.join_next().await {
        if let Some(slot) = certificates.get_mut(i) {
            *slot = found;
        }
    }
    let today = Utc::now().with_timezone(&china()).date_naive();
    let body = html! {
        p { a href={ "/s/" (operator_id) "/" (station_id) } { (t("reg.public")) } }
        table.orders {
            thead { tr {
                th { (t("wo.pile")) } th { (t("reg.power")) } th { (t("reg.pile_state")) }
                th { (t("reg.certificate")) } th { (t("reg.valid_until")) }
            } }
            tbody {
                @for (pile, certs) in piles.iter().zip(&certificates) {
                    @let latest = certs.iter().max_by(|a, b| a.valid_until.cmp(&b.valid_until));
                    @let standing = latest.map(|c| standing(&c.valid_until, today));
                    tr.breached[matches!(standing, None | Some(Standing::Expired))] {
                        td {
                            (pile.pile_id)
                            ul.connectors-list {
                                @for c in &pile.connectors {
                                    li { (c.connector_id) " · " (c.power_kw) " kW · " (c.voltage_lower_limit) "–" (c.voltage_upper_limit) " V" }
                                }
                            }
                        }
                        td { (pile.rated_power_kw) " kW" }
                        td { (pile_state(lang, pile.state)) }
                        td { @if let Some(c) = latest { (c.certificate_number) } @else { (t("reg.no_certificate")) } }
                        td {
                            @if let Some(c) = latest { (c.valid_until) " " }
                            @match standing {
                                Some(Standing::Expired) | None => strong.badge { (t("reg.expired")) },
                                Some(Standing::Expiring(days)) => strong.badge { (t("reg.expiring")) " " (days) }
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &ctx,
        &format!("{} {}", t("wo.station"), station_id),
        None,
        body,
    )
    .into_response()
}

fn pile_state(lang: Lang, state: i32) -> &'static str {
    match asset::PileState::try_from(state) {
        Ok(asset::PileState::Suspended) => lang.t("pub.suspended"),
        Ok(asset::PileState::Retired) => lang.t("reg.retired"),
        _ => lang.t("reg.in_service"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_1_each_lifecycle_state_names_its_next_step() {
        use asset::StationState as S;
        assert_eq!(next_step(S::Registered), Some("reg.next.accept"));
        assert_eq!(next_step(S::TrialOperation), Some("reg.next.commission"));
        assert_eq!(next_step(S::Commissioned), None);
        for state in [
            S::Registered,
            S::Accepted,
            S::Filed,
            S::Connected,
            S::TrialOperation,
        ] {
            let key = next_step(state).expect("a step");
            assert_ne!(Lang::Zh.t(key), key, "{key} has words");
        }
    }

    #[test]
    fn base_5_an_expired_or_expiring_verification_is_marked() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 6).expect("date");
        assert_eq!(standing("2026-12-05", today), Standing::Expired);
        assert_eq!(
            standing("2026-12-06", today),
            Standing::Expiring(0),
            "valid through the day"
        );
        assert_eq!(standing("2027-01-05", today), Standing::Expiring(30));
        assert_eq!(standing("2027-06-01", today), Standing::Valid);
        assert_eq!(standing("soon", today), Standing::Unknown);
    }
}
