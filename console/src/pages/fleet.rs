//! The fleet (REQ MON-1, MON-2: the monitor watches every pile in real time): every station of
//! the operator with its connectors by state, offline and faulted first, kept live by a
//! server-sent event stream that forwards the gateway's status changes (seconds after a pile
//! reports). Each open page holds one stream through the gateway, as the person; the console
//! holds at most `max_live_streams` of them.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use tokio_stream::wrappers::ReceiverStream;

use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::regulator::v2 as reg;

use crate::i18n::{Lang, local};
use crate::mesh::{as_person, bearing};
use crate::pages::layout::{Notice, page};
use crate::session::Session;
use crate::web::Shared;

/// GetStationStatus takes this many stations at a time.
const STATIONS_PER_CALL: usize = 50;

/// A T/CEC 102 connector status code's words.
pub fn status_name(lang: Lang, cec: i32) -> &'static str {
    match cec {
        0 => lang.t("status.offline"),
        1 => lang.t("status.idle"),
        2 => lang.t("status.occupied"),
        3 => lang.t("status.charging"),
        4 => lang.t("status.reserved"),
        255 => lang.t("status.fault"),
        _ => "?",
    }
}

/// How much a status needs the monitor: faulted, then offline, then the rest.
pub fn attention(cec: i32) -> u8 {
    match cec {
        255 => 0,
        0 => 1,
        _ => 2,
    }
}

/// Stations needing attention first (their worst connector), then by id; connectors likewise.
pub fn order(stations: &mut [reg::StationStatus]) {
    for station in stations.iter_mut() {
        station.connectors.sort_by(|a, b| {
            (attention(a.cec_status), &a.pile_id, &a.connector_id).cmp(&(
                attention(b.cec_status),
                &b.pile_id,
                &b.connector_id,
            ))
        });
    }
    stations.sort_by(|a, b| {
        let worst = |s: &reg::StationStatus| {
            s.connectors
                .iter()
                .map(|c| attention(c.cec_status))
                .min()
                .unwrap_or(2)
        };
        (worst(a), &a.station_id).cmp(&(worst(b), &b.station_id))
    });
}

/// Every station of the person's operator, with names.
async fn stations(app: &Shared, session: &Session) -> Result<Vec<asset::Station>, tonic::Status> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let listed = app
            .gateway
            .asset()
            .list_stations(as_person(
                &session.token,
                asset::ListStationsRequest {
                    operator_id: session.person.operator_id.clone(),
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        out.extend(listed.stations);
        if listed.next_page_token.is_empty() || out.len() >= 10_000 {
            return Ok(out);
        }
        page_token = listed.next_page_token;
    }
}

/// GET /fleet.
pub async fn show(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/fleet") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let (known, mut statuses, notice) = match stations(&app, &session).await {
        Ok(known) => {
            let mut statuses = Vec::new();
            let mut notice = None;
            for chunk in known.chunks(STATIONS_PER_CALL) {
                let asked = app
                    .gateway
                    .status()
                    .get_station_status(as_person(
                        &session.token,
                        reg::GetStationStatusRequest {
                            stations: chunk
                                .iter()
                                .map(|s| reg::StationKey {
                                    operator_id: s.operator_id.clone(),
                                    station_id: s.station_id.clone(),
                                })
                                .collect(),
                        },
                    ))
                    .await;
                match asked {
                    Ok(got) => statuses.extend(got.into_inner().stations),
                    Err(status) => {
                        notice = Some(Notice::Refused(status.message().to_owned()));
                        break;
                    }
                }
            }
            (known, statuses, notice)
        }
        Err(status) => (
            Vec::new(),
            Vec::new(),
            Some(Notice::Refused(status.message().to_owned())),
        ),
    };
    order(&mut statuses);
    let name_of = |id: &str| {
        known
            .iter()
            .find(|s| s.station_id == id)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    };
    let body = html! {
        p.live data-live="/fleet/events" { (t("fleet.live")) }
        @if statuses.is_empty() {
            p { (t("fleet.none")) }
        }
        @for station in &statuses {
            section.station {
                h2 { (station.station_id) " " (name_of(&station.station_id)) }
                ul.connectors {
                    @for c in &station.connectors {
                        (tile(lang, c))
                    }
                }
            }
        }
    };
    page(&ctx, t("fleet.title"), notice.as_ref(), body).into_response()
}

fn tile(lang: Lang, c: &reg::ConnectorStatusInfo) -> Markup {
    let since = c
        .change_time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(local)
        .unwrap_or_default();
    html! {
        li class={ "connector s" (c.cec_status) }
            data-connector={ (c.operator_id) "/" (c.connector_id) } {
            a.id href={ "/fleet/" (c.station_id) "/" (c.pile_id) } { (c.pile_id) " · " (c.connector_id) }
            " "
            strong.status { (status_name(lang, c.cec_status)) }
            @if !c.fault_code.is_empty() { " " span.fault { (c.fault_code) " " (c.fault_text) } }
            " " small.since { (since) }
        }
    }
}

