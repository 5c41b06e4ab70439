//! The Organizations admin API (`https://api.atlassian.com/admin/...`, Bearer org API key):
//! organizations, the v2 directory user search and the v1 managed-users listing with
//! per-product last activity, a user's last-active dates, and org-level suspend / restore /
//! remove.

use crate::atlassian::error::AtlassianError;
use crate::atlassian::http::{ApiClient, Call, Method};
use crate::atlassian::page::{Page, PageToken, Paged, query_param};
use crate::atlassian::product::{AccountId, OrgId, ProductKey};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

/// An organization the API key can administer.
#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    /// The organization id.
    pub id: OrgId,
    /// Its display name.
    pub name: String,
}

/// What kind of account a user is. Open: unknown types are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub enum AccountType {
    /// A person.
    Atlassian,
    /// A JSM portal-only customer (holds no product seat).
    Customer,
    /// A bot or integration; never deprovisioned.
    App,
    /// A type reseat does not know, as it came.
    Other(String),
}

impl From<String> for AccountType {
    fn from(text: String) -> Self {
        match text.as_str() {
            "atlassian" => Self::Atlassian,
            "customer" => Self::Customer,
            "app" => Self::App,
            _ => Self::Other(text),
        }
    }
}

/// The state of an account. Open: unknown states are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub enum AccountStatus {
    /// Usable.
    Active,
    /// Deactivated.
    Inactive,
    /// Deleted.
    Closed,
    /// A state reseat does not know, as it came.
    Other(String),
}

impl From<String> for AccountStatus {
    fn from(text: String) -> Self {
        match text.as_str() {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            "closed" => Self::Closed,
            _ => Self::Other(text),
        }
    }
}

/// A managed account of the organization (`GET /admin/v1/orgs/{orgId}/users`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrgUser {
    /// The account id.
    pub account_id: AccountId,
    /// Person, customer or app.
    pub account_type: AccountType,
    /// Active, inactive or closed.
    pub account_status: AccountStatus,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    #[serde(default)]
    pub picture: Option<String>,
    /// Email, absent when hidden by the user's privacy settings.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the account counts towards billing.
    #[serde(default)]
    pub access_billable: Option<bool>,
    /// Last activity in any product.
    #[serde(default, deserialize_with = "timestamp")]
    pub last_active: Option<DateTime<Utc>>,
    /// Products the user can use, with last activity per product.
    #[serde(default)]
    pub product_access: Vec<ProductAccess>,
}

/// One product a user can use (`product_access[]` of a user).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProductAccess {
    /// The admin API product key (`jira-software`, `jira-service-desk`, `confluence`, ...).
    pub key: ProductKey,
    /// The product's display name.
    pub name: String,
    /// The site URL of this access.
    #[serde(default)]
    pub url: Option<String>,
    /// Last activity in this product.
    #[serde(default, deserialize_with = "timestamp")]
    pub last_active: Option<DateTime<Utc>>,
}

/// A user's last activity per product and site
/// (`GET /admin/v1/orgs/{orgId}/directory/users/{accountId}/last-active-dates`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LastActiveDates {
    /// One entry per product and site the user ever used; never-used products are absent.
    pub product_access: Vec<ProductActivity>,
    /// When the user joined the org (only orgs on the centralized user management).
    pub added_to_org: Option<DateTime<Utc>>,
}

/// One product's last activity for one user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProductActivity {
    /// The site/product ARI, e.g. `ari:cloud:confluence::site/<cloud id>`.
    #[serde(default)]
    pub id: Option<String>,
    /// The product key.
    pub key: ProductKey,
    /// The product name.
    #[serde(default)]
    pub name: Option<String>,
    /// The site URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Last activity (`last_active_timestamp` when present, else the `last_active` date).
    #[serde(
        default,
        deserialize_with = "timestamp",
        alias = "last_active_timestamp"
    )]
    pub last_active: Option<DateTime<Utc>>,
}

impl ProductActivity {
    /// Whether this entry is about the site with `cloud_id`.
    pub fn is_site(&self, cloud_id: &str) -> bool {
        is_site_ari(self.id.as_deref(), cloud_id)
    }
}

