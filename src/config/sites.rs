//! `[[sites]]`: every site of the org from one install.
//!
//! Each entry names a site (name, base URL, cloud id, site credentials, products) and may
//! carry its own `sweep`, `restore` and `links` tables and its own `jira`, `confluence` and
//! `jsm` limits. A site's configuration is the org-wide file with the entry laid over it:
//! every key the entry does not set keeps the org-wide value. The admin API (key, limits,
//! listing) is the org's and is never set per site.
//!
//! A file without `[[sites]]` describes one site in `[atlassian]`, as before.

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::{Config, ConfigError, Secret};
use crate::atlassian::config::{FamilyLimits, site_key};

/// One `[[sites]]` entry, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteEntry {
    /// The site name, `acme` for `https://acme.atlassian.net`: the site's key in the
    /// journal, the plans, the pages and the API.
    pub name: String,
    /// Base URL of the site APIs; defaults to `https://<name>.atlassian.net`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The site's cloud id: how the org's one user listing tells this site's activity from
    /// the others'. Required.
    #[serde(default)]
    pub cloud_id: Option<String>,
    /// Site admin whose API token calls this site's APIs; defaults to
    /// `atlassian.site_email`.
    #[serde(default)]
    pub site_email: Option<String>,
    /// That admin's API token (or `site_api_token_file`); defaults to
    /// `atlassian.site_api_token`.
    #[serde(default)]
    pub site_api_token: Option<Secret>,
    /// Keys of the `[sweep.products.*]` reseat manages on this site; default all of them.
    #[serde(default)]
    pub products: Option<Vec<String>>,
    /// This site's Jira limits (each site has its own); default `atlassian.jira`.
    #[serde(default)]
    pub jira: Option<FamilyLimits>,
    /// This site's Confluence limits; default `atlassian.confluence`.
    #[serde(default)]
    pub confluence: Option<FamilyLimits>,
    /// This site's JSM limits; default `atlassian.jsm`.
    #[serde(default)]
    pub jsm: Option<FamilyLimits>,
    /// `[sweep]` keys that differ on this site (thresholds, access groups, protections,
    /// ladder steps, limits).
    #[serde(default)]
    pub sweep: Option<Table>,
    /// `[restore]` keys that differ on this site (rules, the JSM channel's request types
    /// and transitions, guards).
    #[serde(default)]
    pub restore: Option<Table>,
    /// `[links]` keys that differ on this site (how long links work).
    #[serde(default)]
    pub links: Option<Table>,
}

/// `[discovery]`: sites found in the org's workspaces, beside the `[[sites]]` entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// At start, list the org's workspaces (admin API) and manage each site found there
    /// with the org-wide settings and `[atlassian]`'s site credentials. Default off.
    pub enabled: bool,
    /// Only these sites (names); empty: every site found.
    pub include: Vec<String>,
    /// Never these sites, even if included.
    pub exclude: Vec<String>,
}

/// The `[[sites]]` entries the org's workspaces add: one per site found (by host) that
/// `[discovery]` lets in and `[[sites]]` does not list already, with the products of
/// `[sweep.products]` it has a workspace of. A site without a cloud id, or with no
/// product reseat manages, is left out (and said in the log).
pub fn discovered(workspaces: &[crate::atlassian::Workspace], config: &Config) -> Vec<SiteEntry> {
    use crate::atlassian::ProductKey;
    let rules = &config.discovery;
    let listed: Vec<String> = config.sites.iter().map(|s| site_key(&s.name)).collect();
    let named = |list: &[String], name: &str| list.iter().any(|n| site_key(n) == name);
    let mut found: Vec<SiteEntry> = Vec::new();
    for workspace in workspaces {
        let attributes = &workspace.attributes;
        if attributes.status.as_deref().is_some_and(|s| s != "online") {
            continue;
        }
        let Some(host) = attributes.host_url.as_deref() else {
            continue;
        };
        let from_host = url::Url::parse(host).ok().and_then(|u| {
            u.host_str()
                .and_then(|h| h.strip_suffix(".atlassian.net"))
                .map(str::to_owned)
        });
        let Some(name) = from_host
            .or_else(|| attributes.name.clone())
            .map(|n| site_key(&n))
        else {
            continue;
        };
        if listed.contains(&name)
            || named(&rules.exclude, &name)
            || (!rules.include.is_empty() && !named(&rules.include, &name))
        {
            continue;
        }
        let Some(cloud) = workspace.cloud_id() else {
            tracing::warn!(site = %name, workspace = %workspace.id, "discovery: no cloud id in the workspace id; the site is not managed");
            continue;
        };
        let product = attributes
            .type_key
            .as_deref()
            .and_then(|k| ProductKey::parse(k).ok())
            .and_then(|p| {
                config
                    .sweep
                    .products
                    .keys()
                    .find(|key| ProductKey::parse(key).ok().as_ref() == Some(&p))
                    .cloned()
            });
        let entry = match found.iter_mut().find(|e| e.name == name) {
            Some(entry) => entry,
            None => {
                found.push(SiteEntry {
                    name: name.clone(),
                    base_url: Some(host.to_owned()),
                    cloud_id: Some(cloud.to_owned()),
                    site_email: None,
                    site_api_token: None,
                    products: Some(Vec::new()),
                    jira: None,
                    confluence: None,
                    jsm: None,
                    sweep: None,
                    restore: None,
                    links: None,
                });
                found.last_mut().expect("just pushed")
            }
        };
        if let (Some(product), Some(products)) = (product, entry.products.as_mut())
            && !products.contains(&product)
        {
            products.push(product);
        }
    }
    found.retain(|entry| {
        let keep = entry.products.as_ref().is_some_and(|p| !p.is_empty());
        if !keep {
            tracing::info!(site = %entry.name, "discovery: no product reseat manages on this site");
        }
        keep
    });
    found
}

