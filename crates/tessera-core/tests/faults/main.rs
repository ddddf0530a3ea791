//! Faults (issue 8): a provider that stalls, drips, resets, errs or floods at every endpoint
//! ([`provider`]), and a keychain that is locked, gone or fails half-way ([`keychain`]). Each:
//! a bounded wait, a clear typed error, nothing lost — the account still there, its refresh
//! token still the one the provider honours, no secret written anywhere else.

#[path = "../adversary/mod.rs"]
mod adversary;
mod batch;
mod keychain;
mod provider;
