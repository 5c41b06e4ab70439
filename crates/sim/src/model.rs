//! The simulated org's data: users, groups, product-access rules, sites and the JSM
//! service desk, plus the bookkeeping that keeps product access and seat counts in step
//! with group membership, the way Atlassian derives them.
//!
//! Everything here is plain data behind the lock in [`super::state::SimState`]; the
//! HTTP modules read it through small query methods that cost O(page), not O(users).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Dense index of a user in [`World::users`].
pub(crate) type Uid = u32;
/// Dense index of a group in [`World::groups`].
pub(crate) type Gid = u32;

/// A licensed product on a site, as the Organizations admin API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Product {
    /// `jira-software` (Jira application key `jira-software`).
    JiraSoftware,
    /// `jira-service-desk` (Jira application key `jira-servicedesk`).
    JiraServiceDesk,
    /// `confluence`.
    Confluence,
}

impl Product {
    /// All products the simulator knows, in a fixed order.
    pub const ALL: [Product; 3] = [
        Product::JiraSoftware,
        Product::JiraServiceDesk,
        Product::Confluence,
    ];

    /// Key used by the Organizations admin API (`product_access[].key`).
    pub fn admin_key(self) -> &'static str {
        match self {
            Product::JiraSoftware => "jira-software",
            Product::JiraServiceDesk => "jira-service-desk",
            Product::Confluence => "confluence",
        }
    }

    /// Parses an admin product key (`jira-software`, `jira-service-desk`, `confluence`).
    pub fn from_admin_key(key: &str) -> Option<Product> {
        Product::ALL.into_iter().find(|p| p.admin_key() == key)
    }

    /// Key of the v2 directory user search (`productAccess[].key`), as the platform names
    /// the apps now: `jira` (Jira Software and Work Management are one app), `confluence`,
    /// and for Jira Service Management the configured `jsm_key` (no source confirms it).
    pub fn v2_key(self, jsm_key: &str) -> &str {
        match self {
            Product::JiraSoftware => "jira",
            Product::JiraServiceDesk => jsm_key,
            Product::Confluence => "confluence",
        }
    }

    /// Display name used in `product_access[].name` and application roles.
    pub fn display_name(self) -> &'static str {
        match self {
            Product::JiraSoftware => "Jira Software",
            Product::JiraServiceDesk => "Jira Service Management",
            Product::Confluence => "Confluence",
        }
    }

    /// Jira application-role key, for the two Jira products.
    pub fn jira_app_key(self) -> Option<&'static str> {
        match self {
            Product::JiraSoftware => Some("jira-software"),
            Product::JiraServiceDesk => Some("jira-servicedesk"),
            Product::Confluence => None,
        }
    }

    /// Resource family in site ARIs (`ari:cloud:<family>::site/<cloudId>`).
    pub fn ari_family(self) -> &'static str {
        match self {
            Product::Confluence => "confluence",
            _ => "jira",
        }
    }

    pub(crate) fn bit(self) -> u8 {
        match self {
            Product::JiraSoftware => 1,
            Product::JiraServiceDesk => 2,
            Product::Confluence => 4,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Product::JiraSoftware => 0,
            Product::JiraServiceDesk => 1,
            Product::Confluence => 2,
        }
    }
}

/// Set of products as a bit mask (see [`Product::bit`]).
pub(crate) type ProductSet = u8;

/// Products contained in a set, in [`Product::ALL`] order.
pub(crate) fn products_in(set: ProductSet) -> impl Iterator<Item = Product> {
    Product::ALL.into_iter().filter(move |p| set & p.bit() != 0)
}

/// `account_type` of the admin API (`accountType` on the site APIs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    /// A person.
    Atlassian,
    /// A bot or integration.
    App,
    /// A JSM portal-only customer.
    Customer,
}

impl AccountType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Atlassian => "atlassian",
            AccountType::App => "app",
            AccountType::Customer => "customer",
        }
    }
}

/// `account_status` of the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Can log in.
    Active,
    /// Deactivated.
    Inactive,
    /// Deleted.
    Closed,
}

impl AccountStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Inactive => "inactive",
            AccountStatus::Closed => "closed",
        }
    }
}

/// A site (cloud id) of the org.
#[derive(Clone, Debug, Serialize)]
pub struct Site {
    /// Cloud id.
    pub cloud_id: String,
    /// Site name (`<name>.atlassian.net`).
    pub name: String,
}

impl Site {
    /// The site's public URL as Atlassian reports it.
    pub fn url(&self) -> String {
        format!("https://{}.atlassian.net", self.name)
    }
}

/// A last-active record for one product on one site.
#[derive(Clone, Debug)]
pub(crate) struct Activity {
    pub product: Product,
    pub site: u8,
    pub at: DateTime<Utc>,
}

