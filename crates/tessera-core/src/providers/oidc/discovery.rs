//! OpenID Connect discovery (`/.well-known/openid-configuration`), checked and cached in
//! memory and under `<data dir>/cache/` for [`DISCOVERY_TTL`] on the engine's clock; a
//! document past its age is fetched again, in memory as on disk.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::provider::ProviderMetadata;

/// How long a discovery document is trusted before it is fetched again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Serialize, Deserialize)]
struct CachedMetadata {
    fetched_at: u64,
    metadata: ProviderMetadata,
}

impl CachedMetadata {
    fn fresh(&self, now: u64) -> bool {
        now.saturating_sub(self.fetched_at) < DISCOVERY_TTL.as_secs()
    }
}

/// Discovery documents, cached in memory and under `<data dir>/cache/`.
#[derive(Debug)]
pub struct Discovery {
    dir: PathBuf,
    memory: Mutex<BTreeMap<String, (u64, ProviderMetadata)>>,
}

impl Discovery {
    pub fn new(dir: PathBuf) -> Self {
        Discovery {
            dir,
            memory: Mutex::new(BTreeMap::new()),
        }
    }

    /// The metadata for `issuer`, from the cache when fresh, else fetched and checked.
    pub async fn metadata(
        &self,
        http: &HttpClient,
        issuer: &str,
        now: u64,
    ) -> Result<ProviderMetadata> {
        if let Some((at, m)) = self.memory.lock().map_err(poisoned)?.get(issuer)
            && now.saturating_sub(*at) < DISCOVERY_TTL.as_secs()
        {
            return Ok(m.clone());
        }
        let file = self.cache_file(issuer);
        if let Ok(bytes) = std::fs::read(&file)
            && let Ok(cached) = serde_json::from_slice::<CachedMetadata>(&bytes)
            && cached.fresh(now)
            && cached.metadata.check(issuer).is_ok()
        {
            self.remember(issuer, &cached)?;
            return Ok(cached.metadata);
        }
        let cached = CachedMetadata {
            fetched_at: now,
            metadata: fetch(http, issuer).await?,
        };
        if let Ok(bytes) = serde_json::to_vec_pretty(&cached) {
            let _ = crate::fsutil::write_atomic(&file, &bytes);
        }
        self.remember(issuer, &cached)?;
        Ok(cached.metadata)
    }

    /// Forgets the cached document (after a provider is removed or changed).
    pub fn forget(&self, issuer: &str) {
        if let Ok(mut memory) = self.memory.lock() {
            memory.remove(issuer);
        }
        let _ = std::fs::remove_file(self.cache_file(issuer));
    }

    fn remember(&self, issuer: &str, cached: &CachedMetadata) -> Result<()> {
        self.memory.lock().map_err(poisoned)?.insert(
            issuer.to_string(),
            (cached.fetched_at, cached.metadata.clone()),
        );
        Ok(())
    }

    fn cache_file(&self, issuer: &str) -> PathBuf {
        self.dir.join(format!(
            "discovery-{}.json",
            crate::fsutil::short_hash(issuer)
        ))
    }
}

/// Fetches and checks `<issuer>/.well-known/openid-configuration`.
pub async fn fetch(http: &HttpClient, issuer: &str) -> Result<ProviderMetadata> {
    let url = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .map_err(|e| Error::InvalidConfig(format!("issuer \"{issuer}\": {e}")))?;
    let metadata: ProviderMetadata = http.get_json(&url).await.map_err(|e| match e {
        Error::MalformedResponse { reason, .. } => {
            Error::Discovery(format!("{url} is not an OpenID configuration: {reason}"))
        }
        other => other,
    })?;
    metadata.check(issuer)?;
    Ok(metadata)
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> Error {
    Error::Storage("an internal lock was poisoned by an earlier failure".into())
}
