//! Sources of last-active data: the Organizations admin API ([`api`]) and the admin
//! "Export users" CSV ([`csv`]). Both produce [`UserActivity`] records for the configured
//! site only; [`ActivitySet::merge`] combines them so that, per user and product, the newest
//! activity wins.

pub mod api;
pub mod csv;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::atlassian::{AccountId, AccountStatus, AccountType, ProductKey};

/// What a source knows about one user's activity in one product on the configured site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seen {
    /// Last active at this time.
    At(DateTime<Utc>),
    /// The source says the user never accessed the product on this site.
    Never,
    /// The source has nothing to say; never acted on.
    #[default]
    Unknown,
}

impl Seen {
    /// Combines two sources: the newest activity wins; activity beats "never" (one source
    /// may be behind); "never" beats "unknown".
    pub fn merge(self, other: Seen) -> Seen {
        match (self, other) {
            (Seen::At(a), Seen::At(b)) => Seen::At(a.max(b)),
            (Seen::At(a), _) | (_, Seen::At(a)) => Seen::At(a),
            (Seen::Never, _) | (_, Seen::Never) => Seen::Never,
            _ => Seen::Unknown,
        }
    }

    /// The time, when there is one.
    pub fn at(self) -> Option<DateTime<Utc>> {
        match self {
            Seen::At(at) => Some(at),
            _ => None,
        }
    }
}

/// One product of one user, as a source saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSeen {
    pub product: ProductKey,
    /// Whether the source says the user can use the product on the site (`None`: it does
    /// not say).
    pub access: Option<bool>,
    pub seen: Seen,
    /// Newest activity in the product on another site of the org: never counted for this
    /// site, only reported in the decision's reason.
    pub elsewhere: Option<DateTime<Utc>>,
}

/// What the sources know about one user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserActivity {
    pub account_id: AccountId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub account_type: Option<AccountType>,
    pub status: Option<AccountStatus>,
    /// When the user joined the org: the start of the never-accessed grace period.
    pub added_to_org: Option<DateTime<Utc>>,
    /// The CSV's `Org role` says admin.
    pub org_admin: bool,
    pub products: Vec<ProductSeen>,
    /// Activity entries for this site that the source could not attribute to a product
    /// (unknown or unreadable keys), described for the plan's reason. Any makes every
    /// product of the user on the site `unknown`.
    pub unattributed: Vec<String>,
}

impl UserActivity {
    pub fn new(account_id: AccountId) -> Self {
        UserActivity {
            account_id,
            name: None,
            email: None,
            account_type: None,
            status: None,
            added_to_org: None,
            org_admin: false,
            products: Vec::new(),
            unattributed: Vec::new(),
        }
    }

    /// What the sources know of one product.
    pub fn seen(&self, product: &ProductKey) -> Seen {
        self.products
            .iter()
            .filter(|p| &p.product == product)
            .fold(Seen::Unknown, |acc, p| acc.merge(p.seen))
    }

    /// Records (or merges) one product's activity.
    pub fn record(&mut self, product: ProductKey, access: Option<bool>, seen: Seen) {
        match self.products.iter_mut().find(|p| p.product == product) {
            Some(existing) => {
                existing.seen = existing.seen.merge(seen);
                existing.access = match (existing.access, access) {
                    (Some(a), Some(b)) => Some(a || b),
                    (a, b) => a.or(b),
                };
            }
            None => self.products.push(ProductSeen {
                product,
                access,
                seen,
                elsewhere: None,
            }),
        }
    }

    /// Records activity in a product on another site (the newest is kept).
    pub fn record_elsewhere(&mut self, product: &ProductKey, at: Option<DateTime<Utc>>) {
        let Some(at) = at else { return };
        if let Some(existing) = self.products.iter_mut().find(|p| &p.product == product) {
            existing.elsewhere = Some(existing.elsewhere.map_or(at, |e| e.max(at)));
        } else {
            self.products.push(ProductSeen {
                product: product.clone(),
                access: None,
                seen: Seen::Unknown,
                elsewhere: Some(at),
            });
        }
    }

    /// Records an activity entry for this site that no product could be attributed to.
    pub fn record_unattributed(&mut self, what: String) {
        if !self.unattributed.contains(&what) {
            self.unattributed.push(what);
        }
    }

    /// The unattributed entries, as the plan's reason names them.
    pub fn unattributed(&self) -> Option<String> {
        (!self.unattributed.is_empty()).then(|| self.unattributed.join(", "))
    }

