//! The `[atlassian]` section of the configuration file.

use serde::{Deserialize, Serialize};

use crate::config::Secret;
use std::time::Duration;
use url::Url;

/// How reseat reaches one Atlassian organization and one site.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlassianConfig {
    /// The organization id: the UUID in `admin.atlassian.com/o/<org id>/...`.
    #[serde(default)]
    pub org_id: Option<String>,
    /// The site's cloud id, used to tell this site's activity from other sites' in
    /// `product_access` entries (`ari:cloud:<product>::site/<cloud id>`).
    #[serde(default)]
    pub cloud_id: Option<String>,
    /// The site name, `acme` for `https://acme.atlassian.net`; also the suffix of the
    /// admin CSV export columns (`Jira - acme`).
    #[serde(default)]
    pub site_name: Option<String>,
    /// Base URL of the Organizations admin API (paths `/admin/v1/...` are appended).
    #[serde(default = "default_admin_base_url", deserialize_with = "url_field")]
    pub admin_base_url: Url,
    /// Base URL of the site APIs (Jira, Confluence under `/wiki`, JSM). Defaults to
    /// `https://<site_name>.atlassian.net`.
    #[serde(default, deserialize_with = "optional_url_field")]
    pub site_base_url: Option<Url>,
    /// Organization admin API key, sent as `Authorization: Bearer`. May be given as
    /// `admin_api_key_file = "path"` instead.
    #[serde(default)]
    pub admin_api_key: Option<Secret>,
    /// Email of the site admin whose API token calls the site APIs (HTTP Basic user).
    #[serde(default)]
    pub site_email: Option<String>,
    /// API token (from id.atlassian.com) of `site_email`, the HTTP Basic password. May be
    /// given as `site_api_token_file = "path"` instead.
    #[serde(default)]
    pub site_api_token: Option<Secret>,
    /// Client-side limits for the Organizations admin API.
    #[serde(default = "FamilyLimits::admin_default")]
    pub admin: FamilyLimits,
    /// Client-side limits for the Jira platform API.
    #[serde(default = "FamilyLimits::site_default")]
    pub jira: FamilyLimits,
    /// Client-side limits for the Confluence API.
    #[serde(default = "FamilyLimits::site_default")]
    pub confluence: FamilyLimits,
    /// Client-side limits for the Jira Service Management API.
    #[serde(default = "FamilyLimits::jsm_default")]
    pub jsm: FamilyLimits,
    /// Retry, backoff and timeout policy shared by every API family.
    #[serde(default)]
    pub retry: RetrySettings,
    /// How the sweep reads the org's users and their activity from the admin API:
    /// `"directory"` (default) pages through the user search of the v2 directory API, which
    /// covers managed and unmanaged accounts with their last activity per product and site
    /// and their `addedToOrg`, so one call settles a page of users; `"managed"` pages through
    /// the v1 managed-accounts listing and asks `last-active-dates` once per account it
    /// leaves unsettled (unmanaged accounts, never-accessed products). `"directory"` needs
    /// `cloud_id` (its entries name the site only by ARI) and falls back to `"managed"`
    /// without one, or when the API key cannot use the v2 API (403/404).
    #[serde(default)]
    pub user_listing: UserListing,
    /// The directory whose users the `"directory"` listing reads; `"-"` (default) means every
    /// directory the API key administers.
    #[serde(default = "default_directory_id")]
    pub directory_id: String,
}

/// Which admin API listing the sweep reads activity from (see
/// [`AtlassianConfig::user_listing`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserListing {
    /// `POST /admin/v2/orgs/{orgId}/directories/{directoryId}/users/search`.
    #[default]
    Directory,
    /// `GET /admin/v1/orgs/{orgId}/users` plus per-user `last-active-dates`.
    Managed,
}

/// A site as reseat keys it: `acme` for `acme`, `acme.atlassian.net`,
/// `https://acme.atlassian.net/` alike (lower-cased). Other text is kept, trimmed.
pub fn site_key(text: &str) -> String {
    let text = text.trim().to_ascii_lowercase();
    let text = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(&text);
    let text = text.trim_end_matches('/');
    text.strip_suffix(".atlassian.net")
        .unwrap_or(text)
        .to_owned()
}

fn default_directory_id() -> String {
    "-".to_owned()
}

fn parse_base_url<E: serde::de::Error>(text: &str) -> Result<Url, E> {
    let url = Url::parse(text.trim()).map_err(|e| {
        E::custom(format!(
            "expected a URL like \"https://acme.atlassian.net\": {e}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(E::custom(format!(
            "expected an http(s) base URL, got {text:?}"
        )));
    }
    Ok(url)
}

fn url_field<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    parse_base_url(&String::deserialize(deserializer)?)
}

