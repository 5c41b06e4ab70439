//! Who holds each managed product on the site, through which access groups, and who is
//! protected: read from the site before every plan, with the governance check.
//!
//! Access groups per product: Jira products from their application role (`groupDetails`),
//! unless `sweep.products.<key>.access_groups` lists them; other products (Confluence) from
//! that setting only. Members are listed with the Jira API (`group/member`, active users
//! only: deactivated and suspended accounts hold no seat), which serves every group of the
//! site; without Jira credentials, Confluence groups are listed with the Confluence API.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::config::SweepConfig;
use crate::atlassian::{
    AccountId, AccountType, AtlassianClients, AtlassianError, GroupId, JiraUser, ProductKey,
};

/// A group granting one or more managed products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AccessGroup {
    pub id: GroupId,
    pub name: String,
    /// Managed products this group grants.
    pub products: Vec<ProductKey>,
    /// Other sites of the org where the same group grants a managed product. Groups are the
    /// org's: removing someone from this group takes the access there too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_sites: Vec<String>,
}

/// A finding of the governance check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    /// Removing someone from this group takes more than one product.
    MultiProductGroup {
        group: String,
        products: Vec<String>,
    },
    /// Nothing grants this product: the sweep cannot remove it.
    NoAccessGroup { product: String },
    /// A group named in `sweep.protect` does not exist on the site: it protects nobody.
    ProtectGroupMissing { group: String },
    /// A group id in `sweep.products.<key>.access_groups` is not a group of the site (a typo,
    /// or a group deleted since): it is left out, so nobody is removed through it.
    AccessGroupMissing { product: String, group: String },
    /// The group grants access on other sites of the org too: nobody is removed through it
    /// (an exemption), since that would take their access there as well.
    GroupSharedBySites { group: String, sites: Vec<String> },
    /// Whether a group also grants on other sites of the org could not be read (no admin
    /// API, or it refused): a removal could take access elsewhere unseen.
    SharingNotChecked { reason: String },
}

impl Finding {
    /// Whether this finding stops a plan under `governance` (the others are reported).
    pub fn blocks(&self, governance: &super::config::GovernanceConfig) -> bool {
        match self {
            Finding::MultiProductGroup { .. } => governance.block_on_multi_product_groups,
            Finding::NoAccessGroup { .. } | Finding::AccessGroupMissing { .. } => {
                governance.block_on_missing_access_groups
            }
            Finding::ProtectGroupMissing { .. }
            | Finding::GroupSharedBySites { .. }
            | Finding::SharingNotChecked { .. } => false,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::MultiProductGroup { group, products } => write!(
                f,
                "group {group} grants more than one product ({}): removing a member takes all of them",
                products.join(", ")
            ),
            Finding::NoAccessGroup { product } => write!(
                f,
                "product {product} has no access group (set sweep.products.{product}.access_groups)"
            ),
            Finding::ProtectGroupMissing { group } => write!(
                f,
                "group {group} (sweep.protect) does not exist on the site: it protects nobody"
            ),
            Finding::AccessGroupMissing { product, group } => write!(
                f,
                "group {group} (sweep.products.{product}.access_groups) is not a group of the site"
            ),
            Finding::GroupSharedBySites { group, sites } => write!(
                f,
                "group {group} also grants access on {}: nobody is removed through it, since that would take their access there too",
                sites.join(", ")
            ),
            Finding::SharingNotChecked { reason } => write!(
                f,
                "not checked whether the access groups also grant on other sites of the org ({reason}): if one does, removing a member takes their access there too"
            ),
        }
    }
}

/// One seat holder (or protected account) on the site.
#[derive(Debug, Clone)]
pub struct Member {
    pub account_id: AccountId,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub account_type: Option<AccountType>,
    /// Indexes into [`Population::groups`].
    pub groups: Vec<usize>,
    pub protected_group: Option<String>,
    pub admin_group: Option<String>,
}

/// The site as the sweep sees it.
#[derive(Debug, Clone, Default)]
pub struct Population {
    pub groups: Vec<AccessGroup>,
    pub members: HashMap<AccountId, Member>,
    pub findings: Vec<Finding>,
}

/// Why the population could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PopulationError {
    #[error(
        "the sweep needs the site API: set atlassian.site_name (or site_base_url), site_email and site_api_token"
    )]
    NoSiteClient,
    #[error("{0}")]
    Atlassian(#[from] AtlassianError),
}

