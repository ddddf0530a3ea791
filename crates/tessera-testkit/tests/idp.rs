//! End-to-end check of the test harness against the real provider in tests/idp, using plain
//! reqwest on the client side (no Tessera code involved).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_testkit::{
    Browser, Flavor, Idp, IdpOptions, Profile, client_pkjwt_pem, signing_key_pem,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

const API: &str = "https://api.example.test";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", N.fetch_add(1, Ordering::Relaxed))
}

/// (code_verifier, code_challenge) for PKCE S256.
fn pkce() -> (String, String) {
    let verifier = format!("{:0>64}", unique());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).expect("JWT has 3 parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

struct AuthRequest<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    scope: &'a str,
    extra: &'a [(&'a str, &'a str)],
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
    let resp = req.form(&form).send().await.expect("token request");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {body}: {e}"));
    (status, json)
}

async fn exchange(
    idp: &Idp,
    auth: &ClientAuth,
    redirect: &str,
    code: &str,
    verifier: &str,
) -> Value {
    let (status, body) = token(
        idp,
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "code exchange: {body}\n{}", idp.stderr_tail());
    body
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
    let d: Value = http()
        .get(idp.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], idp.issuer.as_str());
    for (field, path) in [
        ("authorization_endpoint", "/auth"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("userinfo_endpoint", "/me"),
        ("device_authorization_endpoint", "/device/auth"),
        ("revocation_endpoint", "/token/revocation"),
        ("introspection_endpoint", "/token/introspection"),
        ("end_session_endpoint", "/session/end"),
    ] {
        assert_eq!(d[field], idp.url(path).as_str(), "{field}");
    }
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
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
    let redirect = "dev.tessera:/callback";
    let scope = "openid email profile offline_access";
    let (url, state, nonce, verifier) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope,
            extra: &[],
        },
    );
    let browser = Browser::new();
    let cb = browser.login(&url, "alice").await;
    assert!(cb.starts_with("dev.tessera:/callback?"), "{cb}");
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));
    assert_eq!(param(&cb, "iss").as_deref(), Some(idp.issuer.as_str()));
    let code = param(&cb, "code").expect("code in callback");

    let public = ClientAuth::None("tessera-public");
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
    assert_eq!(claims["aud"], "tessera-public");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(
        claims["organizations"],
        serde_json::json!(["acme", "globex"])
    );

    // Userinfo with the opaque access token.
    let me: Value = http()
        .get(idp.url("/me"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let intro = |token: String| {
        let idp_url = idp.url("/token/introspection");
        async move {
            let v: Value = http()
                .post(idp_url)
                .form(&[("token", token.as_str()), ("client_id", "tessera-public")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let i = intro(rt.to_owned()).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], "tessera-public");
    assert_eq!(i["sub"], "alice");

    // Revocation by the public client, then the refresh token is dead.
    let resp = http()
        .post(idp.url("/token/revocation"))
        .form(&[("token", rt), ("client_id", "tessera-public")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(intro(rt.to_owned()).await["active"], false);
    let (status, r) = refresh(&idp, &public, rt).await;
    assert_eq!((status, r["error"].as_str()), (400, Some("invalid_grant")));

    // The code is single-use (replaying it would also revoke the grant, so it comes last).
    let (status, body) = token(
        &idp,
        &public,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A second sign-in in the same browser reuses the session (no login page).
    let (url, state, _, _) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid",
            extra: &[],
        },
    );
    let cb = browser.login(&url, "alice").await;
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));
    assert!(param(&cb, "code").is_some());

    // Denial at the login page.
    let (url, state, _, _) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope,
            extra: &[],
        },
    );
    let cb = Browser::new().deny(&url).await;
    assert!(cb.starts_with("dev.tessera:/callback?"), "{cb}");
    assert_eq!(param(&cb, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));

    // RP-initiated logout back to the custom scheme.
    let jar = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let end = Url::parse_with_params(
        &idp.url("/session/end"),
        &[
            ("client_id", "tessera-public"),
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
    let (url, _, _, _) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope,
            extra: &[],
        },
    );
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
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Wrong username or password")
    );
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
        &AuthRequest {
            client_id: "tessera-basic",
            redirect_uri: &redirect,
            scope,
            extra: &[("resource", API)],
        },
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
    let code = param(&cb, "code").unwrap();
    let t = exchange(&idp, &basic, &redirect, &code, &verifier).await;
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
        serde_json::json!(["acme"])
    );

    // A refresh without `resource` keeps the granted API.
    let (status, r) = refresh(&idp, &basic, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(jwt_part(r["access_token"].as_str().unwrap(), 1)["aud"], API);

    // Wrong secret.
    let (status, r) = refresh(
        &idp,
        &ClientAuth::Basic("tessera-basic", "nope"),
        t["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!((status, r["error"].as_str()), (401, Some("invalid_client")));

    // client_secret_post with the custom scheme (session reused: no login page this time).
    let post = ClientAuth::Post("tessera-post", "post-secret");
    let redirect = "dev.tessera:/callback";
    let (url, _, _, verifier) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-post",
            redirect_uri: redirect,
            scope: "openid offline_access",
            extra: &[],
        },
    );
    let cb = browser.login(&url, "bob").await;
    let t = exchange(
        &idp,
        &post,
        redirect,
        &param(&cb, "code").unwrap(),
        &verifier,
    )
    .await;
    assert!(t["refresh_token"].is_string());

    // private_key_jwt with a loopback redirect.
    let pkjwt = ClientAuth::PrivateKeyJwt("tessera-pkjwt");
    let redirect = "http://127.0.0.1:41234/callback";
    let (url, _, _, verifier) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-pkjwt",
            redirect_uri: redirect,
            scope: "openid offline_access",
            extra: &[],
        },
    );
    let cb = Browser::new().login(&url, "alice").await;
    assert!(cb.starts_with(redirect), "{cb}");
    let t = exchange(
        &idp,
        &pkjwt,
        redirect,
        &param(&cb, "code").unwrap(),
        &verifier,
    )
    .await;
    let (status, r) = refresh(&idp, &pkjwt, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{r}");

    // Unknown resource => invalid_target back at the redirect URI.
    let (url, _, _, _) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: "dev.tessera:/callback",
            scope: "openid",
            extra: &[("resource", "https://unknown.example.test")],
        },
    );
    let cb = Browser::new().login(&url, "alice").await;
    assert_eq!(
        param(&cb, "error").as_deref(),
        Some("invalid_target"),
        "{cb}"
    );

    // Unregistered redirect URIs are refused (error page, no redirect).
    let (url, _, _, _) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: "http://127.0.0.1:5000/other",
            scope: "openid",
            extra: &[],
        },
    );
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("redirect_uri did not match")
    );
}

