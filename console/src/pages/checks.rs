//! The monitor's daily checks (REQ MON-7: every camera aimed, showing live video and
//! recording; MON-8: every communication link up, a SIM's traffic in its normal range): each
//! station's check of today with its state (done, due, overdue) and findings, and the form with
//! the station's registered cameras and links. A failed item becomes a defect, as dispatch
//! decides.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::dispatch::v1 as pb;

use crate::form::Form;
use crate::i18n::Lang;
use crate::mesh::as_person;
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::{Saved, settle};
use crate::session::Session;
use crate::web::Shared;

/// The check's answers from the form: camera `i`'s three boxes, link `i`'s state and traffic;
/// a traffic figure that is no number is refused, naming the link (REQ MON-8), rather than read
/// as none.
pub fn answers(
    equipment: &pb::GetMonitoringEquipmentResponse,
    form: &Form,
) -> Result<(Vec<pb::CameraCheck>, Vec<pb::LinkCheck>), tonic::Status> {
    let ticked = |name: String| form.all(&name).iter().any(|v| v == "on");
    let cameras = equipment
        .cameras
        .iter()
        .enumerate()
        .map(|(i, c)| pb::CameraCheck {
            camera_id: c.camera_id.clone(),
            aimed: ticked(format!("aimed-{i}")),
            live_video: ticked(format!("live-{i}")),
            recording: ticked(format!("recording-{i}")),
        })
        .collect();
    let links = equipment
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let traffic = form.get(&format!("traffic-{i}"));
            let traffic_mb = if traffic.is_empty() {
                0.0
            } else {
                traffic
                    .parse::<f64>()
                    .ok()
                    .filter(|mb| mb.is_finite() && *mb >= 0.0)
                    .ok_or_else(|| {
                        tonic::Status::invalid_argument(format!(
                            "link {}: the traffic is a number of MB, not {traffic:?} (MON-8)",
                            l.link_id
                        ))
                    })?
            };
            Ok(pb::LinkCheck {
                link_id: l.link_id.clone(),
                up: ticked(format!("up-{i}")),
                traffic_mb,
            })
        })
        .collect::<Result<_, tonic::Status>>()?;
    Ok((cameras, links))
}

