//! How each seat is held, and removal that follows it.
//!
//! App access is a role on a resource (the product instance ARI,
//! `ari:cloud:<owner>::site/<cloud id>`). A user holds a seat while any billable role is on
//! the resource, by any method: `group_direct` (a group carries the role), `direct`
//! (assigned to the user) or `inferred` (follows from an admin role). Removing group
//! memberships frees the seat only when every billable role came through groups reseat may
//! change.
//!
//! - Plan: [`AccessReader`] lists the role holders of each product (the directory search
//!   filtered by `resourceIds` and `roleIds`: it finds seats held by a direct or inferred role
//!   only), reads each access group's `managementAccess` once, and reads the role
//!   assignments of each removal candidate (one call per candidate, counted in
//!   [`RoleStats`]). Every plan item records its [`Billing`]: the groups and roles that grant
//!   the seat.
//! - Apply: a seat that something reseat cannot change keeps billed (an inferred role, an
//!   IdP-synced group or account) ends `still_billed` at once, with who must act, and nothing
//!   is taken. Otherwise the memberships and the direct roles are taken, each journaled
//!   before it is sent, and [`verify_gone`] reads the roles back (waiting out eventual
//!   consistency within `sweep.verify_window`). A billable role left ends the item
//!   `still_billed`; only a freed seat is reported "removed" to the user.
//! - Restore: [`regrant`] assigns back the direct roles the journal says were revoked.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::atlassian::admin::{RoleAssignmentMethod, RoleHolder, UserRoleAssignment};
use crate::atlassian::{AccountId, AdminClient, AtlassianError, OrgId, ProductKey};
use crate::ledger::roles::{self as journal, RoleEntry};

/// Roles that hold no seat. Every other role on a product resource bills: an unknown role is
/// read as billable, so that reseat never reports a seat freed that is not.
pub const NON_BILLABLE: [&str; 6] = [
    "atlassian/guest",
    "atlassian/customer",
    "atlassian/contributor",
    "atlassian/basic",
    "atlassian/stakeholder",
    "atlassian/user-access-admin",
];

/// The billable roles the role-holder search asks for.
pub const BILLABLE_ROLES: [&str; 2] = ["atlassian/user", "atlassian/admin"];

/// Whether a role on a product resource takes a seat.
pub fn is_billable(role: &str) -> bool {
    !NON_BILLABLE.contains(&role)
}

/// The resource id of a product on a site: `ari:cloud:<owner>::site/<cloud id>`, the owner
/// being the Jira application key (`jira-software`, `jira-servicedesk`) or `confluence`.
pub fn resource_of(product: &ProductKey, cloud_id: &str) -> Option<String> {
    let owner = match product.jira_application_key() {
        Some(key) => key.to_owned(),
        None if *product == ProductKey::CONFLUENCE => "confluence".to_owned(),
        None => return None,
    };
    Some(format!("ari:cloud:{owner}::site/{cloud_id}"))
}

/// One group granting the seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingGroup {
    pub id: String,
    pub name: String,
    /// False for a group synced from an identity provider.
    #[serde(default = "yes")]
    pub modifiable: bool,
}

fn yes() -> bool {
    true
}

/// One billable role on the resource, with how it is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRole {
    pub role: String,
    /// `direct`, `group_direct`, `inferred` (or a method reseat does not know).
    pub methods: Vec<String>,
}

/// Why a seat bills, as the plan saw it (`plan_items.billing`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    /// The user's role assignments were read for this seat.
    #[serde(default)]
    pub checked: bool,
    /// The product instance the roles are on.
    #[serde(default)]
    pub resource: Option<String>,
    /// The user's access groups granting the product.
    #[serde(default)]
    pub groups: Vec<BillingGroup>,
    /// Billable roles on the resource (when `checked`).
    #[serde(default)]
    pub roles: Vec<BillingRole>,
    /// The account is provisioned by an identity provider (`managementSource: synced`).
    #[serde(default)]
    pub account_synced: bool,
    /// Why roles were not read, when they were not.
    #[serde(default)]
    pub note: Option<String>,
}

