//! Durations in configuration are human strings: `"90d"`, `"12h"`, `"5m"`, `"30s"`.
//!
//! Use as `#[serde(with = "crate::config::duration")]` on a `std::time::Duration` field, or
//! `crate::config::duration::option` on an `Option<Duration>`.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
use std::time::Duration;

/// Parses `"90d"`, `"12h"`, `"5m"`, `"30s"`, `"1h 30m"`, `"250ms"`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("expected a duration like \"90d\", got {text:?}"));
    }
    humantime::parse_duration(trimmed)
        .map_err(|_| format!("expected a duration like \"90d\", got {text:?}"))
}

/// Formats a duration the way it is written in configuration (`"90d"`, `"5m"`).
pub fn format(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(D::Error::custom)
}

pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// The same for `Option<Duration>` fields.
pub mod option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| parse(&text).map_err(D::Error::custom))
            .transpose()
    }

    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_admins_write() {
        assert_eq!(parse("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse(" 30s "), Ok(Duration::from_secs(30)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_words_with_the_expected_form() {
        let error = parse("ninety").unwrap_err();
        assert_eq!(error, "expected a duration like \"90d\", got \"ninety\"");
        assert!(parse("").is_err());
    }

    #[test]
    fn formats_back_to_the_written_form() {
        for text in ["90d", "12h", "5m", "30s", "250ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
