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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// `dry-run` (default) or `live`.
    pub mode: Mode,
    /// When `serve` runs plan + apply, as a cron expression in UTC (`"0 3 * * 1-5"`: 03:00 on
    /// weekdays). None: only `reseat sweep` runs it. With several replicas, one runs it.
    pub schedule: Option<String>,
    /// How long one replica holds the scheduled sweep before another may take over (a
    /// replica that dies mid-run frees it after this).
    #[serde(with = "crate::config::duration")]
    pub schedule_lease: Duration,
    /// The products reseat manages, by product key (`jira-software`, `jira-service-desk`,
    /// `confluence`). A product not listed here is never swept nor restored.
    pub products: BTreeMap<String, ProductPolicy>,
    /// Extra time allowed for the documented up-to-24-hour lag of last-active data.
    #[serde(with = "crate::config::duration")]
    pub lag_margin: Duration,
    /// A never-accessed account is not inactive until this long after `Added to org`.
    #[serde(with = "crate::config::duration")]
    pub never_accessed_grace: Duration,
    /// `apply` re-checks activity before acting when the plan is at least this old: one pass
    /// over the admin users listing (plus a per-user lookup for accounts or products the
    /// listing has no date for). A younger plan is applied as planned (`"0s"`: always
    /// re-check).
    #[serde(with = "crate::config::duration")]
    pub recheck_after: Duration,
    /// After a removal, how long apply keeps reading the user's roles back (with backoff)
    /// while a billable role that reseat took away still shows: Atlassian's admin changes
    /// are eventually consistent. A role reseat cannot take (inferred, IdP-managed) ends the
    /// item `still_billed` at once.
    #[serde(with = "crate::config::duration")]
    pub verify_window: Duration,
    /// Accounts the sweep never touches.
    pub protect: ProtectConfig,
    /// Checks of the access groups run before every plan.
    pub governance: GovernanceConfig,
    /// The steps of the ladder: warn, remove, suspend.
    pub ladder: LadderConfig,
    /// Guards that abort a run before any change.
    pub limits: LimitsConfig,
    /// Reading the admin "Export users" CSV.
    pub csv: CsvConfig,
    /// The admin digest alerts when a product's used seats reach this share (percent) of its
    /// licence.
    pub licence_alert_percent: u8,
}

/// Who is exempt from every sweep, with the reason recorded in the plan. `app` and
/// `customer` accounts are always exempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtectConfig {
    /// Groups (names) whose members are never touched.
    pub groups: Vec<String>,
    /// Account ids never touched.
    pub accounts: Vec<String>,
    /// Emails never touched (compared case-insensitively).
    pub emails: Vec<String>,
    /// Groups (names) whose members are org or site admins.
    pub admin_groups: Vec<String>,
    /// Sweep org admins like everybody else (default false: they are exempt).
    pub include_org_admins: bool,
}

impl Default for ProtectConfig {
    fn default() -> Self {
        ProtectConfig {
            groups: Vec::new(),
            accounts: Vec::new(),
            emails: Vec::new(),
            admin_groups: vec!["org-admins".to_owned(), "site-admins".to_owned()],
            include_org_admins: false,
        }
    }
}

/// What the governance check refuses. Findings are always reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// Refuse to plan when a group grants more than one product (removing someone from it
    /// would take more than one product away). When false, members who hold a product only
    /// through such a group are exempt for that product, with the reason.
    pub block_on_multi_product_groups: bool,
    /// Refuse to plan when a managed product has no access group.
    pub block_on_missing_access_groups: bool,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            block_on_multi_product_groups: true,
            block_on_missing_access_groups: true,
        }
    }
}

/// The ladder `apply` runs; every step can be turned off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LadderConfig {
    /// Warn before removing (an email with a "keep my access" link).
    pub warn: bool,
    /// How long before removal the warning goes out; removal waits until a warning is at
    /// least this old.
    #[serde(with = "crate::config::duration")]
    pub warn_before: Duration,
    /// Remove product access (the user's memberships in the product's access groups).
    pub remove: bool,
    /// After removing, suspend the account org-wide (`suspend-access`) when the plan's
    /// removals left it with no managed product on the site. Off by default: suspension
    /// affects EVERY product on EVERY site of the organization, including products and sites
    /// reseat does not manage. Once per account (recorded in `sweep_suspensions`).
    pub suspend: bool,
    /// Remove accounts reseat suspended from the org directory this long after the
    /// suspension (checked at every live apply). `None` (default): never. Needs `suspend`.
    #[serde(with = "crate::config::duration::option")]
    pub delete_after: Option<Duration>,
}

impl Default for LadderConfig {
    fn default() -> Self {
        LadderConfig {
            warn: true,
            warn_before: Duration::from_secs(14 * 86_400),
            remove: true,
            suspend: false,
            delete_after: None,
        }
    }
}