impl Billing {
    /// Reads the stored JSON; anything unreadable is an unchecked seat.
    pub fn parse(text: &str) -> Billing {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// "group jira-software-users; role atlassian/user (direct)".
    pub fn explain(&self) -> String {
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .map(|g| {
                if g.modifiable {
                    format!("group {}", g.name)
                } else {
                    format!("group {} (synced from the identity provider)", g.name)
                }
            })
            .collect();
        for role in &self.roles {
            parts.push(format!("role {} ({})", role.role, role.methods.join(", ")));
        }
        if self.account_synced {
            parts.push("account managed by the identity provider".to_owned());
        }
        if parts.is_empty() {
            return self
                .note
                .clone()
                .unwrap_or_else(|| "no billable role found".to_owned());
        }
        let mut text = parts.join("; ");
        if let Some(note) = &self.note {
            text.push_str(&format!(" ({note})"));
        }
        text
    }

    /// The direct billable roles reseat revokes.
    pub fn direct_roles(&self) -> Vec<&str> {
        self.roles
            .iter()
            .filter(|r| r.methods.iter().any(|m| m == "direct"))
            .map(|r| r.role.as_str())
            .collect()
    }

    /// The memberships reseat may remove (none for an IdP-managed account).
    pub fn removable_groups(&self) -> Vec<&BillingGroup> {
        if self.account_synced {
            return Vec::new();
        }
        self.groups.iter().filter(|g| g.modifiable).collect()
    }

    /// What keeps the seat billed that reseat cannot take, each with who must act. Empty:
    /// taking the removable groups and the direct roles frees the seat.
    pub fn blockers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.groups {
            if !g.modifiable {
                out.push(format!(
                    "group {} is synced from your identity provider: remove the user from it there",
                    g.name
                ));
            }
        }
        if self.account_synced && self.groups.iter().any(|g| g.modifiable) {
            out.push(
                "the account is managed by your identity provider: remove its group memberships there"
                    .to_owned(),
            );
        }
        if !self.checked {
            return out;
        }
        let removable = !self.removable_groups().is_empty();
        for role in &self.roles {
            for method in &role.methods {
                match method.as_str() {
                    "direct" => {}
                    "group_direct" if removable || !self.groups.is_empty() => {}
                    "group_direct" => out.push(format!(
                        "role {} comes from a group reseat does not manage: an org admin must remove the user from it in Atlassian Administration",
                        role.role
                    )),
                    "inferred" => out.push(format!(
                        "role {} is inferred from an admin role: an org admin must remove that admin role in Atlassian Administration",
                        role.role
                    )),
                    other => out.push(format!(
                        "role {} is held by a method reseat does not know ({other}): an org admin must check it",
                        role.role
                    )),
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The billable roles in a role-assignment answer for one resource, with their methods.
/// Entries for other resources, and a suspended directory membership, bill nothing.
pub fn billable_roles(answer: &[UserRoleAssignment], resource: &str) -> Vec<BillingRole> {
    let mut out: Vec<BillingRole> = Vec::new();
    for entry in answer {
        if entry.resource_id.as_deref() != Some(resource) {
            continue;
        }
        if entry
            .user_directory_status
            .as_deref()
            .is_some_and(|s| s == "suspended" || s == "no_membership")
        {
            continue;
        }
        let mut roles: Vec<BillingRole> = entry
            .role_assignments
            .iter()
            .filter_map(|a| {
                let role = a.role.clone()?;
                Some(BillingRole {
                    role,
                    methods: a
                        .role_assignment_methods
                        .iter()
                        .map(|m| m.as_str().to_owned())
                        .collect(),
                })
            })
            .collect();
        // An older answer with only `roles`: the method is unknown, which blocks a removal.
        for role in &entry.roles {
            if !roles.iter().any(|r| &r.role == role) {
                roles.push(BillingRole {
                    role: role.clone(),
                    methods: vec![
                        RoleAssignmentMethod::Other("unknown".into())
                            .as_str()
                            .into(),
                    ],
                });
            }
        }
        out.extend(roles.into_iter().filter(|r| is_billable(&r.role)));
    }
    out.sort_by(|a, b| a.role.cmp(&b.role));
    out
}

/// Admin API calls the role model cost a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleStats {
    /// Pages of the role-holder search (per product).
    pub holder_pages: u64,
    /// Group detail reads (`managementAccess`), one per access group.
    pub group_reads: u64,
    /// Per-user role-assignment reads, one per removal candidate.
    pub role_reads: u64,
}

/// Reads the role model for a plan.
pub struct AccessReader<'a> {
    admin: &'a AdminClient,
    org: &'a OrgId,
    directory: &'a str,
    cloud_id: &'a str,
    pub concurrency: usize,
}

impl<'a> AccessReader<'a> {
    /// `None` without the admin API or `atlassian.cloud_id`: the plan then says the roles
    /// were not checked.
    pub fn of(state: &'a AppState) -> Option<AccessReader<'a>> {
        let admin = state.atlassian.admin.as_ref()?;
        let org = state.atlassian.org_id.as_ref()?;
        let cloud_id = state.config.atlassian.cloud_id.as_deref()?;
        Some(AccessReader {
            admin,
            org,
            directory: &state.config.atlassian.directory_id,
            cloud_id,
            concurrency: (state.config.atlassian.admin.concurrency as usize).max(1),
        })
    }

    pub fn resource(&self, product: &ProductKey) -> Option<String> {
        resource_of(product, self.cloud_id)
    }

    /// The cloud ids of the other sites where `group` carries a role (the org's record of
    /// the group: groups are the org's, and one may grant on several sites).
    pub async fn group_elsewhere(
        &self,
        group: &crate::atlassian::GroupId,
    ) -> Result<Vec<String>, AtlassianError> {
        let assignments = self
            .admin
            .group_role_assignments(self.org, self.directory, group.as_str(), None)
            .await?;
        let mut sites: Vec<String> = assignments
            .iter()
            .filter_map(|a| a.resource_id.as_deref())
            .filter_map(|resource| resource.rsplit_once("::site/").map(|(_, cloud)| cloud))
            .filter(|cloud| *cloud != self.cloud_id)
            .map(str::to_owned)
            .collect();
        sites.sort();
        sites.dedup();
        Ok(sites)
    }

    /// Everyone holding a billable role on the product, by any method.
    pub async fn holders(
        &self,
        product: &ProductKey,
        stats: &mut RoleStats,
    ) -> Result<Vec<RoleHolder>, AtlassianError> {
        let Some(resource) = self.resource(product) else {
            return Ok(Vec::new());
        };
        let resources = vec![resource];
        let roles: Vec<String> = BILLABLE_ROLES.iter().map(|r| (*r).to_owned()).collect();
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .admin
                .role_holders_page(self.org, self.directory, &resources, &roles, token.as_ref())
                .await?;
            stats.holder_pages += 1;
            out.extend(page.items);
            match page.next {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// Whether reseat may change the group's memberships. A group the admin API does not
    /// know (404) is read as modifiable: a refused removal then shows at apply.
    pub async fn group_modifiable(
        &self,
        group: &str,
        stats: &mut RoleStats,
    ) -> Result<bool, AtlassianError> {
        stats.group_reads += 1;
        match self
            .admin
            .group_details(self.org, self.directory, group)
            .await
        {
            Ok(details) => Ok(details.modifiable()),
            Err(AtlassianError::NotFound { .. }) => Ok(true),
            Err(error) => Err(error),
        }
    }

    /// The user's billable roles on the product's resource.
    pub async fn billable(
        &self,
        account: &AccountId,
        product: &ProductKey,
    ) -> Result<Vec<BillingRole>, AtlassianError> {
        let Some(resource) = self.resource(product) else {
            return Ok(Vec::new());
        };
        let answer = self
            .admin
            .user_role_assignments(self.org, self.directory, account, Some(&resource))
            .await?;
        Ok(billable_roles(&answer, &resource))
    }
}

/// Fills in the roles of the given items' billing, `concurrency` reads at a time.
pub async fn read_roles(
    reader: &AccessReader<'_>,
    wanted: Vec<(usize, AccountId, ProductKey)>,
    stats: &mut RoleStats,
) -> Result<HashMap<usize, Vec<BillingRole>>, AtlassianError> {
    use futures_util::StreamExt;
    let reads =
        futures_util::stream::iter(wanted.into_iter().map(|(i, account, product)| async move {
            (i, reader.billable(&account, &product).await)
        }))
        .buffer_unordered(reader.concurrency);
    futures_util::pin_mut!(reads);
    let mut out = HashMap::new();
    while let Some((i, roles)) = reads.next().await {
        stats.role_reads += 1;
        out.insert(i, roles?);
    }
    Ok(out)
}

/// Accounts holding each product by a role, from the role-holder search.
#[derive(Debug, Default)]
pub struct Holders {
    pub by_product: HashMap<ProductKey, HashSet<AccountId>>,
    pub synced: HashSet<AccountId>,
    pub people: HashMap<AccountId, RoleHolder>,
}

impl Holders {
    pub fn holds(&self, account: &AccountId, product: &ProductKey) -> bool {
        self.by_product
            .get(product)
            .is_some_and(|set| set.contains(account))
    }
}

/// Why [`regrant`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("{0}")]
    Upstream(#[from] AtlassianError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What a seat looks like after a removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// No billable role left on the resource.
    Gone,
    /// These billable roles remain.
    StillBilled(Vec<BillingRole>),
}

/// Reads the user's roles back until no billable role remains on the resource. A role whose
/// every method is one reseat took away (`direct`, or `group_direct` after the memberships
/// went) may be Atlassian's eventual consistency: read again with backoff until `window`.
/// Any other method (inferred, unknown) is final at once.
pub async fn verify_gone(
    reader: &AccessReader<'_>,
    account: &AccountId,
    product: &ProductKey,
    window: Duration,
) -> Result<Verified, AtlassianError> {
    let start = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        let left = reader.billable(account, product).await?;
        if left.is_empty() {
            return Ok(Verified::Gone);
        }
        let settling = left.iter().all(|r| {
            r.methods
                .iter()
                .all(|m| m == "direct" || m == "group_direct")
        });
        let elapsed = start.elapsed();
        if !settling || elapsed + wait > window {
            return Ok(Verified::StillBilled(left));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(8));
    }
}

/// The message of a `still_billed` item: what keeps the seat and who must act.
pub fn still_billed_reason(billing: &Billing, left: &[BillingRole]) -> String {
    let mut reasons = billing.blockers();
    for role in left {
        let known = reasons.iter().any(|r| r.contains(&role.role));
        if !known {
            let methods = role.methods.join(", ");
            reasons.push(format!(
                "role {} ({methods}) still shows after the removal: an org admin must check the user's roles in Atlassian Administration",
                role.role
            ));
        }
    }
    if reasons.is_empty() {
        reasons.push("a billable role remains".to_owned());
    }
    format!("still billed: {}", reasons.join("; "))
}

/// Journals the direct roles about to be revoked (before any is sent). Returns the resource.
#[allow(clippy::too_many_arguments)]
pub async fn journal_revokes_in(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    billing: &Billing,
    account: &str,
    product: &str,
    site: &str,
    run_id: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let Some(resource) = billing.resource.as_deref() else {
        return Ok(());
    };
    for role in billing.direct_roles() {
        journal::journal_revoked_in(
            conn,
            now,
            &RoleEntry {
                account_id: account,
                product,
                site,
                resource,
                role,
                run_id: Some(run_id),
                request_id: None,
                reason,
            },
        )
        .await?;
    }
    Ok(())
}

/// Revokes the journaled direct roles (a revoke of a role already gone is success).
pub async fn revoke_direct(
    state: &AppState,
    billing: &Billing,
    account: &AccountId,
) -> Result<usize, AtlassianError> {
    let (Some(admin), Some(org), Some(resource)) = (
        &state.atlassian.admin,
        &state.atlassian.org_id,
        billing.resource.as_deref(),
    ) else {
        return Ok(0);
    };
    let mut n = 0;
    for role in billing.direct_roles() {
        admin.revoke_role(org, account, role, resource).await?;
        n += 1;
    }
    Ok(n)
}

/// Restore: assigns back every direct role the journal says reseat revoked for this account,
/// product and site and has not given back, journaling each re-grant once per request.
/// Returns the roles granted.
pub async fn regrant(
    state: &AppState,
    account: &AccountId,
    product: &ProductKey,
    request_id: &str,
) -> Result<Vec<String>, RoleError> {
    let site = state.site();
    let taken = journal::taken_roles(&state.db, account.as_str(), product.as_str(), site).await?;
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let (Some(admin), Some(org)) = (&state.atlassian.admin, &state.atlassian.org_id) else {
        return Err(RoleError::Upstream(AtlassianError::Invalid(
            "roles were revoked by reseat and the admin API is not configured to give them back"
                .into(),
        )));
    };
    let mut granted = Vec::new();
    for t in taken {
        admin
            .assign_role(org, account, &t.role, &t.resource)
            .await?;
        let mut conn = state.db.pool().acquire().await?;
        journal::journal_restored_in(
            &mut conn,
            state.db.now_ms(),
            &RoleEntry {
                account_id: account.as_str(),
                product: product.as_str(),
                site,
                resource: &t.resource,
                role: &t.role,
                run_id: None,
                request_id: Some(request_id),
                reason: "restored",
            },
        )
        .await?;
        granted.push(t.role);
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(role: &str, methods: &[&str]) -> BillingRole {
        BillingRole {
            role: role.into(),
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn group(name: &str, modifiable: bool) -> BillingGroup {
        BillingGroup {
            id: format!("id-{name}"),
            name: name.into(),
            modifiable,
        }
    }

    #[test]
    fn a_seat_held_by_groups_and_a_direct_role_has_no_blocker() {
        let billing = Billing {
            checked: true,
            groups: vec![group("jira-users", true)],
            roles: vec![role("atlassian/user", &["group_direct", "direct"])],
            ..Billing::default()
        };
        assert!(billing.blockers().is_empty());
        assert_eq!(billing.direct_roles(), ["atlassian/user"]);
    }

    #[test]
    fn inferred_roles_and_synced_groups_name_who_must_act() {
        let billing = Billing {
            checked: true,
            groups: vec![group("okta", false)],
            roles: vec![
                role("atlassian/user", &["group_direct"]),
                role("atlassian/admin", &["inferred"]),
            ],
            ..Billing::default()
        };
        let blockers = billing.blockers().join(" | ");
        assert!(blockers.contains("identity provider"), "{blockers}");
        assert!(blockers.contains("inferred"), "{blockers}");
        assert!(billing.removable_groups().is_empty());
    }

    #[test]
    fn an_unknown_method_or_role_blocks_and_bills() {
        let billing = Billing {
            checked: true,
            roles: vec![role("atlassian/new-kind", &["delegated"])],
            ..Billing::default()
        };
        assert!(is_billable("atlassian/new-kind"));
        assert!(!is_billable("atlassian/guest"));
        assert_eq!(billing.blockers().len(), 1);
    }
}
