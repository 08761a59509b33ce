//! Sign-in through a real OpenID Connect provider (the certified npm package `oidc-provider`,
//! started by the test): the authorization code flow with PKCE, the person's roles and operator
//! from its claims, and the gateway taking the provider's own access token. Needs Node.js and
//! `CHARGEMESH_OIDC_MODULES` naming a `node_modules` with `oidc-provider` (`.ci/run` installs
//! it); without them the test says so and passes, unless `CHARGEMESH_REQUIRE_OIDC` is set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::common::TestMesh;
use super::common::processes::free_port;
use super::http::{Browser, Page};

struct Provider {
    addr: SocketAddr,
    _child: tokio::process::Child,
    _dir: PathBuf,
}

/// Starts the provider, or `None` (the test then passes, saying why) when it is not installed.
async fn provider(redirect: &str) -> Option<Provider> {
    let Some(modules) = std::env::var_os("CHARGEMESH_OIDC_MODULES") else {
        assert!(
            std::env::var_os("CHARGEMESH_REQUIRE_OIDC").is_none(),
            "CHARGEMESH_REQUIRE_OIDC is set but CHARGEMESH_OIDC_MODULES is not"
        );
        eprintln!("skipped: set CHARGEMESH_OIDC_MODULES to a node_modules with oidc-provider");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("chargemesh-oidc-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::os::unix::fs::symlink(&modules, dir.join("node_modules")).expect("modules");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/provider.mjs"),
        dir.join("provider.mjs"),
    )
    .expect("script");
    let port = free_port();
    let mut child = tokio::process::Command::new("node")
        .arg("provider.mjs")
        .arg(port.to_string())
        .arg(redirect)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("the provider starts")
        .expect("read")
        .unwrap_or_default();
    assert!(ready.starts_with("ready"), "{ready}");
    // Whatever it prints later is read, so it never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(Provider {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _child: child,
        _dir: dir,
    })
}

/// The path and query of a `Location`, and whether it points at `addr`.
fn location(page: &Page, addr: SocketAddr) -> (bool, String) {
    let to = page.header("location").expect("a redirect").to_owned();
    match to.strip_prefix(&format!("http://{addr}")) {
        Some(path) => (true, path.to_owned()),
        None if to.starts_with('/') => (true, to),
        None => (false, to),
    }
}

/// The `action` of the page's first form.
fn action(page: &Page) -> String {
    let at = page.body.find("action=\"").expect("a form") + "action=\"".len();
    page.body[at..page.body[at..].find('"').map_or(at, |end| at + end)].replace("&amp;", "&")
}

/// Signs in at the provider as `login` and follows it back to the console; the console's last
/// answer.
async fn sign_in(
    console: &mut Browser,
    idp: &mut Browser,
    idp_addr: SocketAddr,
    login: &str,
) -> Page {
    let start = console.get("/signin/oidc").await;
    assert_eq!(start.status, 303, "{}", start.body);
    let (_, mut next) = location(&start, idp_addr);
    assert!(
        next.contains("code_challenge_method=S256") && next.contains("nonce="),
        "{next}"
    );
    // The provider's login, then its consent, then back.
    for _ in 0..10 {
        let page = idp.get(&next).await;
        match page.status {
            303 | 302 => {
                let (ours, to) = location(&page, idp_addr);
                if !ours {
                    let path = to
                        .split_once("/signin/callback")
                        .map(|(_, q)| q)
                        .expect("the callback");
                    return console.get(&format!("/signin/callback{path}")).await;
                }
                next = to;
            }
            200 if page.body.contains("name=\"login\"") => {
                let done = idp
                    .post(
                        &action(&page),
                        &[("prompt", "login"), ("login", login), ("password", "x")],
                    )
                    .await;
                next = location(&done, idp_addr).1;
            }
            200 if page.body.contains("value=\"consent\"") => {
                let done = idp.post(&action(&page), &[("prompt", "consent")]).await;
                next = location(&done, idp_addr).1;
            }
            other => panic!("the provider answered {other}: {}", page.body),
        }
    }
    panic!("the provider never sent the browser back")
}

