//! The frame every page shares: the language, the navigation the person's roles may use, the
//! sign-out form, and the place for a message (what was saved, or the API's reason for a
//! refusal).

use maud::{DOCTYPE, Markup, html};

use crate::i18n::Lang;
use crate::session::Session;

/// What a page is rendered for.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub session: Option<Session>,
    /// The page's own path, for the language switch to come back to.
    pub path: String,
}

/// A message above the page's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Saved,
    Refused(String),
}

/// The page `title` with `body`.
pub fn page(ctx: &Ctx, title: &str, notice: Option<&Notice>, body: Markup) -> Markup {
    let t = |key| ctx.lang.t(key);
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t("app")) }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { (t("app")) }
                    @if let Some(session) = &ctx.session {
                        nav aria-label=(t("app")) {
                            a href="/fleet" { (t("nav.fleet")) }
                            a href="/checks" { (t("nav.checks")) }
                            a href="/work-orders" { (t("nav.work_orders")) }
                            a href="/defects" { (t("nav.defects")) }
                            a href="/patrols" { (t("nav.patrols")) }
                            a href="/plans" { (t("nav.plans")) }
                            a href="/orders" { (t("nav.orders")) }
                            a href="/exemptions" { (t("nav.exemptions")) }
                            a href="/complaints" { (t("nav.complaints")) }
                            a href="/reports" { (t("nav.reports")) }
                            a href="/registry" { (t("nav.registry")) }
                        }
                        span.who {
                            (session.person.name) " · "
                            @for (i, role) in session.person.roles.iter().enumerate() {
                                @if i > 0 { ", " }
                                (role_name(ctx.lang, role))
                            }
                        }
                        form.inline method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { (t("nav.signout")) }
                        }
                    }
                    a.lang href={ "/lang/" (ctx.lang.other().cookie_value()) "?back=" (ctx.path) } {
                        (t("lang.switch"))
                    }
                }
                main {
                    h1 { (title) }
                    @match notice {
                        Some(Notice::Saved) => p.notice.saved role="status" { (t("wo.done")) },
                        Some(Notice::Refused(reason)) => p.notice.refused role="alert" {
                            (t("error.refused")) (reason)
                        },
                        None => {},
                    }
                    (body)
                }
            }
        }
    }
}

/// A role's name in `lang`.
pub fn role_name(lang: Lang, role: &str) -> &'static str {
    match role {
        "monitor" => lang.t("role.monitor"),
        "repairer" => lang.t("role.repairer"),
        "station_master" => lang.t("role.station_master"),
        "safety_officer" => lang.t("role.safety_officer"),
        "om_manager" => lang.t("role.om_manager"),
        "complaint_handler" => lang.t("role.complaint_handler"),
        "platform_admin" => lang.t("role.platform_admin"),
        _ => "?",
    }
}
