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
