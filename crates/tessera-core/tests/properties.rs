//! Property tests (issue 8) for the parsers and the claim renderer: JWT decoding for display,
//! callback parsing, the discovery document check, token verification and the claim
//! explanations never panic on any input, and round-trip where they should.
//!
//! The runs are deterministic (a fixed seed, so CI sees the same cases every time) and write
//! no regression files. No fuzz targets: `cargo fuzz` needs a nightly toolchain, and this
//! project builds on the machine's one stable toolchain; these properties cover the same
//! parsers.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Map, Value, json};
use tessera_core::claims::{explain_claims, explain_header, relative, utc};
use tessera_core::flow::{parse_callback, query_param};
use tessera_core::http::{HttpClient, HttpConfig, ensure_allowed, is_loopback};
use tessera_core::jwt::{
    CLOCK_SKEW, CheckStatus, Expectations, JwksCache, TokenKind, decode_unverified_for_display,
    verify,
};
use tessera_core::providers::oidc::discovery;
use tessera_testkit::scripted::{CLIENT_ID, Key};
use tessera_testkit::{Answer, ScriptedIdp};

/// `cases` cases from a fixed seed, no failure files.
fn runs(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x7e55_e4a0),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(claim_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Claim names the dictionary knows (time claims, provider claims…) or any other.
fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "iss",
            "sub",
            "aud",
            "exp",
            "nbf",
            "iat",
            "auth_time",
            "updated_at",
            "signed_up_at",
            "nonce",
            "azp",
            "at_hash",
            "scope",
            "scp",
            "org_id",
            "org_name",
            "organizations",
            "organization_roles",
            "organization_id",
            "role",
            "selected_team_id",
            "act",
            "https://stytch.com/session",
            "https://stytch.com/organization",
            "https://app.example.com/roles",
            "alg",
            "kid",
            "typ",
            "crit",
            "jku",
            "x5c",
        ])
        .prop_map(String::from),
        ".{0,16}",
    ]
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(claim_name(), json_value(), 0..8)
        .prop_map(|m| m.into_iter().collect())
}

/// Unix times a hostile provider might send: anything, and the edges.
fn time() -> impl Strategy<Value = Value> {
    let now = tessera_testkit::scripted::now();
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        (u64::MAX - 200..=u64::MAX).prop_map(Value::from),
        (now - 7200..now + 7200).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!("1700000000")),
        Just(Value::Null),
    ]
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

