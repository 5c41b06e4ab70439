//! App access as roles on a resource, the way Atlassian's admin API models it today.
//!
//! A user holds a role (`atlassian/user`, `atlassian/admin`, `atlassian/guest`, …) on a
//! product instance (the resource, an ARI such as `ari:cloud:jira-software::site/<cloudId>`)
//! by one or more methods:
//! - `group_direct`: a group the user is in carries the role on the resource (every group
//!   that grants a product carries `atlassian/user` on it);
//! - `direct`: assigned to the user (`POST /admin/v1/orgs/{orgId}/users/{userId}/roles/assign`);
//! - `inferred`: follows from another role (a site or org admin role); it cannot be revoked
//!   by itself.
//!
//! A seat is a billable role on the resource by any method: [`RoleBook::billable_set`] feeds
//! [`super::model::World::access`], so the application roles' `userCount` and every seat
//! count follow the roles.
//!
//! Accounts provisioned by an identity provider (`managementSource: synced`) and groups
//! synced from one (`managementAccess.modifiable = false`) refuse membership changes through
//! every API ([`membership_refusal`]).
//!
//! Routes: a user's and a group's role assignments (v2), a group's details (v2), grant and
//! revoke (v1). Grants and revokes become visible after the consistency delay
//! ([`super::consistency`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult, Family, org_admin};
use super::model::{Gid, Product, ProductSet, Uid, World, products_in};
use super::params::Params;
use super::seed::GROUP_JIRA_SOFTWARE;
use super::state::{SimError, SimState};
use super::views::NewUser;

/// The product role every product-granting group carries.
pub const ROLE_USER: &str = "atlassian/user";
/// Product admin (billable).
pub const ROLE_ADMIN: &str = "atlassian/admin";
/// Guest (not billable).
pub const ROLE_GUEST: &str = "atlassian/guest";
/// JSM customer (not billable).
pub const ROLE_CUSTOMER: &str = "atlassian/customer";

/// Roles that hold no seat; every other role on a product resource bills (an unknown role is
/// counted as billable, the safe reading for a seat count).
pub const NON_BILLABLE: [&str; 6] = [
    ROLE_GUEST,
    ROLE_CUSTOMER,
    "atlassian/contributor",
    "atlassian/basic",
    "atlassian/stakeholder",
    "atlassian/user-access-admin",
];

/// Every role the grant endpoint accepts.
pub const ROLES: [&str; 7] = [
    ROLE_USER,
    ROLE_ADMIN,
    ROLE_GUEST,
    ROLE_CUSTOMER,
    "atlassian/contributor",
    "atlassian/basic",
    "atlassian/stakeholder",
];

/// Whether a role on a product resource takes a seat.
pub fn is_billable(role: &str) -> bool {
    !NON_BILLABLE.contains(&role)
}

/// The resource owner (product family in the role ARI) of a product.
pub fn resource_owner(product: Product) -> &'static str {
    match product {
        Product::JiraSoftware => "jira-software",
        Product::JiraServiceDesk => "jira-servicedesk",
        Product::Confluence => "confluence",
    }
}

/// The resource id of a product on a site: `ari:cloud:<owner>::site/<cloudId>`.
pub fn resource_id(product: Product, cloud_id: &str) -> String {
    format!("ari:cloud:{}::site/{cloud_id}", resource_owner(product))
}

/// Parses a resource id of the configured site.
fn parse_resource(w: &World, resource: &str) -> Option<Product> {
    let cloud = &w.sites.first()?.cloud_id;
    Product::ALL
        .into_iter()
        .find(|p| resource_id(*p, cloud) == resource)
}

/// A role inferred from another role: it stands as long as its source does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Inferred {
    pub product: Product,
    pub role: String,
    /// What it follows from, e.g. `site-admin`.
    pub from: String,
}

