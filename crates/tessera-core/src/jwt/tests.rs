//! The verification checks and the JWKS cache, each failing on its own.

use std::sync::Arc;

use super::jwks::max_age;
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

fn part(v: Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
}

#[test]
fn decodes_for_display_and_rejects_garbage() {
    let t = format!(
        "{}.{}.sig",
        part(serde_json::json!({"alg":"RS256","kid":"k"})),
        part(serde_json::json!({"sub":"alice"}))
    );
    let d = decode_unverified_for_display(&t).unwrap();
    assert_eq!(d.kid(), Some("k"));
    assert_eq!(d.claim_str("sub"), Some("alice"));
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d.e",
        "!!.??.x",
        &format!("{}.bm90LWpzb24.x", part(serde_json::json!({}))),
    ] {
        let e = decode_unverified_for_display(bad).unwrap_err();
        assert_eq!(e.code(), "not_a_jwt", "{bad}");
    }
}

#[test]
fn at_hash_matches_the_oidc_example() {
    // OpenID Connect Core, appendix A.3.
    let at = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
    assert_eq!(
        at_hash("RS256", at).as_deref(),
        Some("77QmUPtjPfzWtF2AnpK9RQ")
    );
}

/// The names of the claim checks `payload` fails.
fn failed_checks(payload: Value, expect: &Expectations<'_>) -> Vec<String> {
    let jwt = DecodedJwt {
        header: Map::new(),
        payload: payload.as_object().unwrap().clone(),
        compact: String::new(),
        signature_at: 0,
    };
    let mut checks = Vec::new();
    claim_checks(&jwt, expect, &mut checks);
    checks
        .into_iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.name.to_string())
        .collect()
}

fn id_token_expectations(now: u64) -> Expectations<'static> {
    Expectations {
        kind: TokenKind::IdToken,
        issuer: "https://idp",
        audience: Some("cli"),
        client_id: "cli",
        nonce: Some("n1"),
        access_token: None,
        now,
    }
}

