//! Last-active data from the Organizations admin API, in as few calls as it allows.
//!
//! 1. The paged managed-user listing (`GET /admin/v1/orgs/{orgId}/users`, 100 per page)
//!    carries `product_access[].last_active` per product and site URL: one call covers a
//!    page of users.
//! 2. `GET .../directory/users/{accountId}/last-active-dates` is called only for wanted
//!    users the listing could not settle: accounts it does not list (unmanaged), products
//!    never accessed on the site (the grace period needs `added_to_org`, which only this
//!    endpoint has), and products the listing shows no entry for on the site. These calls
//!    run concurrently, up to `atlassian.admin.concurrency`.
//!
//! Only the configured site counts: listing entries by their URL's host, last-active-dates
//! entries by their ARI (`ari:cloud:<product>::site/<cloud id>`).

use std::collections::HashMap;

use futures_util::StreamExt;

use super::{ActivitySet, Seen, SiteFilter, UserActivity};
use crate::atlassian::{AccountId, AdminClient, AtlassianError, OrgId, ProductKey};

/// Calls made, for the plan summary and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApiStats {
    /// Pages of the managed-user listing.
    pub listing_pages: u64,
    /// Users seen in the listing.
    pub listed_users: u64,
    /// Per-user last-active-dates lookups.
    pub per_user_calls: u64,
    /// Wanted users the API knows nothing about (their activity stays unknown).
    pub not_found: u64,
}

/// Reads the activity of `wanted` users (account → products whose activity is needed).
#[tracing::instrument(skip_all, fields(wanted = wanted.len()))]
pub async fn collect(
    admin: &AdminClient,
    org: &OrgId,
    site: &SiteFilter,
    wanted: &HashMap<AccountId, Vec<ProductKey>>,
    concurrency: usize,
) -> Result<(ActivitySet, ApiStats), AtlassianError> {
    let mut stats = ApiStats::default();
    let mut set = ActivitySet::new();
    let mut follow_up: HashMap<&AccountId, &Vec<ProductKey>> = wanted.iter().collect();
    let mut pages = admin.users(org);
    while let Some(users) = pages.next_page().await? {
        stats.listing_pages += 1;
        stats.listed_users += users.len() as u64;
        for user in users {
            let Some((account, products)) = wanted.get_key_value(&user.account_id) else {
                continue;
            };
            let mut activity = UserActivity::new(account.clone());
            activity.name = Some(user.name.clone());
            activity.email = user.email.clone();
            activity.account_type = Some(user.account_type.clone());
            activity.status = Some(user.account_status.clone());
            let mut settled = true;
            for product in products {
                let on_site: Vec<_> = user
                    .product_access
                    .iter()
                    .filter(|p| &p.key == product)
                    .filter(|p| p.url.as_deref().is_some_and(|url| site.is_site_url(url)))
                    .collect();
                match on_site.iter().filter_map(|p| p.last_active).max() {
                    Some(at) => activity.record(product.clone(), Some(true), Seen::At(at)),
                    // Never accessed (needs `added_to_org`) or not listed here: ask.
                    None => settled = false,
                }
            }
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
    let lookups =
        futures_util::stream::iter(follow_up.into_iter().map(|(account, products)| async move {
            let result = admin.last_active_dates(org, &account).await;
            (account, products, result)
        }))
        .buffer_unordered(concurrency.max(1));
    futures_util::pin_mut!(lookups);
    while let Some((account, products, result)) = lookups.next().await {
        stats.per_user_calls += 1;
        let dates = match result {
            Ok(dates) => dates,
            Err(AtlassianError::NotFound { .. }) => {
                stats.not_found += 1;
                continue;
            }
            Err(error) => return Err(error),
        };
        let mut activity = UserActivity::new(account.clone());
        activity.added_to_org = dates.added_to_org;
        for product in &products {
            let newest = dates
                .product_access
                .iter()
                .filter(|p| &p.key == product)
                .filter(|p| match site.cloud_id.as_deref() {
                    Some(cloud_id) => p.is_site(cloud_id),
                    None => p.url.as_deref().is_some_and(|url| site.is_site_url(url)),
                })
                .filter_map(|p| p.last_active)
                .max();
            // The endpoint lists only products with activity: absent means never accessed.
            let seen = newest.map_or(Seen::Never, Seen::At);
            activity.record(product.clone(), None, seen);
        }
        set.insert(activity);
    }
    Ok((set, stats))
}

/// Newest activity per (account, product) on the site.
pub type ListedActivity = HashMap<(AccountId, ProductKey), chrono::DateTime<chrono::Utc>>;

/// Newest activity on the site per (account, product), from the managed-user listing only
/// (pages, no per-user call): for the accounts in `accounts` and the products in `products`.
/// A pair is absent when the listing has no dated entry for it on the site (unmanaged
/// account, product never accessed); the caller decides whether to ask per user. Returns the
/// map and the number of listing pages read.
#[tracing::instrument(skip_all, fields(accounts = accounts.len()))]
pub async fn listed_activity(
    admin: &AdminClient,
    org: &OrgId,
    site: &SiteFilter,
    accounts: &std::collections::HashSet<AccountId>,
    products: &[ProductKey],
) -> Result<(ListedActivity, u64), AtlassianError> {
    let mut found = HashMap::new();
    let mut pages_read = 0u64;
    let mut pages = admin.users(org);
    while let Some(users) = pages.next_page().await? {
        pages_read += 1;
        for user in users {
            if !accounts.contains(&user.account_id) {
                continue;
            }
            for product in products {
                let newest = user
                    .product_access
                    .iter()
                    .filter(|p| &p.key == product)
                    .filter(|p| p.url.as_deref().is_some_and(|url| site.is_site_url(url)))
                    .filter_map(|p| p.last_active)
                    .max();
                if let Some(at) = newest {
                    found.insert((user.account_id.clone(), product.clone()), at);
                }
            }
        }
    }
    Ok((found, pages_read))
}
