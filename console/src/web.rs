//! The console's HTTP side: the router, sessions from cookies, CSRF on every form, sign-in and
//! sign-out, the language switch and the embedded static files.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use maud::html;

use chargemesh_kit::jwt::{StaffClaims, sign_es256};

use crate::config::ConsoleConfig;
use crate::form::{Form, cookie};
use crate::i18n::{self, Lang};
use crate::mesh::Gateway;
use crate::pages::layout::{Ctx, Notice, page, role_name};
use crate::pages::{
    checks, complaints, defects, exemptions, fleet, orders, patrols, pile, plans, public, registry,
    reports, work_orders,
};
use crate::session::{self, Person, Session, Sessions, same_token};

/// The cookie that carries the sign-in form's CSRF token before there is a session.
const PRE_COOKIE: &str = "cm_pre";
/// How long a development sign-in's token lasts.
const DEV_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(8);
/// The largest form body accepted.
const MAX_FORM: usize = 64 * 1024;

/// What every handler shares.
pub struct App {
    pub config: ConsoleConfig,
    pub sessions: Sessions,
    pub gateway: Gateway,
    /// The development sign-in's signing key, read at start.
    pub dev_key: Option<Vec<u8>>,
    /// The live pages' streams held at once (each one gRPC stream through the gateway).
    pub live: Arc<tokio::sync::Semaphore>,
    /// Each session's live pages open now.
    pub live_by_session: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// What each address may file from the public pages (REQ CMP-2).
    pub public_limit: crate::ratelimit::RateLimit,
    /// The operator's identity provider, when sign-in goes through one.
    pub oidc: Option<crate::oidc::Oidc>,
}

pub type Shared = Arc<App>;

/// The console's routes.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/healthz", get(|| async { "ok" }))
        .route("/signin", get(signin_page).post(signin))
        .route("/signin/oidc", get(oidc_start))
        .route("/signin/callback", get(oidc_callback))
        .route("/signout", post(signout))
        .route("/lang/{code}", get(switch_lang))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/fleet", get(fleet::show))
        .route("/fleet/events", get(fleet::events))
        .route("/fleet/{station}/{pile}", get(pile::show))
        .route("/fleet/{station}/{pile}/{step}", post(pile::act))
        .route("/s/{operator}/{station}", get(public::show))
        .route("/s/{operator}/{station}/complaint", post(public::complain))
        .route("/s/{operator}/{station}/qr.svg", get(public::qr))
        .route("/checks", get(checks::list))
        .route("/checks/{station}", post(checks::record))
        .route("/plans", get(plans::list))
        .route("/plans/{id}/{step}", post(plans::act))
        .route("/patrols", get(patrols::list))
        .route("/patrols/{id}/{step}", post(patrols::act))
        .route("/exemptions", get(exemptions::list))
        .route("/exemptions/{id}/{step}", post(exemptions::act))
        .route("/orders", get(orders::list))
        .route("/orders/{id}/{step}", post(orders::verify))
        .route("/defects", get(defects::list))
        .route("/defects/{*target}", post(defects::act))
        .route("/registry", get(registry::stations))
        .route("/registry/{station}", get(registry::station))
        .route("/reports", get(reports::show))
        .route("/reports/export", get(reports::export))
        .route("/complaints", get(complaints::list))
        .route(
            "/complaints/new",
            get(complaints::new_form).post(complaints::submit),
        )
        .route("/complaints/{id}", get(complaints::detail))
        .route("/complaints/{id}/{step}", post(complaints::act))
        .route("/work-orders", get(work_orders::list))
        .route("/work-orders/{id}", get(work_orders::detail))
        .route("/work-orders/{id}/{action}", post(work_orders::act))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .with_state(app)
}

impl App {
    /// The page context of a request: its language and live session.
    pub fn ctx(&self, headers: &HeaderMap, path: &str) -> Ctx {
        Ctx {
            lang: Lang::from_cookie(cookie(headers, i18n::COOKIE)),
            session: cookie(headers, session::COOKIE)
                .and_then(|id| self.sessions.get(id, Utc::now())),
            path: path.to_owned(),
        }
    }

    /// The context and session of a signed-in request, or the way to the sign-in page.
    pub fn signed_in(&self, headers: &HeaderMap, path: &str) -> Result<(Ctx, Session), Redirect> {
        let ctx = self.ctx(headers, path);
        match ctx.session.clone() {
            Some(session) => Ok((ctx, session)),
            None => Err(Redirect::to("/signin")),
        }
    }

    /// A `Set-Cookie` value with the console's attributes (HttpOnly, SameSite=Lax, Secure when
    /// configured).
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            text.push_str(&format!("; Max-Age={age}"));
        }
        if self.config.secure_cookies {
            text.push_str("; Secure");
        }
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Whether a form carries the session's CSRF token (REQ NETSEC-1: a form posted from another
/// site has no way to know it).
pub fn csrf_ok(session: &Session, form: &Form) -> bool {
    same_token(&session.csrf, form.get("csrf"))
}

