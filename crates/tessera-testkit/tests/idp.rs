//! End-to-end check of the test harness against the real provider in tests/idp, using plain
//! reqwest on the client side (no Tessera code involved).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{http, jwt_part, param, pkce, unique};
use tessera_testkit::{
    Browser, Flavor, Idp, IdpOptions, Profile, client_pkjwt_pem, signing_key_pem,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

const API: &str = "https://api.example.test";
const PUBLIC: &str = "tessera-public";
/// The app's custom-scheme redirect URI.
const APP_CALLBACK: &str = "dev.tessera:/callback";

/// Sends `req` and reads the JSON body.
async fn fetch(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// The status and JSON body of `resp`; panics when the body is not JSON.
async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {body}: {e}"));
    (status, json)
}

/// Asserts the status of `resp` and that its body contains `needle`.
async fn assert_body(resp: reqwest::Response, status: u16, needle: &str) {
    assert_eq!(resp.status(), status);
    let body = resp.text().await.unwrap();
    assert!(body.contains(needle), "{body}");
}

/// A client with its own cookie jar that does not follow redirects.
fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct AuthRequest<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    scope: &'a str,
    extra: &'a [(&'a str, &'a str)],
}

impl<'a> AuthRequest<'a> {
    /// For `client_id`, without extra parameters.
    fn new(client_id: &'a str, redirect_uri: &'a str, scope: &'a str) -> Self {
        AuthRequest {
            client_id,
            redirect_uri,
            scope,
            extra: &[],
        }
    }

    /// For the public client `tessera-public`, without extra parameters.
    fn public(redirect_uri: &'a str, scope: &'a str) -> Self {
        Self::new(PUBLIC, redirect_uri, scope)
    }

    /// With the extra authorization parameters `extra`.
    fn with(self, extra: &'a [(&'a str, &'a str)]) -> Self {
        AuthRequest { extra, ..self }
    }
}

/// Builds an authorization URL; returns (url, state, nonce, code_verifier).
fn authorize_url(idp: &Idp, req: &AuthRequest) -> (String, String, String, String) {
    authorize_url_at(&idp.url("/auth"), req)
}

/// Like [`authorize_url`] for the authorization endpoint `endpoint`. The nonce is 40
/// characters long (Stitch wants 32–300).
fn authorize_url_at(endpoint: &str, req: &AuthRequest) -> (String, String, String, String) {
    let (verifier, challenge) = pkce();
    let (state, nonce) = (unique(), format!("{:0>40}", unique()));
    let mut params = vec![
        ("client_id", req.client_id),
        ("response_type", "code"),
        ("redirect_uri", req.redirect_uri),
        ("scope", req.scope),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(req.extra);
    let url = Url::parse_with_params(endpoint, &params).unwrap();
    (url.into(), state.clone(), nonce.clone(), verifier)
}

/// The authorization code in the callback URL `cb`.
#[track_caller]
fn code_of(cb: &str) -> String {
    param(cb, "code").unwrap_or_else(|| panic!("no code in {cb}"))
}

/// Asserts that the callback URL `cb` carries `error`; returns its `error_description` ("" if
/// none).
#[track_caller]
fn callback_error(cb: &str, error: &str) -> String {
    assert_eq!(param(cb, "error").as_deref(), Some(error), "{cb}");
    param(cb, "error_description").unwrap_or_default()
}

/// Asserts a token endpoint error answer: `status` and `{"error": error}`.
#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, error: &str) {
    let (s, body) = got;
    assert_eq!(
        (*s, body["error"].as_str()),
        (status, Some(error)),
        "{body}"
    );
}

enum ClientAuth {
    None(&'static str),
    Basic(&'static str, &'static str),
    Post(&'static str, &'static str),
    PrivateKeyJwt(&'static str),
}

async fn pkjwt_assertion(client_id: &str, aud: &str) -> String {
    // Signed by node's crypto to keep RSA out of this crate's dependencies.
    const SCRIPT: &str = r#"
        const c = require('crypto');
        const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const now = Math.floor(Date.now() / 1000);
        const h = b({ alg: 'RS256', kid: 'client-pkjwt', typ: 'JWT' });
        const p = b({ iss: process.env.CID, sub: process.env.CID, aud: process.env.AUD,
                      jti: c.randomUUID(), iat: now, exp: now + 60 });
        const s = c.sign('sha256', Buffer.from(h + '.' + p), process.env.KEY).toString('base64url');
        process.stdout.write(h + '.' + p + '.' + s);
    "#;
    let out = tokio::process::Command::new("node")
        .args(["-e", SCRIPT])
        .env("CID", client_id)
        .env("AUD", aud)
        .env("KEY", client_pkjwt_pem())
        .output()
        .await
        .expect("running node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn token(idp: &Idp, auth: &ClientAuth, form: &[(&str, &str)]) -> (u16, Value) {
    token_at(&idp.url("/token"), &idp.issuer, auth, form).await
}

/// A token request to `url`; a private_key_jwt assertion gets `aud` = `assertion_aud`.
async fn token_at(
    url: &str,
    assertion_aud: &str,
    auth: &ClientAuth,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut form: Vec<(&str, String)> = form.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let mut req = http().post(url);
    match auth {
        ClientAuth::None(id) => form.push(("client_id", id.to_string())),
        ClientAuth::Basic(id, secret) => req = req.basic_auth(id, Some(secret)),
        ClientAuth::Post(id, secret) => {
            form.push(("client_id", id.to_string()));
            form.push(("client_secret", secret.to_string()));
        }
        ClientAuth::PrivateKeyJwt(id) => {
            form.push(("client_id", id.to_string()));
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion", pkjwt_assertion(id, assertion_aud).await));
        }
    }
    status_json(req.form(&form).send().await.expect("token request")).await
}

/// The authorization-code grant's form.
fn code_grant<'a>(code: &'a str, redirect: &'a str, verifier: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", verifier),
    ]
}

/// Redeems `code` at the token endpoint `url` (assertions for `assertion_aud`); must succeed.
async fn redeem(
    idp: &Idp,
    url: &str,
    assertion_aud: &str,
    auth: &ClientAuth,
    redirect: &str,
    code: &str,
    verifier: &str,
) -> Value {
    let form = code_grant(code, redirect, verifier);
    let (status, body) = token_at(url, assertion_aud, auth, &form).await;
    assert_eq!(status, 200, "code exchange: {body}\n{}", idp.stderr_tail());
    body
}

async fn exchange(
    idp: &Idp,
    auth: &ClientAuth,
    redirect: &str,
    code: &str,
    verifier: &str,
) -> Value {
    let token_url = idp.url("/token");
    redeem(idp, &token_url, &idp.issuer, auth, redirect, code, verifier).await
}

async fn refresh(idp: &Idp, auth: &ClientAuth, rt: &str) -> (u16, Value) {
    token(
        idp,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

fn events_named<'a>(events: &'a Value, name: &str) -> Vec<&'a Value> {
    events
        .as_array()
        .expect("events array")
        .iter()
        .filter(|e| e["event"] == name)
        .collect()
}

/// A one-shot loopback HTTP listener standing in for the app's redirect receiver.
async fn loopback_receiver() -> (u16, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the request ended");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = "Signed in. You can close this window.";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
        let request = String::from_utf8_lossy(&buf).into_owned();
        request.lines().next().unwrap_or_default().to_owned()
    });
    (port, task)
}

