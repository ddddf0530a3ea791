//! Tessera's core: everything about identity-provider accounts that is not a window.
//!
//! - [`Tessera`] ([`engine`]): the entry point front ends call; it keeps the promises that
//!   hold for every provider (verify before store, keychain first, one transaction per
//!   account);
//! - [`providers`]: one adapter per provider family (OpenID Connect with its Auth0, Logto and
//!   Stitch flavours; Stack Auth; Stytch B2B) and the spec front ends render from;
//! - [`provider`]: provider configuration and endpoints;
//! - [`flow`] and [`loopback`]: browser sign-in state and callbacks;
//! - [`jwt`] and [`claims`]: token verification with a per-check report, and the claim
//!   dictionary;
//! - [`vault`]: the keychain, the only place secrets are kept;
//! - [`account`]: account metadata in the data directory (no secrets).
//!
//! This crate must never depend on `tauri`; CI checks `cargo tree -p tessera-core`.

pub mod account;
pub mod agent;
pub mod claims;
pub mod clock;
mod engine;
pub mod error;
pub mod flow;
mod fsutil;
pub mod http;
pub mod jwt;
pub mod loopback;
pub mod provider;
pub mod providers;
pub mod secret;
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
mod secret_service;
pub mod vault;

pub use account::{Account, AccountStatus, Restriction};
pub use engine::{
    ClaimChange, ClaimsReport, DeviceSignIn, EmailLinkOutcome, EmailSignInStart, Handover,
    IssuedToken, Options, OrgDiscovery, OrgView, RefreshOutcome, SignInStart, SignOutOutcome,
    Tessera,
};
pub use error::{Error, ErrorKind, Result};
pub use jwt::TokenKind;
pub use provider::{ClientAuth, OrgModel, ProviderConfig, ProviderKind, RedirectMode};
pub use providers::{
    Credential, DiscoveredOrg, ProviderDraft, ProviderSpec, SignInMethod, SignInRequest,
};
pub use secret::SecretString;