/// A user of the org's directories, managed or not, as the v2 user search returns it
/// (`POST /admin/v2/orgs/{orgId}/directories/{directoryId}/users/search`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    /// The account id.
    pub account_id: AccountId,
    /// Person, customer or app.
    #[serde(default)]
    pub account_type: Option<AccountType>,
    /// Active, inactive or closed (the account's lifecycle).
    #[serde(default)]
    pub account_status: Option<AccountStatus>,
    /// `active`, `suspended` or `no_membership` in the directories.
    #[serde(default)]
    pub membership_status: Option<String>,
    /// The user's status in the org as the v2 API sums it up (`active`, `suspended`,
    /// `deactivated`, …).
    #[serde(default)]
    pub status: Option<String>,
    /// When the user was first added to a directory of the org.
    #[serde(default, deserialize_with = "timestamp")]
    pub added_to_org: Option<DateTime<Utc>>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Email, absent when hidden.
    #[serde(default)]
    pub email: Option<String>,
    /// `managed` or `unmanaged`.
    #[serde(default)]
    pub claim_status: Option<String>,
    /// Last activity per product and site (with `expand: ["productAccess"]`).
    #[serde(default)]
    pub product_access: Vec<DirectoryProductAccess>,
}

/// One product instance's last activity for a directory user (`productAccess[]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryProductAccess {
    /// The product key; `None` for a key reseat cannot read, so that one odd entry does not
    /// cost the page (it then counts for no product).
    #[serde(default, deserialize_with = "lenient_key")]
    pub key: Option<ProductKey>,
    /// The product instance, an ARI such as `ari:cloud:jira::site/<cloud id>`.
    #[serde(default)]
    pub id: Option<String>,
    /// Last activity in this product on this site.
    #[serde(default, deserialize_with = "timestamp")]
    pub last_active_timestamp: Option<DateTime<Utc>>,
}

impl DirectoryProductAccess {
    /// Whether this entry is about the site with `cloud_id`.
    pub fn is_site(&self, cloud_id: &str) -> bool {
        is_site_ari(self.id.as_deref(), cloud_id)
    }
}

fn lenient_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ProductKey>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.and_then(|key| ProductKey::parse(&key).ok()))
}

fn is_site_ari(id: Option<&str>, cloud_id: &str) -> bool {
    id.is_some_and(|id| id == cloud_id || id.ends_with(&format!("/{cloud_id}")))
}

/// Users per page of the directory user search (the API's default is 50).
pub const DIRECTORY_PAGE: u32 = 100;

/// Accepts RFC 3339 timestamps and plain `YYYY-MM-DD` dates (midnight UTC).
fn timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(&text) {
        return Ok(Some(at.to_utc()));
    }
    if let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).map(|at| at.and_utc()));
    }
    Err(serde::de::Error::custom(format!(
        "expected an ISO 8601 timestamp or date, got {text:?}"
    )))
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Listing<T> {
    data: Vec<T>,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Deserialize)]
struct OrgModel {
    id: OrgId,
    #[serde(default)]
    attributes: Option<OrgAttributes>,
}

#[derive(Deserialize)]
struct OrgAttributes {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct LastActiveEnvelope {
    data: LastActiveData,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Deserialize)]
struct LastActiveData {
    #[serde(default)]
    product_access: Vec<RawActivity>,
    #[serde(default, deserialize_with = "timestamp")]
    added_to_org: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "timestamp")]
    added_to_org_timestamp: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct RawActivity {
    #[serde(default)]
    id: Option<String>,
    key: ProductKey,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    last_active: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "timestamp")]
    last_active_timestamp: Option<DateTime<Utc>>,
}

/// The next page of an admin listing. `links.next` comes as a link carrying a `cursor`
/// parameter (the v1 users listing) or as the bare cursor (the v2 search, and
/// `last-active-dates` in the current model): both are accepted everywhere.
fn next_cursor(links: Option<Links>) -> Result<Option<PageToken>, AtlassianError> {
    let Some(next) = links.and_then(|links| links.next).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let is_link = next.contains('?') || next.starts_with("http") || next.starts_with('/');
    if !is_link {
        return Ok(Some(PageToken::Cursor(next)));
    }
    match query_param(&next, "cursor") {
        Some(cursor) if !cursor.is_empty() => Ok(Some(PageToken::Cursor(cursor))),
        _ => Err(AtlassianError::Decode {
            endpoint: "admin API".to_owned(),
            message: format!("links.next is a link without a cursor parameter: {next:?}"),
        }),
    }
}

