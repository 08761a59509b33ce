//! A station's public page, for drivers, without signing in (mobile first): who runs it, its
//! opening hours and hotline (REQ SVC-1), which connectors are free right now (SVC-2), every
//! pile's technical parameters (SIGN-1), the price board in force (SIGN-2, BASE-3), and a
//! complaint form that files through the complaints API (CMP-2), limited per address. The
//! console calls the gateway without a credential here: only the public methods answer.
//! `qr.svg` is the page's address as a QR code for the sign at the station.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use chargemesh_kit::identity::is_identifier;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::complaints::v1 as cmp;
use chargemesh_proto::regulator::v2 as reg;
use rust_decimal::Decimal;

use crate::form::{Form, cookie};
use crate::i18n::{Lang, local};
use crate::mesh::anonymous;
use crate::pages::clock::time;
use crate::pages::complaints::{CATEGORIES, category_of};
use crate::pages::fleet::status_name;
use crate::pages::layout::{Ctx, Notice, page};
use crate::session::{random_token, same_token};
use crate::web::Shared;

/// The public form's CSRF cookie (there is no session).
const FORM_COOKIE: &str = "cm_form";
/// The longest description and contact a driver may send.
const MAX_DESCRIPTION: usize = 1_000;
const MAX_CONTACT: usize = 64;

/// What a driver's complaint is refused for before it is sent, in their words.
pub fn check_complaint(lang: Lang, form: &Form) -> Result<(), &'static str> {
    let description = form.get("description");
    if description.is_empty() || description.chars().count() > MAX_DESCRIPTION {
        return Err(lang.t("pub.error.description"));
    }
    // REQ CMP-4: the reply and the revisit need a way to reach the driver.
    let contact = form.get("customer_contact").chars().count();
    if contact == 0 || contact > MAX_CONTACT {
        return Err(lang.t("pub.error.contact"));
    }
    if category_of(form.get("category")) == cmp::ComplaintCategory::Unspecified {
        return Err(lang.t("pub.error.category"));
    }
    Ok(())
}

fn label_name(lang: Lang, label: i32) -> &'static str {
    match asset::PeriodLabel::try_from(label) {
        Ok(asset::PeriodLabel::Cusp) => lang.t("price.cusp"),
        Ok(asset::PeriodLabel::Peak) => lang.t("price.peak"),
        Ok(asset::PeriodLabel::Flat) => lang.t("price.flat"),
        Ok(asset::PeriodLabel::Valley) => lang.t("price.valley"),
        _ => "",
    }
}

fn pile_type_name(lang: Lang, kind: i32) -> &'static str {
    match asset::PileType::try_from(kind) {
        Ok(asset::PileType::Dc) => lang.t("pile.dc"),
        Ok(asset::PileType::Ac) => lang.t("pile.ac"),
        Ok(asset::PileType::AcDc) => lang.t("pile.acdc"),
        _ => "",
    }
}

/// The sum of two prices, as the board shows it (4 places); empty when either is no number.
fn total(electricity: &str, service: &str) -> String {
    match (electricity.parse::<Decimal>(), service.parse::<Decimal>()) {
        (Ok(a), Ok(b)) => format!("{:.4}", a + b),
        _ => String::new(),
    }
}

async fn load(
    app: &Shared,
    operator_id: &str,
    station_id: &str,
) -> Result<(asset::PublicStation, Vec<reg::ConnectorStatusInfo>), tonic::Status> {
    let station = app
        .gateway
        .asset()
        .get_public_station(anonymous(asset::GetPublicStationRequest {
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
        }))
        .await?
        .into_inner()
        .station
        .ok_or_else(|| tonic::Status::not_found("no such station"))?;
    // The status is shown when it can be had; the page stands without it.
    let statuses = app
        .gateway
        .status()
        .get_station_status(anonymous(reg::GetStationStatusRequest {
            stations: vec![reg::StationKey {
                operator_id: operator_id.to_owned(),
                station_id: station_id.to_owned(),
            }],
        }))
        .await
        .map(|r| {
            r.into_inner()
                .stations
                .into_iter()
                .flat_map(|s| s.connectors)
                .collect()
        })
        .unwrap_or_default();
    Ok((station, statuses))
}

