//! Signed links: `/restore/{token}` and `/keep/{token}` in emails and from `reseat link`.
//!
//! A token is `v1.<key id>.<claims>.<signature>`: the claims (a random token id, purpose,
//! account, product, site, expiry) as base64url JSON, and an HMAC-SHA256 over everything
//! before the last dot, with the key named by the key id. The key ring comes from `[links]`:
//! one key signs, retired keys still verify, so rotating keys does not break links already
//! sent. [`LinkSigner::verify`] is pure and compares the signature in constant time; the
//! token id is recorded when the link is issued and [`LinkSigner::consume`] marks it used
//! with one conditional `UPDATE`, so a link works once even when two clicks race.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::{Any, AnyConnection};

use super::config::LinkConfig;
use crate::store::Clock;
use crate::store::time::to_ms;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
/// Longer tokens are rejected before any work is done on them.
const MAX_TOKEN_LEN: usize = 1_024;
/// Longest account id, product key or site a token carries.
const MAX_CLAIM_LEN: usize = 200;

/// What a link does when followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Give back access that reseat removed.
    Restore,
    /// Keep access that a warning said would be removed.
    Keep,
    /// Decide one pending restore request (the Approve and Deny buttons of an approval
    /// card); only a signed-in admin who may decide can use it.
    Decide,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Restore => "restore",
            Purpose::Keep => "keep",
            Purpose::Decide => "decide",
        }
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Purpose {
    type Err = String;

    fn from_str(text: &str) -> Result<Purpose, String> {
        match text {
            "restore" => Ok(Purpose::Restore),
            "keep" => Ok(Purpose::Keep),
            "decide" => Ok(Purpose::Decide),
            other => Err(format!("expected restore, keep or decide, got {other:?}")),
        }
    }
}

/// What a valid token says. The token id is the idempotency key of whatever the link does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    #[serde(rename = "t")]
    pub token_id: String,
    #[serde(rename = "p")]
    pub purpose: Purpose,
    #[serde(rename = "a")]
    pub account_id: String,
    #[serde(rename = "r")]
    pub product: String,
    #[serde(rename = "s")]
    pub site: String,
    /// UTC milliseconds; the link stops working at this instant.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// A decision link: the restore request it decides (signed, so a link for one request
    /// cannot decide another).
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// A decision link: `approve` or `deny`.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The key that signed the token (not part of the signed claims; it selects the key).
    #[serde(skip)]
    pub key_id: String,
}

/// Why a token was refused. Logged and audited; the user only learns that the link is not
/// valid any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TokenRejection {
    /// Not a token of this form: truncated, extra parts, bad encoding, too long.
    #[error("malformed")]
    Malformed,
    /// Signed with a key id that is not in the key ring (removed, or never ours).
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not match: the token was altered or forged.
    #[error("bad signature")]
    BadSignature,
    /// A keep token used to restore, or the reverse.
    #[error("wrong purpose")]
    WrongPurpose,
    #[error("expired")]
    Expired,
    /// Correctly signed but never recorded as issued (or recorded for something else).
    #[error("unknown token")]
    Unknown,
    /// The link was already used once.
    #[error("already used")]
    AlreadyUsed,
    /// Correctly signed, but for another site than the one this service manages.
    #[error("wrong site")]
    WrongSite,
}

impl TokenRejection {
    /// A stable name for logs and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "malformed",
            TokenRejection::UnknownKey => "unknown_key",
            TokenRejection::BadSignature => "bad_signature",
            TokenRejection::WrongPurpose => "wrong_purpose",
            TokenRejection::Expired => "expired",
            TokenRejection::Unknown => "unknown",
            TokenRejection::AlreadyUsed => "already_used",
            TokenRejection::WrongSite => "wrong_site",
        }
    }
}

/// Failures of issuing or consuming a link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("link rejected: {0}")]
    Rejected(#[from] TokenRejection),
    #[error("links: no signing key; set links.signing_key and links.keys in the configuration")]
    NoSigningKey,
    #[error("links: invalid {0}: expected 1-200 printable characters")]
    InvalidClaim(&'static str),
    #[error("links: database: {0}")]
    Store(#[from] sqlx::Error),
}

/// A link just issued. `Debug` hides the token and URL: they are bearer credentials.
#[derive(Clone)]
pub struct IssuedLink {
    pub token: String,
    pub url: String,
    pub claims: TokenClaims,
}

impl std::fmt::Debug for IssuedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLink")
            .field("token", &crate::config::REDACTED)
            .field("claims", &self.claims)
            .finish()
    }
}

