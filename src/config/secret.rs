//! A secret value from configuration: an API key, a token, a password, a signing key.
//! `Debug` and `Serialize` never show it, so it cannot reach a log or `config check`.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// What a secret looks like wherever it is printed.
pub const REDACTED: &str = "[redacted]";

#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(SecretString::from(value.into()))
    }

    /// The secret itself; call only where it is used (an auth header, a MAC key).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

thread_local! {
    /// Set only inside [`exposed`].
    static EXPOSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with secrets serialized as themselves: for building one configuration from
/// another in memory (each site's from the org's), never for anything printed or stored.
pub(crate) fn exposed<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSE.with(|e| e.set(false));
        }
    }
    EXPOSE.with(|e| e.set(true));
    let _reset = Reset;
    f()
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if EXPOSE.with(std::cell::Cell::get) {
            serializer.serialize_str(self.expose())
        } else {
            serializer.serialize_str(REDACTED)
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.trim().is_empty() {
            return Err(D::Error::custom("the secret is empty"));
        }
        Ok(Secret::new(value))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(secret.expose(), "hunter2");
    }
}