/// GET /s/{operator}/{station}.
pub async fn show(
    State(app): State<Shared>,
    Path((operator_id, station_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    render(
        &app,
        &headers,
        &operator_id,
        &station_id,
        None,
        &Form::default(),
        StatusCode::OK,
    )
    .await
}

async fn render(
    app: &Shared,
    headers: &HeaderMap,
    operator_id: &str,
    station_id: &str,
    notice: Option<Notice>,
    kept: &Form,
    code: StatusCode,
) -> Response {
    let path = format!("/s/{operator_id}/{station_id}");
    let mut ctx = app.ctx(headers, &path);
    // The public page is the same for everyone: no staff header on it.
    ctx.session = None;
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    if !is_identifier(operator_id) || !is_identifier(station_id) {
        return (StatusCode::NOT_FOUND, t("error.not_found")).into_response();
    }
    let (station, statuses) = match load(app, operator_id, station_id).await {
        Ok(loaded) => loaded,
        Err(status) if status.code() == tonic::Code::NotFound => {
            return (StatusCode::NOT_FOUND, t("error.not_found")).into_response();
        }
        Err(status) => {
            let body = html! { p { (t("pub.unavailable")) } };
            let refused = Notice::Refused(status.message().to_owned());
            return (
                StatusCode::BAD_GATEWAY,
                page(&ctx, station_id, Some(&refused), body),
            )
                .into_response();
        }
    };
    let token = cookie(headers, FORM_COOKIE)
        .filter(|t| t.len() == 64)
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let free = statuses.iter().filter(|c| c.cec_status == 1).count();
    let body = html! {
        section.facts {
            p.operator { (t("pub.operator")) ": " (station.operator_name) }
            p { (t("pub.address")) ": " (station.address) }
            p { (t("pub.hours")) ": " (station.opening_hours) }
            p { (t("pub.hotline")) ": " a href={ "tel:" (station.service_phone) } { (station.service_phone) } }
            @if !station.supervision_hotline.is_empty() {
                p { (t("pub.supervision")) ": " (station.supervision_hotline) }
            }
        }
        section.free {
            h2 { (t("pub.free")) ": " strong.count { (free) } " / " (statuses.len()) }
            ul.connectors {
                @for c in &statuses {
                    li class={ "connector s" (c.cec_status) } {
                        span.id { (c.connector_id) } " " strong.status { (status_name(lang, c.cec_status)) }
                    }
                }
            }
        }
        section.prices {
            h2 { (t("pub.prices")) }
            @if let Some(since) = time(&station.price_effective_time) {
                p { (t("pub.since")) " " (local(since)) }
            }
            table {
                thead { tr {
                    th { (t("pub.period")) } th { (t("pub.electricity")) }
                    th { (t("pub.service")) } th { (t("pub.total")) }
                } }
                tbody {
                    @for p in &station.price_board {
                        tr {
                            td { (p.start_time) "–" (p.end_time) " " (label_name(lang, p.label)) }
                            td { (p.electricity_price) }
                            td { (p.service_fee) }
                            td.total { (total(&p.electricity_price, &p.service_fee)) }
                        }
                    }
                }
            }
            p.unit { (t("pub.unit")) }
        }
        section.piles {
            h2 { (t("pub.piles")) }
            @for pile in &station.piles {
                (pile_card(lang, pile))
            }
        }
        section.complain #complain {
            h2 { (t("pub.complain")) }
            form.step method="post" action={ (path) "/complaint" } {
                input type="hidden" name="csrf" value=(token);
                label for="category" { (t("cmp.category")) }
                select id="category" name="category" {
                    @for (category, key) in CATEGORIES {
                        option value=(category as i32)
                            selected[kept.get("category") == (category as i32).to_string()] { (t(key)) }
                    }
                }
                label for="pile_id" { (t("wo.pile")) }
                select id="pile_id" name="pile_id" {
                    option value="" { "—" }
                    @for pile in &station.piles {
                        option value=(pile.pile_id) selected[kept.get("pile_id") == pile.pile_id] { (pile.pile_id) }
                    }
                }
                label for="description" { (t("cmp.description")) }
                textarea id="description" name="description" rows="4" required
                    maxlength=(MAX_DESCRIPTION) { (kept.get("description")) }
                label for="customer_contact" { (t("pub.contact")) }
                input id="customer_contact" name="customer_contact" inputmode="tel" required
                    maxlength=(MAX_CONTACT) value=(kept.get("customer_contact"));
                button type="submit" { (t("cmp.submit")) }
            }
        }
        section.sign {
            img src={ (path) "/qr.svg" } alt=(t("pub.qr")) width="160" height="160";
            p { (t("pub.qr")) }
        }
    };
    let title = if station.name.is_empty() {
        station.station_id.clone()
    } else {
        station.name.clone()
    };
    let mut response = (code, page(&ctx, &title, notice.as_ref(), body)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        app.cookie(FORM_COOKIE, &token, Some(3_600)),
    );
    response
}

fn pile_card(lang: Lang, pile: &asset::PublicPile) -> Markup {
    let t = |key| lang.t(key);
    html! {
        article.pile {
            h3 { (pile.pile_id) " · " (pile_type_name(lang, pile.pile_type)) }
            @if pile.state == asset::PileState::Suspended as i32 {
                p.notice.refused { (t("pub.suspended")) }
            }
            dl.order {
                dt { (t("pub.power")) } dd { (pile.rated_power_kw) " kW" }
                dt { (t("pub.voltage")) } dd { (pile.rated_voltage) " V" }
                dt { (t("pub.current")) } dd { (pile.rated_current) " A" }
                dt { (t("pub.maker")) } dd { (pile.manufacturer) " " (pile.model) }
                @for c in &pile.connectors {
                    dt { (c.connector_id) }
                    dd {
                        (c.voltage_lower_limit) "–" (c.voltage_upper_limit) " V, "
                        (c.current) " A, " (c.power_kw) " kW"
                        @if c.national_standard == asset::NationalStandard::Gb2015 as i32 { ", GB/T 2015" }
                        @else if c.national_standard == asset::NationalStandard::Gb2011 as i32 { ", GB/T 2011" }
                    }
                }
            }
        }
    }
}

/// The address a request came from: the peer, or the first `X-Forwarded-For` hop when the
/// console sits behind a proxy it trusts.
fn client(app: &Shared, peer: SocketAddr, headers: &HeaderMap) -> std::net::IpAddr {
    if app.config.trust_forwarded_for
        && let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return first;
    }
    peer.ip()
}