/// Role assignments beyond group grants, and the accounts and groups an identity provider
/// manages.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoleBook {
    /// Direct assignments per user: product → roles.
    direct: BTreeMap<Uid, BTreeMap<Product, BTreeSet<String>>>,
    inferred: BTreeMap<Uid, Vec<Inferred>>,
    synced_groups: HashSet<Gid>,
}

impl RoleBook {
    /// Products the user holds a billable role on through a direct or inferred assignment.
    pub fn billable_set(&self, uid: Uid) -> ProductSet {
        let mut set = 0;
        if let Some(direct) = self.direct.get(&uid) {
            for (p, roles) in direct {
                if roles.iter().any(|r| is_billable(r)) {
                    set |= p.bit();
                }
            }
        }
        if let Some(inferred) = self.inferred.get(&uid) {
            for i in inferred {
                if is_billable(&i.role) {
                    set |= i.product.bit();
                }
            }
        }
        set
    }

    /// Whether the group is synced from an identity provider.
    pub fn group_synced(&self, gid: Gid) -> bool {
        self.synced_groups.contains(&gid)
    }
}

/// Why a membership change of `uid` in `gid` is refused (IdP-managed), if it is.
pub(crate) fn membership_refusal(w: &World, gid: Gid, uid: Uid) -> Option<String> {
    if w.access_roles.group_synced(gid) {
        return Some(format!(
            "You can't change the members of the group '{}' because it's synced from an identity provider. Manage this group in your identity provider instead.",
            w.group(gid).name
        ));
    }
    if w.user(uid).synced {
        return Some(format!(
            "You can't change the group memberships of '{}' because this account is managed by an identity provider. Change it in your identity provider instead.",
            w.user(uid).account_id
        ));
    }
    None
}

/// Billable roles of a user on the configured site's products, method by method
/// (`(product, role) → methods`); what the role-assignment read reports.
fn assignments(w: &World, uid: Uid) -> BTreeMap<(Product, String), BTreeSet<&'static str>> {
    let mut out: BTreeMap<(Product, String), BTreeSet<&'static str>> = BTreeMap::new();
    let u = w.user(uid);
    let groups: ProductSet = u.groups.iter().fold(0, |acc, g| acc | w.group(*g).grants);
    for p in products_in(groups) {
        out.entry((p, ROLE_USER.to_owned()))
            .or_default()
            .insert("group_direct");
    }
    if let Some(direct) = w.access_roles.direct.get(&uid) {
        for (p, roles) in direct {
            for r in roles {
                out.entry((*p, r.clone())).or_default().insert("direct");
            }
        }
    }
    if let Some(inferred) = w.access_roles.inferred.get(&uid) {
        for i in inferred {
            out.entry((i.product, i.role.clone()))
                .or_default()
                .insert("inferred");
        }
    }
    out
}

pub(crate) fn router() -> Router<SimState> {
    Router::new()
        .route(
            "/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/role-assignments",
            get(user_role_assignments),
        )
        .route(
            "/admin/v2/orgs/{org_id}/directories/{directory_id}/groups/{group_id}/role-assignments",
            get(group_role_assignments),
        )
        .route(
            "/admin/v2/orgs/{org_id}/directories/{directory_id}/groups/{group_id}",
            get(group_details),
        )
        .route(
            "/admin/v1/orgs/{org_id}/users/{user_id}/roles/assign",
            post(assign),
        )
        .route(
            "/admin/v1/orgs/{org_id}/users/{user_id}/roles/revoke",
            post(revoke),
        )
}

fn check(
    sim: &SimState,
    headers: &HeaderMap,
    org_id: &str,
    directory: Option<&str>,
) -> ApiResult<()> {
    org_admin(sim, headers)?;
    if org_id != sim.config().org_id {
        return Err(ApiError::not_found(
            Family::Admin,
            format!("Organization {org_id} not found."),
        )
        .with_code("ADMIN-404-2"));
    }
    if let Some(d) = directory
        && d != "-"
        && d != org_id
    {
        return Err(
            ApiError::not_found(Family::Admin, format!("Directory {d} not found."))
                .with_code("ADMIN-404-3"),
        );
    }
    Ok(())
}