/// A status change as the page's script reads it.
fn event_data(lang: Lang, c: &reg::ConnectorStatusInfo) -> String {
    serde_json::json!({
        "connector": format!("{}/{}", c.operator_id, c.connector_id),
        "cec": c.cec_status,
        "text": status_name(lang, c.cec_status),
        "fault": format!("{} {}", c.fault_code, c.fault_text).trim(),
    })
    .to_string()
}

/// GET /fleet/events: the person's status changes as server-sent events, one `status` event
/// per change: `{"connector": "OP/ID", "cec": 255, "text": "...", "fault": "..."}`.
pub async fn events(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/fleet") {
        Ok(signed_in) => signed_in,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    // One person's tabs cannot take every live page the console holds.
    let Some(own) = crate::form::cookie(&headers, crate::session::COOKIE)
        .and_then(|id| LiveSlot::take(&app, id))
    else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many live pages open in this session",
        )
            .into_response();
    };
    let Ok(permit) = app.live.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live pages open").into_response();
    };
    let watched = app
        .gateway
        .status()
        .watch_status_changes(bearing(
            &session.token,
            reg::WatchStatusChangesRequest::default(),
        ))
        .await;
    let mut changes = match watched {
        Ok(stream) => stream.into_inner(),
        Err(status) => {
            return (StatusCode::BAD_GATEWAY, status.message().to_owned()).into_response();
        }
    };
    let lang = ctx.lang;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    tokio::spawn(async move {
        let _held = (permit, own);
        loop {
            // A closed page ends the stream to the gateway at once, not at the next change.
            let batch = tokio::select! {
                next = changes.message() => match next {
                    Ok(Some(batch)) => batch,
                    _ => return,
                },
                () = tx.closed() => return,
            };
            for change in batch.changes {
                let Some(c) = change.status else { continue };
                let data = event_data(lang, &c);
                if tx
                    .send(Ok(Event::default().event("status").data(data)))
                    .await
                    .is_err()
                {
                    return; // the page closed: the stream to the gateway ends with this task
                }
            }
        }
    });
    Sse::new(ReceiverStream::new(rx))
        // A comment every few seconds: proxies keep the stream, and a closed page is noticed.
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(3)))
        .into_response()
}

/// One of a session's live pages, given back when the page closes.
struct LiveSlot {
    app: Shared,
    session: String,
}

impl LiveSlot {
    fn take(app: &Shared, session: &str) -> Option<Self> {
        let mut open = app
            .live_by_session
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = open.entry(session.to_owned()).or_default();
        if *count >= app.config.max_live_per_session.max(1) {
            return None;
        }
        *count += 1;
        Some(Self {
            app: app.clone(),
            session: session.to_owned(),
        })
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut open = self
            .app
            .live_by_session
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.session) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(id: &str, cec: i32) -> reg::ConnectorStatusInfo {
        reg::ConnectorStatusInfo {
            pile_id: "P".into(),
            connector_id: id.into(),
            cec_status: cec,
            ..Default::default()
        }
    }

    #[test]
    fn mon_1_faulted_and_offline_connectors_and_their_stations_come_first() {
        let mut stations = vec![
            reg::StationStatus {
                station_id: "A".into(),
                connectors: vec![connector("A1", 1), connector("A2", 3)],
                ..Default::default()
            },
            reg::StationStatus {
                station_id: "B".into(),
                connectors: vec![connector("B1", 1), connector("B2", 0)],
                ..Default::default()
            },
            reg::StationStatus {
                station_id: "C".into(),
                connectors: vec![connector("C1", 1), connector("C2", 255)],
                ..Default::default()
            },
        ];
        order(&mut stations);
        let ids: Vec<&str> = stations.iter().map(|s| s.station_id.as_str()).collect();
        assert_eq!(ids, ["C", "B", "A"]);
        assert_eq!(stations[0].connectors[0].connector_id, "C2");
        assert_eq!(stations[1].connectors[0].connector_id, "B2");
    }

    #[test]
    fn event_data_is_json_whatever_the_pile_wrote() {
        let c = reg::ConnectorStatusInfo {
            operator_id: "OP".into(),
            connector_id: "P1-1".into(),
            cec_status: 255,
            fault_code: "E\"1".into(),
            fault_text: "line\nbreak \\".into(),
            ..Default::default()
        };
        let read: serde_json::Value =
            serde_json::from_str(&event_data(Lang::Zh, &c)).expect("JSON");
        assert_eq!(read["connector"], "OP/P1-1");
        assert_eq!(read["fault"], "E\"1 line\nbreak \\");
        assert_eq!(read["text"], "故障");
        assert_eq!(status_name(Lang::Zh, 255), "故障");
        assert_eq!(status_name(Lang::En, 0), "Offline");
    }
}