impl Population {
    /// The access groups of a product.
    pub fn groups_of(&self, product: &ProductKey) -> impl Iterator<Item = &AccessGroup> {
        self.groups
            .iter()
            .filter(move |g| g.products.contains(product))
    }

    /// A member's access groups granting `product`.
    pub fn member_groups<'a>(
        &'a self,
        member: &'a Member,
        product: &'a ProductKey,
    ) -> impl Iterator<Item = &'a AccessGroup> {
        member
            .groups
            .iter()
            .map(|i| &self.groups[*i])
            .filter(move |g| g.products.contains(product))
    }

    /// Access groups of every managed product, by product (stored with the plan).
    pub fn groups_by_product(&self, products: &[ProductKey]) -> BTreeMap<String, Vec<AccessGroup>> {
        products
            .iter()
            .map(|p| (p.as_str().to_owned(), self.groups_of(p).cloned().collect()))
            .collect()
    }

    fn member(&mut self, user: &JiraUser) -> &mut Member {
        self.members
            .entry(user.account_id.clone())
            .or_insert_with(|| Member {
                account_id: user.account_id.clone(),
                display_name: Some(user.display_name.clone()).filter(|n| !n.is_empty()),
                email: user.email_address.clone(),
                account_type: match &user.account_type {
                    AccountType::Other(t) if t.is_empty() => None,
                    other => Some(other.clone()),
                },
                groups: Vec::new(),
                protected_group: None,
                admin_group: None,
            })
    }
}

/// Reads the access groups and their members, and runs the governance check.
#[tracing::instrument(skip_all)]
pub async fn read(
    clients: &AtlassianClients,
    config: &SweepConfig,
    concurrency: usize,
) -> Result<Population, PopulationError> {
    let mut population = read_groups(clients, config).await?;
    read_members(&mut population, clients, concurrency).await?;
    read_protected(&mut population, clients, config, true).await?;
    Ok(population)
}

/// The access groups of every managed product as the site names them, with the governance
/// findings about them; no members yet (`config check --online` stops here).
pub async fn read_groups(
    clients: &AtlassianClients,
    config: &SweepConfig,
) -> Result<Population, PopulationError> {
    let products = config.product_keys();
    let mut population = Population::default();
    let mut confluence_names: Option<HashMap<GroupId, String>> = None;
    for product in &products {
        let configured = config
            .product(product)
            .map(|p| p.access_groups.clone())
            .unwrap_or_default();
        let mut found: Vec<(GroupId, String)> = Vec::new();
        if configured.is_empty() {
            if product.is_known()
                && product.jira_application_key().is_some()
                && let Some(jira) = &clients.jira
            {
                let role = jira.application_role(product).await?;
                found.extend(role.group_details.into_iter().map(|g| (g.group_id, g.name)));
            }
        } else {
            for id in configured {
                let name = match (&clients.confluence, &mut confluence_names) {
                    (Some(confluence), names @ None) => {
                        let listed = confluence.groups().collect_all().await?;
                        let map: HashMap<GroupId, String> =
                            listed.into_iter().map(|g| (g.id, g.name)).collect();
                        let name = map.get(&id).cloned();
                        *names = Some(map);
                        name
                    }
                    (_, Some(map)) => map.get(&id).cloned(),
                    (None, None) => None,
                };
                match name {
                    Some(name) => found.push((id, name)),
                    // Listed, and not among the site's groups: never remove through it.
                    None if confluence_names.is_some() => {
                        population.findings.push(Finding::AccessGroupMissing {
                            product: product.as_str().to_owned(),
                            group: id.to_string(),
                        })
                    }
                    None => {
                        let name = id.to_string();
                        found.push((id, name));
                    }
                }
            }
        }
        if found.is_empty() {
            population.findings.push(Finding::NoAccessGroup {
                product: product.as_str().to_owned(),
            });
        }
        for (id, name) in found {
            match population.groups.iter_mut().find(|g| g.id == id) {
                Some(group) if !group.products.contains(product) => {
                    group.products.push(product.clone())
                }
                Some(_) => {}
                None => population.groups.push(AccessGroup {
                    id,
                    name,
                    products: vec![product.clone()],
                    other_sites: Vec::new(),
                }),
            }
        }
    }
    for group in &population.groups {
        if group.products.len() > 1 {
            population.findings.push(Finding::MultiProductGroup {
                group: group.name.clone(),
                products: group.products.iter().map(|p| p.to_string()).collect(),
            });
        }
    }
    Ok(population)
}

