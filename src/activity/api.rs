//! Last-active data from the Organizations admin API, in as few calls as it allows.
//!
//! Two listings, chosen by `atlassian.user_listing`:
//!
//! - **`directory`** (default): the v2 user search
//!   (`POST /admin/v2/orgs/{orgId}/directories/{directoryId}/users/search`, 100 per page,
//!   `expand: ["productAccess"]`) lists every account of the directory, managed or not,
//!   with its last activity per product instance (an ARI naming the site) and its
//!   `addedToOrg`. One call settles a page of users; no per-user call is needed. It needs
//!   the site's cloud id, and falls back to `managed` when the first page answers 403 or
//!   404 (an API key or org the v2 API does not serve).
//! - **`managed`**: the v1 managed-user listing (`GET /admin/v1/orgs/{orgId}/users`)
//!   carries `product_access[].last_active` per product and site URL, but lists managed
//!   accounts only and has no `added_to_org`; `GET .../directory/users/{accountId}/last-active-dates`
//!   is then called for wanted users it could not settle (unmanaged accounts, products never
//!   accessed on the site, whose grace period needs `added_to_org`), concurrently up to
//!   `atlassian.admin.concurrency`.
//!
//! Only the configured site counts: v1 listing entries by their URL's host, v2 and
//! last-active-dates entries by their ARI (`ari:cloud:<product>::site/<cloud id>`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::{ActivitySet, Seen, SiteFilter, UserActivity};
use crate::atlassian::{
    AccountId, AdminClient, AtlassianConfig, AtlassianError, DirectoryUser, OrgId, OrgUser,
    ProductKey, UserListing,
};

/// Calls made, for the plan summary and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ApiStats {
    /// The listing read: `directory` or `managed`.
    pub listing: Option<UserListing>,
    /// Pages of the user listing.
    pub listing_pages: u64,
    /// Users seen in the listing.
    pub listed_users: u64,
    /// Per-user last-active-dates lookups.
    pub per_user_calls: u64,
    /// Wanted users the API knows nothing about (their activity stays unknown).
    pub not_found: u64,
}

/// What the listing says, for the re-check before acting: the newest activity on the site
/// per (account, product), and the accounts the listing answered for (for those, a missing
/// pair means no activity on the site; other accounts need a per-user lookup).
#[derive(Debug, Default)]
pub struct ListedActivity {
    pub newest: HashMap<(AccountId, ProductKey), DateTime<Utc>>,
    pub listed: HashSet<AccountId>,
    pub pages: u64,
}

impl ListedActivity {
    /// Records a listed account and its newest activity per product.
    fn note(
        &mut self,
        account: &AccountId,
        products: &[ProductKey],
        newest: impl Fn(&ProductKey) -> Option<DateTime<Utc>>,
    ) {
        self.listed.insert(account.clone());
        for product in products {
            if let Some(at) = newest(product) {
                self.newest.insert((account.clone(), product.clone()), at);
            }
        }
    }
}

/// The admin API as a source of activity for one site.
pub struct AdminActivity<'a> {
    admin: &'a AdminClient,
    org: &'a OrgId,
    site: &'a SiteFilter,
    listing: UserListing,
    directory: &'a str,
    concurrency: usize,
    shared: Option<&'a OrgListing>,
}

/// The org's directory listing, read once and shared by every site planned in one run:
/// the v2 user search carries each user's activity on every site of the org, so a second
/// site adds no listing call.
#[derive(Default)]
pub struct OrgListing {
    /// `None` until read; then the pages, or `None` inside when the v2 API is not
    /// available to the key.
    pages: tokio::sync::Mutex<Option<Option<ListedPages>>>,
}

/// The directory listing's pages, as read.
type ListedPages = std::sync::Arc<Vec<Vec<DirectoryUser>>>;

impl OrgListing {
    pub fn new() -> Self {
        Self::default()
    }
}

