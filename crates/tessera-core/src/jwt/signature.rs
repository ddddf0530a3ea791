//! The signature check itself, with `ring` (the crypto `rustls` already links), several times
//! faster than the pure-Rust RSA of `jsonwebtoken`'s `rust_crypto` backend; and the memory of
//! signatures already found good ([`CheckedSignatures`]), so a token verified again (the app's
//! token report on every visit, the agent's repeated checks) costs a hash, not an RSA
//! operation.
//!
//! Invariants: the algorithm is the caller's (already checked against the key), never read
//! from the token here; RSA keys under 2048 bits are refused (ring's floor), as are keys
//! whose shape does not fit the algorithm. A remembered signature counts only for the exact
//! key, algorithm, signed bytes and signature it was checked with, and the key always comes
//! from the provider's current key set, so a key the provider removed vouches for nothing.

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use ring::signature::{self as ring_sig, RsaPublicKeyComponents, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// How many good signatures are remembered; the memory starts over when full.
const REMEMBERED: usize = 1024;

/// Signatures found good, by a digest of everything the check depended on.
#[derive(Debug, Default)]
pub(super) struct CheckedSignatures {
    good: Mutex<HashSet<[u8; 32]>>,
}

impl CheckedSignatures {
    /// [`signature_matches`], answered from memory for a signature already found good.
    pub fn matches(
        &self,
        alg: Algorithm,
        key: &DecodingKey,
        message: &[u8],
        signature: &str,
    ) -> bool {
        let id = fingerprint(alg, key, message, signature);
        if self.good.lock().is_ok_and(|good| good.contains(&id)) {
            return true;
        }
        let matches = signature_matches(alg, key, message, signature);
        if matches && let Ok(mut good) = self.good.lock() {
            if good.len() >= REMEMBERED {
                good.clear();
            }
            good.insert(id);
        }
        matches
    }
}

/// SHA-256 over every input of a check, each part length-prefixed so no two checks share one.
fn fingerprint(alg: Algorithm, key: &DecodingKey, message: &[u8], signature: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(format!("{alg:?}").as_bytes());
    match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            part(b"rsa");
            part(n);
            part(e);
        }
        DecodingKeyKind::SecretOrDer(der) => {
            part(b"der");
            part(der);
        }
    }
    part(message);
    part(signature.as_bytes());
    hash.finalize().into()
}

/// Whether `signature` (base64url, as in the token) signs `message` under `key` with `alg`.
fn signature_matches(alg: Algorithm, key: &DecodingKey, message: &[u8], signature: &str) -> bool {
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
