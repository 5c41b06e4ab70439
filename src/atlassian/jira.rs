//! Jira Cloud platform REST API v3 (`/rest/api/3`, Basic `email:api_token`): application
//! roles (which groups grant which Jira app), licence groups, group members, a user's groups,
//! user lookup and search, and group membership changes by `groupId` + `accountId`.

use crate::atlassian::admin::AccountType;
use crate::atlassian::error::{AtlassianError, MembershipChange, MembershipOutcome};
use crate::atlassian::http::{ApiClient, Call};
use crate::atlassian::page::{Page, PageToken, Paged, next_offset};
use crate::atlassian::product::{AccountId, GroupId, ProductKey};
use futures_util::StreamExt;
use serde::Deserialize;

/// Page size for `startAt`/`maxResults` listings (the documented maximum of `group/member`).
const PAGE_SIZE: u64 = 50;

/// A group as Jira names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct GroupRef {
    /// The group id: use it, names can change.
    #[serde(rename = "groupId")]
    pub group_id: GroupId,
    /// The group name.
    pub name: String,
}

/// A Jira application role: the product access a set of groups grants, and its seats.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRole {
    /// The application key (`jira-software`, `jira-servicedesk`, ...).
    pub key: ProductKey,
    /// The display name.
    #[serde(default)]
    pub name: String,
    /// Groups granting this application: a user has access iff in at least one of them.
    #[serde(default)]
    pub group_details: Vec<GroupRef>,
    /// Groups new users get: where a restore adds a user with no journal entry.
    #[serde(default)]
    pub default_groups_details: Vec<GroupRef>,
    /// Licensed seats.
    #[serde(default)]
    pub number_of_seats: Option<i64>,
    /// Seats left.
    #[serde(default)]
    pub remaining_seats: Option<i64>,
    /// Users holding a seat.
    #[serde(default)]
    pub user_count: Option<i64>,
    /// Whether the licence has no seat limit.
    #[serde(default)]
    pub has_unlimited_seats: bool,
    /// Whether the application is selected by default for new users.
    #[serde(default)]
    pub selected_by_default: bool,
}

#[derive(Deserialize)]
struct ListWrapper<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize)]
struct RoleKey {
    key: ProductKey,
}

/// A Jira user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JiraUser {
    /// The account id.
    pub account_id: AccountId,
    /// Person, app or customer.
    #[serde(default = "unknown_type")]
    pub account_type: AccountType,
    /// Whether the account is active.
    #[serde(default)]
    pub active: bool,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Email, absent when hidden by privacy settings.
    #[serde(default)]
    pub email_address: Option<String>,
    /// Groups, when fetched with `expand=groups` ([`JiraClient::user`]).
    #[serde(default, deserialize_with = "group_items")]
    pub groups: Option<Vec<GroupRef>>,
    /// Application roles, when fetched with `expand=applicationRoles`.
    #[serde(default, deserialize_with = "role_items")]
    pub application_roles: Option<Vec<ProductKey>>,
}

fn unknown_type() -> AccountType {
    AccountType::Other(String::new())
}

fn group_items<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<GroupRef>>, D::Error> {
    Ok(Option::<ListWrapper<GroupRef>>::deserialize(d)?.map(|w| w.items))
}

