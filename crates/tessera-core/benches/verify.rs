//! What a warm call costs: an ID token verified against a cached JWKS (every check: signature,
//! iss, aud, azp, exp, nbf, iat, nonce, at_hash) — a token seen for the first time (its RSA
//! signature computed) and one verified again (its signature remembered) — and a payload
//! explained for display. Issue 9's goal for verification is ≤ 20 µs per token on the 2-core
//! test machine; the figures go in the README, not in a timed test.

use std::io::{Read, Write};
use std::net::TcpListener;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tessera_core::claims::explain_claims;
use tessera_core::http::{HttpClient, HttpConfig};
use tessera_core::jwt::{Expectations, JwksCache, TokenKind, verify};

const ISSUER: &str = "http://127.0.0.1/bench";
const NOW: u64 = 1_800_000_000;

/// Serves the public half of test signing key "a" as a JWKS, for the cache's first fetch.
fn serve_jwks() -> String {
    let private: Value = serde_json::from_str(
        &std::fs::read_to_string(tessera_testkit::idp_dir().join("keys/signing-a.json")).unwrap(),
    )
    .unwrap();
    let public = json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "key-a",
        "n": private["n"], "e": private["e"],
    }]})
    .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/jwks", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{public}",
                public.len()
            );
        }
    });
    uri
}

/// ID tokens alike but for their `jti`, so each has a signature of its own.
fn id_tokens(count: usize) -> Vec<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("key-a".into());
    let key = EncodingKey::from_rsa_pem(tessera_testkit::signing_key_pem("a").as_bytes()).unwrap();
    (0..count)
        .map(|jti| {
            let claims = json!({
                "iss": ISSUER, "sub": "alice", "aud": "tessera-public", "azp": "tessera-public",
                "exp": NOW + 3600, "iat": NOW, "nbf": NOW, "nonce": "n-0S6_WzA2Mj",
                "email": "alice@example.com", "name": "Alice Example", "jti": jti.to_string(),
                "org_id": "org_acme", "organizations": ["acme", "globex"],
            });
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let jwks_uri = serve_jwks();
    let http = HttpClient::new(HttpConfig::default()).unwrap();
    let cache = JwksCache::default();
    // More distinct tokens than the verifier remembers signatures of, taken in turn: every
    // verification of the first bench computes its signature.
    let tokens = id_tokens(3000);
    let token = tokens[0].clone();
    let expect = Expectations {
        kind: TokenKind::IdToken,
        issuer: ISSUER,
        audience: Some("tessera-public"),
        client_id: "tessera-public",
        nonce: Some("n-0S6_WzA2Mj"),
        access_token: None,
        now: NOW,
    };
    let check = || {
        runtime
            .block_on(verify(&cache, &http, &jwks_uri, &token, &expect))
            .unwrap()
    };
    assert!(check().passed(), "{:?}", check().checks);
    let mut next = tokens.iter().cycle();
    c.bench_function("verify a new ID token (cached JWKS)", |b| {
        b.iter(|| {
            let token = next.next().unwrap();
            runtime
                .block_on(verify(&cache, &http, &jwks_uri, token, &expect))
                .unwrap()
        })
    });
    c.bench_function("verify an ID token again (cached JWKS)", |b| b.iter(check));

    let payload = check().decoded.payload;
    c.bench_function("explain an ID token's claims", |b| {
        b.iter(|| explain_claims(&payload, NOW))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