/// POST /s/{operator}/{station}/complaint.
pub async fn complain(
    State(app): State<Shared>,
    Path((operator_id, station_id)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = app.ctx(&headers, "/").lang;
    let form = Form::parse(&body);
    let expected = cookie(&headers, FORM_COOKIE).unwrap_or_default();
    let refuse = |reason: &str, code| {
        let notice = Some(Notice::Refused(reason.to_owned()));
        render(
            &app,
            &headers,
            &operator_id,
            &station_id,
            notice,
            &form,
            code,
        )
    };
    if expected.is_empty() || !same_token(expected, form.get("csrf")) {
        return refuse(lang.t("error.csrf"), StatusCode::FORBIDDEN).await;
    }
    if let Err(reason) = check_complaint(lang, &form) {
        return refuse(reason, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    if !app
        .public_limit
        .admit(client(&app, peer, &headers), Instant::now())
    {
        return refuse(lang.t("pub.error.too_many"), StatusCode::TOO_MANY_REQUESTS).await;
    }
    let filed = app
        .gateway
        .complaints()
        .submit_complaint(anonymous(cmp::SubmitComplaintRequest {
            complaint: Some(cmp::Complaint {
                operator_id: operator_id.clone(),
                kind: cmp::ComplaintKind::Complaint as i32,
                channel: cmp::ComplaintChannel::App as i32,
                category: category_of(form.get("category")) as i32,
                customer_contact: form.get("customer_contact").to_owned(),
                station_id: station_id.clone(),
                pile_id: form.get("pile_id").to_owned(),
                description: form.get("description").to_owned(),
                ..Default::default()
            }),
        }))
        .await;
    match filed.map(|r| r.into_inner().complaint) {
        Ok(Some(complaint)) => {
            let ctx = Ctx {
                lang,
                session: None,
                path: format!("/s/{operator_id}/{station_id}"),
            };
            let body = html! {
                p.notice.saved role="status" {
                    (lang.t("pub.filed")) " " strong.ref { (complaint.complaint_id) }
                }
                @if let Some(due) = time(&complaint.response_due_time) {
                    p { (lang.t("pub.answer_by")) " " (local(due)) }
                }
                p { a href=(ctx.path) { (lang.t("pub.back")) } }
            };
            (StatusCode::OK, page(&ctx, lang.t("pub.thanks"), None, body)).into_response()
        }
        Ok(None) => refuse(lang.t("pub.unavailable"), StatusCode::BAD_GATEWAY).await,
        Err(status) => {
            let code = crate::pages::outcome::refusal_code(&status);
            refuse(status.message(), code).await
        }
    }
}

/// GET /s/{operator}/{station}/qr.svg: the page's address for the sign at the station.
pub async fn qr(
    State(app): State<Shared>,
    Path((operator_id, station_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !is_identifier(&operator_id) || !is_identifier(&station_id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = if app.config.public_url.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    } else {
        app.config.public_url.trim_end_matches('/').to_owned()
    };
    let url = format!("{base}/s/{operator_id}/{station_id}");
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .build();
            ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_2_the_board_adds_electricity_and_service_to_4_places() {
        assert_eq!(total("0.6500", "0.6000"), "1.2500");
        assert_eq!(total("1.2", "0.05"), "1.2500");
        assert_eq!(total("x", "0.6"), "");
    }

    #[test]
    fn cmp_2_a_driver_s_complaint_is_checked_before_it_is_sent() {
        let ok = Form::parse(b"category=1&description=broken+gun&customer_contact=138");
        assert!(check_complaint(Lang::Zh, &ok).is_ok());
        let empty = Form::parse(b"category=1&description=&customer_contact=138");
        assert!(check_complaint(Lang::Zh, &empty).is_err());
        let long = format!(
            "category=1&customer_contact=1&description={}",
            "x".repeat(MAX_DESCRIPTION + 1)
        );
        assert!(
            check_complaint(Lang::Zh, &no_contact()).is_err(),
            "no way to answer"
        );
        assert!(check_complaint(Lang::Zh, &Form::parse(long.as_bytes())).is_err());
        let nameless = Form::parse(b"description=broken&customer_contact=138");
        assert!(check_complaint(Lang::En, &nameless).is_err());
    }

    fn no_contact() -> Form {
        Form::parse(b"category=1&description=broken")
    }

    #[test]
    fn only_registry_identifiers_name_a_station_s_page() {
        assert!(is_identifier("SX-YC-001") && is_identifier("MA2D3K7Q0"));
        assert!(!is_identifier("") && !is_identifier("../etc") && !is_identifier("a b"));
    }
}
