//! `private_key_jwt` (RFC 7523): client assertions signed with the client's private key (a
//! PEM, RSA or EC, or a private JWK) from the keychain, and the check that such a key can
//! sign before it is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// Signs an RFC 7523 client assertion: `iss = sub = client_id`, `aud` = the token endpoint
/// (also for revocation and introspection: Stitch accepts nothing else),
/// a random `jti`, valid for 60 s. The key is a PEM (RSA or EC) or a private JWK.
pub fn client_assertion(
    client_id: &str,
    audience: &str,
    key: &SecretString,
    key_id: Option<&str>,
    now: u64,
) -> Result<String> {
    let (encoding, alg, kid) = signing_key(key)?;
    let kid = kid.or_else(|| key_id.map(String::from));
    let mut header = Header::new(alg);
    header.kid = kid;
    let jti = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>());
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": audience,
        "jti": jti, "iat": now, "nbf": now, "exp": now + 60,
    });
    jsonwebtoken::encode(&header, &claims, &encoding)
        .map_err(|e| Error::InvalidConfig(format!("cannot sign the client assertion: {e}")))
}

/// Checks that a private key can sign assertions, without using it.
pub fn check_private_key(key: &SecretString) -> Result<()> {
    signing_key(key).map(|_| ())
}

fn signing_key(key: &SecretString) -> Result<(EncodingKey, Algorithm, Option<String>)> {
    let text = key.expose_secret().trim();
    let bad = |what: &str| Error::InvalidConfig(format!("the private key is not {what}"));
    if text.starts_with('{') {
        return jwk_signing_key(text);
    }
    if let Ok(k) = EncodingKey::from_rsa_pem(text.as_bytes()) {
        return Ok((k, Algorithm::RS256, None));
    }
    if let Ok(k) = EncodingKey::from_ec_pem(text.as_bytes()) {
        return Ok((k, Algorithm::ES256, None));
    }
    Err(bad("an RSA or P-256 private key in PEM, or a private JWK"))
}

fn jwk_signing_key(text: &str) -> Result<(EncodingKey, Algorithm, Option<String>)> {
    use rsa::pkcs8::EncodePrivateKey;
    let bad = |why: &str| Error::InvalidConfig(format!("the private JWK is unusable: {why}"));
    let jwk: Value = serde_json::from_str(text).map_err(|_| bad("not JSON"))?;
    let field = |name: &str| -> Result<Vec<u8>> {
        let s = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&format!("no \"{name}\"")))?;
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad(&format!("\"{name}\" is not base64url")))
    };
    let kid = jwk.get("kid").and_then(Value::as_str).map(String::from);
    match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => {
            let n = |v: Vec<u8>| rsa::BigUint::from_bytes_be(&v);
            let key = rsa::RsaPrivateKey::from_components(
                n(field("n")?),
                n(field("e")?),
                n(field("d")?),
                vec![n(field("p")?), n(field("q")?)],
            )
            .map_err(|e| bad(&e.to_string()))?;
            let pem = key
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(|e| bad(&e.to_string()))?;
            let encoding =
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad(&e.to_string()))?;
            Ok((encoding, Algorithm::RS256, kid))
        }
        Some("EC") if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
            let secret =
                p256::SecretKey::from_slice(&field("d")?).map_err(|e| bad(&e.to_string()))?;
            let pem = secret
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(|e| bad(&e.to_string()))?;
            let encoding =
                EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| bad(&e.to_string()))?;
            Ok((encoding, Algorithm::ES256, kid))
        }
        _ => Err(bad("only RSA and EC P-256 keys are supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_private_key_is_a_config_error() {
        for bad in [
            "",
            "-----BEGIN NOTHING-----",
            "{\"kty\":\"oct\",\"k\":\"AA\"}",
            "{",
        ] {
            assert_eq!(
                check_private_key(&SecretString::new(bad))
                    .unwrap_err()
                    .code(),
                "invalid_config"
            );
        }
    }

    #[test]
    fn assertion_from_a_generated_ec_key() {
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::SecretKey::random(&mut rand::thread_rng());
        let pem = key
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string();
        let jwt = client_assertion(
            "cli",
            "https://idp/token",
            &SecretString::new(pem),
            Some("k1"),
            1000,
        )
        .unwrap();
        let d = crate::jwt::decode_unverified_for_display(&jwt).unwrap();
        assert_eq!((d.alg(), d.kid()), (Some("ES256"), Some("k1")));
        assert_eq!(
            (d.claim_str("iss"), d.claim_str("sub")),
            (Some("cli"), Some("cli"))
        );
        assert_eq!(d.claim_str("aud"), Some("https://idp/token"));
        assert_eq!(d.claim_u64("exp"), Some(1060));
        assert!(d.claim_str("jti").is_some_and(|j| j.len() >= 16));
    }
}