fn with_cursor(call: Call, token: Option<&PageToken>) -> Call {
    match PageToken::cursor(token) {
        Some(cursor) => call.query("cursor", cursor),
        None => call,
    }
}

/// One workspace of the org: a product instance on a site.
#[derive(Debug, Clone, Deserialize)]
pub struct Workspace {
    /// Often the instance's ARI, `ari:cloud:<product>::site/<cloud id>`.
    pub id: String,
    #[serde(default)]
    pub attributes: WorkspaceAttributes,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkspaceAttributes {
    pub name: Option<String>,
    pub type_key: Option<String>,
    pub status: Option<String>,
    pub host_url: Option<String>,
}

impl Workspace {
    /// The site's cloud id, when the workspace id is a site ARI.
    pub fn cloud_id(&self) -> Option<&str> {
        self.id
            .rsplit_once("::site/")
            .map(|(_, cloud)| cloud)
            .filter(|c| !c.is_empty() && !c.contains('/'))
    }
}

#[derive(Deserialize)]
struct WorkspacePage {
    #[serde(default)]
    data: Vec<Workspace>,
    #[serde(default)]
    links: Option<WorkspaceLinks>,
}

#[derive(Deserialize)]
struct WorkspaceLinks {
    #[serde(default)]
    next: Option<String>,
}

/// Client of the Organizations admin API.
#[derive(Debug)]
pub struct AdminClient {
    api: ApiClient,
    /// `atlassian.directory_id`: the directory the v2 directory actions act in; `"-"` means
    /// every directory of the org that holds the account.
    directory: String,
}

/// What removing an account from the directory found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryRemoval {
    /// The account was in the directory and the removal was accepted.
    Removed,
    /// The API says, before any removal of ours was sent, that no directory holds the
    /// account, or answers the documented unknown-user error: it is already gone.
    AlreadyGone,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryModel {
    #[serde(default)]
    directory_id: Option<String>,
}

impl AdminClient {
    pub(crate) fn new(api: ApiClient, directory: String) -> Self {
        Self { api, directory }
    }

