//! Stytch's errors: an `error_type` (with `error_message`) becomes [`Error::Provider`] with
//! that code; which of them mean the member session is gone.

use serde_json::Value;

use crate::error::Error;

/// Whether Stytch said the session no longer exists.
pub(super) fn grant_is_gone(error: &Error) -> bool {
    matches!(
        error.oauth_error(),
        Some("session_not_found" | "invalid_grant")
    )
}

/// An SDK call authenticated by a member session that Stytch refused: the session token in
/// the Basic header is revoked or expired. Stytch answers `unauthorized_credentials`, as for
/// any wrong password; the official SDKs end the session on it (stytch-android
/// `UNRECOVERABLE_ERRORS`), so it counts as the session gone.
pub(super) fn session_refused(error: Error) -> Error {
    match error {
        Error::Provider { error, description } if error == "unauthorized_credentials" => {
            Error::Provider {
                error: "session_not_found".into(),
                description: Some(format!(
                    "Stytch refused the session ({error}{}): it ended",
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                )),
            }
        }
        other => other,
    }
}

/// The error an answer outside 2xx carries.
pub(super) fn failure(value: &Value) -> Error {
    Error::Provider {
        error: value
            .get("error_type")
            .or_else(|| value.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("unknown_error")
            .to_string(),
        description: value
            .get("error_message")
            .or_else(|| value.get("error_description"))
            .and_then(Value::as_str)
            .map(String::from),
    }
}