proptest! {
    #![proptest_config(runs(256))]

    #[test]
    fn decoding_any_text_never_panics(text in ".{0,200}") {
        let _ = decode_unverified_for_display(&text);
    }

    #[test]
    fn decoding_any_three_parts_never_panics(
        header in prop::collection::vec(any::<u8>(), 0..64),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        signature in ".{0,16}",
    ) {
        let token = format!("{}.{}.{signature}", b64(&header), b64(&payload));
        let _ = decode_unverified_for_display(&token);
    }

    #[test]
    fn a_token_decodes_to_its_header_and_claims(
        header in json_object(),
        payload in json_object(),
        signature in "[A-Za-z0-9_-]{0,40}",
    ) {
        let (header, payload) = (Value::Object(header).to_string(), Value::Object(payload).to_string());
        let token = format!(
            "{}.{}.{signature}",
            b64(header.as_bytes()),
            b64(payload.as_bytes()),
        );
        let decoded = decode_unverified_for_display(&token).unwrap();
        // Compared with the JSON text read back (serde_json's float parsing may differ from
        // the value it printed by one unit in the last place).
        let read = |text: &str| serde_json::from_str::<Map<String, Value>>(text).unwrap();
        prop_assert_eq!(decoded.header, read(&header));
        prop_assert_eq!(decoded.payload, read(&payload));
    }

    #[test]
    fn parsing_any_callback_never_panics(text in ".{0,200}") {
        let _ = parse_callback(&text);
        let _ = query_param(&text, "state");
    }

    #[test]
    fn parsing_callback_shaped_text_never_panics(
        scheme in prop::sample::select(vec!["dev.tessera:", "http://127.0.0.1:9", "https://x", ""]),
        path in prop::sample::select(vec!["/callback", "/callback/", "//callback", "/other", ""]),
        query in "[a-z=&%0-9A-F;#?+ ]{0,80}",
    ) {
        let _ = parse_callback(&format!("{scheme}{path}?{query}"));
    }

    #[test]
    fn a_callback_gives_back_what_it_carries(
        state in ".{1,40}",
        code in ".{1,40}",
        iss in prop::option::of(".{0,40}"),
        description in prop::option::of(".{0,40}"),
        extra in prop::collection::btree_map("x_[a-z]{1,8}", ".{0,20}", 0..4),
        loopback in any::<bool>(),
    ) {
        let base = if loopback { "http://127.0.0.1:4242/callback" } else { "dev.tessera:/callback" };
        let mut url = url::Url::parse(base).unwrap();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("code", &code).append_pair("state", &state);
            if let Some(i) = &iss {
                q.append_pair("iss", i);
            }
            if let Some(d) = &description {
                q.append_pair("error_description", d);
            }
            for (k, v) in &extra {
                q.append_pair(k, v);
            }
        }
        let c = parse_callback(url.as_str()).unwrap();
        prop_assert_eq!(c.state, state);
        prop_assert_eq!(c.code, Some(code));
        prop_assert_eq!(c.iss, iss);
        prop_assert_eq!(c.error_description, description);
        prop_assert!(c.error.is_none());
        let twice = format!("{url}&state=again");
        prop_assert_eq!(parse_callback(&twice).unwrap_err().code(), "malformed_callback");
    }

    #[test]
    fn explaining_any_claims_never_panics_and_keeps_every_claim(
        payload in json_object(),
        now in any::<u64>(),
    ) {
        let rows = explain_claims(&payload, now);
        prop_assert_eq!(rows.len(), payload.len());
        for (row, (name, value)) in rows.iter().zip(&payload) {
            prop_assert_eq!(&row.name, name);
            prop_assert_eq!(&row.value, value);
        }
        let header = explain_header(&payload);
        prop_assert_eq!(header.len(), payload.len());
    }

    #[test]
    fn time_claims_are_rendered_whatever_their_value(
        name in prop::sample::select(vec!["exp", "nbf", "iat", "auth_time", "updated_at", "signed_up_at"]),
        value in any::<u64>(),
        now in any::<u64>(),
    ) {
        let payload: Map<String, Value> = [(name.to_string(), Value::from(value))].into_iter().collect();
        let rendered = explain_claims(&payload, now)[0].rendered.clone();
        prop_assert!(rendered.is_some(), "{} = {} is rendered", name, value);
        prop_assert!(!utc(value).is_empty());
        prop_assert_eq!(relative(value, value).to_string(), "now");
        let _ = relative(value, now).to_string();
    }

    #[test]
    fn stytch_session_times_of_any_shape_never_panic(
        started in prop_oneof![
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,9})?(Z|z|[+-][0-9]{2}:[0-9]{2})?",
            ".{0,30}",
        ],
        now in any::<u64>(),
    ) {
        let payload = json!({"https://stytch.com/session": {
            "started_at": started, "last_accessed_at": started, "expires_at": started,
        }});
        let _ = explain_claims(payload.as_object().unwrap(), now);
    }

    #[test]
    fn only_https_or_loopback_http_is_allowed(
        scheme in prop::sample::select(vec!["http", "https", "ftp", "file", "javascript", "ws"]),
        host in prop_oneof![
            prop::sample::select(vec![
                "127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "[::1]", "[::ffff:127.0.0.1]",
                "0.0.0.0", "10.0.0.1", "127.0.0.1.evil.example", "localhost.evil.example",
                "evil.example",
            ]).prop_map(String::from),
            "[a-z0-9.-]{1,20}",
        ],
    ) {
        if let Ok(url) = url::Url::parse(&format!("{scheme}://{host}/x")) {
            let allowed = ensure_allowed(&url).is_ok();
            prop_assert_eq!(allowed, scheme == "https" || (scheme == "http" && is_loopback(&url)));
            if scheme == "http" && is_loopback(&url) {
                let h = url.host_str().unwrap_or("").to_ascii_lowercase();
                prop_assert!(h == "localhost" || h.starts_with("127.") || h == "[::1]", "{}", h);
            }
        }
    }
}

/// One provider and runtime for the properties that talk over HTTP.
fn served() -> &'static (tokio::runtime::Runtime, ScriptedIdp, HttpClient) {
    static SERVED: OnceLock<(tokio::runtime::Runtime, ScriptedIdp, HttpClient)> = OnceLock::new();
    SERVED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let idp = runtime.block_on(ScriptedIdp::start());
        let http = HttpClient::new(HttpConfig::default()).unwrap();
        (runtime, idp, http)
    })
}