/// One account of the org directory.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub account_id: String,
    pub account_type: AccountType,
    pub status: AccountStatus,
    pub suspended: bool,
    pub managed: bool,
    /// Provisioned from an identity provider (SCIM): `managementSource: synced`.
    pub synced: bool,
    pub in_directory: bool,
    pub name: String,
    pub email: Option<String>,
    pub added_to_org: DateTime<Utc>,
    /// Sorted group indices.
    pub groups: Vec<Gid>,
    pub activity: Vec<Activity>,
    /// Product access on sites other than the configured one (site index, product).
    pub remote_access: Vec<(u8, Product)>,
}

impl User {
    /// Whether group memberships currently give this account product access.
    pub fn can_use_products(&self) -> bool {
        self.jira_active() && self.account_type != AccountType::Customer
    }

    /// `active` as the site APIs report it: not deactivated, closed, suspended or removed.
    pub fn jira_active(&self) -> bool {
        self.status == AccountStatus::Active && !self.suspended && self.in_directory
    }

    pub fn last_active(&self, product: Product, site: u8) -> Option<DateTime<Utc>> {
        self.activity
            .iter()
            .filter(|a| a.product == product && a.site == site)
            .map(|a| a.at)
            .max()
    }
}

/// A group on the configured site.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub id: String,
    pub name: String,
    /// Sorted member indices (every account).
    pub members: Vec<Uid>,
    /// Sorted indices of members that are [`User::jira_active`].
    pub active_members: Vec<Uid>,
    /// Products this group grants on the configured site (cached from the roles).
    pub grants: ProductSet,
    /// `site-admin`, `admin` or `user` for `/group/bulk?accessType=`.
    pub access_type: Option<&'static str>,
}

/// A Jira application role (`jira-software`, `jira-servicedesk`).
#[derive(Clone, Debug)]
pub(crate) struct JiraRole {
    pub product: Product,
    pub groups: Vec<Gid>,
    pub default_groups: Vec<Gid>,
    pub seats: u32,
}

/// Inserts into a sorted vector; false if already present.
pub(crate) fn sorted_insert(v: &mut Vec<u32>, x: u32) -> bool {
    match v.binary_search(&x) {
        Ok(_) => false,
        Err(pos) => {
            v.insert(pos, x);
            true
        }
    }
}

/// Removes from a sorted vector; false if absent.
pub(crate) fn sorted_remove(v: &mut Vec<u32>, x: u32) -> bool {
    match v.binary_search(&x) {
        Ok(pos) => {
            v.remove(pos);
            true
        }
        Err(_) => false,
    }
}

/// The whole simulated org.
#[derive(Clone, Debug)]
pub(crate) struct World {
    pub org_id: String,
    pub org_name: String,
    /// Index 0 is the configured site.
    pub sites: Vec<Site>,
    pub users: Vec<User>,
    pub by_account: HashMap<String, Uid>,
    pub by_email: HashMap<String, Uid>,
    pub groups: Vec<Group>,
    pub group_by_id: HashMap<String, Gid>,
    pub group_by_name: HashMap<String, Gid>,
    pub roles: Vec<JiraRole>,
    pub confluence_groups: Vec<Gid>,
    /// Users with access per product on the configured site, by [`Product::index`].
    pub user_count: [u32; 3],
    /// Seats bought for Confluence (Jira seats live on the roles).
    pub confluence_seats: u32,
    /// Managed accounts still in the directory, sorted; the admin users listing.
    pub managed: Vec<Uid>,
    pub desk: super::jsm_model::ServiceDesk,
    /// Direct and inferred role assignments, IdP-managed accounts and groups.
    pub access_roles: super::roles::RoleBook,
}

impl World {
    pub fn new(org_id: String, org_name: String, sites: Vec<Site>) -> World {
        World {
            org_id,
            org_name,
            sites,
            users: Vec::new(),
            by_account: HashMap::new(),
            by_email: HashMap::new(),
            groups: Vec::new(),
            group_by_id: HashMap::new(),
            group_by_name: HashMap::new(),
            roles: Vec::new(),
            confluence_groups: Vec::new(),
            user_count: [0; 3],
            confluence_seats: 0,
            managed: Vec::new(),
            desk: super::jsm_model::ServiceDesk::default(),
            access_roles: super::roles::RoleBook::default(),
        }
    }

    pub fn user(&self, uid: Uid) -> &User {
        &self.users[uid as usize]
    }

    pub fn uid(&self, account_id: &str) -> Option<Uid> {
        self.by_account.get(account_id).copied()
    }

    /// A group by id, or failing that by name.
    pub fn gid(&self, id_or_name: &str) -> Option<Gid> {
        self.group_by_id
            .get(id_or_name)
            .or_else(|| self.group_by_name.get(id_or_name))
            .copied()
    }

    pub fn group(&self, gid: Gid) -> &Group {
        &self.groups[gid as usize]
    }

