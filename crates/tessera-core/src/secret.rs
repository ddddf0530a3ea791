//! Values that must never be printed, logged or serialized by accident. `SecretString`'s
//! `Debug` is redacted and it has no `Serialize`; the only way to the text is the loudly
//! named `expose_secret()`. Its memory is wiped when it is dropped, so a freed secret does not
//! linger on the heap; copies made with `expose_secret().to_string()` escape that, so make
//! none.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string: a token, a client secret or a private key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret itself. Call it only where the value leaves for its one rightful place
    /// (a request to the provider, the keychain, the clipboard, or stdout when asked for).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretString::new("rt-very-secret");
        assert_eq!(format!("{s:?}"), "SecretString([redacted])");
        assert!(!format!("{:?}", Some(&s)).contains("very-secret"));
    }
}