/// Blast-radius and stale-data guards, checked before any change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// At most this many removals of one product per run.
    pub max_removals: u64,
    /// At most this share (percent) of a product's users removed per run.
    pub max_removal_percent: f64,
    /// Abort when more than this share (percent) of a product's evaluated users is inactive
    /// (a sign of stale or broken activity data).
    pub max_inactive_percent: f64,
    /// Abort when the newest activity in the whole plan is older than this.
    #[serde(with = "crate::config::duration")]
    pub stale_after: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_removals: 100,
            max_removal_percent: 10.0,
            max_inactive_percent: 80.0,
            stale_after: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Reading the admin CSV export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvConfig {
    /// A file with more than this share (percent) of bad rows is refused as a whole.
    pub max_bad_row_percent: f64,
}

impl Default for CsvConfig {
    fn default() -> Self {
        CsvConfig {
            max_bad_row_percent: 1.0,
        }
    }
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

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            mode: Mode::default(),
            schedule: None,
            licence_alert_percent: 90,
            schedule_lease: Duration::from_secs(6 * 3_600),
            products: BTreeMap::new(),
            lag_margin: Duration::from_secs(86_400),
            never_accessed_grace: Duration::from_secs(30 * 86_400),
            recheck_after: Duration::from_secs(3_600),
            verify_window: Duration::from_secs(60),
            protect: ProtectConfig::default(),
            governance: GovernanceConfig::default(),
            ladder: LadderConfig::default(),
            limits: LimitsConfig::default(),
            csv: CsvConfig::default(),
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
        if let Some(expression) = &self.schedule {
            super::schedule::parse(expression)
                .map_err(|problem| ConfigError::key("sweep.schedule", problem))?;
        }
        if !(1..=100).contains(&self.licence_alert_percent) {
            return Err(ConfigError::key(
                "sweep.licence_alert_percent",
                "must be 1 to 100",
            ));
        }
        if self.schedule_lease < Duration::from_secs(60) {
            return Err(ConfigError::key(
                "sweep.schedule_lease",
                "must be at least 1m",
            ));
        }
        let mut seen = Vec::new();
        for (key, policy) in &self.products {
            let place = format!("sweep.products.{key}");
            let product =
                ProductKey::parse(key).map_err(|e| ConfigError::key(&place, e.to_string()))?;
            if product.family().is_none() {
                return Err(ConfigError::key(
                    &place,
                    format!(
                        "reseat cannot manage {}: it is neither a Jira application nor Confluence \
                         (managed products: jira-software (Jira), jira-service-desk (Jira Service \
                         Management), jira-product-discovery, confluence)",
                        product.display_name()
                    ),
                ));
            }
            for (n, group) in policy.access_groups.iter().enumerate() {
                if !group.is_cloud_shaped() {
                    return Err(ConfigError::key(
                        format!("{place}.access_groups[{n}]"),
                        format!(
                            "{} (got {:?})",
                            crate::atlassian::GROUP_ID_HINT,
                            group.as_str()
                        ),
                    ));
                }
            }
            // What a plan would find offline: a product that is no Jira application has no
            // application role to read its groups from.
            if policy.access_groups.is_empty()
                && product.jira_application_key().is_none()
                && self.governance.block_on_missing_access_groups
            {
                return Err(ConfigError::key(
                    format!("{place}.access_groups"),
                    format!(
                        "{} has no access groups, and a plan refuses to run without them \
                         (sweep.governance.block_on_missing_access_groups): list the ids of the \
                         groups granting it",
                        product.display_name()
                    ),
                ));
            }
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
        let percent = |key: &str, value: f64| {
            if (0.0..=100.0).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::key(
                    format!("sweep.{key}"),
                    format!("must be a percentage between 0 and 100, got {value}"),
                ))
            }
        };
        percent(
            "limits.max_removal_percent",
            self.limits.max_removal_percent,
        )?;
        percent(
            "limits.max_inactive_percent",
            self.limits.max_inactive_percent,
        )?;
        percent("csv.max_bad_row_percent", self.csv.max_bad_row_percent)?;
        if self.ladder.suspend && !self.ladder.remove {
            return Err(ConfigError::key(
                "sweep.ladder.suspend",
                "needs sweep.ladder.remove (suspension follows a removal)",
            ));
        }
        if let Some(after) = self.ladder.delete_after {
            if !self.ladder.suspend {
                return Err(ConfigError::key(
                    "sweep.ladder.delete_after",
                    "needs sweep.ladder.suspend (only accounts reseat suspended are removed)",
                ));
            }
            if after < Duration::from_secs(86_400) {
                return Err(ConfigError::key(
                    "sweep.ladder.delete_after",
                    "must be at least 1d",
                ));
            }
        }
        if self.ladder.warn
            && self.ladder.remove
            && let Some((key, policy)) = self
                .products
                .iter()
                .find(|(_, p)| p.inactive_after <= self.ladder.warn_before)
        {
            return Err(ConfigError::key(
                "sweep.ladder.warn_before",
                format!(
                    "must be shorter than sweep.products.{key}.inactive_after ({})",
                    crate::config::duration::format(policy.inactive_after)
                ),
            ));
        }
        Ok(())
    }
}