    /// Newest activity in a product on another site, when a source reported one.
    pub fn elsewhere(&self, product: &ProductKey) -> Option<DateTime<Utc>> {
        self.products
            .iter()
            .filter(|p| &p.product == product)
            .filter_map(|p| p.elsewhere)
            .max()
    }

    /// Merges another source's record of the same user into this one.
    pub fn merge(&mut self, other: UserActivity) {
        self.name = self.name.take().or(other.name);
        self.email = self.email.take().or(other.email);
        self.account_type = self.account_type.take().or(other.account_type);
        self.status = self.status.take().or(other.status);
        self.added_to_org = match (self.added_to_org, other.added_to_org) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.org_admin |= other.org_admin;
        for what in other.unattributed {
            self.record_unattributed(what);
        }
        for p in other.products {
            self.record_elsewhere(&p.product, p.elsewhere);
            self.record(p.product, p.access, p.seen);
        }
    }
}

/// Activity of many users, by account.
#[derive(Debug, Default, Clone)]
pub struct ActivitySet {
    users: HashMap<AccountId, UserActivity>,
}

impl ActivitySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record, merging with what is known of the same user.
    pub fn insert(&mut self, activity: UserActivity) {
        match self.users.get_mut(&activity.account_id) {
            Some(existing) => existing.merge(activity),
            None => {
                self.users.insert(activity.account_id.clone(), activity);
            }
        }
    }

    /// Merges another source into this one.
    pub fn merge(&mut self, other: ActivitySet) {
        for (_, activity) in other.users {
            self.insert(activity);
        }
    }

    pub fn get(&self, account: &AccountId) -> Option<&UserActivity> {
        self.users.get(account)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &UserActivity> {
        self.users.values()
    }
}

/// Which site's activity counts: activity on another site must not hide inactivity here.
#[derive(Debug, Clone, Default)]
pub struct SiteFilter {
    /// The site's cloud id (matched against `ari:cloud:<product>::site/<cloud id>`).
    pub cloud_id: Option<String>,
    /// The site name, `acme` for `acme.atlassian.net` (matched against URLs and CSV column
    /// suffixes).
    pub site_name: Option<String>,
}

impl SiteFilter {
    /// The site `[atlassian]` configures.
    pub fn of(config: &crate::atlassian::AtlassianConfig) -> Self {
        SiteFilter {
            cloud_id: config.cloud_id.clone(),
            site_name: config.site_name.clone(),
        }
    }

    /// Whether a product URL (`https://acme.atlassian.net`) is this site's.
    pub fn is_site_url(&self, url: &str) -> bool {
        let Some(name) = self.site_name.as_deref() else {
            return false;
        };
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .is_some_and(|host| host == format!("{}.atlassian.net", name.to_ascii_lowercase()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_newest_activity_wins_and_activity_beats_never() {
        let old = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let new = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        assert_eq!(Seen::At(old).merge(Seen::At(new)), Seen::At(new));
        assert_eq!(Seen::Never.merge(Seen::At(old)), Seen::At(old));
        assert_eq!(Seen::Unknown.merge(Seen::Never), Seen::Never);
        assert_eq!(Seen::Unknown.merge(Seen::Unknown), Seen::Unknown);

        let id = AccountId::parse("abc").unwrap();
        let mut a = UserActivity::new(id.clone());
        a.record(ProductKey::CONFLUENCE, Some(true), Seen::At(old));
        a.record(ProductKey::JIRA_SOFTWARE, None, Seen::Never);
        let mut b = UserActivity::new(id.clone());
        b.record(ProductKey::CONFLUENCE, None, Seen::At(new));
        b.added_to_org = Some(old);
        let mut set = ActivitySet::new();
        set.insert(a);
        set.insert(b);
        let merged = set.get(&id).unwrap();
        assert_eq!(merged.seen(&ProductKey::CONFLUENCE), Seen::At(new));
        assert_eq!(merged.seen(&ProductKey::JIRA_SOFTWARE), Seen::Never);
        assert_eq!(
            merged.seen(&ProductKey::JIRA_SERVICE_MANAGEMENT),
            Seen::Unknown
        );
        assert_eq!(merged.added_to_org, Some(old));
    }

    #[test]
    fn site_urls_are_matched_by_host() {
        let site = SiteFilter {
            cloud_id: None,
            site_name: Some("acme".into()),
        };
        assert!(site.is_site_url("https://acme.atlassian.net"));
        assert!(site.is_site_url("https://ACME.atlassian.net/wiki"));
        assert!(!site.is_site_url("https://acme-labs.atlassian.net"));
    }
}