impl<'a> AdminActivity<'a> {
    /// The source as `[atlassian]` configures it. Without a cloud id the directory listing
    /// cannot tell this site's activity from another's, so the managed listing is used.
    pub fn new(
        admin: &'a AdminClient,
        org: &'a OrgId,
        site: &'a SiteFilter,
        config: &'a AtlassianConfig,
    ) -> Self {
        let listing = match (config.user_listing, site.cloud_id.as_deref()) {
            (UserListing::Directory, Some(_)) => UserListing::Directory,
            (UserListing::Directory, None) => {
                tracing::warn!(
                    "atlassian.user_listing = \"directory\" needs atlassian.cloud_id; reading the managed-user listing instead"
                );
                UserListing::Managed
            }
            (UserListing::Managed, _) => UserListing::Managed,
        };
        AdminActivity {
            admin,
            org,
            site,
            listing,
            directory: config.directory_id.as_str(),
            concurrency: (config.admin.concurrency as usize).max(1),
            shared: None,
        }
    }

    /// Reads the directory listing through `listing`, which other sites' sources share.
    pub fn sharing(mut self, listing: &'a OrgListing) -> Self {
        self.shared = Some(listing);
        self
    }

    /// Reads the activity of `wanted` users (account → products whose activity is needed).
    #[tracing::instrument(skip_all, fields(wanted = wanted.len()))]
    pub async fn collect(
        &self,
        wanted: &HashMap<AccountId, Vec<ProductKey>>,
    ) -> Result<(ActivitySet, ApiStats), AtlassianError> {
        if self.listing == UserListing::Directory
            && let Some(found) = self.collect_directory(wanted).await?
        {
            return Ok(found);
        }
        self.collect_managed(wanted).await
    }

    /// Reads the listing once for the re-check before acting: the newest activity of
    /// `accounts` in `products` on the site.
    #[tracing::instrument(skip_all, fields(accounts = accounts.len()))]
    pub async fn listed_activity(
        &self,
        accounts: &HashSet<AccountId>,
        products: &[ProductKey],
    ) -> Result<ListedActivity, AtlassianError> {
        let mut found = ListedActivity::default();
        if self.listing == UserListing::Directory {
            let pages = self
                .read_directory(|users| {
                    for user in users.iter().filter(|u| accounts.contains(&u.account_id)) {
                        found.note(&user.account_id, products, |p| {
                            self.directory_newest(user, p, true)
                        });
                    }
                })
                .await?;
            if let Some(pages) = pages {
                found.pages = pages;
                return Ok(found);
            }
        }
        let mut pages = self.admin.users(self.org);
        while let Some(users) = pages.next_page().await? {
            found.pages += 1;
            for user in users.iter().filter(|u| accounts.contains(&u.account_id)) {
                found.note(&user.account_id, products, |p| {
                    self.managed_newest(user, p, true)
                });
            }
        }
        Ok(found)
    }

    /// The directory listing; `None` when the v2 API is not available to this key.
    async fn collect_directory(
        &self,
        wanted: &HashMap<AccountId, Vec<ProductKey>>,
    ) -> Result<Option<(ActivitySet, ApiStats)>, AtlassianError> {
        let mut stats = ApiStats {
            listing: Some(UserListing::Directory),
            ..ApiStats::default()
        };
        let mut set = ActivitySet::new();
        let mut listed_users = 0u64;
        let pages = self
            .read_directory(|users| {
                listed_users += users.len() as u64;
                for user in users {
                    let Some((account, products)) = wanted.get_key_value(&user.account_id) else {
                        continue;
                    };
                    let mut activity = UserActivity::new(account.clone());
                    for product in products {
                        // The listing names every product the user was ever active in: absent
                        // means never accessed, and `addedToOrg` starts the grace period.
                        let seen = self
                            .directory_newest(&user, product, true)
                            .map_or(Seen::Never, Seen::At);
                        activity.record(product.clone(), None, seen);
                        activity.record_elsewhere(
                            product,
                            self.directory_newest(&user, product, false),
                        );
                    }
                    for what in self.directory_unattributed(&user) {
                        activity.record_unattributed(what);
                    }
                    activity.name = user.name;
                    activity.email = user.email;
                    activity.account_type = user.account_type;
                    activity.status = user.account_status;
                    activity.added_to_org = user.added_to_org;
                    set.insert(activity);
                }
            })
            .await?;
        let Some(pages) = pages else {
            return Ok(None);
        };
        stats.listing_pages = pages;
        stats.listed_users = listed_users;
        stats.not_found = wanted.keys().filter(|a| set.get(a).is_none()).count() as u64;
        Ok(Some((set, stats)))
    }