#[tokio::test]
async fn discovery_code_flow_public_client_and_plain_refresh() {
    let idp = Idp::start(IdpOptions::default()).await;
    assert_eq!(idp.issuer, format!("http://127.0.0.1:{}", idp.port));

    // Discovery.
    let d = fetch(http().get(idp.url("/.well-known/openid-configuration"))).await;
    assert_eq!(d["issuer"], idp.issuer.as_str());
    assert_endpoints(
        &d,
        &idp.issuer,
        &[
            ("authorization_endpoint", "/auth"),
            ("token_endpoint", "/token"),
            ("jwks_uri", "/jwks"),
            ("userinfo_endpoint", "/me"),
            ("device_authorization_endpoint", "/device/auth"),
            ("revocation_endpoint", "/token/revocation"),
            ("introspection_endpoint", "/token/introspection"),
            ("end_session_endpoint", "/session/end"),
        ],
    );
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    for scope in ["openid", "email", "profile", "offline_access"] {
        let scopes = d["scopes_supported"].as_array().unwrap();
        assert!(scopes.iter().any(|s| s == scope), "{scope} in {scopes:?}");
    }
    for m in [
        "none",
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ] {
        let methods = d["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(methods.iter().any(|s| s == m), "{m}");
    }

    // Authorization code + PKCE for the public client, custom-scheme redirect.
    let redirect = APP_CALLBACK;
    let scope = "openid email profile offline_access";
    let (url, state, nonce, verifier) = authorize_url(&idp, &AuthRequest::public(redirect, scope));
    let browser = Browser::new();
    let cb = browser.login(&url, "alice").await;
    assert!(cb.starts_with("dev.tessera:/callback?"), "{cb}");
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));
    assert_eq!(param(&cb, "iss").as_deref(), Some(idp.issuer.as_str()));
    let code = code_of(&cb);

    let public = ClientAuth::None(PUBLIC);
    let t = exchange(&idp, &public, redirect, &code, &verifier).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(
        t["scope"], scope,
        "offline_access kept without prompt=consent"
    );
    let rt = t["refresh_token"]
        .as_str()
        .expect("refresh token without prompt=consent");
    let at = t["access_token"].as_str().unwrap();
    let id_token = t["id_token"].as_str().unwrap();
    let header = jwt_part(id_token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "key-a");
    let claims = jwt_part(id_token, 1);
    assert_eq!(claims["iss"], idp.issuer.as_str());
    assert_eq!(claims["aud"], PUBLIC);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["organizations"], json!(["acme", "globex"]));

    // Userinfo with the opaque access token.
    let me = fetch(http().get(idp.url("/me")).bearer_auth(at)).await;
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["email"], "alice@example.com");

    // Plain profile: the refresh token does not rotate and can be reused.
    for _ in 0..2 {
        let (status, r) = refresh(&idp, &public, rt).await;
        assert_eq!(status, 200, "{r}");
        assert!(r["access_token"].is_string());
        assert!(
            r["refresh_token"].is_null() || r["refresh_token"] == rt,
            "plain profile must not rotate: {r}"
        );
        assert_eq!(jwt_part(r["id_token"].as_str().unwrap(), 1)["sub"], "alice");
    }

    // Introspection by the public client of its own token.
    let intro = |token: &str| {
        let form = [("token", token), ("client_id", PUBLIC)];
        fetch(http().post(idp.url("/token/introspection")).form(&form))
    };
    let i = intro(rt).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], PUBLIC);
    assert_eq!(i["sub"], "alice");

    // Revocation by the public client, then the refresh token is dead.
    let resp = http()
        .post(idp.url("/token/revocation"))
        .form(&[("token", rt), ("client_id", PUBLIC)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(intro(rt).await["active"], false);
    assert_error(&refresh(&idp, &public, rt).await, 400, "invalid_grant");

    // The code is single-use (replaying it would also revoke the grant, so it comes last).
    let replay = token(&idp, &public, &code_grant(&code, redirect, &verifier)).await;
    assert_error(&replay, 400, "invalid_grant");

    // A second sign-in in the same browser reuses the session (no login page).
    let (url, state, _, _) = authorize_url(&idp, &AuthRequest::public(redirect, "openid"));
    let cb = browser.login(&url, "alice").await;
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));
    assert!(param(&cb, "code").is_some());

    // Denial at the login page.
    let (url, state, _, _) = authorize_url(&idp, &AuthRequest::public(redirect, scope));
    let cb = Browser::new().deny(&url).await;
    assert!(cb.starts_with("dev.tessera:/callback?"), "{cb}");
    callback_error(&cb, "access_denied");
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));

    // RP-initiated logout back to the custom scheme.
    let jar = cookie_client();
    let end = Url::parse_with_params(
        &idp.url("/session/end"),
        &[
            ("client_id", PUBLIC),
            ("post_logout_redirect_uri", "dev.tessera:/logout"),
            ("state", "bye"),
        ],
    )
    .unwrap();
    let page = jar.get(end).send().await.unwrap().text().await.unwrap();
    let xsrf = page
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("logout form xsrf");
    let resp = jar
        .post(idp.url("/session/end/confirm"))
        .form(&[("xsrf", xsrf), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "dev.tessera:/logout?state=bye");

    // Wrong password re-renders the login page with an error.
    let (url, _, _, _) = authorize_url(&idp, &AuthRequest::public(redirect, scope));
    let resp = jar.get(url).send().await.unwrap();
    let login = Url::parse(&idp.issuer)
        .unwrap()
        .join(resp.headers()["location"].to_str().unwrap())
        .unwrap();
    let page = jar
        .get(login.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<title>Tessera local demo — sign in</title>"),
        "{page}"
    );
    assert!(page.contains("Demo users: alice or bob, password demo"));
    let resp = jar
        .post(format!("{login}/login"))
        .form(&[("login", "alice"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_body(resp, 200, "Wrong username or password").await;
}

#[tokio::test]
async fn loopback_redirects_confidential_clients_and_resource_indicator() {
    let idp = Idp::start(IdpOptions::default()).await;
    let browser = Browser::new();

    // Loopback redirect at a random port (not registered: native clients match any port),
    // client_secret_basic, API resource => JWT access token.
    let (port, receiver) = loopback_receiver().await;
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let scope = "openid email offline_access read";
    let (url, state, _, verifier) = authorize_url(
        &idp,
        &AuthRequest::new("tessera-basic", &redirect, scope).with(&[("resource", API)]),
    );
    let cb = browser.login(&url, "bob").await;
    assert!(cb.starts_with(&format!("{redirect}?")), "{cb}");
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));
    let (status, body) = browser.visit(&cb).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "Signed in. You can close this window.")
    );
    let request_line = receiver.await.unwrap();
    assert!(
        request_line.starts_with("GET /callback?code="),
        "{request_line}"
    );

    let basic = ClientAuth::Basic("tessera-basic", "basic-secret");
    let t = exchange(&idp, &basic, &redirect, &code_of(&cb), &verifier).await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at, 0)["typ"], "at+jwt");
    assert_eq!(jwt_part(at, 0)["kid"], "key-a");
    let claims = jwt_part(at, 1);
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["client_id"], "tessera-basic");
    assert_eq!(
        jwt_part(t["id_token"].as_str().unwrap(), 1)["organizations"],
        json!(["acme"])
    );

    // A refresh without `resource` keeps the granted API.
    let rt = t["refresh_token"].as_str().unwrap();
    let (status, r) = refresh(&idp, &basic, rt).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(jwt_part(r["access_token"].as_str().unwrap(), 1)["aud"], API);

    // Wrong secret.
    let wrong_secret = ClientAuth::Basic("tessera-basic", "nope");
    assert_error(
        &refresh(&idp, &wrong_secret, rt).await,
        401,
        "invalid_client",
    );

    // client_secret_post with the custom scheme (session reused: no login page this time).
    let post = ClientAuth::Post("tessera-post", "post-secret");
    let req = AuthRequest::new("tessera-post", APP_CALLBACK, "openid offline_access");
    let (url, _, _, verifier) = authorize_url(&idp, &req);
    let cb = browser.login(&url, "bob").await;
    let t = exchange(&idp, &post, APP_CALLBACK, &code_of(&cb), &verifier).await;
    assert!(t["refresh_token"].is_string());

    // private_key_jwt with a loopback redirect.
    let pkjwt = ClientAuth::PrivateKeyJwt("tessera-pkjwt");
    let redirect = "http://127.0.0.1:41234/callback";
    let req = AuthRequest::new("tessera-pkjwt", redirect, "openid offline_access");
    let (url, _, _, verifier) = authorize_url(&idp, &req);
    let cb = Browser::new().login(&url, "alice").await;
    assert!(cb.starts_with(redirect), "{cb}");
    let t = exchange(&idp, &pkjwt, redirect, &code_of(&cb), &verifier).await;
    let (status, r) = refresh(&idp, &pkjwt, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{r}");

    // Unknown resource => invalid_target back at the redirect URI.
    let unknown = [("resource", "https://unknown.example.test")];
    let (url, _, _, _) = authorize_url(
        &idp,
        &AuthRequest::public(APP_CALLBACK, "openid").with(&unknown),
    );
    let cb = Browser::new().login(&url, "alice").await;
    callback_error(&cb, "invalid_target");

    // Unregistered redirect URIs are refused (error page, no redirect).
    let req = AuthRequest::public("http://127.0.0.1:5000/other", "openid");
    let (url, _, _, _) = authorize_url(&idp, &req);
    let resp = http().get(url).send().await.unwrap();
    assert_body(resp, 400, "redirect_uri did not match").await;
}