/// Why a posted form is not taken: nobody is signed in, or it lacks the session's token.
pub enum NotTaken {
    SignIn,
    Forged(Box<Ctx>),
}

impl IntoResponse for NotTaken {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/signin").into_response(),
            Self::Forged(ctx) => csrf_refused(&ctx),
        }
    }
}

impl App {
    /// A step's form posted to `path`: the signed-in person's context and session, and the
    /// form when it carries the session's CSRF token.
    pub fn posted(
        &self,
        headers: &HeaderMap,
        path: &str,
        body: &[u8],
    ) -> Result<(Ctx, Session, Form), NotTaken> {
        let (ctx, session) = self
            .signed_in(headers, path)
            .map_err(|_| NotTaken::SignIn)?;
        let form = Form::parse(body);
        if !csrf_ok(&session, &form) {
            return Err(NotTaken::Forged(Box::new(ctx)));
        }
        Ok((ctx, session, form))
    }
}

/// The page for a form without its token: nothing is done, the person is asked to submit again.
pub fn csrf_refused(ctx: &Ctx) -> Response {
    let body = page(
        ctx,
        ctx.lang.t("error.refused"),
        Some(&Notice::Refused(ctx.lang.t("error.csrf").into())),
        html! { p { a href=(ctx.path) { (ctx.lang.t("wo.back")) } } },
    );
    (StatusCode::FORBIDDEN, body).into_response()
}

async fn home(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match app.ctx(&headers, "/").session {
        Some(session) if session.person.has_role("complaint_handler") => {
            Redirect::to("/complaints").into_response()
        }
        Some(session) if session.person.has_role("repairer") => {
            Redirect::to("/work-orders").into_response()
        }
        Some(session) if session.person.has_role("om_manager") => {
            Redirect::to("/reports").into_response()
        }
        Some(_) => Redirect::to("/fleet").into_response(),
        None => Redirect::to("/signin").into_response(),
    }
}

async fn signin_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    signin_form(&app, &headers, None, StatusCode::OK)
}

/// The sign-in page, with the reason the last attempt failed.
fn signin_form(
    app: &Shared,
    headers: &HeaderMap,
    refused: Option<String>,
    code: StatusCode,
) -> Response {
    let ctx = app.ctx(headers, "/signin");
    let token = session::random_token();
    let t = |key| ctx.lang.t(key);
    let provider = app.oidc.as_ref().map(|oidc| {
        let label = if oidc.label().is_empty() {
            t("signin.oidc")
        } else {
            oidc.label()
        };
        html! { p { a.button href="/signin/oidc" { (label) } } }
    });
    let dev = match &app.config.dev_signin {
        Some(dev) => html! {
            p { (t("signin.dev")) }
            form method="post" action="/signin" {
                input type="hidden" name="csrf" value=(token);
                label for="who" { (t("signin.person")) " / " (t("signin.role")) }
                select id="who" name="who" {
                    @for (i, person) in dev.people.iter().enumerate() {
                        @for role in &person.roles {
                            option value={ (i) ":" (role) } {
                                (person.name) " — " (role_name(ctx.lang, role))
                            }
                        }
                    }
                }
                button type="submit" { (t("signin.submit")) }
            }
        },
        None if provider.is_some() => html! {},
        None => html! { p { (t("signin.none")) } },
    };
    let notice = refused.map(Notice::Refused);
    let body = html! { @if let Some(provider) = provider { (provider) } (dev) };
    let mut response = (code, page(&ctx, t("signin.title"), notice.as_ref(), body)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        app.cookie(PRE_COOKIE, &token, Some(600)),
    );
    response
}