fn role_items<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<ProductKey>>, D::Error> {
    Ok(Option::<ListWrapper<RoleKey>>::deserialize(d)?
        .map(|w| w.items.into_iter().map(|r| r.key).collect()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageBean<T> {
    #[serde(default)]
    start_at: Option<u64>,
    #[serde(default)]
    is_last: Option<bool>,
    #[serde(default)]
    total: Option<u64>,
    values: Vec<T>,
}

impl<T> PageBean<T> {
    fn into_page(self, requested_start: u64) -> Page<T> {
        let start = self.start_at.unwrap_or(requested_start);
        // No `isLast`: last when the page came back short.
        let is_last = self
            .is_last
            .unwrap_or((self.values.len() as u64) < PAGE_SIZE);
        let next = next_offset(start, self.values.len(), is_last);
        Page {
            items: self.values,
            next,
        }
    }
}

/// Client of the Jira platform REST API.
#[derive(Debug)]
pub struct JiraClient {
    api: ApiClient,
}

impl JiraClient {
    pub(crate) fn new(api: ApiClient) -> Self {
        Self { api }
    }

    /// Every application role with its groups and seats (`GET /rest/api/3/applicationrole`).
    pub async fn application_roles(&self) -> Result<Vec<ApplicationRole>, AtlassianError> {
        self.api
            .json(&Call::get("/rest/api/3/applicationrole", &[]))
            .await
    }

    /// One application role (`GET /rest/api/3/applicationrole/{key}`).
    pub async fn application_role(
        &self,
        product: &ProductKey,
    ) -> Result<ApplicationRole, AtlassianError> {
        let key = product.jira_application_key().ok_or_else(|| {
            AtlassianError::Invalid(format!("{product} is not a Jira application"))
        })?;
        self.api
            .json(&Call::get("/rest/api/3/applicationrole/{key}", &[key]))
            .await
    }

    /// One page of the groups granting a Jira application
    /// (`GET /rest/api/3/group/bulk?applicationKey=`).
    pub async fn groups_for_application_page(
        &self,
        product: &ProductKey,
        token: Option<&PageToken>,
    ) -> Result<Page<GroupRef>, AtlassianError> {
        let key = product.jira_application_key().ok_or_else(|| {
            AtlassianError::Invalid(format!("{product} is not a Jira application"))
        })?;
        let start = PageToken::offset(token);
        let call = Call::get("/rest/api/3/group/bulk", &[])
            .query("applicationKey", key)
            .query("startAt", start)
            .query("maxResults", PAGE_SIZE);
        let bean: PageBean<GroupRef> = self.api.json(&call).await?;
        Ok(bean.into_page(start))
    }

    /// Every group granting a Jira application, page by page.
    pub fn groups_for_application(&self, product: &ProductKey) -> Paged<'_, GroupRef> {
        let product = product.clone();
        Paged::new(None, move |token| {
            let product = product.clone();
            Box::pin(async move {
                self.groups_for_application_page(&product, token.as_ref())
                    .await
            })
        })
    }

    /// One page of a group's members (`GET /rest/api/3/group/member`).
    pub async fn group_members_page(
        &self,
        group: &GroupId,
        include_inactive: bool,
        token: Option<&PageToken>,
    ) -> Result<Page<JiraUser>, AtlassianError> {
        let start = PageToken::offset(token);
        let bean = self
            .group_members_bean(group, include_inactive, start)
            .await?;
        Ok(bean.into_page(start))
    }

    /// Every member of a group, read with up to `concurrency` pages in flight: the first page
    /// gives `total`, the pages it implies are fetched concurrently (in order), and paging
    /// then goes on from the last one until `isLast`, in case the group grew meanwhile.
    pub async fn group_members_all(
        &self,
        group: &GroupId,
        include_inactive: bool,
        concurrency: usize,
    ) -> Result<Vec<JiraUser>, AtlassianError> {
        let first = self.group_members_bean(group, include_inactive, 0).await?;
        let total = first.total;
        let page = first.into_page(0);
        let mut members = page.items;
        let mut next = page.next;
        if let (Some(PageToken::Offset(from)), Some(total)) = (&next, total)
            && total > *from
        {
            let starts: Vec<u64> = (*from..total).step_by(PAGE_SIZE as usize).collect();
            let pages = futures_util::stream::iter(starts.into_iter().map(|start| async move {
                let bean = self
                    .group_members_bean(group, include_inactive, start)
                    .await?;
                Ok::<_, AtlassianError>(bean.into_page(start))
            }))
            .buffered(concurrency.max(1));
            futures_util::pin_mut!(pages);
            while let Some(page) = pages.next().await {
                let page = page?;
                members.extend(page.items);
                next = page.next;
            }
        }
        while let Some(token) = next {
            let page = self
                .group_members_page(group, include_inactive, Some(&token))
                .await?;
            members.extend(page.items);
            next = page.next;
        }
        Ok(members)
    }

    async fn group_members_bean(
        &self,
        group: &GroupId,
        include_inactive: bool,
        start: u64,
    ) -> Result<PageBean<JiraUser>, AtlassianError> {
        let call = Call::get("/rest/api/3/group/member", &[])
            .query("groupId", group)
            .query("includeInactiveUsers", include_inactive)
            .query("startAt", start)
            .query("maxResults", PAGE_SIZE);
        self.api.json(&call).await
    }

    /// Every member of a group, page by page (`startAt`/`maxResults` until `isLast`).
    pub fn group_members(&self, group: &GroupId, include_inactive: bool) -> Paged<'_, JiraUser> {
        let group = group.clone();
        Paged::new(None, move |token| {
            let group = group.clone();
            Box::pin(async move {
                self.group_members_page(&group, include_inactive, token.as_ref())
                    .await
            })
        })
    }

    /// One page of a group's members, the group given by name
    /// (`GET /rest/api/3/group/member?groupname=`): for groups named in configuration.
    pub async fn group_members_by_name_page(
        &self,
        group_name: &str,
        token: Option<&PageToken>,
    ) -> Result<Page<JiraUser>, AtlassianError> {
        let start = PageToken::offset(token);
        let call = Call::get("/rest/api/3/group/member", &[])
            .query("groupname", group_name)
            .query("includeInactiveUsers", false)
            .query("startAt", start)
            .query("maxResults", PAGE_SIZE);
        let bean: PageBean<JiraUser> = self.api.json(&call).await?;
        Ok(bean.into_page(start))
    }

    /// Every active member of a group given by name, page by page.
    pub fn group_members_by_name(&self, group_name: &str) -> Paged<'_, JiraUser> {
        let name = group_name.to_owned();
        Paged::new(None, move |token| {
            let name = name.clone();
            Box::pin(async move { self.group_members_by_name_page(&name, token.as_ref()).await })
        })
    }

    /// The groups a user is in (`GET /rest/api/3/user/groups`).
    pub async fn user_groups(&self, account: &AccountId) -> Result<Vec<GroupRef>, AtlassianError> {
        let call = Call::get("/rest/api/3/user/groups", &[]).query("accountId", account);
        self.api.json(&call).await
    }

    /// A user with their groups and application roles (`GET /rest/api/3/user`).
    pub async fn user(&self, account: &AccountId) -> Result<JiraUser, AtlassianError> {
        let call = Call::get("/rest/api/3/user", &[])
            .query("accountId", account)
            .query("expand", "groups,applicationRoles");
        self.api.json(&call).await
    }

    /// One page of active users whose name or email starts with `query`
    /// (`GET /rest/api/3/user/search`; a bare array, paged until a short page).
    pub async fn search_users_page(
        &self,
        query: &str,
        token: Option<&PageToken>,
    ) -> Result<Page<JiraUser>, AtlassianError> {
        let start = PageToken::offset(token);
        let call = Call::get("/rest/api/3/user/search", &[])
            .query("query", query)
            .query("startAt", start)
            .query("maxResults", PAGE_SIZE);
        let users: Vec<JiraUser> = self.api.json(&call).await?;
        let short = (users.len() as u64) < PAGE_SIZE;
        let next = next_offset(start, users.len(), short);
        Ok(Page { items: users, next })
    }

    /// Every user matching `query`, page by page.
    pub fn search_users(&self, query: &str) -> Paged<'_, JiraUser> {
        let query = query.to_owned();
        Paged::new(None, move |token| {
            let query = query.clone();
            Box::pin(async move { self.search_users_page(&query, token.as_ref()).await })
        })
    }

    /// Adds a user to a group (`POST /rest/api/3/group/user?groupId=`). Retried like an
    /// idempotent call: a repeat answers "already a member", which counts as success.
    pub async fn add_to_group(
        &self,
        group: &GroupId,
        account: &AccountId,
    ) -> Result<MembershipOutcome, AtlassianError> {
        self.api
            .change_membership(
                MembershipChange::Add,
                "/rest/api/3/group/user",
                group,
                account,
            )
            .await
    }

    /// Removes a user from a group (`DELETE /rest/api/3/group/user`); "not a member" is
    /// success.
    pub async fn remove_from_group(
        &self,
        group: &GroupId,
        account: &AccountId,
    ) -> Result<MembershipOutcome, AtlassianError> {
        self.api
            .change_membership(
                MembershipChange::Remove,
                "/rest/api/3/group/user",
                group,
                account,
            )
            .await
    }
}