/// A JWKS endpoint on loopback that counts its requests; its keys and `Cache-Control`
/// can change between requests, and it answers after a short delay so concurrent requests
/// overlap.
struct JwksServer {
    uri: String,
    keys: Arc<std::sync::Mutex<Vec<&'static str>>>,
    cache_control: Arc<std::sync::Mutex<Option<&'static str>>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: &[&'static str], cache_control: Option<&'static str>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let uri = format!("http://{}/jwks", listener.local_addr().unwrap());
        let server = JwksServer {
            uri,
            keys: Arc::new(std::sync::Mutex::new(keys.to_vec())),
            cache_control: Arc::new(std::sync::Mutex::new(cache_control)),
            hits: Arc::default(),
        };
        let (keys, cache_control, hits) = (
            server.keys.clone(),
            server.cache_control.clone(),
            server.hits.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (keys, cache_control, hits) =
                    (keys.clone(), cache_control.clone(), hits.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    hits.fetch_add(1, AtomicOrdering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    let names = keys.lock().unwrap().clone();
                    let body = serde_json::json!({
                        "keys": names.iter().map(|n| public_jwk(n)).collect::<Vec<_>>()
                    })
                    .to_string();
                    let cache = cache_control
                        .lock()
                        .unwrap()
                        .map(|c| format!("Cache-Control: {c}\r\n"))
                        .unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{cache}\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        server
    }

    fn serve(&self, keys: &[&'static str]) {
        *self.keys.lock().unwrap() = keys.to_vec();
    }

    fn hits(&self) -> usize {
        self.hits.load(AtomicOrdering::SeqCst)
    }
}

/// The public half of the test provider's signing key `name` ("a" or "b").
fn public_jwk(name: &str) -> Value {
    let path = tessera_testkit::idp_dir().join(format!("keys/signing-{name}.json"));
    let mut jwk: Map<String, Value> =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jwk.retain(|k, _| ["kty", "n", "e", "kid", "alg", "use"].contains(&k.as_str()));
    Value::Object(jwk)
}

const NOW: u64 = 1_800_000_000;

/// A token signed with test key `key` ("a" or "b") that names `kid`.
fn signed(key: &str, kid: &str) -> String {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(tessera_testkit::signing_key_pem(key).as_bytes())
            .unwrap();
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let claims = serde_json::json!({"iss":"https://idp","aud":"cli","exp":NOW+86_400*3,"iat":NOW,"nonce":"n1"});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

async fn signature_at(
    jwks: &JwksCache,
    http: &HttpClient,
    server: &JwksServer,
    token: &str,
    now: u64,
) -> CheckStatus {
    let v = verify(jwks, http, &server.uri, token, &id_token_expectations(now))
        .await
        .unwrap();
    v.checks[0].status
}

fn client() -> HttpClient {
    HttpClient::new(crate::http::HttpConfig::default()).unwrap()
}

#[test]
fn cache_control_max_age_is_read_and_bounded() {
    let age = |values: &[&str]| {
        let mut headers = http::HeaderMap::new();
        for v in values {
            headers.append(http::header::CACHE_CONTROL, v.parse().unwrap());
        }
        max_age(&headers)
    };
    assert_eq!(age(&[]), JWKS_DEFAULT_MAX_AGE);
    assert_eq!(age(&["public, max-age=600, must-revalidate"]), 600);
    assert_eq!(age(&["public", "Max-Age=\"900\""]), 900);
    assert_eq!(age(&["s-maxage=900"]), JWKS_DEFAULT_MAX_AGE);
    assert_eq!(age(&["max-age=junk"]), JWKS_DEFAULT_MAX_AGE);
    assert_eq!(age(&["no-store"]), JWKS_REFETCH_COOL_DOWN);
    assert_eq!(age(&["max-age=0"]), JWKS_REFETCH_COOL_DOWN);
    assert_eq!(age(&["max-age=99999999999999999999"]), JWKS_DEFAULT_MAX_AGE);
    assert_eq!(age(&["max-age=31536000"]), JWKS_MAX_MAX_AGE);
}

#[tokio::test]
async fn a_removed_key_is_distrusted_once_the_jwks_max_age_has_passed() {
    let server = JwksServer::start(&["a", "b"], Some("public, max-age=300")).await;
    let (jwks, http) = (JwksCache::default(), client());
    let token = signed("a", "key-a");
    assert_eq!(
        signature_at(&jwks, &http, &server, &token, NOW).await,
        CheckStatus::Pass
    );
    server.serve(&["b"]);
    assert_eq!(
        signature_at(&jwks, &http, &server, &token, NOW + 299).await,
        CheckStatus::Pass,
        "within max-age the cached set is used"
    );
    assert_eq!(server.hits(), 1);
    assert_eq!(
        signature_at(&jwks, &http, &server, &token, NOW + 300).await,
        CheckStatus::Fail,
        "after max-age the removed key is no longer trusted"
    );
    assert_eq!(server.hits(), 2);

    for (cache_control, age, why) in [
        (
            None,
            JWKS_DEFAULT_MAX_AGE,
            "without Cache-Control the default applies",
        ),
        (
            Some("max-age=31536000"),
            JWKS_MAX_MAX_AGE,
            "a provider's max-age is capped",
        ),
    ] {
        let server = JwksServer::start(&["a"], cache_control).await;
        let jwks = JwksCache::default();
        let at = |now| signature_at(&jwks, &http, &server, &token, now);
        assert_eq!(at(NOW).await, CheckStatus::Pass, "{why}");
        server.serve(&["b"]);
        assert_eq!(at(NOW + age - 1).await, CheckStatus::Pass, "{why}");
        assert_eq!(at(NOW + age).await, CheckStatus::Fail, "{why}");
    }
}

#[tokio::test]
async fn a_set_kept_on_disk_serves_the_next_process_within_its_age_only() {
    let server = JwksServer::start(&["a"], Some("max-age=300")).await;
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let token = signed("a", "key-a");
    let first = JwksCache::on_disk(dir.path().to_path_buf());
    assert_eq!(
        signature_at(&first, &http, &server, &token, NOW).await,
        CheckStatus::Pass
    );
    assert_eq!(server.hits(), 1);
    server.serve(&["b"]);
    let next = JwksCache::on_disk(dir.path().to_path_buf());
    assert_eq!(
        signature_at(&next, &http, &server, &token, NOW + 299).await,
        CheckStatus::Pass,
        "a new process uses the kept set"
    );
    assert_eq!(server.hits(), 1, "no fetch for a set within its age");
    let late = JwksCache::on_disk(dir.path().to_path_buf());
    assert_eq!(
        signature_at(&late, &http, &server, &token, NOW + 300).await,
        CheckStatus::Fail,
        "past its age the kept set is fetched again, and the removed key is gone"
    );
    assert_eq!(server.hits(), 2);
    for rogue in ["rogue-1", "rogue-2"] {
        let fresh = JwksCache::on_disk(dir.path().to_path_buf());
        assert_eq!(
            signature_at(&fresh, &http, &server, &signed("b", rogue), NOW + 310).await,
            CheckStatus::Fail
        );
    }
    assert_eq!(
        server.hits(),
        3,
        "the unknown-kid cool-down holds across processes"
    );

    // A kept set that claims to be good for ever is held to the longest age all the same.
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("jwks-"))
        .unwrap()
        .path();
    let mut entry: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    entry["max_age"] = serde_json::json!(u64::MAX);
    std::fs::write(&kept, entry.to_string()).unwrap();
    let fetched_at = entry["fetched_at"].as_u64().unwrap();
    let later = JwksCache::on_disk(dir.path().to_path_buf());
    let known = signed("b", "key-b");
    assert_eq!(
        signature_at(
            &later,
            &http,
            &server,
            &known,
            fetched_at + JWKS_MAX_MAX_AGE
        )
        .await,
        CheckStatus::Pass
    );
    assert_eq!(
        server.hits(),
        4,
        "past the longest age the set is fetched again"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("jwks-"))
            .unwrap()
            .metadata()
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the kept set is private");
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_cool_down() {
    let server = JwksServer::start(&["a"], None).await;
    let (jwks, http) = (JwksCache::default(), client());
    assert_eq!(
        signature_at(&jwks, &http, &server, &signed("a", "key-a"), NOW).await,
        CheckStatus::Pass
    );
    for i in 0..50 {
        let rogue = signed("a", &format!("rogue-{i}"));
        assert_eq!(
            signature_at(&jwks, &http, &server, &rogue, NOW + 1 + i / 2).await,
            CheckStatus::Fail
        );
    }
    assert_eq!(server.hits(), 2, "one refetch for the whole flood");
    let later = NOW + 1 + JWKS_REFETCH_COOL_DOWN;
    server.serve(&["a", "b"]);
    let rotated = signed("b", "key-b");
    assert_eq!(
        signature_at(&jwks, &http, &server, &rotated, later).await,
        CheckStatus::Pass,
        "after the cool-down a new key is found"
    );
    assert_eq!(server.hits(), 3);
    server.serve(&["a"]);
    assert_eq!(
        signature_at(&jwks, &http, &server, &rotated, NOW).await,
        CheckStatus::Fail,
        "a clock set back neither keeps a set fresh nor holds off a refetch"
    );
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn concurrent_verifications_with_a_cold_cache_fetch_once() {
    let server = Arc::new(JwksServer::start(&["a"], None).await);
    let jwks = Arc::new(JwksCache::default());
    let http = client();
    let token = signed("a", "key-a");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (server, jwks, http, token) =
            (server.clone(), jwks.clone(), http.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            signature_at(&jwks, &http, &server, &token, NOW).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), CheckStatus::Pass);
    }
    assert_eq!(
        server.hits(),
        1,
        "concurrent fetches of one JWKS are coalesced"
    );
}

#[test]
fn extreme_times_saturate_instead_of_overflowing() {
    let far = u64::MAX;
    let token = |t: u64| serde_json::json!({"iss":"https://idp","aud":"cli","exp":t,"nbf":t,"iat":t,"nonce":"n1"});
    assert_eq!(
        failed_checks(token(far), &id_token_expectations(1_000_000)),
        ["nbf", "iat"],
        "a token from the end of time expires never but is not valid yet"
    );
    assert!(failed_checks(token(far), &id_token_expectations(far - 1)).is_empty());
    assert_eq!(
        failed_checks(token(0), &id_token_expectations(far)),
        ["exp"]
    );
}

#[test]
fn claim_checks_fail_each_on_its_own() {
    let now = 1_000_000;
    let good =
        serde_json::json!({"iss":"https://idp","aud":"cli","exp":now+300,"iat":now,"nonce":"n1"});
    let expect = id_token_expectations(now);
    let run = |payload: Value| failed_checks(payload, &expect);
    assert!(run(good.clone()).is_empty());
    let with = |k: &str, v: Value| {
        let mut p = good.clone();
        p[k] = v;
        p
    };
    assert_eq!(run(with("iss", "https://evil".into())), ["iss"]);
    assert_eq!(run(with("aud", "other".into())), ["aud"]);
    assert_eq!(
        run(with("aud", serde_json::json!(["cli", "other"]))),
        ["azp"]
    );
    assert_eq!(run(with("exp", (now - CLOCK_SKEW - 1).into())), ["exp"]);
    assert!(
        run(with("exp", (now - 10).into())).is_empty(),
        "small skew is tolerated"
    );
    assert_eq!(run(with("nbf", (now + 3600).into())), ["nbf"]);
    assert_eq!(run(with("iat", (now + 3600).into())), ["iat"]);
    assert_eq!(run(with("nonce", "other".into())), ["nonce"]);
    assert_eq!(run(with("azp", "someone-else".into())), ["azp"]);
}

#[test]
fn a_remembered_signature_vouches_only_for_its_own_key_algorithm_and_bytes() {
    let checked = super::signature::CheckedSignatures::default();
    let key = |name: &str| {
        super::signature::VerifyingKey::new(serde_json::from_value(public_jwk(name)).unwrap())
    };
    let (a, b) = (key("a"), key("b"));
    let token = signed("a", "key-a");
    let (input, signature) = token.rsplit_once('.').unwrap();
    let input = input.as_bytes();
    assert!(checked.matches(Algorithm::RS256, &a, input, signature));
    assert!(
        checked.matches(Algorithm::RS256, &a, input, signature),
        "found good again"
    );
    assert!(
        !checked.matches(Algorithm::RS256, &b, input, signature),
        "another key (a kid now naming a new key) is checked anew"
    );
    assert!(!checked.matches(Algorithm::PS256, &a, input, signature));
    let mut other = input.to_vec();
    other.push(b'x');
    assert!(!checked.matches(Algorithm::RS256, &a, &other, signature));
    let forged = format!("{}A", &signature[..signature.len() - 1]);
    let forged = if forged == signature {
        format!("{}B", &signature[..signature.len() - 1])
    } else {
        forged
    };
    assert!(!checked.matches(Algorithm::RS256, &a, input, &forged));
}

/// Fixed test keys (PKCS#8) and their public halves: Ed25519 (`x`) and P-384 (`x`, `y`).
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMJmiiuCPLBblk5JB6n6TYXODk32K0l5fqYY1lKlARrj
-----END PRIVATE KEY-----
";
const ED25519_X: &str = "bncsB5IPCQRQz0YuKShIO1nD8qCC0v4nu_7h8kQO36c";
const P384_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCXA6T00mLJRetnVemd
vthgSEa0ViBqi6E6Xrn3O09IqQxRClebsub0JYQd5c45jBOhZANiAARYlV8wQtWc
CCfPuwoM5nCa85g4db24es34gA9E9ZMwJrmeuSIh0DoAVHgFVy0lsF8W2Mmy7hXL
LVRj7f/9BlBh08qBm6/OqpDIXI6BU8GjXKwbZNmlGBdHQz/wWzpqZzk=
-----END PRIVATE KEY-----
";
const P384_X: &str = "WJVfMELVnAgnz7sKDOZwmvOYOHW9uHrN-IAPRPWTMCa5nrkiIdA6AFR4BVctJbBf";
const P384_Y: &str = "FtjJsu4Vyy1UY-3__QZQYdPKgZuvzqqQyFyOgVPBo1ysG2TZpRgXR0M_8Fs6amc5";

#[test]
fn each_key_verifies_its_own_algorithms_and_nothing_else() {
    use Algorithm::*;
    use jsonwebtoken::EncodingKey;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    let sign = |alg: Algorithm, key: &EncodingKey| {
        let header = jsonwebtoken::Header::new(alg);
        let token = jsonwebtoken::encode(&header, &serde_json::json!({"sub": "x"}), key).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        (input.to_string(), signature.to_string())
    };
    let prepared =
        |jwk: Value| super::signature::VerifyingKey::new(serde_json::from_value(jwk).unwrap());

    let rsa = EncodingKey::from_rsa_pem(tessera_testkit::signing_key_pem("a").as_bytes()).unwrap();
    let p256_secret = p256::SecretKey::random(&mut rand::thread_rng());
    let p256 =
        EncodingKey::from_ec_pem(p256_secret.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes())
            .unwrap();
    let point = p256_secret.public_key().to_encoded_point(false);
    let p384 = EncodingKey::from_ec_pem(P384_PEM.as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(ED25519_PEM.as_bytes()).unwrap();
    let keys = [
        ("RSA", prepared(public_jwk("a"))),
        (
            "P-256",
            prepared(serde_json::json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            })),
        ),
        (
            "P-384",
            prepared(serde_json::json!({"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y})),
        ),
        (
            "Ed25519",
            prepared(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X})),
        ),
    ];
    let signers = [
        (RS256, &rsa, "RSA"),
        (RS384, &rsa, "RSA"),
        (RS512, &rsa, "RSA"),
        (PS256, &rsa, "RSA"),
        (PS384, &rsa, "RSA"),
        (PS512, &rsa, "RSA"),
        (ES256, &p256, "P-256"),
        (ES384, &p384, "P-384"),
        (EdDSA, &ed, "Ed25519"),
    ];
    let checked = super::signature::CheckedSignatures::default();
    for (signed_as, private, signer) in signers {
        let (input, signature) = sign(signed_as, private);
        for (name, key) in &keys {
            for (alg, _, _) in signers {
                let expected = (*name, alg) == (signer, signed_as);
                assert_eq!(
                    checked.matches(alg, key, input.as_bytes(), &signature),
                    expected,
                    "a {signed_as:?} signature by the {signer} key, checked as {alg:?} with the {name} key"
                );
            }
        }
        let mut tampered = input.clone();
        tampered.push('x');
        let key = &keys.iter().find(|(name, _)| *name == signer).unwrap().1;
        assert!(!checked.matches(signed_as, key, tampered.as_bytes(), &signature));
    }
}

#[test]
fn a_good_signature_by_a_weak_rsa_key_is_refused() {
    use jsonwebtoken::EncodingKey;
    use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
    use rsa::traits::PublicKeyParts;

    let weak = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let private =
        EncodingKey::from_rsa_pem(weak.to_pkcs1_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let (n, e) = (weak.n().to_bytes_be(), weak.e().to_bytes_be());
    let public = super::signature::VerifyingKey::new(
        serde_json::from_value(serde_json::json!({
            "kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e),
        }))
        .unwrap(),
    );
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::RS256),
        &serde_json::json!({"sub": "x"}),
        &private,
    )
    .unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    // The signature is good: only the size of the key is wrong with it.
    aws_lc_rs::signature::RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    }
    .verify(
        &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        input.as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
    .expect("a good signature");
    assert!(public.unusable().is_none(), "the key itself decodes");
    let checked = super::signature::CheckedSignatures::default();
    assert!(!checked.matches(Algorithm::RS256, &public, input.as_bytes(), signature));
}

#[test]
fn a_decoded_token_does_not_show_itself_in_debug() {
    let token = signed("a", "key-a");
    let decoded = decode_unverified_for_display(&token).unwrap();
    let shown = format!("{decoded:?}");
    let (_, signature) = token.rsplit_once('.').unwrap();
    assert!(!shown.contains(signature), "{shown}");
    assert!(
        !shown.contains(&token[..token.find('.').unwrap()]),
        "{shown}"
    );
    assert!(shown.contains("key-a"), "the header is shown: {shown}");
}