#[tokio::test]
async fn rotating_refresh_and_reuse_detection() {
    let idp = Idp::start(IdpOptions {
        profile: Profile::Rotating,
        access_ttl: 120,
        ..IdpOptions::default()
    })
    .await;
    let req = AuthRequest::public(APP_CALLBACK, "openid profile offline_access");
    let (url, _, _, verifier) = authorize_url(&idp, &req);
    let cb = Browser::new().login(&url, "alice").await;
    let public = ClientAuth::None(PUBLIC);
    let t = exchange(&idp, &public, APP_CALLBACK, &code_of(&cb), &verifier).await;
    assert_eq!(t["expires_in"], 120);
    let rt1 = t["refresh_token"].as_str().unwrap().to_owned();

    let (status, r) = refresh(&idp, &public, &rt1).await;
    assert_eq!(status, 200, "{r}");
    let rt2 = r["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "rotating profile rotates");
    let (status, r) = refresh(&idp, &public, &rt2).await;
    assert_eq!(status, 200, "{r}");
    let rt3 = r["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt2, rt3);

    // So far no reuse detection.
    let events = idp.events().await;
    assert!(
        events_named(&events, "grant.revoked").is_empty(),
        "{events}"
    );
    assert_eq!(events_named(&events, "refresh_token.consumed").len(), 2);

    // Replay of a consumed token: invalid_grant, and the whole grant is revoked (the newest
    // token died too).
    for rt in [&rt1, &rt3] {
        assert_error(&refresh(&idp, &public, rt).await, 400, "invalid_grant");
    }

    let events = idp.events().await;
    assert_eq!(events_named(&events, "grant.revoked").len(), 1, "{events}");
    let errors = events_named(&events, "grant.error");
    assert_eq!(errors.len(), 2, "{events}");
    assert!(errors.iter().all(|e| e["error"] == "invalid_grant"));
}

#[tokio::test]
async fn device_flow() {
    let idp = Idp::start(IdpOptions::default()).await;
    let public = ClientAuth::None(PUBLIC);
    let d = fetch(http().post(idp.url("/device/auth")).form(&[
        ("client_id", PUBLIC),
        ("scope", "openid email offline_access"),
    ]))
    .await;
    let device_code = d["device_code"].as_str().expect("device_code");
    let user_code = d["user_code"].as_str().expect("user_code");
    let verification_uri = d["verification_uri"].as_str().unwrap();
    assert_eq!(verification_uri, idp.url("/device"));
    assert!(
        d["verification_uri_complete"]
            .as_str()
            .unwrap()
            .contains("user_code=")
    );
    assert!(d["expires_in"].as_u64().unwrap() > 0);

    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ];
    assert_error(
        &token(&idp, &public, &poll).await,
        400,
        "authorization_pending",
    );

    Browser::new()
        .approve_device(verification_uri, user_code, "bob")
        .await;

    let (status, t) = token(&idp, &public, &poll).await;
    assert_eq!(status, 200, "{t}");
    assert!(t["refresh_token"].is_string(), "{t}");
    let claims = jwt_part(t["id_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["email"], "bob@example.com");

    // The device code is spent.
    assert_error(&token(&idp, &public, &poll).await, 400, "invalid_grant");
}

#[tokio::test]
async fn sabotage_kinds_are_one_shot() {
    let idp = Idp::start(IdpOptions::default()).await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "bogus"),
        ("client_id", PUBLIC),
    ];
    let send = |client: reqwest::Client| {
        let url = idp.url("/token");
        async move { client.post(url).form(&form).send().await }
    };
    let normal = || async {
        let resp = send(http()).await.unwrap();
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["error"], "invalid_grant",
            "unsabotaged request is normal again"
        );
    };
    let content_type =
        |r: &reqwest::Response| r.headers()["content-type"].to_str().unwrap().to_owned();

    idp.sabotage("/token", "html").await;
    let r = send(http()).await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(content_type(&r).starts_with("text/html"));
    normal().await;

    idp.sabotage("/token", "truncated").await;
    let r = send(http()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(content_type(&r).starts_with("application/json"));
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    normal().await;

    idp.sabotage("/token", "huge").await;
    let r = send(http()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 2 * 1024 * 1024);
    normal().await;

    idp.sabotage("/token", "wrong_content_type").await;
    let r = send(http()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(content_type(&r).starts_with("text/plain"));
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(v["access_token"].is_string());
    normal().await;

    idp.sabotage("/token", "redirect").await;
    let r = send(http()).await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:1/elsewhere");
    normal().await;

    idp.sabotage("/token", "status500_json").await;
    let r = send(http()).await.unwrap();
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "server_error");
    normal().await;

    idp.sabotage("/token", "slow").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let err = send(impatient).await.expect_err("slow answer times out");
    assert!(err.is_timeout(), "{err}");
    normal().await;

    // Other paths too; the path is matched exactly.
    idp.sabotage("/.well-known/openid-configuration", "status500_json")
        .await;
    for status in [500, 200] {
        let r = http().get(idp.discovery_url()).send().await.unwrap();
        assert_eq!(r.status(), status);
    }

    let events = idp.events().await;
    let fired: Vec<&str> = events_named(&events, "test.sabotage_fired")
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        fired,
        [
            "html",
            "truncated",
            "huge",
            "wrong_content_type",
            "redirect",
            "status500_json",
            "slow",
            "status500_json"
        ]
    );
    assert!(events_named(&events, "grant.error").len() >= 7);

    // Unknown kinds are refused.
    let r = http()
        .post(idp.url("/__test/sabotage"))
        .json(&json!({"path": "/token", "kind": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn jwks_kids(idp: &Idp) -> Vec<String> {
    let jwks = fetch(http().get(idp.url("/jwks"))).await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k.get("d").is_none(), "private parts must not be published");
            k["kid"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn key_rotation_via_restart() {
    for k in ["a", "b"] {
        assert!(signing_key_pem(k).starts_with("-----BEGIN PRIVATE KEY-----"));
    }
    assert!(client_pkjwt_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

    let mut idp = Idp::start(IdpOptions::default()).await;
    assert_eq!(jwks_kids(&idp).await, ["key-a"]);
    let (issuer, port) = (idp.issuer.clone(), idp.port);

    idp.restart(IdpOptions {
        signing_keys: vec!["b", "a"],
        ..IdpOptions::default()
    })
    .await;
    assert_eq!((idp.issuer.as_str(), idp.port), (issuer.as_str(), port));
    assert_eq!(jwks_kids(&idp).await, ["key-b", "key-a"]);

    let req = AuthRequest::public(APP_CALLBACK, "openid").with(&[("resource", API)]);
    let (url, _, _, verifier) = authorize_url(&idp, &req);
    let cb = Browser::new().login(&url, "alice").await;
    let public = ClientAuth::None(PUBLIC);
    let t = exchange(&idp, &public, APP_CALLBACK, &code_of(&cb), &verifier).await;
    assert_eq!(jwt_part(t["id_token"].as_str().unwrap(), 0)["kid"], "key-b");
    assert_eq!(
        jwt_part(t["access_token"].as_str().unwrap(), 0)["kid"],
        "key-b"
    );
}

// ---------------------------------------------------------------------------------------------
// Flavors: Auth0, Logto and Stitch emulated by the same provider.

const LOGTO_ORG_RESOURCE: &str = "urn:logto:resource:organizations";

/// Starts the provider as `flavor`; returns it with its origin and discovery document (after
/// checking the document names the issuer).
async fn start_flavor(flavor: Flavor) -> (Idp, String, Value) {
    let idp = Idp::start(IdpOptions {
        flavor,
        ..IdpOptions::default()
    })
    .await;
    let resp = http().get(idp.discovery_url()).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", idp.discovery_url());
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["issuer"], idp.issuer.as_str());
    let origin = idp.origin.clone();
    (idp, origin, d)
}

fn assert_endpoints(d: &Value, origin: &str, expected: &[(&str, &str)]) {
    for (field, path) in expected {
        assert_eq!(d[*field], format!("{origin}{path}"), "{field} in {d}");
    }
}

/// A flavor's endpoints: private_key_jwt assertions name the token URL.
struct Endpoints<'a> {
    idp: &'a Idp,
    authorize: String,
    token: String,
}

impl Endpoints<'_> {
    fn new(idp: &Idp, authorize: String, token: String) -> Endpoints<'_> {
        Endpoints {
            idp,
            authorize,
            token,
        }
    }

    fn authorize_url(&self, req: &AuthRequest) -> (String, String, String, String) {
        authorize_url_at(&self.authorize, req)
    }

    /// The authorization code flow: `user` signs in through `browser`, the code is redeemed
    /// with `auth`. Returns the tokens.
    async fn code_flow(
        &self,
        browser: &Browser,
        user: &str,
        auth: &ClientAuth,
        req: &AuthRequest<'_>,
    ) -> Value {
        let (url, _, _, verifier) = self.authorize_url(req);
        let cb = browser.login(&url, user).await;
        self.exchange(auth, req.redirect_uri, &code_of(&cb), &verifier)
            .await
    }

    async fn token(&self, auth: &ClientAuth, form: &[(&str, &str)]) -> (u16, Value) {
        token_at(&self.token, &self.token, auth, form).await
    }

    async fn exchange(
        &self,
        auth: &ClientAuth,
        redirect: &str,
        code: &str,
        verifier: &str,
    ) -> Value {
        redeem(
            self.idp,
            &self.token,
            &self.token,
            auth,
            redirect,
            code,
            verifier,
        )
        .await
    }

    /// A refresh grant with extra form fields (`resource`, `organization_id`, …).
    async fn refresh(&self, auth: &ClientAuth, rt: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
        form.extend_from_slice(extra);
        self.token(auth, &form).await
    }

    /// A refresh grant that must succeed; returns the tokens.
    async fn refreshed(&self, auth: &ClientAuth, rt: &str, extra: &[(&str, &str)]) -> Value {
        let (status, r) = self.refresh(auth, rt, extra).await;
        assert_eq!(status, 200, "{r}");
        r
    }
}

async fn get_json(url: &str, bearer: &str) -> (u16, Value) {
    status_json(http().get(url).bearer_auth(bearer).send().await.unwrap()).await
}

fn is_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field} in {v}"))
}

