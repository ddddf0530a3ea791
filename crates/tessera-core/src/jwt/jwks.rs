//! The JWKS cache: key sets by URI, fetched on first use, trusted for their `Cache-Control:
//! max-age` (bounded), refetched for an unknown `kid` at most once per cool-down, one fetch for
//! all concurrent callers; and the choice of a signing key from a set.
//!
//! With a directory ([`JwksCache::on_disk`], the engine's `<data dir>/cache/`), each fetched
//! set is also kept there (0600, with its fetch time, max age and last `kid` refetch), so a
//! new process verifies with no fetch while the set is within its age, and the cool-down holds
//! across processes. A kept set is only ever what the provider served for that URI; the
//! directory is as trusted as `tessera.json` beside it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyOperations, PublicKeyUse};
use serde::{Deserialize, Serialize};
use url::Url;

use super::signature::{CheckedSignatures, VerifyingKey};
use crate::error::{Error, Result};
use crate::http::HttpClient;

/// How long a key set is used when the provider does not say (`Cache-Control: max-age`).
pub const JWKS_DEFAULT_MAX_AGE: u64 = 3600;

/// The longest a key set is used, whatever the provider says.
pub const JWKS_MAX_MAX_AGE: u64 = 86_400;

/// The least time between two fetches of one JWKS that an unknown `kid` causes; also the
/// shortest max age honoured.
pub const JWKS_REFETCH_COOL_DOWN: u64 = 60;

/// Key sets by JWKS URI; see the module docs for when they are fetched.
#[derive(Debug, Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<JwksEntry>>>>,
    dir: Option<PathBuf>,
    /// Signatures checked with these keys and found good.
    pub(super) checked: CheckedSignatures,
}

/// One JWKS URI. Its async lock is held across a fetch, which is what coalesces fetches.
#[derive(Debug, Default, Serialize, Deserialize)]
struct JwksEntry {
    set: Option<JwkSet>,
    /// `set`'s keys prepared for verification, in its order.
    #[serde(skip)]
    keys: Vec<Arc<VerifyingKey>>,
    /// When `set` was fetched, and for how many seconds it may be used.
    fetched_at: u64,
    max_age: u64,
    /// When an unknown `kid` last caused a fetch.
    kid_refetched_at: Option<u64>,
}

/// Whether `now` lies in the `seconds` after `since` (a clock set back is outside).
fn within(since: u64, seconds: u64, now: u64) -> bool {
    since <= now && now < since.saturating_add(seconds)
}

impl JwksCache {
    /// A cache that also keeps key sets in `dir` (see the module docs).
    pub fn on_disk(dir: PathBuf) -> Self {
        JwksCache {
            dir: Some(dir),
            ..Default::default()
        }
    }

    fn file(&self, jwks_uri: &str) -> Option<PathBuf> {
        let name = format!("jwks-{}.json", crate::fsutil::short_hash(jwks_uri));
        self.dir.as_ref().map(|d| d.join(name))
    }

    /// Finds the key for `kid` in the provider's JWKS at time `now`, fetching the set when it
    /// is missing or expired, or (once per cool-down) when it does not know `kid`.
    pub(super) async fn key(
        &self,
        http: &HttpClient,
        jwks_uri: &str,
        kid: Option<&str>,
        now: u64,
    ) -> Result<Arc<VerifyingKey>> {
        let entry = {
            let mut entries = self
                .entries
                .lock()
                .map_err(|_| Error::Storage("JWKS cache poisoned".into()))?;
            match entries.get(jwks_uri) {
                Some(entry) => entry.clone(),
                None => entries.entry(jwks_uri.to_string()).or_default().clone(),
            }
        };
        let mut entry = entry.lock().await;
        if entry.set.is_none()
            && let Some(kept) = self
                .file(jwks_uri)
                .and_then(|f| std::fs::read(f).ok())
                .and_then(|bytes| serde_json::from_slice::<JwksEntry>(&bytes).ok())
        {
            // The file is as trusted as the directory, but its age is bounded all the same.
            *entry = JwksEntry {
                max_age: kept.max_age.min(JWKS_MAX_MAX_AGE),
                ..kept
            };
            entry.prepare_keys();
        }
        let fresh = within(entry.fetched_at, entry.max_age, now);
        if let Some(set) = entry.set.as_ref().filter(|_| fresh) {
            if let Some(index) = pick(set, kid) {
                return Ok(entry.keys[index].clone());
            }
            let cooling = entry
                .kid_refetched_at
                .is_some_and(|at| within(at, JWKS_REFETCH_COOL_DOWN, now));
            if cooling {
                return Err(no_key(kid));
            }
            entry.kid_refetched_at = Some(now);
        }
        let url =
            Url::parse(jwks_uri).map_err(|e| Error::Discovery(format!("bad jwks_uri: {e}")))?;
        let (set, headers) = http.get_json_with_headers::<JwkSet>(&url).await?;
        let index = pick(&set, kid);
        (entry.fetched_at, entry.max_age) = (now, max_age(&headers));
        entry.set = Some(set);
        entry.prepare_keys();
        if let Some(file) = self.file(jwks_uri)
            && let Ok(bytes) = serde_json::to_vec(&*entry)
        {
            let _ = crate::fsutil::write_atomic(&file, &bytes);
        }
        index
            .map(|index| entry.keys[index].clone())
            .ok_or_else(|| no_key(kid))
    }
}

impl JwksEntry {
    fn prepare_keys(&mut self) {
        self.keys = self
            .set
            .iter()
            .flat_map(|set| &set.keys)
            .map(|key| Arc::new(VerifyingKey::new(key.clone())))
            .collect();
    }
}

fn no_key(kid: Option<&str>) -> Error {
    Error::TokenRejected {
        token: "token".into(),
        reason: match kid {
            Some(k) => format!("the provider's JWKS has no key \"{k}\""),
            None => "the token names no kid and the JWKS has no single usable key".into(),
        },
    }
}

/// The seconds a response may be cached by its `Cache-Control: max-age` (`no-cache` and
/// `no-store` count as 0), bounded to [`JWKS_REFETCH_COOL_DOWN`]..=[`JWKS_MAX_MAX_AGE`].
pub(super) fn max_age(headers: &http::HeaderMap) -> u64 {
    let stated = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .find_map(|d| match d.as_str() {
            "no-cache" | "no-store" => Some(0),
            _ => d.strip_prefix("max-age=")?.trim_matches('"').parse().ok(),
        });
    stated
        .unwrap_or(JWKS_DEFAULT_MAX_AGE)
        .clamp(JWKS_REFETCH_COOL_DOWN, JWKS_MAX_MAX_AGE)
}

/// The index in `set` of the signing key `kid` names (or of its one signing key, without a
/// `kid`).
fn pick(set: &JwkSet, kid: Option<&str>) -> Option<usize> {
    // A signing key: not a shared secret, not marked for encryption only.
    let usable = |k: &&Jwk| {
        !matches!(k.algorithm, AlgorithmParameters::OctetKey(_))
            && matches!(
                k.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            )
            && k.common
                .key_operations
                .as_ref()
                .is_none_or(|ops| ops.contains(&KeyOperations::Verify))
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .position(|k| usable(&k) && k.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut keys = set.keys.iter().enumerate().filter(|(_, k)| usable(k));
            match (keys.next(), keys.next()) {
                (Some((index, _)), None) => Some(index),
                _ => None,
            }
        }
    }
}