async fn equipment(
    app: &Shared,
    session: &Session,
    station_id: &str,
) -> pb::GetMonitoringEquipmentResponse {
    app.gateway
        .dispatch()
        .get_monitoring_equipment(as_person(
            &session.token,
            pb::GetMonitoringEquipmentRequest {
                operator_id: session.person.operator_id.clone(),
                station_id: station_id.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner())
        .unwrap_or_default()
}

/// GET /checks.
pub async fn list(
    State(app): State<Shared>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/checks") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    render(&app, &ctx, &session, saved.notice(), StatusCode::OK).await
}

async fn render(
    app: &Shared,
    ctx: &Ctx,
    session: &Session,
    notice: Option<Notice>,
    code: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let stations = app
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
        .await
        .map(|r| r.into_inner().stations)
        .unwrap_or_default();
    // Each station's check and equipment, all stations at once.
    let mut asked = tokio::task::JoinSet::new();
    for (i, station) in stations.iter().enumerate() {
        let (app, session, station_id) = (app.clone(), session.clone(), station.station_id.clone());
        asked.spawn(async move {
            let status = app
                .gateway
                .dispatch()
                .get_daily_check_status(as_person(
                    &session.token,
                    pb::GetDailyCheckStatusRequest {
                        operator_id: session.person.operator_id.clone(),
                        station_id: station_id.clone(),
                        day: String::new(),
                    },
                ))
                .await
                .map(|r| r.into_inner())
                .unwrap_or_default();
            (i, status, equipment(&app, &session, &station_id).await)
        });
    }
    let mut found = vec![Default::default(); stations.len()];
    while let Some(Ok((i, status, kit))) = asked.join_next().await {
        if let Some(slot) = found.get_mut(i) {
            *slot = (status, kit);
        }
    }
    let sections: Vec<Markup> = stations
        .iter()
        .zip(&found)
        .map(|(station, (status, kit))| section(lang, session, station, status, kit))
        .collect();
    let body = html! { @for s in &sections { (s) } };
    (code, page(ctx, t("chk.title"), notice.as_ref(), body)).into_response()
}

fn section(
    lang: Lang,
    session: &Session,
    station: &asset::Station,
    status: &pb::GetDailyCheckStatusResponse,
    kit: &pb::GetMonitoringEquipmentResponse,
) -> Markup {
    let t = |key| lang.t(key);
    let monitor = session.person.has_role("monitor");
    html! {
        article.pile.breached[status.overdue] {
            h3 {
                (station.station_id) " " (station.name) " · "
                @if status.done { (t("chk.done")) } @else if status.overdue { strong.badge { (t("chk.overdue")) } } @else { (t("chk.due")) }
            }
            @if !status.findings.is_empty() {
                ul.flags { @for f in &status.findings { li { (f) } } }
            }
            @if kit.cameras.is_empty() && kit.links.is_empty() {
                p { (t("chk.none")) }
            } @else if monitor && !status.done {
                form.step method="post" action={ "/checks/" (station.station_id) } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    @for (i, c) in kit.cameras.iter().enumerate() {
                        fieldset {
                            legend { (t("chk.camera")) " " (c.camera_id) " " (c.covers.join(", ")) }
                            label { input type="checkbox" name={ "aimed-" (i) } checked; " " (t("chk.aimed")) }
                            label { input type="checkbox" name={ "live-" (i) } checked; " " (t("chk.live")) }
                            label { input type="checkbox" name={ "recording-" (i) } checked; " " (t("chk.recording")) }
                        }
                    }
                    @for (i, l) in kit.links.iter().enumerate() {
                        fieldset {
                            legend { (t("chk.link")) " " (l.link_id) " " (l.iccid) }
                            label { input type="checkbox" name={ "up-" (i) } checked; " " (t("chk.up")) }
                            @if !l.iccid.is_empty() {
                                label for={ "traffic-" (station.station_id) "-" (i) } { (t("chk.traffic")) " (" (l.traffic_min_mb) "–" (l.traffic_max_mb) " MB)" }
                                input id={ "traffic-" (station.station_id) "-" (i) } name={ "traffic-" (i) } inputmode="decimal";
                            }
                        }
                    }
                    button type="submit" { (t("chk.record")) }
                }
            }
        }
    }
}

/// POST /checks/{station}.
pub async fn record(
    State(app): State<Shared>,
    Path(station_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, session, form) = match app.posted(&headers, "/checks", &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let kit = equipment(&app, &session, &station_id).await;
    let done = match answers(&kit, &form) {
        Ok((cameras, links)) => app
            .gateway
            .dispatch()
            .record_daily_check(as_person(
                &session.token,
                pb::RecordDailyCheckRequest {
                    operator_id: session.person.operator_id.clone(),
                    station_id,
                    day: String::new(),
                    cameras,
                    links,
                },
            ))
            .await
            .map(drop),
        Err(refused) => Err(refused),
    };
    settle(done, "/checks?saved=1", |notice, code| {
        render(&app, &ctx, &session, Some(notice), code)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_7_an_unticked_box_is_a_failed_check() {
        let kit = pb::GetMonitoringEquipmentResponse {
            cameras: vec![
                pb::Camera {
                    camera_id: "CAM-1".into(),
                    covers: vec![],
                },
                pb::Camera {
                    camera_id: "CAM-2".into(),
                    covers: vec![],
                },
            ],
            links: vec![pb::CommunicationLink {
                link_id: "SIM-1".into(),
                iccid: "8986".into(),
                ..Default::default()
            }],
        };
        let form =
            Form::parse(b"aimed-0=on&live-0=on&recording-0=on&aimed-1=on&up-0=on&traffic-0=12.5");
        let (cameras, links) = answers(&kit, &form).expect("answers");
        assert!(cameras[0].aimed && cameras[0].live_video && cameras[0].recording);
        assert!(cameras[1].aimed && !cameras[1].live_video && !cameras[1].recording);
        assert!(links[0].up && (links[0].traffic_mb - 12.5).abs() < 1e-9);
        let typo = Form::parse(b"up-0=on&traffic-0=12%2C5");
        let refused = answers(&kit, &typo).expect_err("12,5 is not a number");
        assert!(refused.message().contains("SIM-1") && refused.message().contains("MON-8"));
    }
}
