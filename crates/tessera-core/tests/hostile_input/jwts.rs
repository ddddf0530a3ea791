//! JWTs: every `alg`/`kid`/`typ`/`crit` trick, header injection, malformed and huge tokens,
//! and claims that fail one check each — handed to a sign-in as the provider's ID token (the
//! token answer is correct otherwise). A control case shows a correct token signs in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_testkit::Answer;
use tessera_testkit::scripted::{EC_KID, Forge, Key};

use crate::Verdicts;
use crate::adversary::{Rig, outcome, rig};

type Make = fn(&Forge, &Value) -> String;

fn set(mut v: Value, key: &str, value: impl Into<Value>) -> Value {
    v[key] = value.into();
    v
}

fn unset(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

fn alg(f: &Forge, alg: impl Into<Value>) -> Value {
    set(f.header(), "alg", alg)
}

fn kid(f: &Forge, kid: impl Into<Value>) -> Value {
    set(f.header(), "kid", kid)
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// A token whose header says `claimed` but whose signature was made as `signed_as` says.
fn claims_other_alg(f: &Forge, claimed: &str, signed_as: &str, c: &Value) -> String {
    let header = alg(f, claimed).to_string();
    let input = format!("{}.{}", b64(&header), b64(&c.to_string()));
    let signature = f.signature(&input, &alg(f, signed_as).to_string(), &Key::A);
    format!("{input}.{signature}")
}

/// A token with `payload` as its raw payload text and a correct-looking header.
fn payload(f: &Forge, payload: &str) -> String {
    f.sign_raw(&f.header().to_string(), payload, &Key::A)
}

fn signed(f: &Forge, c: &Value) -> String {
    f.sign(&f.header(), c, &Key::A)
}

fn claim(f: &Forge, c: &Value, name: &str, value: Value) -> String {
    signed(f, &set(c.clone(), name, value))
}

fn now() -> u64 {
    tessera_testkit::scripted::now()
}

const UNSIGNED: &str = "unsigned token";
const SYMMETRIC: &str = "symmetric algorithm";
const UNSUPPORTED: &str = "is not supported";
const UNFIT: &str = "does not fit";
const MISMATCH: &str = "signature does not match";
const NO_KEY: &str = "has no key";
const NO_KID: &str = "names no kid";
const CRIT: &str = "crit";
const TR: &str = "token_rejected";
const NJ: &str = "not_a_jwt";

#[rustfmt::skip]
const CASES: &[(&str, &str, &str, Make)] = &[
    // alg: none in every spelling, missing, and of every JSON type
    ("alg none, no signature", TR, UNSIGNED, |f, c| { f.sign(&alg(f, "none"), c, &Key::Unsigned) }),
    ("alg None", TR, UNSIGNED, |f, c| { f.sign(&alg(f, "None"), c, &Key::Unsigned) }),
    ("alg NONE", TR, UNSIGNED, |f, c| { f.sign(&alg(f, "NONE"), c, &Key::Unsigned) }),
    ("alg nOnE", TR, UNSIGNED, |f, c| { f.sign(&alg(f, "nOnE"), c, &Key::Unsigned) }),
    ("alg none with a valid RS256 signature", TR, UNSIGNED, |f, c| f.sign(&alg(f, "none"), c, &Key::A)),
    ("no alg", TR, UNSIGNED, |f, c| { f.sign(&unset(f.header(), "alg"), c, &Key::A) }),
    ("empty alg", TR, UNSIGNED, |f, c| { f.sign(&alg(f, ""), c, &Key::A) }),
    ("alg null", TR, UNSIGNED, |f, c| { f.sign(&alg(f, Value::Null), c, &Key::A) }),
    ("alg a number", TR, UNSIGNED, |f, c| { f.sign(&alg(f, 256), c, &Key::A) }),
    ("alg an array", TR, UNSIGNED, |f, c| { f.sign(&alg(f, json!(["RS256"])), c, &Key::A) }),
    ("alg an object", TR, UNSIGNED, |f, c| { f.sign(&alg(f, json!({"alg": "RS256"})), c, &Key::A) }),
    // HMAC with the provider's public key as the secret (key confusion)
    ("HS256 keyed with the public key PEM", TR, SYMMETRIC, |f, c| { f.sign(&alg(f, "HS256"), c, &Key::Hmac(f.provider_public_pem().into_bytes())) }),
    ("HS256 keyed with the PEM without its last newline", TR, SYMMETRIC, |f, c| { f.sign(&alg(f, "HS256"), c, &Key::Hmac(f.provider_public_pem().trim_end().as_bytes().to_vec())) }),
    ("HS384 keyed with the public key PEM", TR, SYMMETRIC, |f, c| { f.sign(&alg(f, "HS384"), c, &Key::Hmac(f.provider_public_pem().into_bytes())) }),
    ("HS512 keyed with the public key PEM", TR, SYMMETRIC, |f, c| { f.sign(&alg(f, "HS512"), c, &Key::Hmac(f.provider_public_pem().into_bytes())) }),
    ("HS256 keyed with the JWK's modulus", TR, SYMMETRIC, |f, c| { f.sign(&alg(f, "HS256"), c, &Key::Hmac(f.provider_jwk()["n"].as_str().unwrap().as_bytes().to_vec())) }),
    ("HS256 keyed with the JWK's JSON", TR, SYMMETRIC, |f, c| { f.sign(&alg(f, "HS256"), c, &Key::Hmac(f.provider_jwk().to_string().into_bytes())) }),
    ("HS256 without a kid", TR, SYMMETRIC, |f, c| { f.sign(&unset(alg(f, "HS256"), "kid"), c, &Key::Hmac(b"secret".to_vec())) }),
    ("hs256 in lower case", TR, UNSUPPORTED, |f, c| { f.sign(&alg(f, "hs256"), c, &Key::Hmac(b"secret".to_vec())) }),
    // the algorithm must fit the key the kid names
    ("ES256 header naming the RSA key", TR, UNFIT, |f, c| { f.sign(&alg(f, "ES256"), c, &Key::Ec) }),
    ("RS256 header naming the EC key", TR, UNFIT, |f, c| { f.sign(&kid(f, EC_KID), c, &Key::A) }),
    ("PS256 header naming the EC key", TR, UNFIT, |f, c| { f.sign(&set(kid(f, EC_KID), "alg", "PS256"), c, &Key::A) }),
    ("ES384 header naming the P-256 key", TR, UNFIT, |f, c| { f.sign(&set(kid(f, EC_KID), "alg", "ES384"), c, &Key::Ec) }),
    ("EdDSA header naming the RSA key", TR, UNFIT, |f, c| { f.sign(&alg(f, "EdDSA"), c, &Key::A) }),
    ("PS256 header on an RS256 signature", TR, "signature check failed", |f, c| claims_other_alg(f, "PS256", "RS256", c)),
    ("RS384 header on an RS256 signature", TR, "signature check failed", |f, c| claims_other_alg(f, "RS384", "RS256", c)),
    ("RS256 header on a PS256 signature", TR, MISMATCH, |f, c| { claims_other_alg(f, "RS256", "PS256", c) }),
    ("signed by the attacker's key", TR, MISMATCH, |f, c| { f.sign(&f.header(), c, &Key::B) }),
    ("alg with a trailing space", TR, UNSUPPORTED, |f, c| { f.sign(&alg(f, "RS256 "), c, &Key::A) }),
    ("alg in lower case", TR, UNSUPPORTED, |f, c| { f.sign(&alg(f, "rs256"), c, &Key::A) }),
    ("alg ES256K", TR, UNSUPPORTED, |f, c| { f.sign(&alg(f, "ES256K"), c, &Key::Ec) }),
    ("alg of encryption (RSA-OAEP)", TR, UNSUPPORTED, |f, c| { f.sign(&alg(f, "RSA-OAEP"), c, &Key::A) }),
    ("alg dir", TR, UNSUPPORTED, |f, c| { f.sign(&alg(f, "dir"), c, &Key::A) }),
    // kid
    ("unknown kid", TR, NO_KEY, |f, c| { f.sign(&kid(f, "key-zzz"), c, &Key::A) }),
    ("the attacker's kid", TR, NO_KEY, |f, c| { f.sign(&kid(f, "key-b"), c, &Key::B) }),
    ("no kid, two keys published", TR, NO_KID, |f, c| { f.sign(&unset(f.header(), "kid"), c, &Key::A) }),
    ("kid null", TR, NO_KID, |f, c| { f.sign(&kid(f, Value::Null), c, &Key::A) }),
    ("kid a number", TR, NO_KID, |f, c| { f.sign(&kid(f, 1), c, &Key::A) }),
    ("kid an array", TR, NO_KID, |f, c| { f.sign(&kid(f, json!(["key-a"])), c, &Key::A) }),
    ("empty kid", TR, NO_KEY, |f, c| { f.sign(&kid(f, ""), c, &Key::A) }),
    ("kid with a path traversal", TR, NO_KEY, |f, c| { f.sign(&kid(f, "../../../../etc/passwd"), c, &Key::A) }),
    ("kid with SQL", TR, NO_KEY, |f, c| { f.sign(&kid(f, "' OR '1'='1"), c, &Key::A) }),
    ("kid of 100 KB", TR, NO_KEY, |f, c| { f.sign(&kid(f, "k".repeat(100_000)), c, &Key::A) }),
    ("kid of a URL", TR, NO_KEY, |f, c| { f.sign(&kid(f, "http://evil.example/jwks#key-a"), c, &Key::A) }),
    ("kid with a NUL", TR, NO_KEY, |f, c| { f.sign(&kid(f, "key-a\u{0}"), c, &Key::A) }),
    ("kid twice, the provider's last, attacker's signature", TR, MISMATCH, |f, c| { f.sign_raw(r#"{"alg":"RS256","kid":"key-b","kid":"key-a"}"#, &c.to_string(), &Key::B) }),
    ("kid twice, the attacker's last", TR, NO_KEY, |f, c| { f.sign_raw(r#"{"alg":"RS256","kid":"key-a","kid":"key-b"}"#, &c.to_string(), &Key::A) }),
    ("alg twice, none last", TR, UNSIGNED, |f, c| { f.sign_raw(r#"{"alg":"RS256","kid":"key-a","alg":"none"}"#, &c.to_string(), &Key::A) }),
    ("alg twice, RS256 last, unsigned", TR, MISMATCH, |f, c| { f.sign_raw(r#"{"alg":"none","kid":"key-a","alg":"RS256"}"#, &c.to_string(), &Key::Unsigned) }),
    // header parameters that point elsewhere for the key, or carry it
    ("jku to the attacker's key set", TR, NO_KEY, |f, c| { f.sign(&set(kid(f, "key-b"), "jku", format!("{}/attacker-jwks", f.issuer())), c, &Key::B) }),
    ("jku, the provider's kid, attacker's signature", TR, MISMATCH, |f, c| { f.sign(&set(f.header(), "jku", format!("{}/attacker-jwks", f.issuer())), c, &Key::B) }),
    ("x5u to the attacker's certificate", TR, NO_KEY, |f, c| { f.sign(&set(kid(f, "key-b"), "x5u", format!("{}/attacker-cert", f.issuer())), c, &Key::B) }),
    ("embedded jwk of the attacker's key", TR, NO_KEY, |f, c| { f.sign(&set(kid(f, "key-b"), "jwk", f.attacker_jwk()), c, &Key::B) }),
    ("embedded jwk, the provider's kid", TR, MISMATCH, |f, c| { f.sign(&set(f.header(), "jwk", f.attacker_jwk()), c, &Key::B) }),
    ("embedded jwk and no kid", TR, NO_KID, |f, c| { f.sign(&set(unset(f.header(), "kid"), "jwk", f.attacker_jwk()), c, &Key::B) }),
    ("x5c with a garbage certificate", TR, MISMATCH, |f, c| { f.sign(&set(f.header(), "x5c", json!(["MIIBkTCB+wIJAKHHIG"])), c, &Key::B) }),
    ("x5t of the attacker's certificate", TR, MISMATCH, |f, c| { f.sign(&set(f.header(), "x5t", "dGhpcyBpcyBub3QgYSB0aHVtYg"), c, &Key::B) }),
    // crit (RFC 7515 §4.1.11): extensions the verifier does not understand make it invalid
    ("crit naming an unknown extension", TR, CRIT, |f, c| { f.sign(&set(set(f.header(), "crit", json!(["urn:example:evil"])), "urn:example:evil", true), c, &Key::A) }),
    ("crit naming b64 (unencoded payload)", TR, CRIT, |f, c| { f.sign(&set(set(f.header(), "crit", json!(["b64"])), "b64", false), c, &Key::A) }),
    ("crit naming exp", TR, CRIT, |f, c| { f.sign(&set(f.header(), "crit", json!(["exp"])), c, &Key::A) }),
    ("crit empty", TR, CRIT, |f, c| { f.sign(&set(f.header(), "crit", json!([])), c, &Key::A) }),
    ("crit not an array", TR, CRIT, |f, c| { f.sign(&set(f.header(), "crit", "urn:example:evil"), c, &Key::A) }),
    // typ: an API's access token substituted for the ID token
    ("an at+jwt access token as the ID token", TR, "aud check failed", |f, c| { f.sign(&set(f.header(), "typ", "at+jwt"), &set(unset(c.clone(), "nonce"), "aud", "https://api.example.test"), &Key::A) }),
    ("typ JWE", TR, MISMATCH, |f, c| { f.sign(&set(f.header(), "typ", "JWE"), c, &Key::B) }),
    // structure
    ("header not base64url", NJ, "header is not base64url", |_, c| format!("!!!.{}.x", b64(&c.to_string()))),
    ("payload not base64url", NJ, "payload is not base64url", |f, _| format!("{}.***.x", b64(&f.header().to_string()))),
    ("standard base64 alphabet", NJ, "is not base64url", |_, c| format!("eyJhbGciOiJSUzI1NiJ9+/.{}.x", b64(&c.to_string()))),
    ("whitespace inside", NJ, "is not base64url", |f, c| { format!("{}. {}.x", b64(&f.header().to_string()), b64(&c.to_string())) }),
    ("header not JSON", NJ, "header is not a JSON object", |_, c| format!("{}.{}.x", b64("alg=RS256"), b64(&c.to_string()))),
    ("header a JSON array", NJ, "header is not a JSON object", |_, c| format!("{}.{}.x", b64(r#"["RS256"]"#), b64(&c.to_string()))),
    ("header empty", NJ, "header is not a JSON object", |_, c| { format!(".{}.x", b64(&c.to_string())) }),
    ("only dots", NJ, "header is not a JSON object", |_, _| { "..".into() }),
    ("payload a JSON string", NJ, "payload is not a JSON object", |f, _| payload(f, r#""alice""#)),
    ("payload a number", NJ, "payload is not a JSON object", |f, _| payload(f, "42")),
    ("payload null", NJ, "payload is not a JSON object", |f, _| payload(f, "null")),
    ("payload true", NJ, "payload is not a JSON object", |f, _| payload(f, "true")),
    ("payload an array", NJ, "payload is not a JSON object", |f, c| payload(f, &format!("[{c}]"))),
    ("payload truncated", NJ, "payload is not a JSON object", |f, c| payload(f, &c.to_string()[..20])),
    ("payload of invalid UTF-8", NJ, "payload is not a JSON object", |f, _| { format!("{}.{}.x", b64(&f.header().to_string()), URL_SAFE_NO_PAD.encode(b"{\"sub\":\"\xff\xfe\"}")) }),
    ("payload nested 100000 deep", NJ, "payload is not a JSON object", |f, _| { payload(f, &format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000))) }),
    ("payload with trailing garbage", NJ, "payload is not a JSON object", |f, c| payload(f, &format!("{c}garbage"))),
    ("two parts", NJ, "three dot-separated parts", |f, c| { format!("{}.{}", b64(&f.header().to_string()), b64(&c.to_string())) }),
    ("four parts", NJ, "three dot-separated parts", |f, c| { format!("{}.x", signed(f, c)) }),
    ("five parts (JWE)", NJ, "encrypted", |f, c| { format!("{}.x.y", signed(f, c)) }),
    ("six parts", NJ, "three dot-separated parts", |f, c| { format!("{}.x.y.z", signed(f, c)) }),
    ("empty", NJ, "three dot-separated parts", |_, _| { String::new() }),
    ("one word", NJ, "three dot-separated parts", |_, _| { "opaque-token".into() }),
    ("signature not base64url", TR, MISMATCH, |f, c| { format!("{}.{}.***", b64(&f.header().to_string()), b64(&c.to_string())) }),
    ("empty signature", TR, MISMATCH, |f, c| { f.sign(&f.header(), c, &Key::Unsigned) }),
    ("padding in the header part", TR, MISMATCH, |f, c| { let t = signed(f, c); let (h, rest) = t.split_once('.').unwrap(); format!("{h}==.{rest}") }),
    ("signature of another token", TR, MISMATCH, |f, c| { let other = claim(f, c, "sub", "bob".into()); let own = signed(f, c); format!("{}.{}", own.rsplit_once('.').unwrap().0, other.rsplit_once('.').unwrap().1) }),
    ("600 KB of claims, attacker's signature", TR, MISMATCH, |f, c| { f.sign(&f.header(), &set(c.clone(), "pad", "x".repeat(600_000)), &Key::B) }),
    ("2 MB of claims", "response_too_large", "larger than 1 MiB", |f, c| { f.sign(&f.header(), &set(c.clone(), "pad", "x".repeat(2_000_000)), &Key::B) }),
    // claims, each failing one check of a token the provider signed
    ("another issuer", TR, "iss check failed", |f, c| { claim(f, c, "iss", "http://evil.example".into()) }),
    ("no issuer", TR, "iss check failed", |f, c| { signed(f, &unset(c.clone(), "iss")) }),
    ("issuer with a trailing slash", TR, "iss check failed", |f, c| claim(f, c, "iss", format!("{}/", f.issuer()).into())),
    ("issuer in upper case", TR, "iss check failed", |f, c| { claim(f, c, "iss", f.issuer().to_uppercase().into()) }),
    ("issuer a number", TR, "iss check failed", |f, c| { claim(f, c, "iss", 1.into()) }),
    ("issuer an array", TR, "iss check failed", |f, c| { claim(f, c, "iss", json!([f.issuer()])) }),
    ("another audience", TR, "aud check failed", |f, c| { claim(f, c, "aud", "another-client".into()) }),
    ("no audience", TR, "aud check failed", |f, c| { signed(f, &unset(c.clone(), "aud")) }),
    ("audiences without the client", TR, "aud check failed", |f, c| claim(f, c, "aud", json!(["a", "b"]))),
    ("empty audience list", TR, "aud check failed", |f, c| { claim(f, c, "aud", json!([])) }),
    ("audience a number", TR, "aud check failed", |f, c| { claim(f, c, "aud", 7.into()) }),
    ("audience in upper case", TR, "aud check failed", |f, c| { claim(f, c, "aud", "TESSERA-PUBLIC".into()) }),
    ("two audiences, no azp", TR, "azp check failed", |f, c| { claim(f, c, "aud", json!(["tessera-public", "another-client"])) }),
    ("two audiences, azp the other", TR, "azp check failed", |f, c| { signed(f, &set(set(c.clone(), "aud", json!(["tessera-public", "another-client"])), "azp", "another-client")) }),
    ("azp another client", TR, "azp check failed", |f, c| { claim(f, c, "azp", "another-client".into()) }),
    ("another client's token", TR, "aud check failed", |f, c| { signed(f, &set(set(c.clone(), "aud", "another-client"), "azp", "another-client")) }),
    ("no nonce", TR, "nonce check failed", |f, c| { signed(f, &unset(c.clone(), "nonce")) }),
    ("another nonce", TR, "nonce check failed", |f, c| { claim(f, c, "nonce", "n-0123456789abcdef0123456789abcdef".into()) }),
    ("empty nonce", TR, "nonce check failed", |f, c| { claim(f, c, "nonce", "".into()) }),
    ("nonce a number", TR, "nonce check failed", |f, c| { claim(f, c, "nonce", 1.into()) }),
    ("nonce with a suffix", TR, "nonce check failed", |f, c| { claim(f, c, "nonce", format!("{}x", c["nonce"].as_str().unwrap()).into()) }),
    ("nonce in a list", TR, "nonce check failed", |f, c| { claim(f, c, "nonce", json!([c["nonce"]])) }),
    ("wrong at_hash", TR, "at_hash check failed", |f, c| { claim(f, c, "at_hash", "AAAAAAAAAAAAAAAAAAAAAA".into()) }),
    ("at_hash of another access token", TR, "at_hash check failed", |f, c| { claim(f, c, "at_hash", tessera_testkit::scripted::at_hash("at-other").into()) }),
    ("no expiry", TR, "exp check failed", |f, c| { signed(f, &unset(c.clone(), "exp")) }),
    ("expired an hour ago", TR, "exp check failed", |f, c| { claim(f, c, "exp", (now() - 3600).into()) }),
    ("expired just past the skew", TR, "exp check failed", |f, c| claim(f, c, "exp", (now() - 130).into())),
    ("exp 0", TR, "exp check failed", |f, c| { claim(f, c, "exp", 0.into()) }),
    ("exp a string", TR, "exp check failed", |f, c| { claim(f, c, "exp", (now() + 3600).to_string().into()) }),
    ("exp a float", TR, "exp check failed", |f, c| { claim(f, c, "exp", json!(now() as f64 + 3600.5)) }),
    ("exp negative", TR, "exp check failed", |f, c| { claim(f, c, "exp", json!(-1)) }),
    ("exp 1e300", TR, "exp check failed", |f, c| { claim(f, c, "exp", json!(1e300)) }),
    ("exp past u64::MAX", TR, "exp check failed", |f, c| { signed(f, &c.to_string() .replace("\"exp\":", "\"exp\":18446744073709551616,\"was\":") .parse::<Value>() .unwrap()) }),
    ("exp null", TR, "exp check failed", |f, c| { claim(f, c, "exp", Value::Null) }),
    ("exp true", TR, "exp check failed", |f, c| { claim(f, c, "exp", true.into()) }),
    ("exp u64::MAX, attacker's signature", TR, MISMATCH, |f, c| f.sign(&f.header(), &set(c.clone(), "exp", u64::MAX), &Key::B)),
    ("exp u64::MAX, nbf u64::MAX", TR, "nbf check failed", |f, c| signed(f, &set(set(c.clone(), "exp", u64::MAX), "nbf", u64::MAX))),
    ("exp u64::MAX - 59", TR, "nbf check failed", |f, c| { signed(f, &set(set(c.clone(), "exp", u64::MAX - 59), "nbf", now() + 3600)) }),
    ("not valid for an hour", TR, "nbf check failed", |f, c| { claim(f, c, "nbf", (now() + 3600).into()) }),
    ("nbf u64::MAX", TR, "nbf check failed", |f, c| { claim(f, c, "nbf", u64::MAX.into()) }),
    ("issued in an hour", TR, "iat check failed", |f, c| { claim(f, c, "iat", (now() + 3600).into()) }),
    ("no issued-at", TR, "iat check failed", |f, c| { signed(f, &unset(c.clone(), "iat")) }),
    ("iat a string", TR, "iat check failed", |f, c| { claim(f, c, "iat", now().to_string().into()) }),
    ("iat negative", TR, "iat check failed", |f, c| { claim(f, c, "iat", json!(-5)) }),
    ("iat u64::MAX", TR, "iat check failed", |f, c| { claim(f, c, "iat", u64::MAX.into()) }),
    ("no subject", TR, "no subject", |f, c| { signed(f, &unset(c.clone(), "sub")) }),
    ("empty subject", TR, "no subject", |f, c| { claim(f, c, "sub", "".into()) }),
    ("subject a number", TR, "no subject", |f, c| { claim(f, c, "sub", 42.into()) }),
    ("subject null", TR, "no subject", |f, c| { claim(f, c, "sub", Value::Null) }),
    ("subject an object", TR, "no subject", |f, c| { claim(f, c, "sub", json!({"id": "alice"})) }),
    ("no claims at all", TR, "iss check failed", |f, _| { f.sign(&f.header(), &json!({}), &Key::A) }),
];

/// Signs in with `token` as the provider's ID token (built by `make` from the claims of a
/// correct one); the answer is otherwise correct.
async fn sign_in_with(rig: &Rig, make: Make) -> Result<tessera_core::Error, String> {
    let (state, nonce) = rig.start().await;
    let forge = rig.idp.forge();
    let token = make(forge, &forge.id_claims("alice", Some(&nonce)));
    let mut answer = rig.idp.token_answer("alice", None);
    answer["id_token"] = token.into();
    rig.idp
        .once("/token", Answer::json(200, answer.to_string()));
    let t = rig.tessera.clone();
    let callback = format!("dev.tessera:/callback?code=c&state={state}");
    outcome(async move { t.complete_sign_in(&callback).await }).await
}

#[tokio::test]
async fn hostile_id_tokens_are_rejected_and_change_nothing() {
    let rig = rig().await;
    let control = sign_in_with(&rig, signed).await;
    assert!(
        matches!(&control, Err(s) if s.starts_with("succeeded")),
        "a correct token signs in: {control:?}"
    );
    let mut verdicts = Verdicts::default();
    for &(name, code, says, make) in CASES {
        let before = rig.snapshot();
        let got = sign_in_with(&rig, make).await;
        verdicts.judge(name, got, code, says);
        let after = rig.snapshot();
        if after != before {
            verdicts.fail(
                name,
                format!("stored data changed: {:?}", before.diff(&after)),
            );
        }
        assert_eq!(
            rig.idp.pending("/token"),
            0,
            "{name}: the answer was not asked for"
        );
    }
    assert_eq!(rig.idp.hits("/attacker-jwks"), 0, "a jku was followed");
    assert_eq!(rig.idp.hits("/attacker-cert"), 0, "an x5u was followed");
    assert!(rig.leaked().is_empty(), "{:?}", rig.leaked());
    verdicts.done("JWTs", 120);
}