fn directory_uid(w: &World, account_id: &str) -> ApiResult<Uid> {
    w.uid(account_id)
        .filter(|u| w.user(*u).in_directory)
        .ok_or_else(|| {
            ApiError::not_found(
                Family::Admin,
                format!("User {account_id} not found in the directory."),
            )
            .with_code("ADMIN-UAM-404-1")
        })
}

/// Values of a list query parameter, given repeated or comma-separated.
fn list_param(q: Option<&str>, name: &str) -> Vec<String> {
    Params::parse(q)
        .all(name)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// `GET /admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/role-assignments`
/// (`resourceIds`, `roleIds` filters): one entry per resource, roles with their methods.
async fn user_role_assignments(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, directory_id, account_id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    check(&sim, &headers, &org_id, Some(&directory_id))?;
    let resources = list_param(q.as_deref(), "resourceIds");
    let role_ids = list_param(q.as_deref(), "roleIds");
    let mut data = user_roles(&sim.read(), &account_id, &resources, &role_ids)?;
    // An org of several sites: the other sites' resources too.
    for peer in sim.peers() {
        if let Ok(more) = user_roles(&peer.read(), &account_id, &resources, &role_ids) {
            data.extend(more);
        }
    }
    Ok(Json(json!({ "data": data, "links": {} })).into_response())
}

/// One site's entries of a user's role assignments.
fn user_roles(
    w: &World,
    account_id: &str,
    resources: &[String],
    role_ids: &[String],
) -> ApiResult<Vec<Value>> {
    let uid = directory_uid(w, account_id)?;
    let cloud = w.sites[0].cloud_id.clone();
    let status = if w.user(uid).suspended {
        "suspended"
    } else {
        "active"
    };
    let mut by_resource: BTreeMap<Product, Vec<Value>> = BTreeMap::new();
    for ((p, role), methods) in assignments(w, uid) {
        if !role_ids.is_empty() && !role_ids.contains(&role) {
            continue;
        }
        by_resource.entry(p).or_default().push(json!({
            "role": role,
            "roleAssignmentMethods": methods.into_iter().collect::<Vec<_>>(),
        }));
    }
    Ok(by_resource
        .into_iter()
        .map(|(p, roles)| (resource_id(p, &cloud), p, roles))
        .filter(|(id, _, _)| resources.is_empty() || resources.contains(id))
        .map(|(id, p, roles)| {
            let names: Vec<&Value> = roles.iter().map(|r| &r["role"]).collect();
            json!({
                "resourceId": id,
                "resourceOwner": resource_owner(p),
                "roles": names,
                "roleAssignments": roles,
                "directoryId": w.org_id,
                "userDirectoryStatus": status,
            })
        })
        .collect())
}

/// `GET .../groups/{groupId}/role-assignments`: the roles a group carries per resource.
async fn group_role_assignments(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, directory_id, group_id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    check(&sim, &headers, &org_id, Some(&directory_id))?;
    let resources = list_param(q.as_deref(), "resourceIds");
    // The group is the org's: every site that knows it adds its resources; unknown to all
    // of them, it is a 404.
    let mut data = Vec::new();
    let mut missing = None;
    for world in std::iter::once(sim.clone()).chain(sim.peers()) {
        match group_roles(&world.read(), &group_id, &resources) {
            Ok(more) => data.extend(more),
            Err(error) => missing = Some(error),
        }
    }
    if data.is_empty()
        && let Some(error) = missing
        && !std::iter::once(sim.clone())
            .chain(sim.peers())
            .any(|world| world.read().group_by_id.contains_key(&group_id))
    {
        return Err(error);
    }
    Ok(Json(json!({ "data": data, "links": {} })).into_response())
}

/// One site's entries of the roles a group carries.
fn group_roles(w: &World, group_id: &str, resources: &[String]) -> ApiResult<Vec<Value>> {
    let gid = group_by_id(w, group_id)?;
    let cloud = &w.sites[0].cloud_id;
    Ok(products_in(w.group(gid).grants)
        .map(|p| (resource_id(p, cloud), p))
        .filter(|(id, _)| resources.is_empty() || resources.contains(id))
        .map(|(id, p)| {
            json!({
                "resourceId": id,
                "resourceOwner": resource_owner(p),
                "defaultRole": ROLE_USER,
                "roles": [ROLE_USER],
            })
        })
        .collect())
}

fn group_by_id(w: &World, group_id: &str) -> ApiResult<Gid> {
    w.group_by_id.get(group_id).copied().ok_or_else(|| {
        ApiError::not_found(Family::Admin, format!("Group {group_id} not found."))
            .with_code("ADMIN-404-4")
    })
}

/// `GET .../groups/{groupId}`: the group with `managementAccess`.
async fn group_details(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, directory_id, group_id)): Path<(String, String, String)>,
) -> ApiResult {
    check(&sim, &headers, &org_id, Some(&directory_id))?;
    let w = sim.read();
    let gid = group_by_id(&w, &group_id)?;
    let g = w.group(gid);
    let synced = w.access_roles.group_synced(gid);
    Ok(Json(json!({
        "id": g.id,
        "name": g.name,
        "description": "",
        "directoryId": w.org_id,
        "managementAccess": { "deletable": !synced, "modifiable": !synced, "readable": true },
        "externalSynced": synced,
        "managedBy": if synced { "external" } else { "admins" },
        "counts": { "users": g.members.len() },
    }))
    .into_response())
}

