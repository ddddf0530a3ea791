//! Stack Auth's errors: known errors (`{code, error}`, also named by the
//! `x-stack-known-error` header) become [`Error::Provider`] with that code and a hint for the
//! person; which of them mean the session is gone.

use serde::Deserialize;

use crate::error::Error;
use crate::http::Response;

/// Whether Stack said the refresh token no longer works.
pub(super) fn grant_is_gone(error: &Error) -> bool {
    matches!(
        error.oauth_error(),
        Some("REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED" | "invalid_grant")
    )
}

/// Turns an error answer into Stack's known error (`{code, error}`, also named by the
/// `x-stack-known-error` header), else an OAuth error or the bare status.
pub(super) fn failure(url: &str, response: &Response) -> Error {
    #[derive(Deserialize)]
    struct KnownError {
        code: String,
        /// Stack's own field; some documentation calls it `message`.
        #[serde(alias = "message")]
        error: Option<String>,
    }
    let known = response
        .headers
        .get("x-stack-known-error")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    match (known, serde_json::from_slice::<KnownError>(&response.body)) {
        (_, Ok(e)) => {
            let said = e.error.unwrap_or_default();
            Error::Provider {
                description: Some(match explain(&e.code) {
                    Some(hint) if said.is_empty() => hint.to_string(),
                    Some(hint) => format!("{said} {hint}"),
                    None => said,
                })
                .filter(|d| !d.is_empty()),
                error: e.code,
            }
        }
        (Some(code), Err(_)) => Error::Provider {
            error: code,
            description: None,
        },
        (None, Err(_)) => crate::http::oauth_error_or_status(url, response),
    }
}

fn explain(code: &str) -> Option<&'static str> {
    Some(match code {
        "MULTI_FACTOR_AUTHENTICATION_REQUIRED" => {
            "This account needs a one-time code from an authenticator app, which Tessera cannot ask for yet; sign in by e-mail code or OAuth instead."
        }
        "EMAIL_PASSWORD_MISMATCH" => "Check the e-mail address and password.",
        "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED" => "The session ended; sign in again.",
        "INVALID_PUBLISHABLE_CLIENT_KEY" | "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT" => {
            "Check the provider's publishable client key."
        }
        "OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED" => {
            "Pick an OAuth provider the Stack Auth project has enabled."
        }
        "REDIRECT_URL_NOT_WHITELISTED" => {
            "Stack Auth returns only to loopback addresses and the project's trusted domains."
        }
        _ => return None,
    })
}