async fn signin(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = app.ctx(&headers, "/signin");
    let form = Form::parse(&body);
    let expected = cookie(&headers, PRE_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_token(expected, form.get("csrf")) {
        return csrf_refused(&ctx);
    }
    let (Some(dev), Some(key)) = (&app.config.dev_signin, &app.dev_key) else {
        return (StatusCode::NOT_FOUND, ctx.lang.t("signin.none")).into_response();
    };
    let chosen = form.get("who").split_once(':').and_then(|(i, role)| {
        let person = dev.people.get(i.parse::<usize>().ok()?)?;
        person
            .roles
            .iter()
            .any(|r| r == role)
            .then_some((person, role))
    });
    let Some((demo, role)) = chosen else {
        return (
            StatusCode::BAD_REQUEST,
            "who: pick a demo person and one of their roles",
        )
            .into_response();
    };
    let now = Utc::now();
    let expires = now + DEV_TOKEN_TTL;
    let claims = StaffClaims {
        iss: dev.issuer.clone(),
        aud: dev.audience.clone(),
        sub: demo.subject.clone(),
        exp: expires.timestamp(),
        nbf: now.timestamp() - 5,
        iat: now.timestamp(),
        operator_id: Some(demo.operator_id.clone()),
        roles: vec![role.to_owned()],
    };
    let token = match sign_es256(&claims, key, &dev.kid) {
        Ok(token) => token,
        Err(error) => {
            tracing::warn!(%error, "the development sign-in could not sign a token");
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    let person = Person {
        subject: demo.subject.clone(),
        name: demo.name.clone(),
        operator_id: demo.operator_id.clone(),
        roles: vec![role.to_owned()],
    };
    tracing::info!(subject = %person.subject, role, "signed in to the console (development sign-in)");
    signed_in_as(&app, person, token, expires, None)
}

/// The browser's new session, and the way home.
fn signed_in_as(
    app: &Shared,
    person: Person,
    token: String,
    expires: chrono::DateTime<Utc>,
    id_token: Option<String>,
) -> Response {
    let id = app.sessions.start_with(person, token, expires, id_token);
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, app.cookie(session::COOKIE, &id, None));
    headers.append(header::SET_COOKIE, app.cookie(PRE_COOKIE, "", Some(0)));
    headers.append(header::SET_COOKIE, app.cookie(OIDC_COOKIE, "", Some(0)));
    response
}

/// The cookie binding a sign-in at the provider to the browser that started it.
const OIDC_COOKIE: &str = "cm_oidc";

/// GET /signin/oidc: off to the identity provider.
async fn oidc_start(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let Some(oidc) = &app.oidc else {
        return (StatusCode::NOT_FOUND, "no identity provider is configured").into_response();
    };
    match oidc.start().await {
        Ok((url, state)) => {
            let mut response = Redirect::to(&url).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                app.cookie(OIDC_COOKIE, &state, Some(600)),
            );
            response
        }
        Err(error) => {
            tracing::warn!(%error, "a sign-in could not start");
            signin_form(
                &app,
                &headers,
                Some(error.to_string()),
                StatusCode::BAD_GATEWAY,
            )
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// GET /signin/callback: back from the identity provider.
async fn oidc_callback(
    State(app): State<Shared>,
    Query(back): Query<Callback>,
    headers: HeaderMap,
) -> Response {
    let Some(oidc) = &app.oidc else {
        return (StatusCode::NOT_FOUND, "no identity provider is configured").into_response();
    };
    if !back.error.is_empty() {
        let reason = format!("{} {}", back.error, back.error_description);
        return signin_form(
            &app,
            &headers,
            Some(reason.trim().to_owned()),
            StatusCode::FORBIDDEN,
        );
    }
    let bound = cookie(&headers, OIDC_COOKIE).unwrap_or_default();
    if bound.is_empty() || !same_token(bound, &back.state) {
        let reason = crate::oidc::OidcError::UnknownState.to_string();
        return signin_form(&app, &headers, Some(reason), StatusCode::FORBIDDEN);
    }
    match oidc.finish(&back.state, &back.code).await {
        Ok(done) => {
            tracing::info!(subject = %done.person.subject, roles = ?done.person.roles, "signed in to the console through the identity provider");
            signed_in_as(
                &app,
                done.person,
                done.access_token,
                done.expires,
                Some(done.id_token),
            )
        }
        Err(error) => {
            tracing::warn!(%error, "a sign-in through the identity provider failed");
            signin_form(
                &app,
                &headers,
                Some(error.to_string()),
                StatusCode::FORBIDDEN,
            )
        }
    }
}

async fn signout(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = app.ctx(&headers, "/");
    let form = Form::parse(&body);
    let Some(session) = &ctx.session else {
        return Redirect::to("/signin").into_response();
    };
    if !csrf_ok(session, &form) {
        return csrf_refused(&ctx);
    }
    if let Some(id) = cookie(&headers, session::COOKIE) {
        app.sessions.end(id);
    }
    // Signed in through the identity provider: signed out there too.
    let at_provider = match (&app.oidc, &session.id_token) {
        (Some(oidc), Some(id_token)) => oidc.end_session_url(id_token).await,
        _ => None,
    };
    let mut response = Redirect::to(at_provider.as_deref().unwrap_or("/signin")).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, app.cookie(session::COOKIE, "", Some(0)));
    response
}

#[derive(Debug, serde::Deserialize)]
struct Back {
    #[serde(default)]
    back: String,
}

/// Sets the language and goes back to the page it was switched on (a path of this site only).
async fn switch_lang(
    State(app): State<Shared>,
    Path(code): Path<String>,
    Query(back): Query<Back>,
) -> Response {
    let lang = Lang::from_cookie(Some(code.as_str()));
    let back = if back.back.starts_with('/') && !back.back.starts_with("//") {
        back.back
    } else {
        "/".into()
    };
    let mut response = Redirect::to(&back).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        app.cookie(
            i18n::COOKIE,
            lang.cookie_value(),
            Some(Duration::from_secs(365 * 86_400).as_secs() as i64),
        ),
    );
    response
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/console.js"),
    )
        .into_response()
}