#[tokio::test]
async fn rotating_refresh_and_reuse_detection() {
    let idp = Idp::start(IdpOptions {
        profile: Profile::Rotating,
        access_ttl: 120,
        ..IdpOptions::default()
    })
    .await;
    let redirect = "dev.tessera:/callback";
    let (url, _, _, verifier) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid profile offline_access",
            extra: &[],
        },
    );
    let cb = Browser::new().login(&url, "alice").await;
    let public = ClientAuth::None("tessera-public");
    let t = exchange(
        &idp,
        &public,
        redirect,
        &param(&cb, "code").unwrap(),
        &verifier,
    )
    .await;
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

    // Replay of a consumed token: invalid_grant, and the whole grant is revoked.
    let (status, r) = refresh(&idp, &public, &rt1).await;
    assert_eq!((status, r["error"].as_str()), (400, Some("invalid_grant")));
    let (status, r) = refresh(&idp, &public, &rt3).await;
    assert_eq!(
        (status, r["error"].as_str()),
        (400, Some("invalid_grant")),
        "newest token died too"
    );

    let events = idp.events().await;
    assert_eq!(events_named(&events, "grant.revoked").len(), 1, "{events}");
    let errors = events_named(&events, "grant.error");
    assert_eq!(errors.len(), 2, "{events}");
    assert!(errors.iter().all(|e| e["error"] == "invalid_grant"));
}

