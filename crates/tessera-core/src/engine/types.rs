//! What the engine hands to front ends: outcomes of sign-ins, refreshes, inspections and
//! sign-outs. None carries a secret except [`IssuedToken`], which a caller asked for.

use serde::Serialize;
use serde_json::Value;

use crate::claims::ClaimRow;
use crate::jwt::Check;
use crate::providers::DeviceAuthorization;
use crate::secret::SecretString;

/// A browser sign-in that has started.
#[derive(Debug, Clone, Serialize)]
pub struct SignInStart {
    /// Identifies the flow (it is the `state` parameter, which the URL carries anyway).
    pub flow_id: String,
    pub provider: String,
    pub authorization_url: String,
    pub expires_at: u64,
}

/// A device sign-in waiting for the person to approve it elsewhere.
#[derive(Debug)]
pub struct DeviceSignIn {
    pub provider: String,
    pub authorization: DeviceAuthorization,
}

/// A token handed out to a caller.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: SecretString,
    pub expires_at: Option<u64>,
    pub refreshed: bool,
}

/// What a refresh changed.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshOutcome {
    pub account_id: String,
    pub rotated: bool,
    pub previous_expires_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub changed_claims: Vec<ClaimChange>,
}

/// One claim that differs between the old and the new token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimChange {
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// A token explained: header and claims with their meaning, and each verification check.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimsReport {
    pub account_id: String,
    /// `access_token` or `id_token`.
    pub token: String,
    /// `jwt` or `opaque`.
    pub format: String,
    pub header: Vec<ClaimRow>,
    pub claims: Vec<ClaimRow>,
    pub checks: Vec<Check>,
    pub verified: bool,
    pub expires_at: Option<u64>,
}

/// What signing out did.
#[derive(Debug, Clone, Serialize)]
pub struct SignOutOutcome {
    pub account_id: String,
    pub revoked: bool,
    /// Open this to end the provider's browser session (RP-initiated logout), if offered.
    pub logout_url: Option<String>,
}