/// Builds each site's configuration from the raw file table (after environment overrides
/// and secret files): the org-wide tables with the entry laid over them.
pub(super) fn resolve(table: &Table, org: &Config) -> Result<Vec<Config>, ConfigError> {
    let Some(Value::Array(entries)) = table.get("sites") else {
        return Ok(Vec::new());
    };
    let mut base = table.clone();
    base.remove("sites");
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, (raw, entry)) in entries.iter().zip(&org.sites).enumerate() {
        let name = site_key(&entry.name);
        let place = |key: &str| format!("sites[{i}] ({name}).{key}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ConfigError::key(
                format!("sites[{i}].name"),
                format!(
                    "expected a site name like \"acme\" (for acme.atlassian.net), got {:?}",
                    entry.name
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(ConfigError::key(
                format!("sites[{i}].name"),
                format!("the site {name:?} is listed twice; list each site once"),
            ));
        }
        seen.push(name.clone());
        if entry
            .cloud_id
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
        {
            return Err(ConfigError::key(
                place("cloud_id"),
                "required: the org's user listing names sites by cloud id (admin.atlassian.com, the site's product settings, or https://<site>.atlassian.net/_edge/tenant_info)",
            ));
        }
        let email = entry
            .site_email
            .clone()
            .or_else(|| org.atlassian.site_email.clone());
        let has_token = entry.site_api_token.is_some() || org.atlassian.site_api_token.is_some();
        if email.is_none() || !has_token {
            return Err(ConfigError::key(
                place("site_api_token"),
                "this site has no credentials: set site_email and site_api_token (or site_api_token_file) here or in [atlassian]",
            ));
        }
        let mut site = base.clone();
        let atlassian = sub_table(&mut site, "atlassian");
        atlassian.insert("site_name".into(), Value::String(name.clone()));
        atlassian.remove("site_base_url");
        if let Some(url) = &entry.base_url {
            atlassian.insert("site_base_url".into(), Value::String(url.clone()));
        }
        if let Some(cloud) = &entry.cloud_id {
            atlassian.insert("cloud_id".into(), Value::String(cloud.clone()));
        }
        if let Some(raw) = raw.as_table() {
            for key in ["site_email", "site_api_token", "jira", "confluence", "jsm"] {
                if let Some(value) = raw.get(key) {
                    atlassian.insert(key.into(), value.clone());
                }
            }
            for key in ["sweep", "restore", "links"] {
                if let Some(Value::Table(over)) = raw.get(key) {
                    merge(sub_table(&mut site, key), over);
                }
            }
        }
        if let Some(products) = &entry.products {
            let sweep_products = sub_table(sub_table(&mut site, "sweep"), "products");
            for product in products {
                if !sweep_products.contains_key(product) {
                    return Err(ConfigError::key(
                        place("products"),
                        format!(
                            "{product:?} has no [sweep.products.{product}] section (here or org-wide)"
                        ),
                    ));
                }
            }
            sweep_products.retain(|key, _| products.iter().any(|p| p == key));
        }
        let config: Config =
            serde_path_to_error::deserialize(Value::Table(site)).map_err(|error| {
                let path = error.path().to_string();
                let inner = super::strip_location(&error.into_inner().to_string());
                ConfigError::key(place(&path), inner)
            })?;
        config.validate_site().map_err(|e| {
            ConfigError::key(format!("sites[{i}] ({name}): {}", e.place), e.message)
        })?;
        out.push(config);
    }
    Ok(out)
}

/// The table under `key`, created if missing (a non-table value is replaced).
fn sub_table<'a>(table: &'a mut Table, key: &str) -> &'a mut Table {
    let slot = table
        .entry(key.to_owned())
        .or_insert_with(|| Value::Table(Table::new()));
    if !slot.is_table() {
        *slot = Value::Table(Table::new());
    }
    match slot {
        Value::Table(inner) => inner,
        _ => unreachable!("replaced by a table above"),
    }
}

/// Lays `over` on `base`: tables merge key by key, every other value (arrays included)
/// replaces the org-wide one.
fn merge(base: &mut Table, over: &Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Table(inner)), Value::Table(over)) => merge(inner, over),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_table_merges_key_by_key_and_arrays_replace() {
        let mut base: Table = toml::from_str(
            "[products.jira]\ninactive_after = \"90d\"\naccess_groups = [\"a\"]\n[products.confluence]\ninactive_after = \"60d\"\n",
        )
        .unwrap();
        let over: Table = toml::from_str("[products.jira]\ninactive_after = \"30d\"\n").unwrap();
        merge(&mut base, &over);
        assert_eq!(
            base["products"]["jira"]["inactive_after"].as_str(),
            Some("30d")
        );
        assert_eq!(
            base["products"]["jira"]["access_groups"][0].as_str(),
            Some("a")
        );
        assert_eq!(
            base["products"]["confluence"]["inactive_after"].as_str(),
            Some("60d")
        );
    }
}
