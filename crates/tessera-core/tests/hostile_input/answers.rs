//! Provider answers: hostile discovery documents, key sets, token, userinfo, introspection and
//! revocation answers of an OpenID provider, and Stack Auth's and Stytch B2B's bodies. Each
//! table's cases start from the correct answer (`good`) and break one thing.

use serde_json::{Value, json};
use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::{EmailLinkOutcome, ProviderConfig, ProviderDraft, ProviderKind, SecretString};
use tessera_testkit::Answer;
use tessera_testkit::scripted::{CLIENT_ID, Key};

use crate::Verdicts;
use crate::adversary::{Rig, outcome, rig};

type Break = fn(&Value) -> Answer;

fn ok(v: &Value) -> Answer {
    Answer::json(200, v.to_string())
}

fn with(good: &Value, key: &str, value: Value) -> Answer {
    let mut v = good.clone();
    v[key] = value;
    ok(&v)
}

fn without(good: &Value, key: &str) -> Answer {
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove(key);
    ok(&v)
}

fn raw(text: &str) -> Answer {
    Answer::json(200, text)
}

fn truncated(good: &Value) -> Answer {
    let text = good.to_string();
    raw(&text[..text.len() / 2])
}

fn nested() -> Answer {
    raw(&format!(
        "{{\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    ))
}

fn bom(good: &Value) -> Answer {
    raw(&format!("\u{feff}{good}"))
}

fn as_text(good: &Value) -> Answer {
    Answer::typed(200, "text/plain", good.to_string().into_bytes())
}

fn untyped(good: &Value) -> Answer {
    Answer::typed(200, "", good.to_string().into_bytes())
}

fn invalid_utf8(_: &Value) -> Answer {
    Answer::typed(
        200,
        "application/json",
        b"{\"issuer\":\"\xff\xfe\"}".to_vec(),
    )
}

const TWO_MB: usize = 2 * 1024 * 1024;

/// The cases every JSON endpoint gets: transport-level breakage.
#[rustfmt::skip]
const COMMON: &[(&str, Break, &str, &str)] = &[
    ("2 MB", |_| Answer::huge(TWO_MB), "response_too_large", "larger than 1 MiB"),
    ("an HTML page with 200", |_| Answer::html(200), "unexpected_content_type", "text/html"),
    ("an HTML error page", |_| Answer::html(502), "http_status", "502"),
    ("JSON as text/plain", as_text, "unexpected_content_type", "text/plain"),
    ("JSON without a content type", untyped, "unexpected_content_type", "content type"),
    ("a redirect", |_| Answer::redirect("http://127.0.0.1:1/elsewhere"), "http_status", "302"),
];

/// How an endpoint's errors reach the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// As they are.
    Direct,
    /// As a failed signature check (a key set that cannot be loaded).
    Keys,
    /// Through a form POST where RFC 7009 lets a 2xx answer have any body: a 2xx answer
    /// that is not JSON reads as an empty one.
    FormPost,
    /// Revocation: a 2xx answer of any content is a success (RFC 7009 §2.2), so the
    /// content-type cases do not apply.
    Revocation,
}

impl Reach {
    /// The case as this endpoint's caller sees it, or `None` when it does not apply.
    fn adapt(
        self,
        case: (&'static str, Break, &'static str, &'static str),
    ) -> Option<(&'static str, Break, &'static str, &'static str)> {
        let (name, make, code, says) = case;
        Some(match (self, code) {
            (Reach::Keys, _) => (name, make, "token_rejected", says),
            (Reach::FormPost, "unexpected_content_type") => (name, make, "malformed_response", ""),
            (Reach::Revocation, "unexpected_content_type") => return None,
            _ => case,
        })
    }
}

/// Runs `cases`, then [`COMMON`], through `run`, which arms the provider with the broken
/// answer and sends the one request it answers; checks the error of each and that nothing
/// stored changed.
async fn table<F, Fut>(
    rig: &Rig,
    name: &str,
    cases: &[(&'static str, Break, &'static str, &'static str)],
    reach: Reach,
    run: F,
) -> Verdicts
where
    F: Fn(Break) -> Fut,
    Fut: std::future::Future<Output = Result<tessera_core::Error, String>>,
{
    let mut verdicts = Verdicts::default();
    let common = COMMON.iter().filter_map(|&c| reach.adapt(c));
    for (case, make, code, says) in cases.iter().copied().chain(common) {
        let before = rig.snapshot();
        let got = run(make).await;
        let case = format!("{name}: {case}");
        verdicts.judge(&case, got, code, says);
        let after = rig.snapshot();
        if after != before {
            verdicts.fail(
                &case,
                format!("stored data changed: {:?}", before.diff(&after)),
            );
        }
    }
    assert!(rig.leaked().is_empty(), "{:?}", rig.leaked());
    verdicts
}

#[rustfmt::skip]
const DISCOVERY: &[(&str, Break, &str, &str)] = &[
    ("an empty object", |_| raw("{}"), "discovery_failed", "not an OpenID configuration"),
    ("an array", |_| raw("[]"), "discovery_failed", "not an OpenID configuration"),
    ("null", |_| raw("null"), "discovery_failed", "not an OpenID configuration"),
    ("a string", |_| raw("\"issuer\""), "discovery_failed", "not an OpenID configuration"),
    ("truncated", truncated, "discovery_failed", "not an OpenID configuration"),
    ("nested 100000 deep", |_| nested(), "discovery_failed", ""),
    ("invalid UTF-8", invalid_utf8, "discovery_failed", ""),
    ("a byte-order mark", bom, "discovery_failed", ""),
    ("the issuer twice", |g| { raw(&g .to_string() .replacen('{', "{\"issuer\":\"http://evil.example\",", 1)) }, "discovery_failed", "duplicate field"),
    ("another issuer", |g| with(g, "issuer", "http://evil.example".into()), "discovery_failed", "names issuer"),
    ("the issuer with a query", |g| { with(g, "issuer", format!("{}?x=1", g["issuer"].as_str().unwrap()).into()) }, "discovery_failed", "names issuer"),
    ("the issuer of another port", |g| with(g, "issuer", "http://127.0.0.1:1".into()), "discovery_failed", "names issuer"),
    ("no issuer", |g| without(g, "issuer"), "discovery_failed", "issuer"),
    ("the issuer a number", |g| with(g, "issuer", 1.into()), "discovery_failed", ""),
    ("no token endpoint", |g| without(g, "token_endpoint"), "discovery_failed", "token_endpoint"),
    ("no jwks_uri", |g| without(g, "jwks_uri"), "discovery_failed", "jwks_uri"),
    ("the token endpoint a number", |g| with(g, "token_endpoint", 1.into()), "discovery_failed", ""),
    ("the token endpoint not a URL", |g| with(g, "token_endpoint", "::::".into()), "discovery_failed", "bad endpoint URL"),
    ("the token endpoint over plain http elsewhere", |g| with(g, "token_endpoint", "http://evil.example/token".into()), "insecure_url", "evil.example"),
    ("the authorization endpoint javascript", |g| with(g, "authorization_endpoint", "javascript:alert(1)".into()), "insecure_url", ""),
    ("the jwks_uri a file", |g| with(g, "jwks_uri", "file:///etc/passwd".into()), "insecure_url", ""),
    ("userinfo over plain http", |g| with(g, "userinfo_endpoint", "http://evil.example/me".into()), "insecure_url", ""),
    ("revocation over ftp", |g| with(g, "revocation_endpoint", "ftp://127.0.0.1/revoke".into()), "insecure_url", ""),
    ("introspection on a look-alike host", |g| { with(g, "introspection_endpoint", "http://127.0.0.1.evil.example/i".into()) }, "insecure_url", ""),
    ("end session on localhost.evil", |g| { with(g, "end_session_endpoint", "http://localhost.evil.example/logout".into()) }, "insecure_url", ""),
    ("device authorization on 0.0.0.0", |g| { with(g, "device_authorization_endpoint", "http://0.0.0.0/device".into()) }, "insecure_url", ""),
    ("the token endpoint on an IPv4-mapped address", |g| { with(g, "token_endpoint", "http://[::ffff:127.0.0.1]/token".into()) }, "insecure_url", ""),
    ("the token endpoint on a private address", |g| with(g, "token_endpoint", "http://10.0.0.1/token".into()), "insecure_url", ""),
    ("only plain PKCE", |g| with(g, "code_challenge_methods_supported", json!(["plain"])), "discovery_failed", "S256"),
    ("no PKCE method", |g| with(g, "code_challenge_methods_supported", json!([])), "discovery_failed", "S256"),
    ("PKCE methods a string", |g| with(g, "code_challenge_methods_supported", "S256".into()), "discovery_failed", ""),
    ("iss support a string", |g| { with(g, "authorization_response_iss_parameter_supported", "yes".into()) }, "discovery_failed", ""),
    ("a server error", |_| Answer::json(500, r#"{"error":"server_error"}"#), "provider_error", "server_error"),
    ("a 404 with JSON", |_| Answer::json(404, "{}"), "http_status", "404"),
];

#[tokio::test]
async fn hostile_discovery_documents_register_nothing() {
    let rig = rig().await;
    let good = rig.idp.discovery();
    let path = "/.well-known/openid-configuration";
    let verdicts = table(&rig, "discovery", DISCOVERY, Reach::Direct, |make| {
        rig.idp.once(path, make(&good));
        let t = rig.tessera.clone();
        let config = ProviderConfig::new("q", &rig.idp.issuer, CLIENT_ID);
        outcome(async move { t.add_provider(config, None).await })
    })
    .await;
    assert_eq!(rig.idp.pending(path), 0);
    assert_eq!(rig.tessera.providers().unwrap().len(), 1);
    verdicts.done("discovery documents", 40);
}

const UNLOADABLE: &str = "cannot load the provider's keys";

fn key_a(g: &Value, key: &str, value: Value) -> Answer {
    let mut set = g.clone();
    set["keys"][0][key] = value;
    ok(&set)
}

#[rustfmt::skip]
const JWKS: &[(&str, Break, &str, &str)] = &[
    ("an empty object", |_| raw("{}"), "token_rejected", UNLOADABLE),
    ("no keys", |_| raw(r#"{"keys":[]}"#), "token_rejected", "has no key"),
    ("keys a string", |_| raw(r#"{"keys":"key-a"}"#), "token_rejected", UNLOADABLE),
    ("an array", |_| raw("[]"), "token_rejected", UNLOADABLE),
    ("null", |_| raw("null"), "token_rejected", UNLOADABLE),
    ("keys that are not objects", |_| raw(r#"{"keys":[1,"x",null]}"#), "token_rejected", UNLOADABLE),
    ("truncated", truncated, "token_rejected", UNLOADABLE),
    ("nested 100000 deep", |_| nested(), "token_rejected", UNLOADABLE),
    ("keys twice", |g| raw(&g.to_string().replacen('{', "{\"keys\":[],", 1)), "token_rejected", UNLOADABLE),
    ("the modulus not base64url", |g| key_a(g, "n", "!!!".into()), "token_rejected", ""),
    ("an empty exponent", |g| key_a(g, "e", "".into()), "token_rejected", ""),
    ("the key symmetric", |_| raw(r#"{"keys":[{"kty":"oct","kid":"key-a","k":"c2VjcmV0"}]}"#), "token_rejected", "has no key"),
    ("the key stated for HS256", |g| key_a(g, "alg", "HS256".into()), "token_rejected", "the key is for HS256"),
    ("the key stated for PS512", |g| key_a(g, "alg", "PS512".into()), "token_rejected", "the key is for PS512"),
    ("the key stated for an unknown alg", |g| key_a(g, "alg", "none".into()), "token_rejected", "the key is for"),
    ("the key for encryption (use enc)", |g| key_a(g, "use", "enc".into()), "token_rejected", ""),
    ("the key an EC key", |g| { let mut s = g.clone(); s["keys"][0] = json!({"kty":"EC","crv":"P-256","kid":"key-a","x":g["keys"][1]["x"],"y":g["keys"][1]["y"]}); ok(&s) }, "token_rejected", "does not fit"),
    ("the RSA key with EC parameters", |g| { let mut s = g.clone(); s["keys"][0] = json!({"kty":"RSA","kid":"key-a","crv":"P-256","x":"AA","y":"AA"}); ok(&s) }, "token_rejected", UNLOADABLE),
    ("five thousand other keys", |g| { let others: Vec<Value> = (0..5_000).map(|i| json!({"kty":"EC","crv":"P-256","kid":format!("k{i}"),"x":g["keys"][1]["x"],"y":g["keys"][1]["y"]})).collect(); ok(&json!({"keys": others})) }, "token_rejected", "has no key"),
    ("a server error", |_| Answer::json(500, r#"{"error":"server_error"}"#), "token_rejected", UNLOADABLE),
];

#[tokio::test]
async fn hostile_key_sets_fail_the_sign_in_and_change_nothing() {
    let rig = rig().await;
    rig.sign_in("alice").await;
    let good = rig.idp.jwks();
    let verdicts = table(&rig, "JWKS", JWKS, Reach::Keys, |make| {
        rig.idp.always("/jwks", make(&good));
        let rig = &rig;
        async move {
            let t = rig.reopen_without_key_sets();
            let start = t.start_sign_in("p", DEEP_LINK_REDIRECT, &[]).await.unwrap();
            let callback = rig.idp.authorize(&start.authorization_url, "bob");
            outcome(async move { t.complete_sign_in(&callback).await }).await
        }
    })
    .await;
    rig.idp.normal("/jwks");
    verdicts.done("key sets", 25);
}

#[rustfmt::skip]
const TOKEN: &[(&str, Break, &str, &str)] = &[
    ("an empty object", |_| raw("{}"), "malformed_response", ""),
    ("an array", |_| raw("[]"), "malformed_response", ""),
    ("null", |_| raw("null"), "malformed_response", ""),
    ("truncated", truncated, "malformed_response", ""),
    ("nested 100000 deep", |_| nested(), "malformed_response", ""),
    ("a byte-order mark", bom, "malformed_response", ""),
    ("no access token", |g| without(g, "access_token"), "malformed_response", "access_token"),
    ("the access token a number", |g| with(g, "access_token", 1.into()), "malformed_response", ""),
    ("the access token null", |g| with(g, "access_token", Value::Null), "malformed_response", ""),
    ("no token type", |g| without(g, "token_type"), "malformed_response", "token_type"),
    ("the token type a number", |g| with(g, "token_type", 1.into()), "malformed_response", ""),
    ("expires_in a word", |g| with(g, "expires_in", "soon".into()), "malformed_response", ""),
    ("expires_in negative", |g| with(g, "expires_in", json!(-1)), "malformed_response", ""),
    ("expires_in beyond any number", |g| { raw(&g .to_string() .replace("\"expires_in\":3600", "\"expires_in\":1e999")) }, "malformed_response", ""),
    ("the refresh token a number", |g| with(g, "refresh_token", 1.into()), "malformed_response", ""),
    ("the scope a number", |g| with(g, "scope", 1.into()), "malformed_response", ""),
    ("the ID token a number", |g| with(g, "id_token", 1.into()), "malformed_response", ""),
    ("the ID token an object", |g| with(g, "id_token", json!({"sub": "alice"})), "malformed_response", ""),
    ("the ID token null", |g| with(g, "id_token", Value::Null), "token_rejected", "no ID token"),
    ("no ID token", |g| without(g, "id_token"), "token_rejected", "no ID token"),
    ("an error with 200", |_| raw(r#"{"error":"invalid_grant"}"#), "malformed_response", ""),
    ("invalid_grant", |_| { Answer::json(400, r#"{"error":"invalid_grant","error_description":"code used"}"#) }, "provider_error", "invalid_grant"),
    ("invalid_client with terminal escapes", |_| { Answer::json(401, "{\"error\":\"invalid_client\",\"error_description\":\"\\u001b]0;owned\\u0007\"}") }, "provider_error", "invalid_client"),
    ("an error that is a number", |_| Answer::json(400, r#"{"error":42}"#), "malformed_response", ""),
    ("a server error page", |_| Answer::html(500), "http_status", "500"),
];

#[tokio::test]
async fn hostile_token_answers_to_a_sign_in_store_nothing() {
    let rig = rig().await;
    rig.sign_in("alice").await;
    let verdicts = table(&rig, "token", TOKEN, Reach::Direct, |make| {
        let rig = &rig;
        async move {
            let (state, nonce) = rig.start().await;
            rig.idp
                .once("/token", make(&rig.idp.token_answer("alice", Some(&nonce))));
            let t = rig.tessera.clone();
            let callback = format!("dev.tessera:/callback?code=c&state={state}");
            outcome(async move { t.complete_sign_in(&callback).await }).await
        }
    })
    .await;
    verdicts.done("token answers", 30);
}

#[rustfmt::skip]
const USERINFO: &[(&str, Break, &str, &str)] = &[
    ("invalid_token", |_| Answer::json(401, r#"{"error":"invalid_token"}"#), "provider_error", "invalid_token"),
    ("truncated", truncated, "malformed_response", ""),
    ("a signed JWT", |_| Answer::typed(200, "application/jwt", b"eyJhbGciOiJub25lIn0.e30.".to_vec()), "unexpected_content_type", "application/jwt"),
    ("an array", |_| raw("[]"), "malformed_response", ""),
    ("a string", |_| raw("\"alice\""), "malformed_response", ""),
    ("another person's", |g| with(g, "sub", "mallory".into()), "malformed_response", "sub"),
    ("no subject", |g| without(g, "sub"), "malformed_response", "sub"),
];

#[tokio::test]
async fn hostile_userinfo_answers_are_typed_errors() {
    let rig = rig().await;
    let alice = rig.sign_in("alice").await;
    let good = json!({"sub": "alice", "email": "alice@example.com"});
    let verdicts = table(&rig, "userinfo", USERINFO, Reach::Direct, |make| {
        rig.idp.once("/me", make(&good));
        let (t, id) = (rig.tessera.clone(), alice.id.clone());
        outcome(async move { t.userinfo(&id).await })
    })
    .await;
    verdicts.done("userinfo answers", 13);
}

#[rustfmt::skip]
const INTROSPECTION: &[(&str, Break, &str, &str)] = &[
    ("invalid_client", |_| Answer::json(401, r#"{"error":"invalid_client"}"#), "provider_error", "invalid_client"),
    ("a server error", |_| Answer::json(500, r#"{"error":"server_error"}"#), "provider_error", "server_error"),
    ("truncated", truncated, "malformed_response", ""),
    ("an array", |_| raw("[]"), "malformed_response", ""),
    ("active a string", |g| with(g, "active", "yes".into()), "malformed_response", "active"),
    ("no active", |g| without(g, "active"), "malformed_response", "active"),
];

#[tokio::test]
async fn hostile_introspection_answers_are_typed_errors() {
    let rig = rig().await;
    let alice = rig.sign_in("alice").await;
    let good = json!({"active": true, "sub": "alice", "client_id": CLIENT_ID});
    let verdicts = table(
        &rig,
        "introspection",
        INTROSPECTION,
        Reach::FormPost,
        |make| {
            rig.idp.once("/introspect", make(&good));
            let (t, id) = (rig.tessera.clone(), alice.id.clone());
            outcome(async move { t.introspect(&id).await })
        },
    )
    .await;
    verdicts.done("introspection answers", 12);
}

#[rustfmt::skip]
const REVOCATION: &[(&str, Break, &str, &str)] = &[
    ("temporarily_unavailable", |_| Answer::json(503, r#"{"error":"temporarily_unavailable"}"#), "provider_error", "temporarily_unavailable"),
    ("unsupported_token_type", |_| Answer::json(400, r#"{"error":"unsupported_token_type"}"#), "provider_error", "unsupported_token_type"),
    ("invalid_client", |_| Answer::json(401, r#"{"error":"invalid_client"}"#), "provider_error", "invalid_client"),
    ("a 404 with JSON", |_| Answer::json(404, "{}"), "http_status", "404"),
    ("a 500 with truncated JSON", |_| Answer::json(500, "{\"err"), "http_status", "500"),
];

/// A sign-out whose revocation fails keeps the account, its tokens and its refresh token
/// alive, so the person can try again.
#[tokio::test]
async fn hostile_revocation_answers_keep_the_account() {
    let rig = rig().await;
    let alice = rig.sign_in("alice").await;
    let rt = rig.refresh_token(&alice.id);
    let verdicts = table(&rig, "revocation", REVOCATION, Reach::Revocation, |make| {
        rig.idp.once("/revoke", make(&Value::Null));
        let (t, id) = (rig.tessera.clone(), alice.id.clone());
        outcome(async move { t.sign_out(&id, true).await })
    })
    .await;
    assert!(rig.idp.refresh_token_alive(&rt));
    rig.tessera.access_token(&alice.id, 30, true).await.unwrap();
    verdicts.done("revocation answers", 8);
}

const STACK_PROJECT: &str = "11111111-2222-3333-4444-555555555555";

/// The scripted provider dressed as a Stack Auth project's API, registered as `stack`.
async fn stack(rig: &Rig) -> Value {
    let jwks = format!("/api/v1/projects/{STACK_PROJECT}/.well-known/jwks.json");
    rig.idp
        .always(&jwks, Answer::json(200, rig.idp.jwks().to_string()));
    rig.idp.always(
        "/api/v1/projects/current",
        Answer::json(
            200,
            json!({"config": {"enabled_oauth_providers": []}}).to_string(),
        ),
    );
    rig.tessera
        .add_provider_draft(ProviderDraft {
            kind: ProviderKind::StackAuth,
            name: "stack".into(),
            project_id: Some(STACK_PROJECT.into()),
            client_key: Some("pck_test".into()),
            base_url: Some(rig.idp.issuer.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let f = rig.idp.forge();
    let now = tessera_testkit::scripted::now();
    let claims = json!({
        "iss": format!("{}/api/v1/projects/{STACK_PROJECT}", rig.idp.issuer),
        "sub": "a11ce000-0000-4000-8000-000000000001",
        "aud": STACK_PROJECT,
        "exp": now + 600,
        "iat": now,
        "project_id": STACK_PROJECT,
        "role": "authenticated",
    });
    json!({"access_token": f.sign(&f.header(), &claims, &Key::A), "refresh_token": "stack-rt-0123456789", "claims": claims})
}

/// A Stack sign-in answer whose access token has `claims` changed as `change` says.
fn stack_token(g: &Value, change: fn(&mut Value), key: Key) -> Answer {
    let mut claims = g["claims"].clone();
    change(&mut claims);
    let f = FORGE.with(|f| f.borrow().clone()).expect("the forge");
    with(g, "access_token", f.sign(&f.header(), &claims, &key).into())
}

thread_local! {
    static FORGE: std::cell::RefCell<Option<tessera_testkit::Forge>> =
        const { std::cell::RefCell::new(None) };
}

#[rustfmt::skip]
const STACK_SIGN_IN: &[(&str, Break, &str, &str)] = &[
    ("an empty object", |_| raw("{}"), "malformed_response", ""),
    ("no refresh token", |g| without(g, "refresh_token"), "malformed_response", "refresh_token"),
    ("the access token a number", |g| with(g, "access_token", 1.into()), "malformed_response", ""),
    ("an opaque access token", |g| with(g, "access_token", "opaque".into()), "not_a_jwt", ""),
    ("an unsigned access token", |g| stack_token(g, |_| {}, Key::Unsigned), "token_rejected", "signature"),
    ("the attacker's signature", |g| stack_token(g, |_| {}, Key::B), "token_rejected", "signature does not match"),
    ("another project's token", |g| stack_token(g, |c| c["aud"] = "another-project".into(), Key::A), "token_rejected", "aud check failed"),
    ("another issuer", |g| { stack_token(g, |c| c["iss"] = "https://api.stack-auth.com/api/v1/projects/x".into(), Key::A) }, "token_rejected", "iss check failed"),
    ("expired", |g| stack_token(g, |c| c["exp"] = 1.into(), Key::A), "token_rejected", "exp check failed"),
    ("no subject", |g| { stack_token(g, |c| { c.as_object_mut().unwrap().remove("sub"); }, Key::A) }, "token_rejected", "no subject"),
    ("EMAIL_PASSWORD_MISMATCH", |_| { Answer::json(400, r#"{"code":"EMAIL_PASSWORD_MISMATCH","error":"Wrong e-mail or password."}"#) .with_header("x-stack-known-error", "EMAIL_PASSWORD_MISMATCH") }, "provider_error", "EMAIL_PASSWORD_MISMATCH"),
    ("a known error on an HTML page", |_| { Answer::html(400).with_header("x-stack-known-error", "MULTI_FACTOR_AUTHENTICATION_REQUIRED") }, "http_status", "400"),
];

#[tokio::test]
async fn hostile_stack_auth_answers_store_nothing() {
    let rig = rig().await;
    let good = stack(&rig).await;
    FORGE.with(|f| *f.borrow_mut() = Some(rig.idp.forge().clone()));
    let path = "/api/v1/auth/password/sign-in";
    rig.idp.once(path, ok(&good));
    let password = SecretString::new("hunter2");
    let control = rig
        .tessera
        .sign_in_with_password("stack", "alice@example.com", &password)
        .await
        .unwrap();
    rig.tessera.sign_out(&control.id, false).await.unwrap();
    let mut verdicts = table(
        &rig,
        "Stack password sign-in",
        STACK_SIGN_IN,
        Reach::Direct,
        |make| {
            rig.idp.once(path, make(&good));
            let t = rig.tessera.clone();
            outcome(async move {
                t.sign_in_with_password("stack", "alice@example.com", &SecretString::new("hunter2"))
                    .await
            })
        },
    )
    .await;
    let code = "/api/v1/auth/otp/send-sign-in-code";
    let cases: [(&str, Answer, &str); 4] = [
        ("no nonce", raw("{}"), "malformed_response"),
        (
            "an empty nonce",
            raw(r#"{"nonce":""}"#),
            "malformed_response",
        ),
        (
            "a nonce that is a number",
            raw(r#"{"nonce":7}"#),
            "malformed_response",
        ),
        (
            "a bot challenge",
            Answer::json(403, r#"{"code":"BOT_CHALLENGE_FAILED","error":"no"}"#),
            "provider_error",
        ),
    ];
    let before = rig.snapshot();
    for (case, answer, expected) in cases {
        rig.idp.once(code, answer);
        let t = rig.tessera.clone();
        let got = outcome(async move {
            t.start_email_sign_in("stack", "alice@example.com", "http://127.0.0.1:9/callback")
                .await
        })
        .await;
        verdicts.judge(&format!("Stack mailed code: {case}"), got, expected, "");
    }
    assert_eq!(before, rig.snapshot());
    verdicts.done("Stack Auth answers", 20);
}

const STYTCH_PROJECT: &str = "project-test-11111111-1111-1111-1111-111111111111";
const SEND: &str = "/sdk/v1/b2b/magic_links/email/discovery/send";
const AUTHENTICATE: &str = "/sdk/v1/b2b/magic_links/discovery/authenticate";
const EXCHANGE: &str = "/sdk/v1/b2b/discovery/intermediate_sessions/exchange";
const LINK: &str = "dev.tessera:/callback?stytch_token_type=discovery&token=mailed-token";

fn data(v: Value) -> Answer {
    Answer::json(200, json!({"status_code": 200, "data": v}).to_string())
}

fn discovered(g: &Value, change: fn(&mut Value)) -> Answer {
    let mut v = g["discovery"].clone();
    change(&mut v);
    data(v)
}

fn exchanged(g: &Value, change: fn(&mut Value)) -> Answer {
    let mut v = g["exchange"].clone();
    change(&mut v);
    data(v)
}

fn session_jwt(g: &Value, change: fn(&mut Value), key: Key) -> Answer {
    let mut claims = g["claims"].clone();
    change(&mut claims);
    let f = FORGE.with(|f| f.borrow().clone()).expect("the forge");
    let mut v = g["exchange"].clone();
    v["session_jwt"] = f.sign(&f.header(), &claims, &key).into();
    data(v)
}

/// The scripted provider dressed as Stytch's frontend API, registered as `stytch`: the good
/// discovery and exchange answers, and the session JWT's claims.
async fn stytch(rig: &Rig) -> Value {
    let jwks = format!("/v1/b2b/sessions/jwks/{STYTCH_PROJECT}");
    rig.idp
        .always(&jwks, Answer::json(200, rig.idp.jwks().to_string()));
    rig.idp.always(SEND, data(json!({})));
    rig.tessera
        .add_provider_draft(ProviderDraft {
            kind: ProviderKind::StytchB2b,
            name: "stytch".into(),
            project_id: Some(STYTCH_PROJECT.into()),
            client_key: Some("public-token-test".into()),
            base_url: Some(rig.idp.issuer.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let now = tessera_testkit::scripted::now();
    let claims = json!({
        "iss": format!("stytch.com/{STYTCH_PROJECT}"),
        "aud": [STYTCH_PROJECT],
        "sub": "member-test-1",
        "iat": now, "nbf": now, "exp": now + 300,
    });
    let f = rig.idp.forge();
    let org = json!({"organization_id": "organization-test-1", "organization_name": "Acme", "organization_slug": "acme"});
    json!({
        "claims": claims,
        "discovery": {
            "intermediate_session_token": "ist-0123456789",
            "email_address": "alice@example.com",
            "discovered_organizations": [{"organization": org, "membership": {"type": "active_member"}}],
        },
        "exchange": {
            "member_authenticated": true,
            "session_token": "stytch-session-0123456789",
            "session_jwt": f.sign(&f.header(), &claims, &Key::A),
            "organization": org,
        },
    })
}

#[rustfmt::skip]
const STYTCH_LINK: &[(&str, Break, &str, &str)] = &[
    ("no data", |_| raw(r#"{"status_code":200}"#), "malformed_response", "intermediate_session_token"),
    ("empty data", |_| data(json!({})), "malformed_response", "intermediate_session_token"),
    ("the session a number", |g| discovered(g, |v| v["intermediate_session_token"] = 1.into()), "malformed_response", ""),
    ("organizations a string", |g| discovered(g, |v| v["discovered_organizations"] = "acme".into()), "malformed_response", "discovered_organizations"),
    ("an organization without an id", |g| { discovered(g, |v| { v["discovered_organizations"][0]["organization"] .as_object_mut() .unwrap() .remove("organization_id"); }) }, "malformed_response", ""),
    ("another person's link", |g| discovered(g, |v| v["email_address"] = "mallory@example.com".into()), "malformed_callback", "mallory@example.com"),
    ("a used link", |_| { Answer::json(401, r#"{"status_code":401,"error_type":"unable_to_auth_magic_link","error_message":"used"}"#) }, "provider_error", "unable_to_auth_magic_link"),
    ("an error without a type", |_| Answer::json(400, r#"{"status_code":400}"#), "provider_error", "unknown_error"),
];

#[rustfmt::skip]
const STYTCH_EXCHANGE: &[(&str, Break, &str, &str)] = &[
    ("MFA required", |g| { exchanged(g, |v| { v["member_authenticated"] = false.into(); v["mfa_required"] = json!({}); }) }, "provider_error", "mfa_required"),
    ("no session token", |g| { exchanged(g, |v| { v.as_object_mut().unwrap().remove("session_token"); }) }, "malformed_response", "session_token"),
    ("no organization", |g| { exchanged(g, |v| { v.as_object_mut().unwrap().remove("organization"); }) }, "malformed_response", "organization"),
    ("the session JWT opaque", |g| exchanged(g, |v| v["session_jwt"] = "opaque".into()), "not_a_jwt", ""),
    ("the session JWT unsigned", |g| session_jwt(g, |_| {}, Key::Unsigned), "token_rejected", "signature"),
    ("the session JWT of the attacker", |g| session_jwt(g, |_| {}, Key::B), "token_rejected", "signature does not match"),
    ("the session JWT of another project", |g| session_jwt(g, |c| c["aud"] = json!(["project-test-other"]), Key::A), "token_rejected", "aud check failed"),
    ("the session JWT of another issuer", |g| { session_jwt(g, |c| c["iss"] = "stytch.com/project-test-other".into(), Key::A) }, "token_rejected", "iss check failed"),
    ("member_not_found", |_| { Answer::json(404, r#"{"status_code":404,"error_type":"member_not_found"}"#) }, "provider_error", "member_not_found"),
];

#[tokio::test]
async fn hostile_stytch_answers_store_nothing() {
    let rig = rig().await;
    let good = &stytch(&rig).await;
    FORGE.with(|f| *f.borrow_mut() = Some(rig.idp.forge().clone()));
    let rig = &rig;
    let discovery = &async |answer: Answer| {
        rig.tessera
            .start_email_sign_in("stytch", "alice@example.com", DEEP_LINK_REDIRECT)
            .await
            .unwrap();
        rig.idp.once(AUTHENTICATE, answer);
        rig.tessera.complete_email_link_for("stytch", LINK).await
    };
    let Ok(EmailLinkOutcome::PickOrganizations(control)) =
        discovery(data(good["discovery"].clone())).await
    else {
        panic!("the good discovery answer lists organizations");
    };
    rig.idp.once(EXCHANGE, data(good["exchange"].clone()));
    let account = rig
        .tessera
        .choose_organizations(&control.flow_id, &["organization-test-1".into()])
        .await
        .unwrap();
    rig.tessera.sign_out(&account.id, false).await.unwrap();

    let mut verdicts = table(rig, "Stytch link", STYTCH_LINK, Reach::Direct, |make| {
        let answer = make(good);
        async move {
            match discovery(answer).await {
                Ok(EmailLinkOutcome::PickOrganizations(d)) => {
                    Err(format!("discovered {:?}", d.organizations))
                }
                Ok(EmailLinkOutcome::SignedIn(a)) => Err(format!("signed in {}", a.id)),
                Err(e) => Ok(e),
            }
        }
    })
    .await;
    let exchange = table(
        rig,
        "Stytch exchange",
        STYTCH_EXCHANGE,
        Reach::Direct,
        |make| {
            let answer = make(good);
            async move {
                let Ok(EmailLinkOutcome::PickOrganizations(d)) =
                    discovery(data(good["discovery"].clone())).await
                else {
                    return Err("the discovery failed".to_string());
                };
                rig.idp.once(EXCHANGE, answer);
                match rig
                    .tessera
                    .choose_organizations(&d.flow_id, &["organization-test-1".into()])
                    .await
                {
                    Ok(a) => Err(format!("signed in {}", a.id)),
                    Err(e) => Ok(e),
                }
            }
        },
    )
    .await;
    verdicts.merge(exchange);
    let failed_send = [
        (
            "invalid_email",
            Answer::json(400, r#"{"status_code":400,"error_type":"invalid_email"}"#),
            "provider_error",
        ),
        ("an HTML page", Answer::html(503), "http_status"),
        (
            "truncated",
            Answer::json(200, "{\"data\":"),
            "malformed_response",
        ),
    ];
    for (case, answer, expected) in failed_send {
        rig.idp.once(SEND, answer);
        let t = rig.tessera.clone();
        let got = outcome(async move {
            t.start_email_sign_in("stytch", "alice@example.com", DEEP_LINK_REDIRECT)
                .await
        })
        .await;
        verdicts.judge(&format!("Stytch send: {case}"), got, expected, "");
    }
    verdicts.done("Stytch B2B answers", 30);
}