#[tokio::test]
async fn device_flow() {
    let idp = Idp::start(IdpOptions::default()).await;
    let public = ClientAuth::None("tessera-public");
    let d: Value = http()
        .post(idp.url("/device/auth"))
        .form(&[
            ("client_id", "tessera-public"),
            ("scope", "openid email offline_access"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let (status, r) = token(&idp, &public, &poll).await;
    assert_eq!(
        (status, r["error"].as_str()),
        (400, Some("authorization_pending"))
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
    let (status, r) = token(&idp, &public, &poll).await;
    assert_eq!((status, r["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn sabotage_kinds_are_one_shot() {
    let idp = Idp::start(IdpOptions::default()).await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "bogus"),
        ("client_id", "tessera-public"),
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
    let r = http()
        .get(idp.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let r = http()
        .get(idp.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

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
        .json(&serde_json::json!({"path": "/token", "kind": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn jwks_kids(idp: &Idp) -> Vec<String> {
    let jwks: Value = http()
        .get(idp.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

    let redirect = "dev.tessera:/callback";
    let (url, _, _, verifier) = authorize_url(
        &idp,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid",
            extra: &[("resource", API)],
        },
    );
    let cb = Browser::new().login(&url, "alice").await;
    let t = exchange(
        &idp,
        &ClientAuth::None("tessera-public"),
        redirect,
        &param(&cb, "code").unwrap(),
        &verifier,
    )
    .await;
    assert_eq!(jwt_part(t["id_token"].as_str().unwrap(), 0)["kid"], "key-b");
    assert_eq!(
        jwt_part(t["access_token"].as_str().unwrap(), 0)["kid"],
        "key-b"
    );
}

// ---------------------------------------------------------------------------------------------
// Flavors: Auth0, Logto and Stitch emulated by the same provider.

const LOGTO_ORG_RESOURCE: &str = "urn:logto:resource:organizations";

async fn discovery(idp: &Idp) -> Value {
    let resp = http().get(idp.discovery_url()).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", idp.discovery_url());
    resp.json().await.unwrap()
}

fn assert_endpoints(d: &Value, origin: &str, expected: &[(&str, &str)]) {
    for (field, path) in expected {
        assert_eq!(d[*field], format!("{origin}{path}"), "{field} in {d}");
    }
}

async fn exchange_at(
    idp: &Idp,
    token_url: &str,
    auth: &ClientAuth,
    redirect: &str,
    code: &str,
    verifier: &str,
) -> Value {
    let (status, body) = token_at(
        token_url,
        token_url,
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "code exchange: {body}\n{}", idp.stderr_tail());
    body
}

/// A refresh grant at `token_url` with extra form fields (`resource`, `organization_id`, …).
async fn refresh_at(
    token_url: &str,
    auth: &ClientAuth,
    rt: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    form.extend_from_slice(extra);
    token_at(token_url, token_url, auth, &form).await
}

async fn get_json(url: &str, bearer: &str) -> (u16, Value) {
    let resp = http().get(url).bearer_auth(bearer).send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {body}: {e}"));
    (status, json)
}

fn is_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field} in {v}"))
}

/// Follows `url` with a fresh cookie jar until the first page, and returns its body.
async fn first_page(url: &str) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
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
    let idp = Idp::start(IdpOptions {
        flavor: Flavor::Auth0,
        ..IdpOptions::default()
    })
    .await;
    let origin = idp.origin.clone();
    assert_eq!(idp.issuer, format!("{origin}/"), "Auth0 issuers end with /");

    let d = discovery(&idp).await;
    assert_eq!(
        idp.discovery_url(),
        format!("{origin}/.well-known/openid-configuration")
    );
    assert_eq!(d["issuer"], idp.issuer.as_str());
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
    let authorize = format!("{origin}/authorize");
    let token_url = format!("{origin}/oauth/token");
    let userinfo = format!("{origin}/userinfo");
    let redirect = "dev.tessera:/callback";
    let public = ClientAuth::None("tessera-public");
    let browser = Browser::new();

    // Through organization "acme" (by name) for an API audience.
    let (url, state, nonce, verifier) = authorize_url_at(
        &authorize,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid profile email offline_access read",
            extra: &[("audience", API), ("organization", "acme")],
        },
    );
    let cb = browser.login(&url, "alice").await;
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()), "{cb}");
    assert_eq!(param(&cb, "iss").as_deref(), Some(idp.issuer.as_str()));
    let code = param(&cb, "code").unwrap();
    let t = exchange_at(&idp, &token_url, &public, redirect, &code, &verifier).await;
    assert_eq!(t["expires_in"], 86400);
    let id = jwt_part(str_of(&t, "id_token"), 1);
    assert_eq!(id["iss"], idp.issuer.as_str());
    assert_eq!(id["sub"], "auth0|alice");
    assert_eq!(id["nonce"], nonce.as_str());
    assert_eq!(id["org_id"], "org_acme", "{id}");
    assert_eq!(id["org_name"], "acme");
    assert!(id.get("organizations").is_none(), "{id}");
    let at = str_of(&t, "access_token");
    assert_eq!(jwt_part(at, 0)["typ"], "at+jwt");
    let claims = jwt_part(at, 1);
    assert_eq!(claims["aud"], serde_json::json!([API, userinfo]));
    assert_eq!(claims["org_id"], "org_acme");
    assert_eq!(claims["org_name"], "acme");
    assert_eq!(claims["sub"], "auth0|alice");
    assert_eq!(claims["azp"], "tessera-public");
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
        .post(&token_url)
        .json(&serde_json::json!({
            "grant_type": "refresh_token",
            "client_id": "tessera-public",
            "refresh_token": rt_acme,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert!(r.get("refresh_token").is_none(), "{r}");
    let claims = jwt_part(str_of(&r, "access_token"), 1);
    assert_eq!(claims["aud"][0], API);
    assert_eq!(claims["org_id"], "org_acme");
    assert_eq!(jwt_part(str_of(&r, "id_token"), 1)["org_id"], "org_acme");

    // Another organization (by id) in the same browser: no password, its own token set.
    let (url, _, _, verifier) = authorize_url_at(
        &authorize,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid offline_access",
            extra: &[("organization", "org_globex")],
        },
    );
    let (cb, prompted) = browser.login_reporting(&url, "alice").await;
    assert!(!prompted, "the session is reused");
    let code = param(&cb, "code").unwrap_or_else(|| panic!("{cb}"));
    let t2 = exchange_at(&idp, &token_url, &public, redirect, &code, &verifier).await;
    let id = jwt_part(str_of(&t2, "id_token"), 1);
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
    let (status, r) = refresh_at(&token_url, &public, &rt_acme, &[]).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(jwt_part(str_of(&r, "id_token"), 1)["org_id"], "org_acme");
    let (status, r) = refresh_at(&token_url, &public, &rt_globex, &[]).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(jwt_part(str_of(&r, "id_token"), 1)["org_id"], "org_globex");

    // Bob is not a member of globex: access_denied naming the organization.
    let (url, state, _, _) = authorize_url_at(
        &authorize,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid offline_access",
            extra: &[("organization", "globex")],
        },
    );
    let cb = Browser::new().login(&url, "bob").await;
    assert_eq!(
        param(&cb, "error").as_deref(),
        Some("access_denied"),
        "{cb}"
    );
    assert_eq!(param(&cb, "state").as_deref(), Some(state.as_str()));
    let description = param(&cb, "error_description").unwrap();
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
        let (url, _, _, _) = authorize_url_at(
            &authorize,
            &AuthRequest {
                client_id: "tessera-public",
                redirect_uri: redirect,
                scope: "openid",
                extra: &[extra],
            },
        );
        let cb = Browser::new().login(&url, "alice").await;
        assert_eq!(
            param(&cb, "error").as_deref(),
            Some(error),
            "{extra:?}: {cb}"
        );
        let description = param(&cb, "error_description").unwrap_or_default();
        assert!(description.contains(needle), "{extra:?}: {description}");
    }
    // screen_hint=signup shows the sign-up page.
    let (url, _, _, _) = authorize_url_at(
        &authorize,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid",
            extra: &[("screen_hint", "signup")],
        },
    );
    assert!(first_page(&url).await.contains("Create your account"));

    // Revocation at /oauth/revoke; Auth0 answers 403 to a dead refresh token.
    let resp = http()
        .post(format!("{origin}/oauth/revoke"))
        .form(&[("token", rt_acme.as_str()), ("client_id", "tessera-public")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, r) = refresh_at(&token_url, &public, &rt_acme, &[]).await;
    assert_eq!(
        (status, r["error"].as_str()),
        (403, Some("invalid_grant")),
        "{r}"
    );
    assert_eq!(r["error_description"], "Unknown or invalid refresh token.");

    // /v2/logout: returnTo must be an allowed logout URL of the client.
    let logout = |return_to: &str| {
        Url::parse_with_params(
            &format!("{origin}/v2/logout"),
            &[("client_id", "tessera-public"), ("returnTo", return_to)],
        )
        .unwrap()
        .to_string()
    };
    let resp = http()
        .get(logout("https://evil.example/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Allowed Logout URLs"));
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
    let (url, _, _, _) = authorize_url_at(
        &authorize,
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid",
            extra: &[],
        },
    );
    let (cb, prompted) = browser.login_reporting(&url, "alice").await;
    assert!(prompted, "signed out: login form again");
    assert!(param(&cb, "code").is_some(), "{cb}");
    let events = idp.events().await;
    let logouts = events_named(&events, "auth0.logout");
    assert!(logouts.iter().any(|e| e["had_session"] == true), "{events}");
    // Logging out does not revoke refresh tokens.
    let (status, r) = refresh_at(&token_url, &public, &rt_globex, &[]).await;
    assert_eq!(status, 200, "{r}");
}

#[tokio::test]
async fn auth0_flavor_device_flow_interval_and_slow_down() {
    let idp = Idp::start(IdpOptions {
        flavor: Flavor::Auth0,
        ..IdpOptions::default()
    })
    .await;
    let origin = idp.origin.clone();
    let token_url = format!("{origin}/oauth/token");
    let d: Value = http()
        .post(format!("{origin}/oauth/device/code"))
        .form(&[
            ("client_id", "tessera-public"),
            ("scope", "openid offline_access"),
            ("audience", API),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["interval"], 5, "{d}");
    assert_eq!(d["verification_uri"], format!("{origin}/activate"));
    let device_code = str_of(&d, "device_code");
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ];
    let public = ClientAuth::None("tessera-public");
    let (status, r) = token_at(&token_url, &token_url, &public, &poll).await;
    assert_eq!(
        (status, r["error"].as_str()),
        (403, Some("authorization_pending"))
    );
    let (status, r) = token_at(&token_url, &token_url, &public, &poll).await;
    assert_eq!(
        (status, r["error"].as_str()),
        (429, Some("slow_down")),
        "{r}"
    );

    Browser::new()
        .approve_device(
            str_of(&d, "verification_uri"),
            str_of(&d, "user_code"),
            "bob",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (status, t) = token_at(&token_url, &token_url, &public, &poll).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(jwt_part(str_of(&t, "id_token"), 1)["sub"], "auth0|bob");
    assert_eq!(jwt_part(str_of(&t, "access_token"), 1)["aud"][0], API);
    assert!(t["refresh_token"].is_string());
}

#[tokio::test]
async fn logto_flavor_organizations_and_organization_tokens() {
    let idp = Idp::start(IdpOptions {
        flavor: Flavor::Logto,
        ..IdpOptions::default()
    })
    .await;
    let origin = idp.origin.clone();
    assert_eq!(idp.issuer, format!("{origin}/oidc"));
    assert_eq!(
        idp.discovery_url(),
        format!("{origin}/oidc/.well-known/openid-configuration")
    );
    let d = discovery(&idp).await;
    assert_eq!(d["issuer"], idp.issuer.as_str());
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
    let token_url = idp.url("/token");
    assert_eq!(token_url, format!("{origin}/oidc/token"));
    let redirect = "dev.tessera:/callback";
    let public = ClientAuth::None("tessera-public");
    let browser = Browser::new();

    let scope = "openid offline_access profile urn:logto:scope:organizations \
                 urn:logto:scope:organization_roles org:read org:write read";
    let (url, _, _, verifier) = authorize_url_at(
        &idp.url("/auth"),
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope,
            extra: &[
                ("resource", API),
                ("resource", LOGTO_ORG_RESOURCE),
                ("interaction_mode", "signUp"),
            ],
        },
    );
    assert!(first_page(&url).await.contains("Create your account"));
    let cb = browser.login(&url, "alice").await;
    assert_eq!(
        param(&cb, "iss").as_deref(),
        Some(idp.issuer.as_str()),
        "{cb}"
    );
    let t = exchange_at(
        &idp,
        &token_url,
        &public,
        redirect,
        &param(&cb, "code").unwrap(),
        &verifier,
    )
    .await;
    let id = jwt_part(str_of(&t, "id_token"), 1);
    assert_eq!(id["iss"], idp.issuer.as_str());
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["organizations"], serde_json::json!(["acme", "globex"]));
    assert_eq!(
        id["organization_roles"],
        serde_json::json!(["acme:admin", "globex:member"])
    );
    // Without `resource` at the token endpoint the access token is only for userinfo.
    let at = str_of(&t, "access_token");
    assert!(!is_jwt(at), "{at}");
    let (status, me) = get_json(&idp.url("/me"), at).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["organizations"], serde_json::json!(["acme", "globex"]));
    assert_eq!(
        me["organization_roles"],
        serde_json::json!(["acme:admin", "globex:member"])
    );
    let rt0 = str_of(&t, "refresh_token").to_owned();

    // API token: a refresh with `resource`; the public client's refresh token rotates.
    let (status, r) = refresh_at(&token_url, &public, &rt0, &[("resource", API)]).await;
    assert_eq!(status, 200, "{r}");
    let claims = jwt_part(str_of(&r, "access_token"), 1);
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], "read");
    let rt1 = str_of(&r, "refresh_token").to_owned();
    assert_ne!(rt1, rt0);

    // Organization tokens: refresh grant with organization_id; they rotate the refresh token too.
    let (status, r) = refresh_at(&token_url, &public, &rt1, &[("organization_id", "globex")]).await;
    assert_eq!(status, 200, "{r}");
    let claims = jwt_part(str_of(&r, "access_token"), 1);
    assert_eq!(claims["aud"], "urn:logto:organization:globex", "{claims}");
    assert_eq!(claims["organization_id"], "globex");
    assert_eq!(claims["scope"], "org:read", "member role");
    assert_eq!(claims["sub"], "alice");
    let rt2 = str_of(&r, "refresh_token").to_owned();
    assert_ne!(rt2, rt1);
    let (status, r) = refresh_at(&token_url, &public, &rt2, &[("organization_id", "acme")]).await;
    assert_eq!(status, 200, "{r}");
    let claims = jwt_part(str_of(&r, "access_token"), 1);
    assert_eq!(claims["aud"], "urn:logto:organization:acme");
    assert_eq!(claims["scope"], "org:read org:write", "admin role");
    let rt3 = str_of(&r, "refresh_token").to_owned();

    // Not a member: 403 access_denied, and the refresh token is not consumed.
    let (status, e) =
        refresh_at(&token_url, &public, &rt3, &[("organization_id", "initech")]).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("access_denied")),
        "{e}"
    );
    assert_eq!(
        e["error_description"],
        "user is not a member of the organization"
    );
    // The organization resource is only reachable through organization_id.
    let (status, e) = refresh_at(
        &token_url,
        &public,
        &rt3,
        &[("resource", LOGTO_ORG_RESOURCE)],
    )
    .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_target")),
        "{e}"
    );
    let (status, r) = refresh_at(&token_url, &public, &rt3, &[]).await;
    assert_eq!(status, 200, "{r}");
    let rt4 = str_of(&r, "refresh_token").to_owned();

    // Reusing a consumed refresh token (here in an organization token request) kills the grant.
    let (status, e) = refresh_at(&token_url, &public, &rt1, &[("organization_id", "acme")]).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (status, e) = refresh_at(&token_url, &public, &rt4, &[]).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "newest died too: {e}"
    );
    let events = idp.events().await;
    assert_eq!(events_named(&events, "grant.revoked").len(), 1, "{events}");
    assert_eq!(events_named(&events, "logto.organization_token").len(), 2);

    // Bob is a member of acme only.
    let (url, _, _, verifier) = authorize_url_at(
        &idp.url("/auth"),
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope,
            extra: &[("resource", LOGTO_ORG_RESOURCE)],
        },
    );
    let bob = Browser::new();
    let cb = bob.login(&url, "bob").await;
    let t = exchange_at(
        &idp,
        &token_url,
        &public,
        redirect,
        &param(&cb, "code").unwrap(),
        &verifier,
    )
    .await;
    assert_eq!(
        jwt_part(str_of(&t, "id_token"), 1)["organizations"],
        serde_json::json!(["acme"])
    );
    let rt = str_of(&t, "refresh_token").to_owned();
    let (status, e) = refresh_at(&token_url, &public, &rt, &[("organization_id", "globex")]).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("access_denied")),
        "{e}"
    );
    let (status, r) = refresh_at(&token_url, &public, &rt, &[("organization_id", "acme")]).await;
    assert_eq!(status, 200, "not consumed by the denied request: {r}");
    assert_eq!(jwt_part(str_of(&r, "access_token"), 1)["scope"], "org:read");

    // A refresh token without the organizations scope: insufficient_scope.
    let (url, _, _, verifier) = authorize_url_at(
        &idp.url("/auth"),
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid offline_access",
            extra: &[],
        },
    );
    let cb = bob.login(&url, "bob").await;
    let t = exchange_at(
        &idp,
        &token_url,
        &public,
        redirect,
        &param(&cb, "code").unwrap(),
        &verifier,
    )
    .await;
    assert!(
        jwt_part(str_of(&t, "id_token"), 1)
            .get("organizations")
            .is_none()
    );
    let (status, e) = refresh_at(
        &token_url,
        &public,
        str_of(&t, "refresh_token"),
        &[("organization_id", "acme")],
    )
    .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("insufficient_scope")),
        "{e}"
    );

    // interaction_mode is checked.
    let (url, _, _, _) = authorize_url_at(
        &idp.url("/auth"),
        &AuthRequest {
            client_id: "tessera-public",
            redirect_uri: redirect,
            scope: "openid",
            extra: &[("interaction_mode", "signup")],
        },
    );
    let cb = Browser::new().login(&url, "alice").await;
    assert_eq!(
        param(&cb, "error").as_deref(),
        Some("invalid_request"),
        "{cb}"
    );
}