    /// Reads the whole directory listing, page by page, into `each`. `None` when the v2 API
    /// is not available to this key (403/404 on the first page), else the pages read.
    async fn read_directory(
        &self,
        mut each: impl FnMut(Vec<DirectoryUser>),
    ) -> Result<Option<u64>, AtlassianError> {
        let Some(shared) = self.shared else {
            return self.read_directory_from_api(each).await;
        };
        let mut slot = shared.pages.lock().await;
        if slot.is_none() {
            let mut pages = Vec::new();
            let read = self
                .read_directory_from_api(|users| pages.push(users))
                .await?;
            *slot = Some(read.map(|_| std::sync::Arc::new(pages)));
        }
        let Some(Some(pages)) = slot.as_ref().cloned() else {
            return Ok(None);
        };
        drop(slot);
        for page in pages.iter() {
            each(page.clone());
        }
        Ok(Some(pages.len() as u64))
    }

    async fn read_directory_from_api(
        &self,
        mut each: impl FnMut(Vec<DirectoryUser>),
    ) -> Result<Option<u64>, AtlassianError> {
        let mut pages = self.admin.directory_users(self.org, self.directory);
        let mut read = 0u64;
        loop {
            match pages.next_page().await {
                Ok(Some(users)) => {
                    read += 1;
                    each(users);
                }
                Ok(None) => return Ok(Some(read)),
                Err(
                    error @ (AtlassianError::Forbidden { .. } | AtlassianError::NotFound { .. }),
                ) if read == 0 => {
                    tracing::warn!(
                        %error,
                        "the v2 directory user search is not available to this API key; reading the managed-user listing (set atlassian.user_listing = \"managed\" to skip this call)"
                    );
                    return Ok(None);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Newest activity in `product` on this site (`here`) or on the org's other sites. On
    /// this site, an entry reseat cannot attribute to a product counts for every product:
    /// it may be this one's (the plan makes such a seat `unknown`; the re-check before
    /// acting then sees it as activity and leaves the seat alone).
    fn directory_newest(
        &self,
        user: &DirectoryUser,
        product: &ProductKey,
        here: bool,
    ) -> Option<DateTime<Utc>> {
        let cloud_id = self.site.cloud_id.as_deref()?;
        user.product_access
            .iter()
            .filter(|p| p.is_site(cloud_id) == here)
            .filter(|p| p.key.as_ref() == Some(product) || (here && !attributable(p.key.as_ref())))
            .filter_map(|p| p.last_active_timestamp)
            .max()
    }

    /// This site's entries of a directory user that name no product reseat knows.
    fn directory_unattributed(&self, user: &DirectoryUser) -> Vec<String> {
        let Some(cloud_id) = self.site.cloud_id.as_deref() else {
            return Vec::new();
        };
        user.product_access
            .iter()
            .filter(|p| p.is_site(cloud_id) && !attributable(p.key.as_ref()))
            .map(|p| unattributed_entry(p.key.as_ref(), p.id.as_deref()))
            .collect()
    }

    /// Newest activity in `product` on this site (`here`) or on other sites, by the URL; on
    /// this site, unattributable entries count for every product (see `directory_newest`).
    fn managed_newest(
        &self,
        user: &OrgUser,
        product: &ProductKey,
        here: bool,
    ) -> Option<DateTime<Utc>> {
        user.product_access
            .iter()
            .filter(|p| {
                p.url
                    .as_deref()
                    .is_some_and(|url| self.site.is_site_url(url))
                    == here
            })
            .filter(|p| &p.key == product || (here && !p.key.is_known()))
            .filter_map(|p| p.last_active)
            .max()
    }

    /// The managed listing, then per-user lookups where it leaves a question.
    async fn collect_managed(
        &self,
        wanted: &HashMap<AccountId, Vec<ProductKey>>,
    ) -> Result<(ActivitySet, ApiStats), AtlassianError> {
        let mut stats = ApiStats {
            listing: Some(UserListing::Managed),
            ..ApiStats::default()
        };
        let mut set = ActivitySet::new();
        let mut follow_up: HashMap<&AccountId, &Vec<ProductKey>> = wanted.iter().collect();
        let mut pages = self.admin.users(self.org);
        while let Some(users) = pages.next_page().await? {
            stats.listing_pages += 1;
            stats.listed_users += users.len() as u64;
            for user in users {
                let Some((account, products)) = wanted.get_key_value(&user.account_id) else {
                    continue;
                };
                let mut activity = UserActivity::new(account.clone());
                let mut settled = true;
                for product in products {
                    activity.record_elsewhere(product, self.managed_newest(&user, product, false));
                    match self.managed_newest(&user, product, true) {
                        Some(at) => activity.record(product.clone(), Some(true), Seen::At(at)),
                        // Never accessed (needs `added_to_org`) or not listed here: ask.
                        None => settled = false,
                    }
                }
                for entry in user.product_access.iter().filter(|p| {
                    !p.key.is_known() && p.url.as_deref().is_some_and(|u| self.site.is_site_url(u))
                }) {
                    activity.record_unattributed(unattributed_entry(
                        Some(&entry.key),
                        entry.url.as_deref(),
                    ));
                }
                activity.name = Some(user.name);
                activity.email = user.email;
                activity.account_type = Some(user.account_type);
                activity.status = Some(user.account_status);
                set.insert(activity);
                if settled {
                    follow_up.remove(account);
                }
            }
        }
        // Owned items: a stream of futures borrowing from the map is not `Send` for every
        // lifetime, which a spawned (scheduled) sweep needs.
        let follow_up: Vec<(AccountId, Vec<ProductKey>)> = follow_up
            .into_iter()
            .map(|(account, products)| (account.clone(), products.clone()))
            .collect();
        let lookups = futures_util::stream::iter(follow_up.into_iter().map(
            |(account, products)| async move {
                let result = self.site_dates(&account).await;
                (account, products, result)
            },
        ))
        .buffer_unordered(self.concurrency);
        futures_util::pin_mut!(lookups);
        while let Some((account, products, result)) = lookups.next().await {
            stats.per_user_calls += 1;
            let Some((dates, added_to_org)) = result? else {
                stats.not_found += 1;
                continue;
            };
            let mut activity = UserActivity::new(account.clone());
            activity.added_to_org = added_to_org;
            for (key, _) in dates.iter().filter(|(key, _)| !key.is_known()) {
                activity.record_unattributed(unattributed_entry(Some(key), None));
            }
            for product in &products {
                let newest = dates
                    .iter()
                    .filter(|(key, _)| key == product || !key.is_known())
                    .map(|(_, at)| *at)
                    .max();
                // The endpoint lists only products with activity: absent means never accessed.
                activity.record(product.clone(), None, newest.map_or(Seen::Never, Seen::At));
            }
            set.insert(activity);
        }
        Ok((set, stats))
    }

    /// One account's activity per product on the site and its `added_to_org`, from
    /// `last-active-dates` (`None` when the API does not know the account).
    pub async fn site_dates(
        &self,
        account: &AccountId,
    ) -> Result<Option<(SiteDates, Option<DateTime<Utc>>)>, AtlassianError> {
        let dates = match self.admin.last_active_dates(self.org, account).await {
            Ok(dates) => dates,
            Err(AtlassianError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let on_site = dates
            .product_access
            .iter()
            .filter(|p| match self.site.cloud_id.as_deref() {
                Some(cloud_id) => p.is_site(cloud_id),
                None => p
                    .url
                    .as_deref()
                    .is_some_and(|url| self.site.is_site_url(url)),
            })
            .filter_map(|p| p.last_active.map(|at| (p.key.clone(), at)))
            .collect();
        Ok(Some((on_site, dates.added_to_org)))
    }
}

/// Whether an activity entry names a product reseat knows (managed or not).
fn attributable(key: Option<&ProductKey>) -> bool {
    key.is_some_and(ProductKey::is_known)
}

/// How the plan's reason names an entry no product could be attributed to.
fn unattributed_entry(key: Option<&ProductKey>, place: Option<&str>) -> String {
    let key = match key {
        Some(key) => format!("product key {:?}", key.as_str()),
        None => "an unreadable product key".to_owned(),
    };
    match place {
        Some(place) => format!("{key} at {place}"),
        None => key,
    }
}

/// Newest activity per product on the site, as `last-active-dates` gives it.
pub type SiteDates = Vec<(ProductKey, DateTime<Utc>)>;
