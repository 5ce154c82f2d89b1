//! The one type that holds a secret value in memory.
//!
//! `SecretValue` never prints its contents: `Debug` shows a mask, there is no `Display`, no
//! `Serialize`. Code that must send or encrypt a value calls [`SecretValue::expose`], which
//! makes every place that touches plaintext easy to find with grep. The bytes are zeroized on
//! drop (via `secrecy`).

use secrecy::{ExposeSecret, SecretString};

/// A secret value (an agent's environment variable value). Cloning copies the secret into a
/// new zeroize-on-drop allocation.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The plaintext. Call only where the value must leave memory: the encrypted manifest,
    /// the platform request body, the keyed fingerprint, or `show --reveal`.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    pub fn len(&self) -> usize {
        self.expose().len()
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretValue {}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretValue {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let v = SecretValue::new("canary-3b1f9e");
        assert!(!format!("{v:?}").contains("canary"));
        assert!(!format!("{:?}", vec![v.clone()]).contains("canary"));
        assert_eq!(v.expose(), "canary-3b1f9e");
    }
}