/// The signing keys: at most one signs, every key verifies.
#[derive(Clone, Default)]
pub struct KeyRing {
    signing: Option<String>,
    keys: HashMap<String, HmacSha256>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing")
            .field("signing", &self.signing)
            .field("keys", &ids)
            .finish()
    }
}

impl KeyRing {
    /// An empty ring: verifies nothing, signs nothing.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Adds a key that verifies only.
    pub fn with_verify_key(mut self, id: &str, secret: &[u8]) -> KeyRing {
        // HMAC accepts keys of any length; the configuration enforces a minimum.
        if let Ok(mac) = HmacSha256::new_from_slice(secret) {
            self.keys.insert(id.to_string(), mac);
        }
        self
    }

    /// Adds a key and makes it the one that signs new tokens.
    pub fn with_signing_key(self, id: &str, secret: &[u8]) -> KeyRing {
        let mut ring = self.with_verify_key(id, secret);
        ring.signing = Some(id.to_string());
        ring
    }

    /// The ring from a validated `[links]` section.
    pub fn from_config(links: &LinkConfig) -> KeyRing {
        let mut ring = KeyRing::new();
        for (id, secret) in &links.keys {
            ring = ring.with_verify_key(id, secret.expose().as_bytes());
        }
        ring.signing = links
            .signing_key
            .clone()
            .filter(|id| ring.keys.contains_key(id));
        ring
    }

    pub fn signing_key_id(&self) -> Option<&str> {
        self.signing.as_deref()
    }
}

/// Issues, verifies and consumes link tokens.
#[derive(Clone, Debug)]
pub struct LinkSigner {
    ring: Arc<KeyRing>,
    base_url: Arc<str>,
    restore_ttl: std::time::Duration,
    keep_ttl: std::time::Duration,
    /// Stamps `issued_at` on the links it records.
    clock: Clock,
}

impl LinkSigner {
    /// `base_url` is where users reach reseat (`Config::public_url()`).
    pub fn new(ring: KeyRing, base_url: &str) -> LinkSigner {
        let defaults = LinkConfig::default();
        LinkSigner {
            ring: Arc::new(ring),
            base_url: base_url.trim_end_matches('/').into(),
            restore_ttl: defaults.restore_ttl,
            keep_ttl: defaults.keep_ttl,
            clock: Clock::system(),
        }
    }

    /// The same signer, recording issue times from `clock` (the app's).
    pub fn with_clock(self, clock: Clock) -> LinkSigner {
        LinkSigner { clock, ..self }
    }

    pub fn from_config(links: &LinkConfig, base_url: &str) -> LinkSigner {
        LinkSigner {
            restore_ttl: links.restore_ttl,
            keep_ttl: links.keep_ttl,
            ..LinkSigner::new(KeyRing::from_config(links), base_url)
        }
    }