#[derive(serde::Deserialize)]
struct RoleBody {
    role: String,
    resource: String,
}

/// The site whose resource a role change names: this one, or another site of the org.
fn site_of_resource(sim: &SimState, body: &Bytes) -> SimState {
    let resource = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("resource").and_then(Value::as_str).map(str::to_owned));
    resource
        .and_then(|r| {
            sim.peers()
                .into_iter()
                .find(|peer| parse_resource(&peer.read(), &r).is_some())
        })
        .unwrap_or_else(|| sim.clone())
}

fn role_body(w: &World, body: &Bytes) -> ApiResult<(Product, String)> {
    let bad = |m: String| ApiError::bad_request(Family::Admin, m).with_code("ADMIN-400");
    let b: RoleBody = serde_json::from_slice(body)
        .map_err(|e| bad(format!("The request body must be {{role, resource}}: {e}")))?;
    let product = parse_resource(w, &b.resource)
        .ok_or_else(|| bad(format!("The resource {} is not valid.", b.resource)))?;
    if !ROLES.contains(&b.role.as_str()) {
        return Err(bad(format!("The role {} is not valid.", b.role)));
    }
    Ok((product, b.role))
}

/// `POST /admin/v1/orgs/{orgId}/users/{userId}/roles/assign` `{role, resource}`: 204; an
/// assignment already held is success.
async fn assign(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, user_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    check(&sim, &headers, &org_id, None)?;
    let site = site_of_resource(&sim, &body);
    let mut w = site.write();
    let uid = directory_uid(&w, &user_id)?;
    let (product, role) = role_body(&w, &body)?;
    // Visible to reads after the configured consistency delay, like every admin change.
    site.change_eventually(&mut w, move |w| {
        set_direct(w, uid, product, &role, true);
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST .../roles/revoke`: removes a direct assignment (204). A role held only through a
/// group or inferred stays: revoking touches direct assignments only.
async fn revoke(
    State(sim): State<SimState>,
    headers: HeaderMap,
    Path((org_id, user_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    check(&sim, &headers, &org_id, None)?;
    let site = site_of_resource(&sim, &body);
    let mut w = site.write();
    let uid = directory_uid(&w, &user_id)?;
    let (product, role) = role_body(&w, &body)?;
    // Visible to reads after the configured consistency delay, like every admin change.
    site.change_eventually(&mut w, move |w| {
        set_direct(w, uid, product, &role, false);
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Adds or removes a direct assignment, keeping seat counts right.
fn set_direct(w: &mut World, uid: Uid, product: Product, role: &str, on: bool) -> bool {
    let before = w.access(uid);
    let book = &mut w.access_roles;
    let changed = if on {
        book.direct
            .entry(uid)
            .or_default()
            .entry(product)
            .or_default()
            .insert(role.to_owned())
    } else {
        let mut changed = false;
        if let Some(by_product) = book.direct.get_mut(&uid) {
            if let Some(roles) = by_product.get_mut(&product) {
                changed = roles.remove(role);
                if roles.is_empty() {
                    by_product.remove(&product);
                }
            }
            if by_product.is_empty() {
                book.direct.remove(&uid);
            }
        }
        changed
    };
    let after = w.access(uid);
    w.apply_access_delta(before, after);
    changed
}

/// One role a user holds on a product, as tests see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RoleView {
    pub product: Product,
    pub role: String,
    /// `direct`, `group_direct` or `inferred`.
    pub methods: Vec<String>,
}

/// The accounts [`SimState::seed_access_ways`] adds: one per way of holding a Jira seat.
#[derive(Clone, Debug, Serialize)]
pub struct AccessWays {
    /// In the default access group only.
    pub default_group: String,
    /// A direct `atlassian/user` role, no group.
    pub direct_role: String,
    /// Both the default group and a direct role.
    pub both: String,
    /// An `atlassian/admin` role inferred from the site admin role, no group.
    pub inferred: String,
    /// In an IdP-synced group that grants Jira.
    pub idp_group: String,
    /// An IdP-provisioned account (`managementSource: synced`) in the default group.
    pub idp_account: String,
    /// The synced group's name.
    pub idp_group_name: String,
}

/// Name of the IdP-synced group [`SimState::seed_access_ways`] creates.
pub const GROUP_IDP_JIRA: &str = "okta-jira-users";

impl SimState {
    /// A user's roles on the configured site's products.
    pub fn roles_of(&self, account_id: &str) -> Result<Vec<RoleView>, SimError> {
        let w = self.read();
        let uid = w
            .uid(account_id)
            .ok_or_else(|| SimError::UnknownUser(account_id.to_owned()))?;
        Ok(assignments(&w, uid)
            .into_iter()
            .map(|((product, role), methods)| RoleView {
                product,
                role,
                methods: methods.into_iter().map(str::to_owned).collect(),
            })
            .collect())
    }

    /// Whether the user holds a seat (a billable role by any method) on the product.
    pub fn holds_seat(&self, account_id: &str, product: Product) -> bool {
        let w = self.read();
        w.uid(account_id)
            .is_some_and(|uid| w.access(uid) & product.bit() != 0)
    }

    /// Assigns (or with `on = false` revokes) a direct role.
    pub fn set_direct_role(
        &self,
        account_id: &str,
        product: Product,
        role: &str,
        on: bool,
    ) -> Result<bool, SimError> {
        let mut w = self.write();
        let uid = w
            .uid(account_id)
            .ok_or_else(|| SimError::UnknownUser(account_id.to_owned()))?;
        Ok(set_direct(&mut w, uid, product, role, on))
    }

    /// Gives a user a role inferred from another (`from`, e.g. `site-admin`).
    pub fn add_inferred_role(
        &self,
        account_id: &str,
        product: Product,
        role: &str,
        from: &str,
    ) -> Result<(), SimError> {
        let mut w = self.write();
        let uid = w
            .uid(account_id)
            .ok_or_else(|| SimError::UnknownUser(account_id.to_owned()))?;
        let before = w.access(uid);
        w.access_roles
            .inferred
            .entry(uid)
            .or_default()
            .push(Inferred {
                product,
                role: role.to_owned(),
                from: from.to_owned(),
            });
        let after = w.access(uid);
        w.apply_access_delta(before, after);
        Ok(())
    }

    /// Marks an account as provisioned by an identity provider (`managementSource: synced`).
    pub fn set_user_synced(&self, account_id: &str, synced: bool) -> Result<(), SimError> {
        let mut w = self.write();
        let uid = w
            .uid(account_id)
            .ok_or_else(|| SimError::UnknownUser(account_id.to_owned()))?;
        w.users[uid as usize].synced = synced;
        Ok(())
    }

    /// Marks a group as synced from an identity provider (`managementAccess.modifiable`
    /// false): membership changes are refused.
    pub fn set_group_synced(&self, group: &str, synced: bool) -> Result<(), SimError> {
        let mut w = self.write();
        let gid = w
            .gid(group)
            .ok_or_else(|| SimError::UnknownGroup(group.to_owned()))?;
        if synced {
            w.access_roles.synced_groups.insert(gid);
        } else {
            w.access_roles.synced_groups.remove(&gid);
        }
        Ok(())
    }

    /// Adds a group that grants `product` through its application role (not a default
    /// group), as an identity provider's sync would create it.
    fn idp_group(&self, product: Product) -> Result<(), SimError> {
        let mut w = self.write();
        if w.group_by_name.contains_key(GROUP_IDP_JIRA) {
            return Ok(());
        }
        let gid = w.push_group(
            uuid::Uuid::new_v4().to_string(),
            GROUP_IDP_JIRA.to_owned(),
            Some("user"),
        );
        w.grant(gid, product, false);
        w.access_roles.synced_groups.insert(gid);
        Ok(())
    }

    /// Seeds six Jira Software seat holders, inactive for `idle_days`, one per way of
    /// holding the seat (see [`AccessWays`]).
    pub fn seed_access_ways(&self, idle_days: i64) -> Result<AccessWays, SimError> {
        let product = Product::JiraSoftware;
        self.idp_group(product)?;
        let since = Utc::now() - Duration::days(idle_days);
        let mk = |tag: &str, groups: Vec<String>| -> Result<String, SimError> {
            let user = self.create_user(NewUser {
                account_id: None,
                name: format!("Held {tag}"),
                email: Some(format!("held-{tag}@{}", super::seed::MANAGED_DOMAIN)),
                account_type: None,
                account_status: None,
                managed: Some(true),
                added_to_org: Some(since - Duration::days(30)),
                groups,
                synced: None,
            })?;
            self.set_last_active(&user.account_id, product, None, Some(since))?;
            Ok(user.account_id)
        };
        let default = || vec![GROUP_JIRA_SOFTWARE.to_owned()];
        let ways = AccessWays {
            default_group: mk("default-group", default())?,
            direct_role: mk("direct-role", vec![])?,
            both: mk("both", default())?,
            inferred: mk("inferred", vec![])?,
            idp_group: mk("idp-group", vec![GROUP_IDP_JIRA.to_owned()])?,
            idp_account: mk("idp-account", default())?,
            idp_group_name: GROUP_IDP_JIRA.to_owned(),
        };
        self.set_direct_role(&ways.direct_role, product, ROLE_USER, true)?;
        self.set_direct_role(&ways.both, product, ROLE_USER, true)?;
        self.add_inferred_role(&ways.inferred, product, ROLE_ADMIN, "site-admin")?;
        self.set_user_synced(&ways.idp_account, true)?;
        Ok(ways)
    }
}

/// Whether a directory search's `resourceIds` / `roleIds` filters keep this user: some role
/// (billable or not) on one of the resources, among the roles when given.
pub(crate) fn search_keeps(w: &World, uid: Uid, resources: &[String], role_ids: &[String]) -> bool {
    if resources.is_empty() && role_ids.is_empty() {
        return true;
    }
    let cloud = match w.sites.first() {
        Some(s) => s.cloud_id.clone(),
        None => return false,
    };
    if !w.user(uid).can_use_products() {
        return false;
    }
    assignments(w, uid).keys().any(|(p, role)| {
        (resources.is_empty() || resources.contains(&resource_id(*p, &cloud)))
            && (role_ids.is_empty() || role_ids.contains(role))
    })
}
