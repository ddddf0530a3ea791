//! The signature check itself, with `ring` (the crypto `rustls` already links): an order of
//! magnitude faster than the pure-Rust RSA of `jsonwebtoken`'s `rust_crypto` backend, which
//! the warm path of `tessera token` and every token report pay for.
//!
//! Invariants: the algorithm is the caller's (already checked against the key), never read
//! from the token here; RSA keys under 2048 bits are refused (ring's floor), as are keys
//! whose shape does not fit the algorithm.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use ring::signature::{self as ring_sig, RsaPublicKeyComponents, UnparsedPublicKey};

/// Whether `signature` (base64url, as in the token) signs `message` under `key` with `alg`.
pub(super) fn signature_matches(
    alg: Algorithm,
    key: &DecodingKey,
    message: &[u8],
    signature: &str,
) -> bool {
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    match (rsa_parameters(alg), key.kind()) {
        (Some(params), DecodingKeyKind::RsaModulusExponent { n, e }) => {
            RsaPublicKeyComponents { n, e }
                .verify(params, message, &signature)
                .is_ok()
        }
        (Some(params), DecodingKeyKind::SecretOrDer(der)) => UnparsedPublicKey::new(params, der)
            .verify(message, &signature)
            .is_ok(),
        (None, DecodingKeyKind::SecretOrDer(point)) => {
            let algorithm: &dyn ring_sig::VerificationAlgorithm = match alg {
                Algorithm::ES256 => &ring_sig::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &ring_sig::ECDSA_P384_SHA384_FIXED,
                Algorithm::EdDSA => &ring_sig::ED25519,
                _ => return false,
            };
            UnparsedPublicKey::new(algorithm, point)
                .verify(message, &signature)
                .is_ok()
        }
        (None, DecodingKeyKind::RsaModulusExponent { .. }) => false,
    }
}

fn rsa_parameters(alg: Algorithm) -> Option<&'static ring_sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}