    /// The directories of the org that hold the account
    /// (`GET /admin/v2/orgs/{orgId}/directories?accountId=`), every page.
    pub async fn directories_of(
        &self,
        org: &OrgId,
        account: &AccountId,
    ) -> Result<Vec<String>, AtlassianError> {
        let mut found = Vec::new();
        let mut token: Option<PageToken> = None;
        loop {
            let call = with_cursor(
                Call::get("/admin/v2/orgs/{orgId}/directories", &[org.as_str()])
                    .query("accountId", account.as_str()),
                token.as_ref(),
            );
            let listing: Listing<DirectoryModel> = self.api.json(&call).await?;
            found.extend(listing.data.into_iter().filter_map(|d| d.directory_id));
            match next_cursor(listing.links)? {
                Some(next) => token = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// The org's workspaces (`POST /admin/v2/orgs/{orgId}/workspaces`): one per product
    /// instance, each naming its site by `hostUrl`. A read sent as POST, retried as one.
    pub async fn workspaces(&self, org: &OrgId) -> Result<Vec<Workspace>, AtlassianError> {
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut body = serde_json::json!({ "limit": 100 });
            if let Some(cursor) = &cursor {
                body["cursor"] = serde_json::Value::from(cursor.clone());
            }
            let call = Call::new(
                Method::POST,
                "/admin/v2/orgs/{orgId}/workspaces",
                &[org.as_str()],
            )
            .json(body)
            .idempotent(true);
            let page: WorkspacePage = self.api.json(&call).await?;
            found.extend(page.data);
            // `links.next`: a cursor, or a URL carrying one.
            let next = page.links.and_then(|l| l.next).filter(|n| !n.is_empty());
            match next {
                Some(next) if found.len() < 10_000 => {
                    let next = url::Url::parse(&next)
                        .ok()
                        .and_then(|u| {
                            u.query_pairs()
                                .find(|(k, _)| k == "cursor")
                                .map(|(_, v)| v.into_owned())
                        })
                        .unwrap_or(next);
                    if cursor.as_deref() == Some(next.as_str()) {
                        return Ok(found);
                    }
                    cursor = Some(next);
                }
                _ => return Ok(found),
            }
        }
    }

    /// The directories a directory action for `account` acts in: the configured one, or,
    /// for `"-"`, every directory that holds the account.
    async fn action_directories(
        &self,
        org: &OrgId,
        account: &AccountId,
    ) -> Result<Vec<String>, AtlassianError> {
        if self.directory == "-" {
            self.directories_of(org, account).await
        } else {
            Ok(vec![self.directory.clone()])
        }
    }

    /// One page of the organizations the key administers (`GET /admin/v1/orgs`).
    pub async fn orgs_page(&self, token: Option<&PageToken>) -> Result<Page<Org>, AtlassianError> {
        let call = with_cursor(Call::get("/admin/v1/orgs", &[]), token);
        let listing: Listing<OrgModel> = self.api.json(&call).await?;
        Ok(Page {
            items: listing
                .data
                .into_iter()
                .map(|org| Org {
                    id: org.id,
                    name: org.attributes.map(|a| a.name).unwrap_or_default(),
                })
                .collect(),
            next: next_cursor(listing.links)?,
        })
    }

    /// Every organization, page by page.
    pub fn orgs(&self) -> Paged<'_, Org> {
        Paged::new(None, move |token| {
            Box::pin(async move { self.orgs_page(token.as_ref()).await })
        })
    }

    /// One page of the org's managed users (`GET /admin/v1/orgs/{orgId}/users`).
    pub async fn users_page(
        &self,
        org: &OrgId,
        token: Option<&PageToken>,
    ) -> Result<Page<OrgUser>, AtlassianError> {
        let call = with_cursor(
            Call::get("/admin/v1/orgs/{orgId}/users", &[org.as_str()]),
            token,
        );
        let listing: Listing<OrgUser> = self.api.json(&call).await?;
        Ok(Page {
            items: listing.data,
            next: next_cursor(listing.links)?,
        })
    }

    /// Every managed user, page by page, following `links.next`.
    pub fn users(&self, org: &OrgId) -> Paged<'_, OrgUser> {
        let org = org.clone();
        Paged::new(None, move |token| {
            let org = org.clone();
            Box::pin(async move { self.users_page(&org, token.as_ref()).await })
        })
    }

    /// One page of the org's directory users with their per-product activity
    /// (`POST /admin/v2/orgs/{orgId}/directories/{directoryId}/users/search`, `expand`
    /// `productAccess`). A read sent as POST: retried like an idempotent call.
    pub async fn directory_users_page(
        &self,
        org: &OrgId,
        directory: &str,
        token: Option<&PageToken>,
    ) -> Result<Page<DirectoryUser>, AtlassianError> {
        let mut body = serde_json::json!({
            "limit": DIRECTORY_PAGE,
            "expand": ["productAccess"],
        });
        if let Some(cursor) = PageToken::cursor(token) {
            body["cursor"] = serde_json::Value::from(cursor);
        }
        let call = Call::new(
            Method::POST,
            "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/search",
            &[org.as_str(), directory],
        )
        .json(body)
        .idempotent(true);
        let listing: Listing<DirectoryUser> = self.api.json(&call).await?;
        Ok(Page {
            items: listing.data,
            next: next_cursor(listing.links)?,
        })
    }

    /// Every user of the directory, page by page.
    pub fn directory_users(&self, org: &OrgId, directory: &str) -> Paged<'_, DirectoryUser> {
        let org = org.clone();
        let directory = directory.to_owned();
        Paged::new(None, move |token| {
            let org = org.clone();
            let directory = directory.clone();
            Box::pin(async move {
                self.directory_users_page(&org, &directory, token.as_ref())
                    .await
            })
        })
    }