/// A discovery document with each field kept, dropped, or replaced by an odd URL or value.
fn document(good: Value) -> impl Strategy<Value = Value> {
    let fields: Vec<String> = good.as_object().unwrap().keys().cloned().collect();
    let url = prop_oneof![
        prop::sample::select(vec![
            "https://idp.example/x",
            "http://127.0.0.1:1/x",
            "http://localhost/x",
            "http://evil.example/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "::::",
            "",
            "http://[::1]/x",
            "http://0.0.0.0/x",
            "ftp://127.0.0.1/x",
        ])
        .prop_map(Value::from),
        json_value(),
    ];
    let change = prop_oneof![
        3 => Just(None),
        1 => Just(Some(None)),
        2 => url.prop_map(|v| Some(Some(v))),
    ];
    prop::collection::vec(change, fields.len()).prop_map(move |changes| {
        let mut doc = good.clone();
        let map = doc.as_object_mut().unwrap();
        for (field, change) in fields.iter().zip(changes) {
            match change {
                None => {}
                Some(None) => {
                    map.remove(field);
                }
                Some(Some(v)) => {
                    map.insert(field.clone(), v);
                }
            }
        }
        doc
    })
}

proptest! {
    #![proptest_config(runs(96))]

    /// Whatever document a provider serves, discovery either refuses it with a typed error or
    /// returns endpoints that are all https or loopback http, for the issuer asked about.
    #[test]
    fn discovery_accepts_only_safe_documents(doc in document(served().1.discovery())) {
        let (runtime, idp, http) = served();
        idp.once("/.well-known/openid-configuration", Answer::json(200, doc.to_string()));
        let got = runtime.block_on(discovery::fetch(http, &idp.issuer));
        prop_assert_eq!(idp.pending("/.well-known/openid-configuration"), 0);
        if let Ok(m) = got {
            prop_assert_eq!(m.issuer.trim_end_matches('/'), idp.issuer.as_str());
            let endpoints = [
                Some(&m.authorization_endpoint), Some(&m.token_endpoint), Some(&m.jwks_uri),
                m.userinfo_endpoint.as_ref(), m.revocation_endpoint.as_ref(),
                m.introspection_endpoint.as_ref(), m.end_session_endpoint.as_ref(),
                m.device_authorization_endpoint.as_ref(),
            ];
            for e in endpoints.into_iter().flatten() {
                let url = url::Url::parse(e).unwrap();
                prop_assert!(ensure_allowed(&url).is_ok(), "{}", e);
            }
            if let Some(methods) = &m.code_challenge_methods_supported {
                prop_assert!(methods.iter().any(|x| x == "S256"));
            }
        }
    }

    /// Verification never panics on the times a hostile provider signs, and passes a token
    /// only when every time check holds.
    #[test]
    fn verification_never_panics_and_passes_only_valid_times(
        exp in time(), nbf in prop::option::of(time()), iat in time(),
        extra in json_object(),
    ) {
        let (runtime, idp, http) = served();
        let now = tessera_testkit::scripted::now();
        let f = idp.forge();
        let mut claims = f.id_claims("alice", Some("n-0123456789"));
        for (k, v) in extra {
            if !matches!(k.as_str(), "iss" | "aud" | "sub" | "nonce" | "azp" | "at_hash") {
                claims[k] = v;
            }
        }
        claims["exp"] = exp.clone();
        claims["iat"] = iat.clone();
        if let Some(n) = &nbf {
            claims["nbf"] = n.clone();
        }
        let token = f.sign(&f.header(), &claims, &Key::A);
        let expect = Expectations {
            kind: TokenKind::IdToken,
            issuer: &idp.issuer,
            audience: Some(CLIENT_ID),
            client_id: CLIENT_ID,
            nonce: Some("n-0123456789"),
            access_token: None,
            now,
        };
        let jwks = jwks_cache();
        let uri = format!("{}/jwks", idp.issuer);
        let v = runtime.block_on(verify(jwks, http, &uri, &token, &expect)).unwrap();
        prop_assert_eq!(v.checks[0].status, CheckStatus::Pass, "{:?}", v.checks[0]);
        if v.passed() {
            let exp = exp.as_u64().unwrap();
            prop_assert!(now < exp.saturating_add(CLOCK_SKEW));
            prop_assert!(iat.as_u64().unwrap() <= now + CLOCK_SKEW);
            if let Some(n) = nbf.as_ref().and_then(Value::as_u64) {
                prop_assert!(n <= now + CLOCK_SKEW);
            }
        }
    }
}

fn jwks_cache() -> &'static JwksCache {
    static CACHE: OnceLock<JwksCache> = OnceLock::new();
    CACHE.get_or_init(JwksCache::default)
}