    /// When a link issued now for `purpose` should expire by default (`links.restore_ttl`,
    /// `links.keep_ttl`); callers with a removal date pass that for keep links instead.
    pub fn default_expiry(&self, purpose: Purpose, now: DateTime<Utc>) -> DateTime<Utc> {
        let ttl = match purpose {
            Purpose::Restore => self.restore_ttl,
            Purpose::Keep => self.keep_ttl,
            Purpose::Decide => self.restore_ttl,
        };
        now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30))
    }

    /// Whether a key signs new links.
    pub fn can_sign(&self) -> bool {
        self.ring.signing.is_some()
    }

    /// The full URL for a token.
    pub fn url(&self, purpose: Purpose, token: &str) -> String {
        format!("{}/{}/{}", self.base_url, purpose.as_str(), token)
    }

    /// Signs claims into a token with the signing key (pure; records nothing). The claims'
    /// `key_id` is ignored: the current signing key signs.
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, LinkError> {
        let key_id = self
            .ring
            .signing
            .as_deref()
            .ok_or(LinkError::NoSigningKey)?;
        let mac = self.ring.keys.get(key_id).ok_or(LinkError::NoSigningKey)?;
        let payload = serde_json::to_vec(claims).map_err(|_| LinkError::InvalidClaim("claims"))?;
        let mut token = String::with_capacity(64 + payload.len() * 4 / 3);
        token.push_str(VERSION);
        token.push('.');
        token.push_str(key_id);
        token.push('.');
        B64.encode_string(&payload, &mut token);
        let mut mac = mac.clone();
        mac.update(token.as_bytes());
        let signature = mac.finalize().into_bytes();
        token.push('.');
        B64.encode_string(signature, &mut token);
        Ok(token)
    }

    /// Creates a token for one account and product, records its id (inside the caller's
    /// transaction, so a link exists only if the email carrying it does), and returns it
    /// with its URL.
    #[tracing::instrument(skip_all, fields(purpose = %purpose, account_id = account_id, product = product))]
    pub async fn issue(
        &self,
        conn: &mut AnyConnection,
        purpose: Purpose,
        account_id: &str,
        product: &str,
        site: &str,
        expires: DateTime<Utc>,
    ) -> Result<IssuedLink, LinkError> {
        self.issue_with(conn, purpose, account_id, product, site, expires, None)
            .await
    }

    /// Issues a decision link for one restore request (`approve` or `deny`): the request id
    /// and the decision are signed into the token, so it decides that request only.
    #[tracing::instrument(skip_all, fields(request_id = request_id, decision = decision))]
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_decision(
        &self,
        conn: &mut AnyConnection,
        request_id: &str,
        decision: &str,
        account_id: &str,
        product: &str,
        site: &str,
        expires: DateTime<Utc>,
    ) -> Result<IssuedLink, LinkError> {
        for (name, value) in [("request id", request_id), ("decision", decision)] {
            if value.is_empty()
                || value.len() > MAX_CLAIM_LEN
                || value.chars().any(char::is_control)
            {
                return Err(LinkError::InvalidClaim(name));
            }
        }
        self.issue_with(
            conn,
            Purpose::Decide,
            account_id,
            product,
            site,
            expires,
            Some((request_id.to_string(), decision.to_string())),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_with(
        &self,
        conn: &mut AnyConnection,
        purpose: Purpose,
        account_id: &str,
        product: &str,
        site: &str,
        expires: DateTime<Utc>,
        decide: Option<(String, String)>,
    ) -> Result<IssuedLink, LinkError> {
        for (name, value) in [
            ("account id", account_id),
            ("product", product),
            ("site", site),
        ] {
            if value.is_empty()
                || value.len() > MAX_CLAIM_LEN
                || value.chars().any(char::is_control)
            {
                return Err(LinkError::InvalidClaim(name));
            }
        }
        let key_id = self.ring.signing.clone().ok_or(LinkError::NoSigningKey)?;
        let claims = TokenClaims {
            token_id: new_token_id(),
            purpose,
            account_id: account_id.to_string(),
            product: product.to_string(),
            // `acme` and `acme.atlassian.net` are one site: the token carries the form the
            // service compares.
            site: crate::atlassian::site_key(site),
            expires_at: to_ms(expires),
            request_id: decide.as_ref().map(|(id, _)| id.clone()),
            decision: decide.map(|(_, decision)| decision),
            key_id: key_id.clone(),
        };
        let token = self.sign(&claims)?;
        sqlx::query::<Any>(
            "INSERT INTO link_tokens (token_id, purpose, account_id, product, site, key_id, \
             issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&claims.token_id)
        .bind(purpose.as_str())
        .bind(&claims.account_id)
        .bind(&claims.product)
        .bind(&claims.site)
        .bind(&key_id)
        .bind(self.clock.now_ms())
        .bind(claims.expires_at)
        .execute(&mut *conn)
        .await?;
        let url = self.url(purpose, &token);
        Ok(IssuedLink { token, url, claims })
    }

    /// Checks a token's form, key, signature (in constant time), purpose and expiry.
    /// Pure: it does not know whether the token was used; see [`LinkSigner::consume`].
    pub fn verify(
        &self,
        token: &str,
        expected: Purpose,
        now: DateTime<Utc>,
    ) -> Result<TokenClaims, TokenRejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenRejection::Malformed);
        }
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenRejection::Malformed)?;
        let mut parts = signed.split('.');
        let (Some(version), Some(key_id), Some(payload), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenRejection::Malformed);
        };
        if version != VERSION {
            return Err(TokenRejection::Malformed);
        }
        let mac = self
            .ring
            .keys
            .get(key_id)
            .ok_or(TokenRejection::UnknownKey)?;
        let signature = B64
            .decode(signature)
            .map_err(|_| TokenRejection::Malformed)?;
        let mut mac = mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenRejection::BadSignature)?;
        // Only signed bytes are parsed.
        let payload = B64.decode(payload).map_err(|_| TokenRejection::Malformed)?;
        let mut claims: TokenClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenRejection::Malformed)?;
        claims.key_id = key_id.to_string();
        if claims.purpose != expected {
            return Err(TokenRejection::WrongPurpose);
        }
        if to_ms(now) >= claims.expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(claims)
    }

    /// Whether verified claims name a token that was issued and not used yet, without using
    /// it (for the confirmation page a `GET` shows: mail scanners must not consume links).
    pub async fn check(
        &self,
        conn: &mut AnyConnection,
        claims: &TokenClaims,
    ) -> Result<(), LinkError> {
        match self.stored_state(conn, claims).await? {
            StoredState::Unused => Ok(()),
            StoredState::Used => Err(TokenRejection::AlreadyUsed.into()),
            StoredState::Missing => Err(TokenRejection::Unknown.into()),
        }
    }

    /// Marks the token used, atomically: of two concurrent calls exactly one succeeds and
    /// the other gets [`TokenRejection::AlreadyUsed`]. Run it in the transaction that records
    /// what the link does, so that both happen or neither.
    #[tracing::instrument(skip_all, fields(purpose = %claims.purpose, account_id = %claims.account_id))]
    pub async fn consume(
        &self,
        conn: &mut AnyConnection,
        claims: &TokenClaims,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let result = sqlx::query::<Any>(
            "UPDATE link_tokens SET used_at = $1 WHERE token_id = $2 AND used_at IS NULL \
             AND purpose = $3 AND account_id = $4 AND product = $5 AND site = $6",
        )
        .bind(to_ms(now))
        .bind(&claims.token_id)
        .bind(claims.purpose.as_str())
        .bind(&claims.account_id)
        .bind(&claims.product)
        .bind(&claims.site)
        .execute(&mut *conn)
        .await?;
        if result.rows_affected() == 1 {
            return Ok(());
        }
        match self.stored_state(conn, claims).await? {
            StoredState::Used => Err(TokenRejection::AlreadyUsed.into()),
            // Unused here means the row names something else than the claims.
            StoredState::Missing | StoredState::Unused => Err(TokenRejection::Unknown.into()),
        }
    }

    async fn stored_state(
        &self,
        conn: &mut AnyConnection,
        claims: &TokenClaims,
    ) -> Result<StoredState, sqlx::Error> {
        let row: Option<(Option<i64>,)> = sqlx::query_as::<Any, (Option<i64>,)>(
            "SELECT used_at FROM link_tokens WHERE token_id = $1 AND purpose = $2 \
             AND account_id = $3 AND product = $4 AND site = $5",
        )
        .bind(&claims.token_id)
        .bind(claims.purpose.as_str())
        .bind(&claims.account_id)
        .bind(&claims.product)
        .bind(&claims.site)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match row {
            None => StoredState::Missing,
            Some((None,)) => StoredState::Unused,
            Some((Some(_),)) => StoredState::Used,
        })
    }
}