    async fn last_active_page(
        &self,
        org: &OrgId,
        account: &AccountId,
        token: Option<&PageToken>,
    ) -> Result<(Page<ProductActivity>, Option<DateTime<Utc>>), AtlassianError> {
        let call = with_cursor(
            Call::get(
                "/admin/v1/orgs/{orgId}/directory/users/{accountId}/last-active-dates",
                &[org.as_str(), account.as_str()],
            ),
            token,
        );
        let envelope: LastActiveEnvelope = self.api.json(&call).await?;
        let items = envelope
            .data
            .product_access
            .into_iter()
            .map(|raw| ProductActivity {
                id: raw.id,
                key: raw.key,
                name: raw.name,
                url: raw.url,
                last_active: raw.last_active_timestamp.or(raw.last_active),
            })
            .collect();
        let added = envelope
            .data
            .added_to_org_timestamp
            .or(envelope.data.added_to_org);
        Ok((
            Page {
                items,
                next: next_cursor(envelope.links)?,
            },
            added,
        ))
    }

    /// A user's last-active dates for every product (all pages; there are few).
    pub async fn last_active_dates(
        &self,
        org: &OrgId,
        account: &AccountId,
    ) -> Result<LastActiveDates, AtlassianError> {
        let mut dates = LastActiveDates::default();
        let mut token = None;
        loop {
            let (page, added) = self.last_active_page(org, account, token.as_ref()).await?;
            dates.product_access.extend(page.items);
            dates.added_to_org = dates.added_to_org.or(added);
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(dates),
            }
        }
    }

    /// Suspends the account's access in its directories (v2
    /// `POST /admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/suspend`):
    /// it keeps its roles and groups, and is not billed. A POST, but it sets a state: sending
    /// it twice suspends once, so it is retried like an idempotent call.
    pub async fn suspend(&self, org: &OrgId, account: &AccountId) -> Result<(), AtlassianError> {
        for directory in self.action_directories(org, account).await? {
            self.directory_action(
                org,
                &directory,
                account,
                "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/suspend",
            )
            .await?;
        }
        Ok(())
    }

    /// Restores the account's access in its directories (v2 `.../users/{accountId}/restore`;
    /// undoes [`AdminClient::suspend`]); state-setting, hence retried like an idempotent call.
    pub async fn restore(&self, org: &OrgId, account: &AccountId) -> Result<(), AtlassianError> {
        for directory in self.action_directories(org, account).await? {
            self.directory_action(
                org,
                &directory,
                account,
                "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/restore",
            )
            .await?;
        }
        Ok(())
    }

    async fn directory_action(
        &self,
        org: &OrgId,
        directory: &str,
        account: &AccountId,
        template: &'static str,
    ) -> Result<(), AtlassianError> {
        let call = Call::new(
            Method::POST,
            template,
            &[org.as_str(), directory, account.as_str()],
        )
        .idempotent(true);
        self.api.execute(&call).await
    }

    /// The account as the org's directories hold it (v2
    /// `GET /admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}`), from the
    /// first directory that holds it; `None` when none does (the documented unknown-user
    /// error).
    pub async fn directory_user(
        &self,
        org: &OrgId,
        account: &AccountId,
    ) -> Result<Option<DirectoryUser>, AtlassianError> {
        #[derive(Deserialize)]
        struct Details {
            data: DirectoryUser,
        }
        for directory in self.action_directories(org, account).await? {
            let call = Call::get(
                "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}",
                &[org.as_str(), &directory, account.as_str()],
            );
            match self.api.json::<Details>(&call).await {
                Ok(details) => return Ok(Some(details.data)),
                Err(error) if error.is_documented_not_found() => {}
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// Removes the account from its directories (v2
    /// `DELETE /admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}`; queued by
    /// Atlassian). Only the API's documented unknown-user error counts as "already gone": a
    /// 404 of a route that does not exist is an error, never a deletion.
    pub async fn remove_from_directory(
        &self,
        org: &OrgId,
        account: &AccountId,
    ) -> Result<DirectoryRemoval, AtlassianError> {
        let directories = self.action_directories(org, account).await?;
        if directories.is_empty() {
            return Ok(DirectoryRemoval::AlreadyGone);
        }
        let mut outcome = DirectoryRemoval::AlreadyGone;
        for directory in directories {
            let call = Call::new(
                Method::DELETE,
                "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}",
                &[org.as_str(), &directory, account.as_str()],
            );
            match self.api.execute(&call).await {
                Ok(()) => outcome = DirectoryRemoval::Removed,
                Err(error) if error.is_documented_not_found() => {}
                Err(error) => return Err(error),
            }
        }
        Ok(outcome)
    }
}

/// How a role came to a user (`roleAssignmentMethods[]`). Open: unknown methods are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(from = "String", into = "String")]
pub enum RoleAssignmentMethod {
    /// Assigned to the user.
    Direct,
    /// Through a group the user is a direct member of.
    GroupDirect,
    /// Follows from another role (site or org admin); cannot be revoked by itself.
    Inferred,
    /// A method reseat does not know, as it came.
    Other(String),
}

impl From<String> for RoleAssignmentMethod {
    fn from(text: String) -> Self {
        match text.as_str() {
            "direct" => Self::Direct,
            "group_direct" => Self::GroupDirect,
            "inferred" => Self::Inferred,
            _ => Self::Other(text),
        }
    }
}

impl From<RoleAssignmentMethod> for String {
    fn from(method: RoleAssignmentMethod) -> Self {
        method.as_str().to_owned()
    }
}

impl RoleAssignmentMethod {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Direct => "direct",
            Self::GroupDirect => "group_direct",
            Self::Inferred => "inferred",
            Self::Other(text) => text,
        }
    }
}