fn optional_url_field<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Url>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| parse_base_url(&text))
        .transpose()
}

fn default_admin_base_url() -> Url {
    Url::parse("https://api.atlassian.com").expect("constant URL parses")
}

impl Default for AtlassianConfig {
    fn default() -> Self {
        Self {
            org_id: None,
            cloud_id: None,
            site_name: None,
            admin_base_url: default_admin_base_url(),
            site_base_url: None,
            admin_api_key: None,
            site_email: None,
            site_api_token: None,
            admin: FamilyLimits::admin_default(),
            jira: FamilyLimits::site_default(),
            confluence: FamilyLimits::site_default(),
            jsm: FamilyLimits::jsm_default(),
            retry: RetrySettings::default(),
            user_listing: UserListing::default(),
            directory_id: default_directory_id(),
        }
    }
}

impl AtlassianConfig {
    /// The site base URL: `site_base_url`, else `https://<site_name>.atlassian.net`.
    pub fn site_url(&self) -> Option<Url> {
        if let Some(url) = &self.site_base_url {
            return Some(url.clone());
        }
        let name = self.site_name.as_deref()?.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return None;
        }
        Url::parse(&format!("https://{name}.atlassian.net")).ok()
    }
}

/// Client-side politeness for one API family: a request-rate limit and a bound on requests in
/// flight. Atlassian does not publish most limits; these stay under the observed ones.
///
/// A section that sets only one of the fields takes the other from the site defaults.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FamilyLimits {
    /// Requests this client starts in any one second at most, nearly evenly spaced (a burst
    /// of 2% of the rate, taken from the sustained rate, so no second sees more). At least
    /// 1; the upstream limit itself is safe from 100/s up.
    pub requests_per_second: u32,
    /// Requests in flight at once. At least 1.
    pub concurrency: u32,
}

impl Default for FamilyLimits {
    fn default() -> Self {
        Self::site_default()
    }
}

impl FamilyLimits {
    /// Admin API: `last-active-dates` has been observed limited to ~200/min per org.
    pub fn admin_default() -> Self {
        Self {
            requests_per_second: 3,
            concurrency: 2,
        }
    }

    /// Jira and Confluence with API-token auth stay on burst limits.
    pub fn site_default() -> Self {
        Self {
            requests_per_second: 10,
            concurrency: 4,
        }
    }

    /// JSM calls are few (one per restore request).
    pub fn jsm_default() -> Self {
        Self {
            requests_per_second: 5,
            concurrency: 2,
        }
    }
}

/// One retry policy for every API family.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts per call, the first included. 1 disables retries.
    pub max_attempts: u32,
    /// First backoff delay after a failure; doubles each attempt, with jitter.
    #[serde(with = "crate::config::duration")]
    pub base_delay: Duration,
    /// Upper bound of one backoff delay.
    #[serde(with = "crate::config::duration")]
    pub max_delay: Duration,
    /// Longest `Retry-After` / `X-RateLimit-Reset` wait honoured inside one call; a longer
    /// one ends the call with a rate-limited error so the caller can reschedule.
    #[serde(with = "crate::config::duration")]
    pub max_retry_wait: Duration,
    /// Timeout of one HTTP attempt (connect, send and read the whole body).
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod site_key_tests {
    #[test]
    fn a_site_is_the_same_under_every_spelling() {
        for spelling in [
            "acme",
            "ACME",
            "acme.atlassian.net",
            "https://acme.atlassian.net/",
        ] {
            assert_eq!(super::site_key(spelling), "acme", "{spelling}");
        }
        assert_eq!(super::site_key(" a1b2-c3 "), "a1b2-c3");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_section_gets_sensible_defaults() {
        let config: AtlassianConfig = toml::from_str(
            r#"
            org_id = "0f1e2d3c"
            site_name = "acme"
            admin_api_key = "key-123"
            site_email = "admin@acme.test"
            site_api_token = "token-456"
            [retry]
            base_delay = "250ms"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.site_url().unwrap().as_str(),
            "https://acme.atlassian.net/"
        );
        assert_eq!(config.admin_base_url.as_str(), "https://api.atlassian.com/");
        assert_eq!(config.retry.base_delay, Duration::from_millis(250));
        assert_eq!(config.retry.max_attempts, 5);
        assert_eq!(config.jira, FamilyLimits::site_default());
        assert_eq!(config.admin_api_key.unwrap().expose(), "key-123");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<AtlassianConfig>("site = \"acme\"").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
        let error = toml::from_str::<AtlassianConfig>("[jira]\nrps = 3").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let config: AtlassianConfig =
            toml::from_str("admin_api_key = \"sekrit-key\"\nsite_api_token = \"sekrit-token\"")
                .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
    }
}
