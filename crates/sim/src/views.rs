//! Snapshots of the simulator's state as tests and `/_sim/` see them, and the inputs of
//! the mutation helpers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::jsm_model::{self, STATUSES};
use super::model::{AccountStatus, AccountType, Product, World, products_in};

/// A group reference.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GroupRef {
    /// Group id.
    pub id: String,
    /// Group name.
    pub name: String,
}

/// Last-active record of a user.
#[derive(Clone, Debug, Serialize)]
pub struct ActivityView {
    /// Product.
    pub product: Product,
    /// Site cloud id.
    pub cloud_id: String,
    /// Last active time.
    pub last_active: DateTime<Utc>,
}

/// Everything the simulator knows about one account.
#[derive(Clone, Debug, Serialize)]
pub struct UserView {
    /// Account id.
    pub account_id: String,
    /// Account type.
    pub account_type: AccountType,
    /// Account status.
    pub account_status: AccountStatus,
    /// Suspended at org level.
    pub suspended: bool,
    /// Managed account.
    pub managed: bool,
    /// Provisioned from an identity provider (`managementSource: synced`).
    pub synced: bool,
    /// Still in the org directory (false after `DELETE .../directory/users/{id}`).
    pub in_directory: bool,
    /// Display name.
    pub name: String,
    /// Email (absent when hidden).
    pub email: Option<String>,
    /// Added to the org.
    pub added_to_org: DateTime<Utc>,
    /// Groups on the configured site.
    pub groups: Vec<GroupRef>,
    /// Products the account can use on the configured site now.
    pub products: Vec<Product>,
    /// Last-active records, every product and site.
    pub activity: Vec<ActivityView>,
}

/// A group and what it grants.
#[derive(Clone, Debug, Serialize)]
pub struct GroupView {
    /// Group id.
    pub id: String,
    /// Group name.
    pub name: String,
    /// Products membership grants on the configured site.
    pub grants: Vec<Product>,
    /// Number of members (every account).
    pub members: usize,
}

/// A new account for [`SimState::create_user`] and `POST /_sim/users`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct NewUser {
    /// Display name.
    pub name: String,
    /// Email; must be unique.
    #[serde(default)]
    pub email: Option<String>,
    /// Account id; generated when absent.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Defaults to `atlassian`.
    #[serde(default)]
    pub account_type: Option<AccountType>,
    /// Defaults to `active`.
    #[serde(default)]
    pub account_status: Option<AccountStatus>,
    /// Defaults to true for `atlassian` accounts.
    #[serde(default)]
    pub managed: Option<bool>,
    /// Provisioned from an identity provider; defaults to false (invited).
    #[serde(default)]
    pub synced: Option<bool>,
    /// Defaults to now.
    #[serde(default)]
    pub added_to_org: Option<DateTime<Utc>>,
    /// Group ids or names to join.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Changes to an account's lifecycle for [`SimState::update_user`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct UserPatch {
    /// New status.
    pub account_status: Option<AccountStatus>,
    /// Suspend or unsuspend.
    pub suspended: Option<bool>,
    /// Mark as provisioned from an identity provider, or not.
    pub synced: Option<bool>,
}

/// A new portal request for [`SimState::create_request`] and `POST /_sim/jsm/requests`.
#[derive(Clone, Debug, Deserialize)]
pub struct NewRequest {
    /// Reporter account id.
    pub reporter: String,
    /// Defaults to the "Restore my access" request type.
    #[serde(default)]
    pub request_type_id: Option<String>,
    /// Summary; a default is made up when absent.
    #[serde(default)]
    pub summary: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Value of the "Product" field.
    #[serde(default)]
    pub product: Option<Product>,
    /// Value of the "Why do you need it?" field.
    #[serde(default)]
    pub justification: Option<String>,
}

/// A comment as tests see it.
#[derive(Clone, Debug, Serialize)]
pub struct CommentView {
    /// Comment id.
    pub id: String,
    /// Body text.
    pub body: String,
    /// Public (visible to the customer) or internal.
    pub public: bool,
    /// Author account id.
    pub author: String,
    /// Creation time.
    pub created: DateTime<Utc>,
}

/// A portal request as tests see it.
#[derive(Clone, Debug, Serialize)]
pub struct RequestView {
    /// Issue key (`HELP-1`).
    pub key: String,
    /// Issue id.
    pub issue_id: String,
    /// Reporter account id.
    pub reporter: String,
    /// Request type id.
    pub request_type_id: String,
    /// Product field.
    pub product: Option<Product>,
    /// Current status name.
    pub status: String,
    /// Current status category.
    pub status_category: String,
    /// Comments, oldest first.
    pub comments: Vec<CommentView>,
}

pub(crate) fn user_view(w: &World, uid: u32) -> UserView {
    let u = w.user(uid);
    UserView {
        account_id: u.account_id.clone(),
        account_type: u.account_type,
        account_status: u.status,
        suspended: u.suspended,
        managed: u.managed,
        synced: u.synced,
        in_directory: u.in_directory,
        name: u.name.clone(),
        email: u.email.clone(),
        added_to_org: u.added_to_org,
        groups: u
            .groups
            .iter()
            .map(|g| GroupRef {
                id: w.group(*g).id.clone(),
                name: w.group(*g).name.clone(),
            })
            .collect(),
        products: products_in(w.access(uid)).collect(),
        activity: u
            .activity
            .iter()
            .map(|a| ActivityView {
                product: a.product,
                cloud_id: w.sites[a.site as usize].cloud_id.clone(),
                last_active: a.at,
            })
            .collect(),
    }
}

pub(crate) fn group_view(w: &World, gid: u32) -> GroupView {
    let g = w.group(gid);
    GroupView {
        id: g.id.clone(),
        name: g.name.clone(),
        grants: products_in(g.grants).collect(),
        members: g.members.len(),
    }
}

pub(crate) fn request_view(w: &World, i: usize) -> RequestView {
    let r = &w.desk.requests[i];
    let status = STATUSES
        .get(r.status)
        .copied()
        .unwrap_or(jsm_model::STATUSES[0]);
    RequestView {
        key: r.key.clone(),
        issue_id: r.issue_id.clone(),
        reporter: w.user(r.reporter).account_id.clone(),
        request_type_id: r.request_type_id.clone(),
        product: r.product,
        status: status.name.to_owned(),
        status_category: status.category.to_owned(),
        comments: r
            .comments
            .iter()
            .map(|c| CommentView {
                id: c.id.clone(),
                body: c.body.clone(),
                public: c.public,
                author: w.user(c.author).account_id.clone(),
                created: c.created,
            })
            .collect(),
    }
}