/// A role on a resource with how it was assigned (`MultiDirectoryRoleAssignment`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// The role id, e.g. `atlassian/user`.
    #[serde(default)]
    pub role: Option<String>,
    /// Every method by which the user holds it.
    #[serde(default)]
    pub role_assignment_methods: Vec<RoleAssignmentMethod>,
}

/// A user's roles on one resource (`MultiDirectoryUserRoleAssignment`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRoleAssignment {
    /// The product instance, e.g. `ari:cloud:jira-software::site/<cloud id>`.
    #[serde(default)]
    pub resource_id: Option<String>,
    /// The resource's owner, e.g. `jira-software`.
    #[serde(default)]
    pub resource_owner: Option<String>,
    /// Deprecated list of role ids (kept for older answers without `roleAssignments`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Roles with their assignment methods.
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignment>,
    /// The directory mapped to the resource (null for platform roles).
    #[serde(default)]
    pub directory_id: Option<String>,
    /// The user's membership status in that directory (`active`, `suspended`, …).
    #[serde(default)]
    pub user_directory_status: Option<String>,
}

/// The roles a group carries on one resource (`MultiDirectoryGroupRoleAssignment`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRoleAssignment {
    /// The product instance.
    #[serde(default)]
    pub resource_id: Option<String>,
    /// The resource's owner.
    #[serde(default)]
    pub resource_owner: Option<String>,
    /// The role granted by default for the resource.
    #[serde(default)]
    pub default_role: Option<String>,
    /// Role ids.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Whether reseat may change a group (`ManagementAccess`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ManagementAccess {
    /// The group can be deleted.
    #[serde(default)]
    pub deletable: Option<bool>,
    /// The group (and its memberships) can be modified; false for IdP-synced groups.
    #[serde(default)]
    pub modifiable: Option<bool>,
    /// The group can be read.
    #[serde(default)]
    pub readable: Option<bool>,
}

/// A group's details (`GET /admin/v2/orgs/{orgId}/directories/{directoryId}/groups/{groupId}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDetails {
    /// The group id.
    #[serde(default)]
    pub id: Option<String>,
    /// The group name.
    #[serde(default)]
    pub name: Option<String>,
    /// What may be changed.
    #[serde(default)]
    pub management_access: Option<ManagementAccess>,
    /// Created by an identity provider's sync.
    #[serde(default)]
    pub external_synced: Option<bool>,
    /// `external`, `admins`, `team-members` or `open`.
    #[serde(default)]
    pub managed_by: Option<String>,
}

impl GroupDetails {
    /// Whether reseat may change the group's memberships: an explicit `modifiable: false`,
    /// `externalSynced: true` or `managedBy: external` says no.
    pub fn modifiable(&self) -> bool {
        let access = self.management_access.as_ref().and_then(|a| a.modifiable);
        access != Some(false)
            && self.external_synced != Some(true)
            && self.managed_by.as_deref() != Some("external")
    }
}

