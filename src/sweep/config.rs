//! The `[sweep]` section, and the products reseat manages.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::atlassian::{GroupId, ProductKey};
use crate::config::ConfigError;

/// Whether a sweep changes anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Record what would happen, change nothing (the default for a new install).
    #[default]
    DryRun,
    /// Warn and remove for real.
    Live,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// `dry-run` (default) or `live`.
    pub mode: Mode,
    /// The products reseat manages, by product key (`jira-software`, `jira-service-desk`,
    /// `confluence`). A product not listed here is never swept nor restored.
    pub products: BTreeMap<String, ProductPolicy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductPolicy {
    /// A user with no activity in this product for this long is inactive.
    #[serde(with = "crate::config::duration")]
    pub inactive_after: Duration,
    /// The groups (ids) granting this product on the site. Jira products read them from the
    /// application role when empty; Confluence needs them here.
    pub access_groups: Vec<GroupId>,
}

impl Default for ProductPolicy {
    fn default() -> Self {
        ProductPolicy {
            inactive_after: Duration::from_secs(90 * 86_400),
            access_groups: Vec::new(),
        }
    }
}

impl SweepConfig {
    /// The policy of a product, if reseat manages it.
    pub fn product(&self, product: &ProductKey) -> Option<&ProductPolicy> {
        self.products
            .iter()
            .find(|(key, _)| ProductKey::parse(key).is_ok_and(|k| &k == product))
            .map(|(_, policy)| policy)
    }

    /// The managed products, parsed.
    pub fn product_keys(&self) -> Vec<ProductKey> {
        self.products
            .keys()
            .filter_map(|key| ProductKey::parse(key).ok())
            .collect()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = Vec::new();
        for (key, policy) in &self.products {
            let place = format!("sweep.products.{key}");
            let product =
                ProductKey::parse(key).map_err(|e| ConfigError::key(&place, e.to_string()))?;
            if seen.contains(&product) {
                return Err(ConfigError::key(
                    &place,
                    format!("{} is configured twice", product.as_str()),
                ));
            }
            if policy.inactive_after < Duration::from_secs(86_400) {
                return Err(ConfigError::key(
                    format!("{place}.inactive_after"),
                    "must be at least 1d",
                ));
            }
            seen.push(product);
        }
        Ok(())
    }
}
