//! Authenticating the webhook channels.
//!
//! - Static secrets (JSM and Automation, which cannot sign): compared in constant time, over
//!   SHA-256 digests so that not even the length leaks.
//! - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`,
//!   several space-separated signatures accepted (rotation), `webhook-timestamp` within the
//!   tolerance, verified on the raw body before it is parsed.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Whether `presented` equals `expected`, in constant time.
pub fn static_secret_matches(presented: &[u8], expected: &Secret) -> bool {
    let a = Sha256::digest(presented);
    let b = Sha256::digest(expected.expose().as_bytes());
    a.ct_eq(&b).into()
}

/// Why a Standard Webhooks delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the tolerance")]
    StaleTimestamp,
    #[error("no valid v1 signature")]
    NoValidSignature,
}

/// The HMAC key of a `whsec_<base64>` secret (a secret without the prefix is used as is).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD
            .decode(encoded)
            .map_err(|_| "expected whsec_ followed by base64".to_string()),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// The `v1,<base64>` signature of a delivery (what a sender puts in `webhook-signature`).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = decode_secret(secret)?;
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Verifies a delivery against every configured secret.
pub fn verify(
    secrets: &[Secret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let id = id.ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let timestamp = timestamp.ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if (now_secs - seconds).abs() > tolerance {
        return Err(SignatureError::StaleTimestamp);
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .collect();
    for secret in secrets {
        let Ok(key) = decode_secret(secret.expose()) else {
            continue;
        };
        for candidate in &candidates {
            let Ok(mut mac) = HmacSha256::new_from_slice(&key) else {
                continue;
            };
            mac.update(format!("{id}.{seconds}.").as_bytes());
            mac.update(body);
            if mac.verify_slice(candidate).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoValidSignature)
}

/// Verifies a request from Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256 of
/// v0:{timestamp}:{body}>` under the signing secret, `X-Slack-Request-Timestamp` within the
/// tolerance, on the raw body before it is parsed.
pub fn verify_slack(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::MissingHeader("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::MissingHeader("X-Slack-Signature"))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if (now_secs - seconds).abs() > tolerance {
        return Err(SignatureError::StaleTimestamp);
    }
    let candidate = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(decode_hex)
        .ok_or(SignatureError::NoValidSignature)?;
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| SignatureError::NoValidSignature)?;
    mac.update(format!("v0:{seconds}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&candidate)
        .map_err(|_| SignatureError::NoValidSignature)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OLD: &str = "whsec_b2xkIHNlY3JldCBrZXkgZm9yIHJvdGF0aW9u";

    fn secrets() -> Vec<Secret> {
        vec![Secret::new(SECRET), Secret::new(OLD)]
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's examples.
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn accepts_a_valid_signature_among_several() {
        let body = b"{}";
        let good = sign(OLD, "id1", 1000, body).unwrap();
        let header = format!("v1,Zm9yZ2Vk {good} v2,ignored");
        assert_eq!(
            verify(
                &secrets(),
                Some("id1"),
                Some("1000"),
                Some(&header),
                body,
                1010,
                Duration::from_secs(300)
            ),
            Ok(())
        );
    }

    #[test]
    fn refuses_tampering_staleness_and_missing_parts() {
        let body = b"{\"accountId\":\"a\"}";
        let good = sign(SECRET, "id1", 1000, body).unwrap();
        let tol = Duration::from_secs(300);
        let s = secrets();
        assert_eq!(
            verify(
                &s,
                Some("id1"),
                Some("1000"),
                Some(&good),
                b"{\"accountId\":\"b\"}",
                1000,
                tol
            ),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            verify(&s, Some("id2"), Some("1000"), Some(&good), body, 1000, tol),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            verify(&s, Some("id1"), Some("1000"), Some(&good), body, 1301, tol),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify(&s, Some("id1"), Some("1000"), Some(&good), body, 699, tol),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify(&s, Some("id1"), Some("soon"), Some(&good), body, 1000, tol),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(&s, None, Some("1000"), Some(&good), body, 1000, tol),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            verify(&s, Some("id1"), Some("1000"), None, body, 1000, tol),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
        assert_eq!(
            verify(
                &[Secret::new("whsec_b3RoZXI=")],
                Some("id1"),
                Some("1000"),
                Some(&good),
                body,
                1000,
                tol
            ),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn slack_signatures_verify_on_the_raw_body_within_the_window() {
        let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
        let body = b"token=x&user_id=U1&text=restore+jira";
        let good = reseat_sim::slack::sign(secret.expose(), 1000, body);
        let tol = Duration::from_secs(300);
        let check = |ts: &str, sig: &str, body: &[u8], now| {
            verify_slack(&secret, Some(ts), Some(sig), body, now, tol)
        };
        assert_eq!(check("1000", &good, body, 1100), Ok(()));
        assert_eq!(
            check("1000", &good, b"token=x&user_id=U2&text=restore+jira", 1000),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            check("1001", &good, body, 1000),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            check("1000", &good, body, 1301),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            check("1000", "v0=zz", body, 1000),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            check("1000", &good.replace("v0=", "v1="), body, 1000),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            verify_slack(&secret, None, Some(&good), body, 1000, tol),
            Err(SignatureError::MissingHeader("X-Slack-Request-Timestamp"))
        );
    }

    #[test]
    fn static_secrets_compare_exactly() {
        let secret = Secret::new("s3cret-token");
        assert!(static_secret_matches(b"s3cret-token", &secret));
        assert!(!static_secret_matches(b"s3cret-toke", &secret));
        assert!(!static_secret_matches(b"", &secret));
    }
}