#[tokio::test]
async fn a_monitor_signs_in_through_the_identity_provider_and_the_gateway_takes_its_token() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let console_addr = listener.local_addr().expect("address");
    let redirect = format!("http://{console_addr}/signin/callback");
    let Some(idp) = provider(&redirect).await else {
        return;
    };
    let issuer = format!("http://{}", idp.addr);
    // The gateway verifies the provider's own tokens (its published keys, issuer, audience).
    let jwks = Browser::new(idp.addr).get("/jwks").await.body;
    let jwks_file = std::env::temp_dir().join(format!("chargemesh-idp-{}.json", idp.addr.port()));
    std::fs::write(&jwks_file, jwks).expect("jwks");
    let gateway_jwt = chargemesh_gateway::JwtSettings {
        jwks_file,
        issuer: issuer.clone(),
        audience: "chargemesh".into(),
        roles_claim: "roles".into(),
        operator_claim: "operator_id".into(),
    };
    let mesh =
        TestMesh::start_with_options(move |opts| opts.config.gateway.jwt = Some(gateway_jwt)).await;
    super::common::two_station_fleet(&mesh).await;
    let gateway = SocketAddr::from(([127, 0, 0, 1], mesh.gateway_port()));
    let mut config = chargemesh::demo_people::console("127.0.0.1:0", gateway, mesh.pki());
    config.dev_signin = None;
    config.oidc = Some(chargemesh_console::oidc::OidcSettings {
        issuer,
        client_id: "chargemesh-console".into(),
        client_secret: String::new(),
        redirect_url: redirect,
        scopes: "openid profile".into(),
        roles_claim: "roles".into(),
        operator_claim: "operator_id".into(),
        name_claim: "name".into(),
        ca_file: None,
        label: String::new(),
        post_logout_redirect_url: format!("http://{console_addr}/signin"),
    });
    tokio::spawn(chargemesh_console::serve(
        listener,
        config,
        std::future::pending(),
    ));

    let mut console = Browser::new(console_addr);
    let signin = console.get("/signin").await;
    assert!(signin.body.contains("/signin/oidc"), "{}", signin.body);
    let mut idp_browser = Browser::new(idp.addr);
    let back = sign_in(&mut console, &mut idp_browser, idp.addr, "mo-wang").await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(
        back.set_cookies()
            .iter()
            .any(|c| c.starts_with("cm_session=") && c.contains("HttpOnly"))
    );
    // The person as the provider says, and the gateway answering with the provider's token.
    let fleet = console.get("/fleet").await;
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    assert!(fleet.body.contains("王监控 · 监控员"), "{}", fleet.body);
    assert!(
        fleet.body.contains("S-URB"),
        "the gateway took the token: {}",
        fleet.body
    );
    assert!(!fleet.body.contains("操作未成功"), "{}", fleet.body);

    // Signing out ends the session here and at the provider.
    let csrf = fleet.csrf();
    let out = console.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    let (ours, to) = location(&out, idp.addr);
    assert!(
        ours && to.starts_with("/session/end?") && to.contains("id_token_hint="),
        "{to}"
    );
    assert_eq!(
        console.get("/fleet").await.header("location"),
        Some("/signin")
    );

    // An account without a role on the platform is turned away, saying why.
    let mut stranger = Browser::new(console_addr);
    let mut stranger_idp = Browser::new(idp.addr);
    let refused = sign_in(&mut stranger, &mut stranger_idp, idp.addr, "visitor").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("no role"), "{}", refused.body);

    // A callback this browser did not start is refused.
    let forged = Browser::new(console_addr)
        .get("/signin/callback?code=abc&state=not-ours")
        .await;
    assert_eq!(forged.status, 403);
}