enum StoredState {
    Missing,
    Unused,
    Used,
}

/// 128 random bits, base64url: unguessable, and short enough for a URL.
fn new_token_id() -> String {
    let bytes: [u8; 16] = rand::random();
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> LinkSigner {
        LinkSigner::new(
            KeyRing::new().with_signing_key("k1", &[7u8; 32]),
            "https://reseat.example.com/",
        )
    }

    fn claims(purpose: Purpose, expires_at: i64) -> TokenClaims {
        TokenClaims {
            token_id: new_token_id(),
            purpose,
            account_id: "5b10ac8d82e05b22cc7d4ef5".into(),
            product: "jira-software".into(),
            site: "acme.atlassian.net".into(),
            expires_at,
            request_id: None,
            decision: None,
            key_id: String::new(),
        }
    }

    #[test]
    fn round_trip_and_url() {
        let signer = signer();
        let now = Utc::now();
        let claims = claims(Purpose::Restore, to_ms(now) + 60_000);
        let token = signer.sign(&claims).unwrap();
        let verified = signer.verify(&token, Purpose::Restore, now).unwrap();
        assert_eq!(verified.key_id, "k1");
        assert_eq!(
            TokenClaims {
                key_id: String::new(),
                ..verified
            },
            claims
        );
        assert!(
            signer
                .url(Purpose::Keep, &token)
                .starts_with("https://reseat.example.com/keep/v1.k1.")
        );
    }

    #[test]
    fn every_alteration_is_rejected() {
        let signer = signer();
        let now = Utc::now();
        let token = signer
            .sign(&claims(Purpose::Restore, to_ms(now) + 60_000))
            .unwrap();
        let verify = |t: &str| signer.verify(t, Purpose::Restore, now);
        // Truncated anywhere.
        for cut in 0..token.len() {
            assert!(verify(&token[..cut]).is_err(), "cut at {cut}");
        }
        // One character changed anywhere.
        for at in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            if altered != token {
                assert!(verify(&altered).is_err(), "changed at {at}");
            }
        }
        assert_eq!(verify(""), Err(TokenRejection::Malformed));
        assert_eq!(
            verify(&format!("{token}.x")),
            Err(TokenRejection::Malformed)
        );
        assert_eq!(verify(&"a".repeat(5_000)), Err(TokenRejection::Malformed));
    }
}