/// The `claims` of the JWT in the string field `field` of `v`.
fn claims_of(v: &Value, field: &str) -> Value {
    jwt_part(str_of(v, field), 1)
}

/// Follows `url` with a fresh cookie jar until the first page, and returns its body.
async fn first_page(url: &str) -> String {
    let client = cookie_client();
    let mut url = Url::parse(url).unwrap();
    for _ in 0..10 {
        let resp = client.get(url.clone()).send().await.unwrap();
        if let Some(loc) = resp.headers().get("location") {
            url = url.join(loc.to_str().unwrap()).unwrap();
            continue;
        }
        return resp.text().await.unwrap();
    }
    panic!("too many redirects from {url}");
}

#[tokio::test]
async fn auth0_flavor_organizations_audience_and_v2_logout() {
    let (idp, origin, d) = start_flavor(Flavor::Auth0).await;
    assert_eq!(idp.issuer, format!("{origin}/"), "Auth0 issuers end with /");
    assert_eq!(
        idp.discovery_url(),
        format!("{origin}/.well-known/openid-configuration")
    );
    assert_endpoints(
        &d,
        &origin,
        &[
            ("authorization_endpoint", "/authorize"),
            ("token_endpoint", "/oauth/token"),
            ("userinfo_endpoint", "/userinfo"),
            ("jwks_uri", "/.well-known/jwks.json"),
            ("revocation_endpoint", "/oauth/revoke"),
            ("device_authorization_endpoint", "/oauth/device/code"),
            ("end_session_endpoint", "/oidc/logout"),
        ],
    );
    assert!(d.get("introspection_endpoint").is_none(), "{d}");
    let at_idp = Endpoints::new(
        &idp,
        format!("{origin}/authorize"),
        format!("{origin}/oauth/token"),
    );
    let userinfo = format!("{origin}/userinfo");
    let public = ClientAuth::None(PUBLIC);
    let browser = Browser::new();

    // Through organization "acme" (by name) for an API audience.
    let (url, state, nonce, verifier) = at_idp.authorize_url(
        &AuthRequest::public(APP_CALLBACK, "openid profile email offline_access read")
            .with(&[("audience", API), ("organization", "acme")]),
    );
    let cb = browser.login(&url, "alice").await;
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()), "{cb}");
    assert_eq!(param(&cb, "iss").as_deref(), Some(idp.issuer.as_str()));
    let t = at_idp
        .exchange(&public, APP_CALLBACK, &code_of(&cb), &verifier)
        .await;
    assert_eq!(t["expires_in"], 86400);
    let id = claims_of(&t, "id_token");
    assert_eq!(id["iss"], idp.issuer.as_str());
    assert_eq!(id["sub"], "auth0|alice");
    assert_eq!(id["nonce"], nonce.as_str());
    assert_eq!(id["org_id"], "org_acme", "{id}");
    assert_eq!(id["org_name"], "acme");
    assert!(id.get("organizations").is_none(), "{id}");
    let at = str_of(&t, "access_token");
    assert_eq!(jwt_part(at, 0)["typ"], "at+jwt");
    let claims = jwt_part(at, 1);
    assert_eq!(claims["aud"], json!([API, userinfo]));
    assert_eq!(claims["org_id"], "org_acme");
    assert_eq!(claims["org_name"], "acme");
    assert_eq!(claims["sub"], "auth0|alice");
    assert_eq!(claims["azp"], PUBLIC);
    let scopes: Vec<&str> = str_of(&claims, "scope").split(' ').collect();
    for s in ["openid", "profile", "email", "read"] {
        assert!(scopes.contains(&s), "{s} in {claims}");
    }
    assert_eq!(t["scope"], claims["scope"]);

    // The API token also opens /userinfo (its aud lists it).
    let (status, me) = get_json(&userinfo, at).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["sub"], "auth0|alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["org_id"], "org_acme");

    // Refresh (here with a JSON body, which Auth0 accepts) keeps audience and organization; a
    // non-rotating refresh token is not sent again.
    let rt_acme = str_of(&t, "refresh_token").to_owned();
    let resp = http()
        .post(&at_idp.token)
        .json(&json!({
            "grant_type": "refresh_token",
            "client_id": PUBLIC,
            "refresh_token": rt_acme,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert!(r.get("refresh_token").is_none(), "{r}");
    let claims = claims_of(&r, "access_token");
    assert_eq!(claims["aud"][0], API);
    assert_eq!(claims["org_id"], "org_acme");
    assert_eq!(claims_of(&r, "id_token")["org_id"], "org_acme");

    // Another organization (by id) in the same browser: no password, its own token set.
    let (url, _, _, verifier) = at_idp.authorize_url(
        &AuthRequest::public(APP_CALLBACK, "openid offline_access")
            .with(&[("organization", "org_globex")]),
    );
    let (cb, prompted) = browser.login_reporting(&url, "alice").await;
    assert!(!prompted, "the session is reused");
    let t2 = at_idp
        .exchange(&public, APP_CALLBACK, &code_of(&cb), &verifier)
        .await;
    let id = claims_of(&t2, "id_token");
    assert_eq!(
        (id["org_id"].as_str(), id["org_name"].as_str()),
        (Some("org_globex"), Some("globex"))
    );
    assert!(
        !is_jwt(str_of(&t2, "access_token")),
        "no audience: opaque token"
    );
    let rt_globex = str_of(&t2, "refresh_token").to_owned();
    // The first token set stays bound to acme.
    for (rt, org) in [(&rt_acme, "org_acme"), (&rt_globex, "org_globex")] {
        let r = at_idp.refreshed(&public, rt, &[]).await;
        assert_eq!(claims_of(&r, "id_token")["org_id"], org);
    }

    // Bob is not a member of globex: access_denied naming the organization.
    let (url, state, _, _) = at_idp.authorize_url(
        &AuthRequest::public(APP_CALLBACK, "openid offline_access")
            .with(&[("organization", "globex")]),
    );
    let cb = Browser::new().login(&url, "bob").await;
    let description = callback_error(&cb, "access_denied");
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));
    assert!(description.contains("org_globex"), "{description}");

    // Unknown organization, unknown audience, bad screen_hint.
    for (extra, error, needle) in [
        (
            ("organization", "initech"),
            "invalid_request",
            "organization",
        ),
        (
            ("audience", "https://unknown.example.test"),
            "access_denied",
            "Service not found",
        ),
        (
            ("screen_hint", "register"),
            "invalid_request",
            "screen_hint",
        ),
    ] {
        let extra = [extra];
        let (url, _, _, _) =
            at_idp.authorize_url(&AuthRequest::public(APP_CALLBACK, "openid").with(&extra));
        let cb = Browser::new().login(&url, "alice").await;
        let description = callback_error(&cb, error);
        assert!(description.contains(needle), "{extra:?}: {description}");
    }
    // screen_hint=signup shows the sign-up page.
    let (url, _, _, _) = at_idp.authorize_url(
        &AuthRequest::public(APP_CALLBACK, "openid").with(&[("screen_hint", "signup")]),
    );
    assert!(first_page(&url).await.contains("Create your account"));

    // Revocation at /oauth/revoke; Auth0 answers 403 to a dead refresh token.
    let resp = http()
        .post(format!("{origin}/oauth/revoke"))
        .form(&[("token", rt_acme.as_str()), ("client_id", PUBLIC)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dead = at_idp.refresh(&public, &rt_acme, &[]).await;
    assert_error(&dead, 403, "invalid_grant");
    assert_eq!(
        dead.1["error_description"],
        "Unknown or invalid refresh token."
    );

    // /v2/logout: returnTo must be an allowed logout URL of the client.
    let logout = |return_to: &str| {
        Url::parse_with_params(
            &format!("{origin}/v2/logout"),
            &[("client_id", PUBLIC), ("returnTo", return_to)],
        )
        .unwrap()
        .to_string()
    };
    let resp = http()
        .get(logout("https://evil.example/"))
        .send()
        .await
        .unwrap();
    assert_body(resp, 400, "Allowed Logout URLs").await;
    let resp = http()
        .get(logout("http://127.0.0.1:5555/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "loopback logout URL on any port");
    assert_eq!(resp.headers()["location"], "http://127.0.0.1:5555/logout");
    // In the browser: the session ends, so the next sign-in asks for the password again.
    let (status, _) = browser.visit(&logout("dev.tessera:/logout")).await;
    assert_eq!(status, 302);
    let (url, _, _, _) = at_idp.authorize_url(&AuthRequest::public(APP_CALLBACK, "openid"));
    let (cb, prompted) = browser.login_reporting(&url, "alice").await;
    assert!(prompted, "signed out: login form again");
    assert!(param(&cb, "code").is_some(), "{cb}");
    let events = idp.events().await;
    let logouts = events_named(&events, "auth0.logout");
    assert!(logouts.iter().any(|e| e["had_session"] == true), "{events}");
    // Logging out does not revoke refresh tokens.
    at_idp.refreshed(&public, &rt_globex, &[]).await;
}

#[tokio::test]
async fn auth0_flavor_device_flow_interval_and_slow_down() {
    let (idp, origin, _) = start_flavor(Flavor::Auth0).await;
    let at_idp = Endpoints::new(
        &idp,
        format!("{origin}/authorize"),
        format!("{origin}/oauth/token"),
    );
    let d = fetch(http().post(format!("{origin}/oauth/device/code")).form(&[
        ("client_id", PUBLIC),
        ("scope", "openid offline_access"),
        ("audience", API),
    ]))
    .await;
    assert_eq!(d["interval"], 5, "{d}");
    assert_eq!(d["verification_uri"], format!("{origin}/activate"));
    let device_code = str_of(&d, "device_code");
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ];
    let public = ClientAuth::None(PUBLIC);
    assert_error(
        &at_idp.token(&public, &poll).await,
        403,
        "authorization_pending",
    );
    assert_error(&at_idp.token(&public, &poll).await, 429, "slow_down");

    Browser::new()
        .approve_device(
            str_of(&d, "verification_uri"),
            str_of(&d, "user_code"),
            "bob",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (status, t) = at_idp.token(&public, &poll).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(claims_of(&t, "id_token")["sub"], "auth0|bob");
    assert_eq!(claims_of(&t, "access_token")["aud"][0], API);
    assert!(t["refresh_token"].is_string());
}

#[tokio::test]
async fn logto_flavor_organizations_and_organization_tokens() {
    let (idp, origin, d) = start_flavor(Flavor::Logto).await;
    assert_eq!(idp.issuer, format!("{origin}/oidc"));
    assert_eq!(
        idp.discovery_url(),
        format!("{origin}/oidc/.well-known/openid-configuration")
    );
    assert_endpoints(
        &d,
        &origin,
        &[
            ("authorization_endpoint", "/oidc/auth"),
            ("token_endpoint", "/oidc/token"),
            ("userinfo_endpoint", "/oidc/me"),
            ("jwks_uri", "/oidc/jwks"),
            ("revocation_endpoint", "/oidc/token/revocation"),
            ("introspection_endpoint", "/oidc/token/introspection"),
            ("end_session_endpoint", "/oidc/session/end"),
        ],
    );
    for unmounted in ["/.well-known/openid-configuration", "/token", "/auth"] {
        let resp = http()
            .get(format!("{origin}{unmounted}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{unmounted} exists only under /oidc");
    }
    let at_idp = Endpoints::new(&idp, idp.url("/auth"), idp.url("/token"));
    assert_eq!(at_idp.token, format!("{origin}/oidc/token"));
    let public = ClientAuth::None(PUBLIC);
    let browser = Browser::new();

    let scope = "openid offline_access profile urn:logto:scope:organizations \
                 urn:logto:scope:organization_roles org:read org:write read";
    let req = AuthRequest::public(APP_CALLBACK, scope).with(&[
        ("resource", API),
        ("resource", LOGTO_ORG_RESOURCE),
        ("interaction_mode", "signUp"),
    ]);
    let (url, _, _, verifier) = at_idp.authorize_url(&req);
    assert!(first_page(&url).await.contains("Create your account"));
    let cb = browser.login(&url, "alice").await;
    assert_eq!(
        param(&cb, "iss").as_deref(),
        Some(idp.issuer.as_str()),
        "{cb}"
    );
    let t = at_idp
        .exchange(&public, APP_CALLBACK, &code_of(&cb), &verifier)
        .await;
    let id = claims_of(&t, "id_token");
    assert_eq!(id["iss"], idp.issuer.as_str());
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["organizations"], json!(["acme", "globex"]));
    assert_eq!(
        id["organization_roles"],
        json!(["acme:admin", "globex:member"])
    );
    // Without `resource` at the token endpoint the access token is only for userinfo.
    let at = str_of(&t, "access_token");
    assert!(!is_jwt(at), "{at}");
    let (status, me) = get_json(&idp.url("/me"), at).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["organizations"], json!(["acme", "globex"]));
    assert_eq!(
        me["organization_roles"],
        json!(["acme:admin", "globex:member"])
    );
    let rt0 = str_of(&t, "refresh_token").to_owned();

    // API token: a refresh with `resource`; the public client's refresh token rotates.
    let r = at_idp.refreshed(&public, &rt0, &[("resource", API)]).await;
    let claims = claims_of(&r, "access_token");
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], "read");
    let rt1 = str_of(&r, "refresh_token").to_owned();
    assert_ne!(rt1, rt0);

    // Organization tokens: refresh grant with organization_id; they rotate the refresh token too.
    let r = at_idp
        .refreshed(&public, &rt1, &[("organization_id", "globex")])
        .await;
    let claims = claims_of(&r, "access_token");
    assert_eq!(claims["aud"], "urn:logto:organization:globex", "{claims}");
    assert_eq!(claims["organization_id"], "globex");
    assert_eq!(claims["scope"], "org:read", "member role");
    assert_eq!(claims["sub"], "alice");
    let rt2 = str_of(&r, "refresh_token").to_owned();
    assert_ne!(rt2, rt1);
    let r = at_idp
        .refreshed(&public, &rt2, &[("organization_id", "acme")])
        .await;
    let claims = claims_of(&r, "access_token");
    assert_eq!(claims["aud"], "urn:logto:organization:acme");
    assert_eq!(claims["scope"], "org:read org:write", "admin role");
    let rt3 = str_of(&r, "refresh_token").to_owned();

    // Not a member: 403 access_denied, and the refresh token is not consumed.
    let denied = at_idp
        .refresh(&public, &rt3, &[("organization_id", "initech")])
        .await;
    assert_error(&denied, 403, "access_denied");
    assert_eq!(
        denied.1["error_description"],
        "user is not a member of the organization"
    );
    // The organization resource is only reachable through organization_id.
    let e = at_idp
        .refresh(&public, &rt3, &[("resource", LOGTO_ORG_RESOURCE)])
        .await;
    assert_error(&e, 400, "invalid_target");
    let r = at_idp.refreshed(&public, &rt3, &[]).await;
    let rt4 = str_of(&r, "refresh_token").to_owned();

    // Reusing a consumed refresh token (here in an organization token request) kills the grant
    // (the newest token died too).
    let e = at_idp
        .refresh(&public, &rt1, &[("organization_id", "acme")])
        .await;
    assert_error(&e, 400, "invalid_grant");
    assert_error(
        &at_idp.refresh(&public, &rt4, &[]).await,
        400,
        "invalid_grant",
    );
    let events = idp.events().await;
    assert_eq!(events_named(&events, "grant.revoked").len(), 1, "{events}");
    assert_eq!(events_named(&events, "logto.organization_token").len(), 2);

    // Bob is a member of acme only.
    let bob = Browser::new();
    let req = AuthRequest::public(APP_CALLBACK, scope).with(&[("resource", LOGTO_ORG_RESOURCE)]);
    let t = at_idp.code_flow(&bob, "bob", &public, &req).await;
    assert_eq!(claims_of(&t, "id_token")["organizations"], json!(["acme"]));
    let rt = str_of(&t, "refresh_token").to_owned();
    let e = at_idp
        .refresh(&public, &rt, &[("organization_id", "globex")])
        .await;
    assert_error(&e, 403, "access_denied");
    let (status, r) = at_idp
        .refresh(&public, &rt, &[("organization_id", "acme")])
        .await;
    assert_eq!(status, 200, "not consumed by the denied request: {r}");
    assert_eq!(claims_of(&r, "access_token")["scope"], "org:read");

    // A refresh token without the organizations scope: insufficient_scope.
    let req = AuthRequest::public(APP_CALLBACK, "openid offline_access");
    let t = at_idp.code_flow(&bob, "bob", &public, &req).await;
    assert!(claims_of(&t, "id_token").get("organizations").is_none());
    let e = at_idp
        .refresh(
            &public,
            str_of(&t, "refresh_token"),
            &[("organization_id", "acme")],
        )
        .await;
    assert_error(&e, 403, "insufficient_scope");

    // interaction_mode is checked.
    let (url, _, _, _) = at_idp.authorize_url(
        &AuthRequest::public(APP_CALLBACK, "openid").with(&[("interaction_mode", "signup")]),
    );
    let cb = Browser::new().login(&url, "alice").await;
    callback_error(&cb, "invalid_request");
}

#[tokio::test]
async fn stitch_flavor_nonce_private_key_jwt_and_single_use_refresh() {
    let (idp, origin, d) = start_flavor(Flavor::Stitch).await;
    assert_eq!(idp.issuer, origin);
    assert_endpoints(
        &d,
        &origin,
        &[
            ("authorization_endpoint", "/connect/authorize"),
            ("token_endpoint", "/connect/token"),
            ("userinfo_endpoint", "/connect/userinfo"),
            ("revocation_endpoint", "/connect/revocation"),
            ("introspection_endpoint", "/connect/introspect"),
            ("end_session_endpoint", "/connect/endsession"),
            ("jwks_uri", "/.well-known/openid-configuration/jwks"),
        ],
    );
    assert!(d.get("device_authorization_endpoint").is_none(), "{d}");
    for scope in ["accounts", "balances", "transactions", "accountholders"] {
        assert!(
            d["scopes_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == scope),
            "{scope}"
        );
    }
    let jwks = fetch(http().get(str_of(&d, "jwks_uri"))).await;
    assert_eq!(jwks["keys"][0]["kid"], "key-a");

    let at_idp = Endpoints::new(
        &idp,
        format!("{origin}/connect/authorize"),
        format!("{origin}/connect/token"),
    );
    let scope = "openid offline_access accounts balances transactions accountholders";

    // nonce is required, 32 to 300 characters.
    let (short, long, ok) = ("n".repeat(31), "n".repeat(301), "n".repeat(32));
    for (nonce, accepted) in [
        (None, false),
        (Some(short.as_str()), false),
        (Some(long.as_str()), false),
        (Some(ok.as_str()), true),
    ] {
        let (_, challenge) = pkce();
        let mut params = vec![
            ("client_id", PUBLIC),
            ("response_type", "code"),
            ("redirect_uri", APP_CALLBACK),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(nonce) = nonce {
            params.push(("nonce", nonce));
        }
        let url = Url::parse_with_params(&at_idp.authorize, &params).unwrap();
        let cb = Browser::new().login(url.as_str(), "alice").await;
        if accepted {
            assert!(param(&cb, "code").is_some(), "{cb}");
        } else {
            let description = callback_error(&cb, "invalid_request");
            assert!(description.contains("nonce"), "{nonce:?}: {cb}");
        }
    }

    // private_key_jwt: the assertion's aud must be the token URL (not the issuer).
    let browser = Browser::new();
    let pkjwt = ClientAuth::PrivateKeyJwt("tessera-pkjwt");
    let redirect = "http://127.0.0.1:41234/callback";
    let (url, _, nonce, verifier) =
        at_idp.authorize_url(&AuthRequest::new("tessera-pkjwt", redirect, scope));
    let cb = browser.login(&url, "alice").await;
    let code = code_of(&cb);
    let form = code_grant(&code, redirect, &verifier);
    let e = token_at(&at_idp.token, &idp.issuer, &pkjwt, &form).await;
    assert_error(&e, 401, "invalid_client");
    let events = idp.events().await;
    assert!(
        events_named(&events, "grant.error")
            .iter()
            .any(|e| e["error_detail"]
                .as_str()
                .unwrap_or_default()
                .contains("/connect/token")),
        "{events}"
    );
    let (status, t) = at_idp.token(&pkjwt, &form).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expires_in"], 900);
    let mut granted: Vec<&str> = str_of(&t, "scope").split(' ').collect();
    let mut wanted: Vec<&str> = scope.split(' ').collect();
    granted.sort_unstable();
    wanted.sort_unstable();
    assert_eq!(granted, wanted);
    let id = claims_of(&t, "id_token");
    assert_eq!(id["nonce"], nonce.as_str());
    assert_eq!(id["sub"], "alice");
    assert!(
        id.get("organizations").is_none() && id.get("email").is_none(),
        "{id}"
    );
    let (status, me) = get_json(
        &format!("{origin}/connect/userinfo"),
        str_of(&t, "access_token"),
    )
    .await;
    assert_eq!((status, me["sub"].as_str()), (200, Some("alice")), "{me}");

    // Refresh tokens are single-use, for confidential clients too; reuse revokes the grant.
    let rt1 = str_of(&t, "refresh_token").to_owned();
    let r = at_idp.refreshed(&pkjwt, &rt1, &[]).await;
    assert_eq!(r["expires_in"], 900);
    let rt2 = str_of(&r, "refresh_token").to_owned();
    assert_ne!(rt1, rt2);
    for rt in [&rt1, &rt2] {
        let e = at_idp.refresh(&pkjwt, rt, &[]).await;
        assert_error(&e, 400, "invalid_grant");
    }

    // The public client (PKCE) and the client_secret_post client, same rules.
    for (client_id, auth) in [
        (PUBLIC, ClientAuth::None(PUBLIC)),
        (
            "tessera-post",
            ClientAuth::Post("tessera-post", "post-secret"),
        ),
    ] {
        let req = AuthRequest::new(client_id, APP_CALLBACK, scope);
        let t = at_idp.code_flow(&browser, "alice", &auth, &req).await;
        let rt = str_of(&t, "refresh_token");
        let (status, r) = at_idp.refresh(&auth, rt, &[]).await;
        assert_eq!(status, 200, "{client_id}: {r}");
        assert_ne!(str_of(&r, "refresh_token"), rt, "{client_id} rotates");
        let (status, _) = at_idp.refresh(&auth, rt, &[]).await;
        assert_eq!(status, 400, "{client_id}: single use");
    }
}
