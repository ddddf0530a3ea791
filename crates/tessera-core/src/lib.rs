//! Tessera's core: everything about identity-provider accounts that is not a window.
//!
//! - [`provider`]: provider configuration and OpenID discovery;
//! - [`flow`] and [`loopback`]: browser sign-in (code + PKCE + state + nonce) and callbacks;
//! - [`grant`]: token endpoint, device grant, revocation, introspection, userinfo;
//! - [`jwt`] and [`claims`]: token verification with a per-check report, and the claim dictionary;
//! - [`vault`]: the keychain, the only place secrets are kept;
//! - [`account`]: account metadata in the data directory (no secrets);
//! - [`Tessera`]: the entry point front ends call.
//!
//! This crate must never depend on `tauri`; CI checks `cargo tree -p tessera-core`.

pub mod account;
pub mod claims;
pub mod clock;
pub mod error;
pub mod flow;
mod fsutil;
pub mod grant;
pub mod http;
pub mod jwt;
pub mod loopback;
pub mod organizations;
pub mod provider;
pub mod secret;
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
mod secret_service;
pub mod stack;
pub mod stytch;
mod tessera;
pub mod vault;

pub use account::{Account, AccountStatus};
pub use error::{Error, ErrorKind, Result};
pub use jwt::TokenKind;
pub use organizations::OrgView;
pub use provider::{ClientAuth, PresetInput, ProviderConfig, ProviderKind, RedirectMode};
pub use secret::SecretString;
pub use tessera::{
    ClaimChange, ClaimsReport, DeviceSignIn, IssuedToken, Options, RefreshOutcome, SignInStart,
    SignOutOutcome, Tessera,
};