/// Notes, on each access group, the other sites where the same group grants a managed
/// product (`others`: each other site's clients and sweep settings); see [`shared_findings`].
pub async fn mark_shared(
    population: &mut Population,
    others: &[(String, &std::sync::Arc<AtlassianClients>, &SweepConfig)],
) -> Result<(), PopulationError> {
    for (site, clients, config) in others {
        let theirs = read_groups(clients, config).await?;
        for group in &mut population.groups {
            if theirs.groups.iter().any(|g| g.id == group.id) && !group.other_sites.contains(site) {
                group.other_sites.push(site.clone());
            }
        }
    }
    Ok(())
}

/// A finding for each access group that grants on other sites too.
pub fn shared_findings(population: &mut Population) {
    for group in &population.groups {
        if !group.other_sites.is_empty() {
            population.findings.push(Finding::GroupSharedBySites {
                group: group.name.clone(),
                sites: group.other_sites.clone(),
            });
        }
    }
}

/// Lists the members of every access group.
async fn read_members(
    population: &mut Population,
    clients: &AtlassianClients,
    concurrency: usize,
) -> Result<(), PopulationError> {
    for index in 0..population.groups.len() {
        let id = population.groups[index].id.clone();
        if let Some(jira) = &clients.jira {
            // Up to the Jira client's concurrency pages in flight: the member pages are most
            // of a plan's calls, and one after another they would wait on each other.
            for user in jira.group_members_all(&id, false, concurrency).await? {
                population.member(&user).groups.push(index);
            }
        } else if let Some(confluence) = &clients.confluence {
            let mut pages = confluence.group_members(&id);
            while let Some(users) = pages.next_page().await? {
                for user in users {
                    let jira_user = JiraUser {
                        account_id: user.account_id,
                        account_type: user
                            .account_type
                            .map_or(AccountType::Other(String::new()), AccountType::from),
                        active: true,
                        display_name: user.display_name.unwrap_or_default(),
                        email_address: user.email,
                        groups: None,
                        application_roles: None,
                    };
                    population.member(&jira_user).groups.push(index);
                }
            }
        } else {
            return Err(PopulationError::NoSiteClient);
        }
    }
    Ok(())
}

/// Marks the members of the protected and admin groups; a protect group missing from the
/// site is a finding. Without `every_page`, it reads one page of each: enough to know that
/// the group exists.
async fn read_protected(
    population: &mut Population,
    clients: &AtlassianClients,
    config: &SweepConfig,
    every_page: bool,
) -> Result<(), PopulationError> {
    let protect = &config.protect;
    let needs_groups = !protect.groups.is_empty()
        || (!protect.include_org_admins && !protect.admin_groups.is_empty());
    if needs_groups && clients.jira.is_none() {
        // Protection by group must never silently protect nobody.
        return Err(PopulationError::NoSiteClient);
    }
    if let Some(jira) = &clients.jira {
        for (names, admin) in [(&protect.groups, false), (&protect.admin_groups, true)] {
            if admin && protect.include_org_admins {
                continue;
            }
            for name in names {
                let mut pages = jira.group_members_by_name(name);
                loop {
                    let users = match pages.next_page().await {
                        Ok(Some(users)) => users,
                        Ok(None) => break,
                        // A configured group that does not exist protects nobody.
                        Err(AtlassianError::NotFound { .. }) => {
                            population.findings.push(Finding::ProtectGroupMissing {
                                group: name.clone(),
                            });
                            break;
                        }
                        Err(error) => return Err(error.into()),
                    };
                    for user in users {
                        if let Some(member) = population.members.get_mut(&user.account_id) {
                            let slot = if admin {
                                &mut member.admin_group
                            } else {
                                &mut member.protected_group
                            };
                            slot.get_or_insert_with(|| name.clone());
                        }
                    }
                    if !every_page {
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

/// What `config check --online` reports: the access groups and protect groups resolved on
/// the site, reading no more than one page of members of any group.
pub async fn check(
    clients: &AtlassianClients,
    config: &SweepConfig,
) -> Result<Population, PopulationError> {
    let mut population = read_groups(clients, config).await?;
    read_protected(&mut population, clients, config, false).await?;
    Ok(population)
}