    pub fn role(&self, product: Product) -> Option<&JiraRole> {
        self.roles.iter().find(|r| r.product == product)
    }

    /// Products the user can use on the configured site: a billable role by any method
    /// (a group's grant, a direct or an inferred role).
    pub fn access(&self, uid: Uid) -> ProductSet {
        let u = self.user(uid);
        if !u.can_use_products() {
            return 0;
        }
        u.groups
            .iter()
            .fold(self.access_roles.billable_set(uid), |acc, g| {
                acc | self.groups[*g as usize].grants
            })
    }

    pub fn seats(&self, product: Product) -> u32 {
        match self.role(product) {
            Some(r) => r.seats,
            None => self.confluence_seats,
        }
    }

    pub(crate) fn apply_access_delta(&mut self, before: ProductSet, after: ProductSet) {
        for p in Product::ALL {
            let (b, a) = (before & p.bit() != 0, after & p.bit() != 0);
            let c = &mut self.user_count[p.index()];
            if a && !b {
                *c += 1;
            } else if b && !a {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Appends a user (no groups yet); the account id and email must be new.
    pub fn push_user(&mut self, user: User) -> Uid {
        let uid = self.users.len() as Uid;
        self.by_account.insert(user.account_id.clone(), uid);
        if let Some(e) = &user.email {
            self.by_email.insert(e.to_ascii_lowercase(), uid);
        }
        if user.managed && user.in_directory {
            self.managed.push(uid);
        }
        self.users.push(user);
        uid
    }

    /// Adds a group; grants are recomputed from the roles.
    pub fn push_group(
        &mut self,
        id: String,
        name: String,
        access_type: Option<&'static str>,
    ) -> Gid {
        let gid = self.groups.len() as Gid;
        self.group_by_id.insert(id.clone(), gid);
        self.group_by_name.insert(name.clone(), gid);
        self.groups.push(Group {
            id,
            name,
            members: Vec::new(),
            active_members: Vec::new(),
            grants: 0,
            access_type,
        });
        gid
    }

    /// Makes `gid` grant `product` (as a Jira role group or a Confluence access group).
    /// Only used while the group has no members, so no counts change.
    pub fn grant(&mut self, gid: Gid, product: Product, default: bool) {
        match self.roles.iter_mut().find(|r| r.product == product) {
            Some(role) => {
                sorted_insert(&mut role.groups, gid);
                if default {
                    sorted_insert(&mut role.default_groups, gid);
                }
            }
            None => {
                sorted_insert(&mut self.confluence_groups, gid);
            }
        }
        self.groups[gid as usize].grants |= product.bit();
    }

    /// Adds a membership; false if the user was already a member.
    pub fn add_member(&mut self, gid: Gid, uid: Uid) -> bool {
        let before = self.access(uid);
        let active = self.user(uid).jira_active();
        let g = &mut self.groups[gid as usize];
        if !sorted_insert(&mut g.members, uid) {
            return false;
        }
        if active {
            sorted_insert(&mut g.active_members, uid);
        }
        sorted_insert(&mut self.users[uid as usize].groups, gid);
        let after = self.access(uid);
        self.apply_access_delta(before, after);
        true
    }

    /// Removes a membership; false if the user was not a member.
    pub fn remove_member(&mut self, gid: Gid, uid: Uid) -> bool {
        let before = self.access(uid);
        let g = &mut self.groups[gid as usize];
        if !sorted_remove(&mut g.members, uid) {
            return false;
        }
        sorted_remove(&mut g.active_members, uid);
        sorted_remove(&mut self.users[uid as usize].groups, gid);
        let after = self.access(uid);
        self.apply_access_delta(before, after);
        true
    }

    /// Changes a user's lifecycle fields and keeps the derived lists and counts right.
    pub fn update_user(&mut self, uid: Uid, f: impl FnOnce(&mut User)) {
        let before = self.access(uid);
        let was_active = self.user(uid).jira_active();
        let was_listed = {
            let u = self.user(uid);
            u.managed && u.in_directory
        };
        f(&mut self.users[uid as usize]);
        let u = self.user(uid);
        let (is_active, is_listed) = (u.jira_active(), u.managed && u.in_directory);
        if was_active != is_active {
            let groups = u.groups.clone();
            for g in groups {
                let list = &mut self.groups[g as usize].active_members;
                if is_active {
                    sorted_insert(list, uid);
                } else {
                    sorted_remove(list, uid);
                }
            }
        }
        if was_listed != is_listed {
            if is_listed {
                sorted_insert(&mut self.managed, uid);
            } else {
                sorted_remove(&mut self.managed, uid);
            }
        }
        let after = self.access(uid);
        self.apply_access_delta(before, after);
    }

    /// Latest activity on any product and site.
    pub fn last_active_any(&self, uid: Uid) -> Option<DateTime<Utc>> {
        self.user(uid).activity.iter().map(|a| a.at).max()
    }
}
