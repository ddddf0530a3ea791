//! The error the web view receives: the core's stable machine code plus its one-line message.
//! The UI switches on `code`, never on the message text. Messages never contain a secret
//! (the core guarantees that for its own errors; the shell adds none).

use serde::Serialize;
use ts_rs::TS;

/// A failed command, as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct IpcError {
    /// Stable snake_case code (`unknown_state`, `needs_sign_in`, `discovery_failed`, …).
    pub code: String,
    /// One line for the person at the keyboard.
    pub message: String,
}

impl IpcError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        IpcError {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

impl From<tessera_core::Error> for IpcError {
    fn from(e: tessera_core::Error) -> Self {
        IpcError::new(e.code(), e.to_string())
    }
}

impl std::fmt::Display for IpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

/// What every command returns.
pub type IpcResult<T> = Result<T, IpcError>;