/// A user holding a role on a resource, from the directory search filtered by `resourceIds`
/// and `roleIds`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleHolder {
    /// The account id.
    pub account_id: AccountId,
    /// Person, customer or app.
    #[serde(default)]
    pub account_type: Option<AccountType>,
    /// Active, inactive or closed.
    #[serde(default)]
    pub account_status: Option<AccountStatus>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Email, absent when hidden.
    #[serde(default)]
    pub email: Option<String>,
    /// `synced` for accounts an identity provider provisions, `invited` or null otherwise.
    #[serde(default)]
    pub management_source: Option<String>,
}

/// The body of a role grant or revoke.
#[derive(serde::Serialize)]
struct RoleChange<'a> {
    role: &'a str,
    resource: &'a str,
}

impl AdminClient {
    /// A user's role assignments, every page, optionally on one resource only
    /// (`GET /admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/role-assignments`).
    pub async fn user_role_assignments(
        &self,
        org: &OrgId,
        directory: &str,
        account: &AccountId,
        resource: Option<&str>,
    ) -> Result<Vec<UserRoleAssignment>, AtlassianError> {
        let mut out = Vec::new();
        let mut token: Option<PageToken> = None;
        loop {
            let mut call = Call::get(
                "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/role-assignments",
                &[org.as_str(), directory, account.as_str()],
            );
            if let Some(resource) = resource {
                call = call.query("resourceIds", resource);
            }
            let listing: Listing<UserRoleAssignment> =
                self.api.json(&with_cursor(call, token.as_ref())).await?;
            out.extend(listing.data);
            match next_cursor(listing.links)? {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// The roles a group carries, every page, optionally on one resource only
    /// (`GET /admin/v2/orgs/{orgId}/directories/{directoryId}/groups/{groupId}/role-assignments`).
    pub async fn group_role_assignments(
        &self,
        org: &OrgId,
        directory: &str,
        group: &str,
        resource: Option<&str>,
    ) -> Result<Vec<GroupRoleAssignment>, AtlassianError> {
        let mut out = Vec::new();
        let mut token: Option<PageToken> = None;
        loop {
            let mut call = Call::get(
                "/admin/v2/orgs/{orgId}/directories/{directoryId}/groups/{groupId}/role-assignments",
                &[org.as_str(), directory, group],
            );
            if let Some(resource) = resource {
                call = call.query("resourceIds", resource);
            }
            let listing: Listing<GroupRoleAssignment> =
                self.api.json(&with_cursor(call, token.as_ref())).await?;
            out.extend(listing.data);
            match next_cursor(listing.links)? {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// A group's details, with `managementAccess`
    /// (`GET /admin/v2/orgs/{orgId}/directories/{directoryId}/groups/{groupId}`).
    pub async fn group_details(
        &self,
        org: &OrgId,
        directory: &str,
        group: &str,
    ) -> Result<GroupDetails, AtlassianError> {
        let call = Call::get(
            "/admin/v2/orgs/{orgId}/directories/{directoryId}/groups/{groupId}",
            &[org.as_str(), directory, group],
        );
        self.api.json(&call).await
    }

    /// Grants a role on a resource directly
    /// (`POST /admin/v1/orgs/{orgId}/users/{userId}/roles/assign` `{role, resource}`). It sets
    /// a state (twice = once), so it is retried like an idempotent call.
    pub async fn assign_role(
        &self,
        org: &OrgId,
        account: &AccountId,
        role: &str,
        resource: &str,
    ) -> Result<(), AtlassianError> {
        self.role_change(
            org,
            account,
            "/admin/v1/orgs/{orgId}/users/{userId}/roles/assign",
            role,
            resource,
        )
        .await
    }

    /// Revokes a direct role on a resource
    /// (`POST /admin/v1/orgs/{orgId}/users/{userId}/roles/revoke` `{role, resource}`);
    /// state-setting, hence retried like an idempotent call.
    pub async fn revoke_role(
        &self,
        org: &OrgId,
        account: &AccountId,
        role: &str,
        resource: &str,
    ) -> Result<(), AtlassianError> {
        self.role_change(
            org,
            account,
            "/admin/v1/orgs/{orgId}/users/{userId}/roles/revoke",
            role,
            resource,
        )
        .await
    }

    async fn role_change(
        &self,
        org: &OrgId,
        account: &AccountId,
        template: &'static str,
        role: &str,
        resource: &str,
    ) -> Result<(), AtlassianError> {
        let body = serde_json::to_value(RoleChange { role, resource }).unwrap_or_default();
        let call = Call::new(Method::POST, template, &[org.as_str(), account.as_str()])
            .json(body)
            .idempotent(true);
        self.api.execute(&call).await
    }

    /// One page of the users holding one of `roles` on one of `resources`
    /// (`POST /admin/v2/orgs/{orgId}/directories/{directoryId}/users/search` with
    /// `resourceIds` and `roleIds`). A read sent as POST: retried like an idempotent call.
    pub async fn role_holders_page(
        &self,
        org: &OrgId,
        directory: &str,
        resources: &[String],
        roles: &[String],
        token: Option<&PageToken>,
    ) -> Result<Page<RoleHolder>, AtlassianError> {
        let mut body = serde_json::json!({
            "limit": DIRECTORY_PAGE,
            "resourceIds": resources,
            "roleIds": roles,
        });
        if let Some(cursor) = PageToken::cursor(token) {
            body["cursor"] = serde_json::Value::from(cursor);
        }
        let call = Call::new(
            Method::POST,
            "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/search",
            &[org.as_str(), directory],
        )
        .json(body)
        .idempotent(true);
        let listing: Listing<RoleHolder> = self.api.json(&call).await?;
        Ok(Page {
            items: listing.data,
            next: next_cursor(listing.links)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_page_decodes_and_an_odd_product_key_costs_only_its_entry() {
        let page: Listing<DirectoryUser> = serde_json::from_value(serde_json::json!({
            "data": [{
                "accountId": "5b10ac8d82e05b22cc7d4ef5",
                "accountType": "atlassian",
                "accountStatus": "active",
                "addedToOrg": "2023-01-01T00:00:00Z",
                "claimStatus": "unmanaged",
                "productAccess": [
                    {"key": "jira-software", "id": "ari:cloud:jira::site/c1",
                     "lastActiveTimestamp": "2024-01-02T03:04:05Z"},
                    {"key": "not a key!", "id": "ari:cloud:other::site/c1"},
                    {"id": "ari:cloud:jira::site/c2", "lastActiveTimestamp": "2024-02-01"}
                ]
            }],
            "links": {"next": "b3BhcXVl"}
        }))
        .unwrap();
        let user = &page.data[0];
        assert_eq!(user.claim_status.as_deref(), Some("unmanaged"));
        assert!(user.added_to_org.is_some());
        let keys: Vec<_> = user.product_access.iter().map(|p| p.key.clone()).collect();
        assert_eq!(keys, [Some(ProductKey::JIRA_SOFTWARE), None, None]);
        assert!(user.product_access[0].is_site("c1"));
        assert!(!user.product_access[2].is_site("c1"));
        assert_eq!(
            next_cursor(page.links).unwrap(),
            Some(PageToken::Cursor("b3BhcXVl".into()))
        );
    }

    #[test]
    fn links_next_is_a_bare_cursor_or_a_link_on_every_listing() {
        let bare = Links {
            next: Some("eyJwYWdlIjoyfQ==".into()),
        };
        assert_eq!(
            next_cursor(Some(bare)).unwrap(),
            Some(PageToken::Cursor("eyJwYWdlIjoyfQ==".into()))
        );
        let no_cursor = Links {
            next: Some("https://api.atlassian.com/admin/v1/orgs/o/users?page=2".into()),
        };
        assert!(next_cursor(Some(no_cursor)).is_err());

        let links = Links {
            next: Some("https://api.atlassian.com/admin/v2/x?cursor=abc".into()),
        };
        assert_eq!(
            next_cursor(Some(links)).unwrap(),
            Some(PageToken::Cursor("abc".into()))
        );
        assert_eq!(next_cursor(None).unwrap(), None);
        let empty = Links {
            next: Some(String::new()),
        };
        assert_eq!(next_cursor(Some(empty)).unwrap(), None);
    }
}