#[tokio::test]
async fn stitch_flavor_nonce_private_key_jwt_and_single_use_refresh() {
    let idp = Idp::start(IdpOptions {
        flavor: Flavor::Stitch,
        ..IdpOptions::default()
    })
    .await;
    let origin = idp.origin.clone();
    assert_eq!(idp.issuer, origin);
    let d = discovery(&idp).await;
    assert_eq!(d["issuer"], idp.issuer.as_str());
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
    let jwks: Value = http()
        .get(str_of(&d, "jwks_uri"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "key-a");

    let authorize = format!("{origin}/connect/authorize");
    let token_url = format!("{origin}/connect/token");
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
            ("client_id", "tessera-public"),
            ("response_type", "code"),
            ("redirect_uri", "dev.tessera:/callback"),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(nonce) = nonce {
            params.push(("nonce", nonce));
        }
        let url = Url::parse_with_params(&authorize, &params).unwrap();
        let cb = Browser::new().login(url.as_str(), "alice").await;
        if accepted {
            assert!(param(&cb, "code").is_some(), "{cb}");
        } else {
            assert_eq!(
                param(&cb, "error").as_deref(),
                Some("invalid_request"),
                "{nonce:?}: {cb}"
            );
            assert!(param(&cb, "error_description").unwrap().contains("nonce"));
        }
    }

    // private_key_jwt: the assertion's aud must be the token URL (not the issuer).
    let browser = Browser::new();
    let pkjwt = ClientAuth::PrivateKeyJwt("tessera-pkjwt");
    let redirect = "http://127.0.0.1:41234/callback";
    let (url, _, nonce, verifier) = authorize_url_at(
        &authorize,
        &AuthRequest {
            client_id: "tessera-pkjwt",
            redirect_uri: redirect,
            scope,
            extra: &[],
        },
    );
    let cb = browser.login(&url, "alice").await;
    let code = param(&cb, "code").unwrap_or_else(|| panic!("{cb}"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, e) = token_at(&token_url, &idp.issuer, &pkjwt, &form).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (401, Some("invalid_client")),
        "{e}"
    );
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
    let (status, t) = token_at(&token_url, &token_url, &pkjwt, &form).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expires_in"], 900);
    let mut granted: Vec<&str> = str_of(&t, "scope").split(' ').collect();
    let mut wanted: Vec<&str> = scope.split(' ').collect();
    granted.sort_unstable();
    wanted.sort_unstable();
    assert_eq!(granted, wanted);
    let id = jwt_part(str_of(&t, "id_token"), 1);
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
    let (status, r) = refresh_at(&token_url, &pkjwt, &rt1, &[]).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["expires_in"], 900);
    let rt2 = str_of(&r, "refresh_token").to_owned();
    assert_ne!(rt1, rt2);
    let (status, e) = refresh_at(&token_url, &pkjwt, &rt1, &[]).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (status, e) = refresh_at(&token_url, &pkjwt, &rt2, &[]).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );

    // The public client (PKCE) and the client_secret_post client, same rules.
    for (client_id, auth) in [
        ("tessera-public", ClientAuth::None("tessera-public")),
        (
            "tessera-post",
            ClientAuth::Post("tessera-post", "post-secret"),
        ),
    ] {
        let redirect = "dev.tessera:/callback";
        let (url, _, _, verifier) = authorize_url_at(
            &authorize,
            &AuthRequest {
                client_id,
                redirect_uri: redirect,
                scope,
                extra: &[],
            },
        );
        let cb = browser.login(&url, "alice").await;
        let t = exchange_at(
            &idp,
            &token_url,
            &auth,
            redirect,
            &param(&cb, "code").unwrap(),
            &verifier,
        )
        .await;
        let rt = str_of(&t, "refresh_token");
        let (status, r) = refresh_at(&token_url, &auth, rt, &[]).await;
        assert_eq!(status, 200, "{client_id}: {r}");
        assert_ne!(str_of(&r, "refresh_token"), rt, "{client_id} rotates");
        let (status, _) = refresh_at(&token_url, &auth, rt, &[]).await;
        assert_eq!(status, 400, "{client_id}: single use");
    }
}
