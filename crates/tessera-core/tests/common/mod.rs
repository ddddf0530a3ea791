//! Shared set-up for the core's integration tests: a real `tests/idp` provider, a `Tessera`
//! over a temporary data directory with an in-memory secret store (so tests can lock it) and
//! a shifted clock, and a scripted browser.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::sync::Arc;

use serde_json::Value;
use tessera_core::clock::ShiftedClock;
use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::http::HttpConfig;
use tessera_core::vault::{MemoryStore, SecretStore};
use tessera_core::{ClientAuth, Options, ProviderConfig, SecretString, Tessera};
use tessera_testkit::{Browser, Idp, IdpOptions, Profile};

pub struct Env {
    pub idp: Idp,
    pub tessera: Arc<Tessera>,
    pub store: MemoryStore,
    pub clock: ShiftedClock,
    pub dir: tempfile::TempDir,
    pub browser: Browser,
}

/// A `Tessera` over a temporary data directory, an in-memory store and a shiftable clock,
/// with no provider around.
pub struct Bare {
    pub tessera: Arc<Tessera>,
    pub store: MemoryStore,
    pub clock: ShiftedClock,
    pub dir: tempfile::TempDir,
}

pub fn bare(http: HttpConfig) -> Bare {
    bare_on(MemoryStore::default(), http)
}

/// [`bare`] over the given store.
pub fn bare_on(store: MemoryStore, http: HttpConfig) -> Bare {
    let dir = tessera_testkit::evidence::data_dir();
    let clock = ShiftedClock::default();
    let tessera = Tessera::open(Options {
        data_dir: dir.path().to_path_buf(),
        store: Arc::new(store.clone()),
        clock: Arc::new(clock.clone()),
        http,
    })
    .unwrap();
    Bare {
        tessera: Arc::new(tessera),
        store,
        clock,
        dir,
    }
}

pub async fn env_with(opts: IdpOptions, http: HttpConfig) -> Env {
    env_on(MemoryStore::default(), opts, http).await
}

/// [`env_with`] over the given store.
pub async fn env_on(store: MemoryStore, opts: IdpOptions, http: HttpConfig) -> Env {
    let idp = Idp::start(opts).await;
    let Bare {
        tessera,
        store,
        clock,
        dir,
    } = bare_on(store, http);
    let env = Env {
        idp,
        tessera,
        store,
        clock,
        dir,
        browser: Browser::new(),
    };
    env.add("local", "tessera-public", ClientAuth::None, None)
        .await;
    env
}

pub async fn env(profile: Profile) -> Env {
    env_with(
        IdpOptions {
            profile,
            ..Default::default()
        },
        HttpConfig::default(),
    )
    .await
}

impl Env {
    pub async fn add(&self, name: &str, client: &str, auth: ClientAuth, credential: Option<&str>) {
        let mut config = ProviderConfig::new(name, &self.idp.issuer, client);
        config.client_auth = auth;
        self.tessera
            .add_provider(config, credential.map(SecretString::new))
            .await
            .unwrap();
    }

    /// A second `Tessera` over the same data directory and keychain: the command line next to
    /// the desktop app (its own in-process locks, sharing only what two processes share).
    pub fn other_process(&self) -> Arc<Tessera> {
        Arc::new(
            Tessera::open(Options {
                data_dir: self.dir.path().to_path_buf(),
                store: Arc::new(self.store.clone()),
                clock: Arc::new(self.clock.clone()),
                http: HttpConfig::default(),
            })
            .unwrap(),
        )
    }

    pub async fn callback(&self, provider: &str, user: &str) -> String {
        let start = self
            .tessera
            .start_sign_in(provider, DEEP_LINK_REDIRECT, &[])
            .await
            .unwrap();
        self.browser.login(&start.authorization_url, user).await
    }

    pub async fn sign_in(&self, user: &str) -> tessera_core::Account {
        let callback = self.callback("local", user).await;
        self.tessera.complete_sign_in(&callback).await.unwrap()
    }

    /// The code of the error completing `callback` fails with.
    pub async fn refused(&self, callback: &str) -> &'static str {
        self.tessera
            .complete_sign_in(callback)
            .await
            .unwrap_err()
            .code()
    }

    pub fn state_file(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("tessera.json")).unwrap()
    }

    /// The account's stored token set, wherever the keychain holds it.
    pub fn stored(&self, account_id: &str) -> Option<Value> {
        tessera_testkit::stored_tokens(self.dir.path(), account_id, |key| {
            let raw = self.store.get(key).unwrap()?;
            Some(raw.expose_secret().to_string())
        })
    }

    pub fn refresh_token(&self, account_id: &str) -> String {
        self.stored(account_id).unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Uses a refresh token at the provider directly, as another client would.
    pub async fn refresh_at_idp(&self, refresh_token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.idp.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "tessera-public"),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
