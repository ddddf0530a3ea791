//! The signature check itself: a provider's key prepared once ([`VerifyingKey`]: its bytes
//! decoded, its digest taken, and parsed by `aws-lc-rs` for each algorithm on first use, so a
//! verification is the public-key operation alone), and the memory of signatures already found
//! good ([`CheckedSignatures`]), so a token verified again (the app's token report on every
//! visit, the agent's repeated checks) costs a hash, not an RSA operation.
//!
//! Invariants: the algorithm is the caller's, never read from the token here, and a key
//! verifies only the algorithms its JWK's type allows (checked by the caller too); RSA keys
//! under 2048 bits are refused, and EC and Ed25519 keys must be bare points of their curve's
//! size. A remembered signature counts only for the exact key, algorithm, signed
//! bytes and signature it was checked with, and the key always comes from the provider's
//! current key set, so a key the provider removed vouches for nothing.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use sha2::{Digest, Sha256};

/// How many good signatures are remembered; the memory starts over when full.
const REMEMBERED: usize = 1024;

/// Every algorithm a provider's key can verify; a key's parsed forms are kept in this order.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One key of a provider's key set, prepared for verification.
pub(super) struct VerifyingKey {
    pub jwk: Jwk,
    /// The key's public material, or why it cannot verify anything.
    decoded: Result<DecodingKey, String>,
    /// The algorithms the JWK's type allows.
    allowed: &'static [Algorithm],
    /// SHA-256 of the material, standing for the key in [`CheckedSignatures`]; none for a key
    /// that cannot verify anything.
    digest: Option<[u8; 32]>,
    /// The key parsed for each of [`ALGORITHMS`], once asked for; `None` when it does not fit.
    parsed: [OnceLock<Option<ParsedPublicKey>>; ALGORITHMS.len()],
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.jwk.common.key_id)
            .field("usable", &self.decoded.is_ok())
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    pub fn new(jwk: Jwk) -> Self {
        let decoded = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string());
        let digest = decoded.as_ref().ok().map(|key| {
            let mut hash = Sha256::new();
            let mut part = |bytes: &[u8]| {
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(bytes);
            };
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
            hash.finalize().into()
        });
        VerifyingKey {
            allowed: super::algorithms_for(&jwk),
            jwk,
            decoded,
            digest,
            parsed: Default::default(),
        }
    }

    /// Why this key cannot verify anything, if it cannot.
    pub fn unusable(&self) -> Option<&str> {
        self.decoded.as_ref().err().map(String::as_str)
    }

    /// Whether `signature` (base64url, as in the token) signs `message` under this key with
    /// `alg`.
    fn verifies(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        let Some(parsed) = self.parsed_for(alg) else {
            return false;
        };
        // Room for the longest signature of any key accepted (RSA 8192 bits).
        let mut decoded = [0u8; 1024];
        let Ok(length) = URL_SAFE_NO_PAD.decode_slice(signature, &mut decoded) else {
            return false;
        };
        parsed.verify_sig(message, &decoded[..length]).is_ok()
    }

    fn parsed_for(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        if !self.allowed.contains(&alg) {
            return None;
        }
        let index = ALGORITHMS.iter().position(|a| *a == alg)?;
        let key = self.decoded.as_ref().ok()?;
        self.parsed[index].get_or_init(|| parse(alg, key)).as_ref()
    }
}

/// `key` parsed for `alg`: an RSA key from its modulus and exponent, an EC key from its
/// uncompressed point, an Ed25519 key from its 32 bytes; nothing else.
fn parse(alg: Algorithm, key: &DecodingKey) -> Option<ParsedPublicKey> {
    let (algorithm, point): (&'static dyn sig::VerificationAlgorithm, _) = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            return RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .to_parsed_public_key(rsa_parameters(alg)?)
            .ok();
        }
        DecodingKeyKind::SecretOrDer(point) => match (alg, point.len()) {
            (Algorithm::ES256, 65) => (&sig::ECDSA_P256_SHA256_FIXED, point),
            (Algorithm::ES384, 97) => (&sig::ECDSA_P384_SHA384_FIXED, point),
            (Algorithm::EdDSA, 32) => (&sig::ED25519, point),
            _ => return None,
        },
    };
    ParsedPublicKey::new(algorithm, point).ok()
}

fn rsa_parameters(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// Signatures found good, by a digest of everything the check depended on.
#[derive(Debug, Default)]
pub(super) struct CheckedSignatures {
    good: Mutex<HashSet<[u8; 32]>>,
}

impl CheckedSignatures {
    /// Whether `signature` signs `message` under `key` with `alg`, answered from memory for a
    /// signature already found good.
    pub fn matches(
        &self,
        alg: Algorithm,
        key: &VerifyingKey,
        message: &[u8],
        signature: &str,
    ) -> bool {
        let Some(key_digest) = key.digest else {
            return false;
        };
        let id = fingerprint(alg, &key_digest, message, signature);
        if self.good.lock().is_ok_and(|good| good.contains(&id)) {
            return true;
        }
        let matches = key.verifies(alg, message, signature);
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
fn fingerprint(alg: Algorithm, key: &[u8; 32], message: &[u8], signature: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    let index = ALGORITHMS
        .iter()
        .position(|a| *a == alg)
        .unwrap_or(usize::MAX);
    part(&(index as u64).to_be_bytes());
    part(key);
    part(message);
    part(signature.as_bytes());
    hash.finalize().into()
}
