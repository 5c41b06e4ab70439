//! Confluence Cloud REST API v1 (`/wiki/rest/api`, Basic `email:api_token`): groups, members
//! by group id, a user's groups, and membership changes by group id. Group membership has no
//! v2 equivalent.

use crate::atlassian::error::{AtlassianError, MembershipChange, MembershipOutcome};
use crate::atlassian::http::{ApiClient, Call};
use crate::atlassian::page::{Page, PageToken, Paged, query_param};
use crate::atlassian::product::{AccountId, GroupId};
use serde::Deserialize;

/// Page size for `start`/`limit` listings (the documented default of `membersByGroupId`).
const PAGE_SIZE: u64 = 200;

/// A Confluence group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct ConfluenceGroup {
    /// The group id.
    pub id: GroupId,
    /// The group name.
    pub name: String,
}

/// A Confluence user (group member). Confluence omits suspended users from group listings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfluenceUser {
    /// The account id.
    pub account_id: AccountId,
    /// `atlassian`, `app`, ... as Confluence reports it.
    #[serde(default)]
    pub account_type: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Public name.
    #[serde(default)]
    pub public_name: Option<String>,
    /// Email, when visible.
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Listing<T> {
    results: Vec<T>,
    #[serde(default)]
    start: Option<u64>,
    #[serde(default, rename = "_links")]
    links: Option<Links>,
}

impl<T> Listing<T> {
    /// Follows `_links.next` (its `start`, else `start + size`); no link means last page.
    fn into_page(self, requested_start: u64) -> Page<T> {
        let next = match self.links.and_then(|l| l.next) {
            Some(link) if !self.results.is_empty() => {
                let start = query_param(&link, "start")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(self.start.unwrap_or(requested_start) + self.results.len() as u64);
                Some(PageToken::Offset(start))
            }
            _ => None,
        };
        Page {
            items: self.results,
            next,
        }
    }
}

/// Client of the Confluence v1 REST API.
#[derive(Debug)]
pub struct ConfluenceClient {
    api: ApiClient,
}

impl ConfluenceClient {
    pub(crate) fn new(api: ApiClient) -> Self {
        Self { api }
    }

    /// One page of the site's groups (`GET /wiki/rest/api/group`).
    pub async fn groups_page(
        &self,
        token: Option<&PageToken>,
    ) -> Result<Page<ConfluenceGroup>, AtlassianError> {
        let start = PageToken::offset(token);
        let call = Call::get("/wiki/rest/api/group", &[])
            .query("start", start)
            .query("limit", PAGE_SIZE);
        let listing: Listing<ConfluenceGroup> = self.api.json(&call).await?;
        Ok(listing.into_page(start))
    }

    /// Every group, page by page.
    pub fn groups(&self) -> Paged<'_, ConfluenceGroup> {
        Paged::new(None, move |token| {
            Box::pin(async move { self.groups_page(token.as_ref()).await })
        })
    }

    /// One page of a group's members (`GET /wiki/rest/api/group/{groupId}/membersByGroupId`).
    pub async fn group_members_page(
        &self,
        group: &GroupId,
        token: Option<&PageToken>,
    ) -> Result<Page<ConfluenceUser>, AtlassianError> {
        let start = PageToken::offset(token);
        let call = Call::get(
            "/wiki/rest/api/group/{groupId}/membersByGroupId",
            &[group.as_str()],
        )
        .query("start", start)
        .query("limit", PAGE_SIZE);
        let listing: Listing<ConfluenceUser> = self.api.json(&call).await?;
        Ok(listing.into_page(start))
    }

    /// Every member of a group, page by page.
    pub fn group_members(&self, group: &GroupId) -> Paged<'_, ConfluenceUser> {
        let group = group.clone();
        Paged::new(None, move |token| {
            let group = group.clone();
            Box::pin(async move { self.group_members_page(&group, token.as_ref()).await })
        })
    }

    /// One page of the groups a user is in (`GET /wiki/rest/api/user/memberof`).
    pub async fn user_groups_page(
        &self,
        account: &AccountId,
        token: Option<&PageToken>,
    ) -> Result<Page<ConfluenceGroup>, AtlassianError> {
        let start = PageToken::offset(token);
        let call = Call::get("/wiki/rest/api/user/memberof", &[])
            .query("accountId", account)
            .query("start", start)
            .query("limit", PAGE_SIZE);
        let listing: Listing<ConfluenceGroup> = self.api.json(&call).await?;
        Ok(listing.into_page(start))
    }

    /// Every group a user is in.
    pub async fn user_groups(
        &self,
        account: &AccountId,
    ) -> Result<Vec<ConfluenceGroup>, AtlassianError> {
        let account = account.clone();
        Paged::new(None, move |token| {
            let account = account.clone();
            Box::pin(async move { self.user_groups_page(&account, token.as_ref()).await })
        })
        .collect_all()
        .await
    }

    /// Adds a user to a group (`POST /wiki/rest/api/group/userByGroupId?groupId=`); retried
    /// like an idempotent call, since a repeat is "already a member" = success.
    pub async fn add_to_group(
        &self,
        group: &GroupId,
        account: &AccountId,
    ) -> Result<MembershipOutcome, AtlassianError> {
        self.api
            .change_membership(
                MembershipChange::Add,
                "/wiki/rest/api/group/userByGroupId",
                group,
                account,
            )
            .await
    }

    /// Removes a user from a group (`DELETE /wiki/rest/api/group/userByGroupId`); "not a
    /// member" is success.
    pub async fn remove_from_group(
        &self,
        group: &GroupId,
        account: &AccountId,
    ) -> Result<MembershipOutcome, AtlassianError> {
        self.api
            .change_membership(
                MembershipChange::Remove,
                "/wiki/rest/api/group/userByGroupId",
                group,
                account,
            )
            .await
    }
}
