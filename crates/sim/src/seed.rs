//! Deterministic generation of a realistic org from a seed, and the ground truth that
//! tells tests which category each generated account belongs to.
//!
//! Dates are relative to the *anchor*: today's midnight UTC at seeding time, so the
//! same seed gives the same org on the same day, and "90 days inactive" stays true
//! whenever the simulator is started.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::SimConfig;
use super::jsm_model::ServiceDesk;
use super::model::{
    AccountStatus, AccountType, Activity, Gid, JiraRole, Product, Site, User, World,
};

/// Jira Software default access group.
pub const GROUP_JIRA_SOFTWARE: &str = "jira-software-users";
/// Second group in the `jira-software` role (not a default group).
pub const GROUP_JIRA_CONTRACTORS: &str = "jira-software-contractors";
/// Jira Service Management (agent) access group.
pub const GROUP_JSM: &str = "jira-servicemanagement-users";
/// Confluence access group.
pub const GROUP_CONFLUENCE: &str = "confluence-users";
/// A group that grants both Jira Software and Confluence.
pub const GROUP_BUNDLE: &str = "jira-confluence-bundle";
/// Org admins (`accessType=site-admin`).
pub const GROUP_ORG_ADMINS: &str = "org-admins";
/// Jira administrators (`accessType=admin`).
pub const GROUP_JIRA_ADMINS: &str = "jira-administrators";
/// Accounts reseat must never touch.
pub const GROUP_PROTECTED: &str = "reseat-protected";
/// Offboarded people (suspended; restore must be denied).
pub const GROUP_OFFBOARDED: &str = "offboarded";
/// Every person in the org; grants nothing.
pub const GROUP_ALL_STAFF: &str = "all-staff";
/// Email of the seeded site user without admin rights (Basic auth gives 403 where admin is needed).
pub const VIEWER_EMAIL: &str = "viewer@acme.example";
/// API token of [`VIEWER_EMAIL`].
pub const VIEWER_TOKEN: &str = "sim-viewer-token";
/// A valid admin API key that has no access to the simulated org (403).
pub const FOREIGN_ADMIN_KEY: &str = "sim-foreign-org-key";
/// Domain of managed (verified-domain) accounts.
pub const MANAGED_DOMAIN: &str = "acme.example";

/// Activity pattern of a seeded account for one product on the configured site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// In a granting group; last active within the last 30 days.
    Active,
    /// In a granting group; last active 120 to 700 days ago.
    Inactive,
    /// In a granting group; never accessed; added to the org within the last 14 days.
    NeverAccessedNew,
    /// In a granting group; never accessed; added 200 or more days ago.
    NeverAccessedOld,
    /// In a granting group; never accessed this site, but active on the other site
    /// within the last 30 days.
    ActiveElsewhereOnly,
    /// Not in any group granting the product on the configured site.
    NoAccess,
}

/// What the seed made of one account.
#[derive(Clone, Debug, Serialize)]
pub struct SeededUser {
    /// Account id.
    pub account_id: String,
    /// Display name.
    pub name: String,
    /// Email, `None` when hidden by the user's privacy settings (or for apps).
    pub email: Option<String>,
    /// Account type.
    pub account_type: AccountType,
    /// Account status.
    pub account_status: AccountStatus,
    /// Suspended at org level (no product access anywhere).
    pub suspended: bool,
    /// Managed account (listed by `GET /admin/v1/orgs/{orgId}/users`).
    pub managed: bool,
    /// When the account was added to the org.
    pub added_to_org: DateTime<Utc>,
    /// Category per product on the configured site.
    pub products: BTreeMap<Product, Category>,
    /// Products the account can use on the other site only, active there recently.
    pub other_site_only: Vec<Product>,
    /// Group names at seeding time.
    pub groups: Vec<String>,
    /// Member of `org-admins`.
    pub org_admin: bool,
    /// Member of `reseat-protected`.
    pub protected: bool,
    /// Member of `offboarded`.
    pub offboarded: bool,
    /// Has product access through `jira-confluence-bundle` (two products in one group).
    pub via_multi_product_group: bool,
}

/// Ground truth of a seeded org.
#[derive(Clone, Debug, Serialize)]
pub struct GroundTruth {
    /// Midnight UTC of the seeding day; all seeded dates are relative to it.
    pub anchor: DateTime<Utc>,
    /// Every seeded account, in creation order.
    pub users: Vec<SeededUser>,
}

impl GroundTruth {
    /// Accounts with the given category for a product.
    pub fn with_category(
        &self,
        product: Product,
        category: Category,
    ) -> impl Iterator<Item = &SeededUser> {
        self.users
            .iter()
            .filter(move |u| u.products.get(&product) == Some(&category))
    }

    /// One account by id.
    pub fn user(&self, account_id: &str) -> Option<&SeededUser> {
        self.users.iter().find(|u| u.account_id == account_id)
    }
}

const FIRST: [&str; 20] = [
    "Ada", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Mei", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
];
const LAST: [&str; 20] = [
    "Abbott", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Murphy", "Nakamura", "Okafor", "Petrov", "Quist", "Rossi", "Singh",
    "Tanaka",
];

/// Picks a value: the `k`-th option while `k` is small (so every option appears even in
/// a small org), a weighted random one afterwards.
fn pick<T: Copy>(rng: &mut StdRng, k: usize, options: &[(T, u32)]) -> T {
    if let Some((v, _)) = options.get(k) {
        return *v;
    }
    let total: u32 = options.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (v, w) in options {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    options[0].0
}

fn days_ago(rng: &mut StdRng, anchor: DateTime<Utc>, lo: i64, hi: i64) -> DateTime<Utc> {
    let d = rng.random_range(lo..hi.max(lo + 1));
    anchor - Duration::days(d) - Duration::seconds(rng.random_range(1..86_000))
}

/// A random 24-hex-digit account id, like Atlassian's.
pub(crate) fn account_id(rng: &mut impl Rng) -> String {
    (0..12)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A random UUID string (group ids, the other site's cloud id).
pub(crate) fn uuid(rng: &mut impl Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

struct Groups {
    jsw: Gid,
    contractors: Gid,
    jsm: Gid,
    confluence: Gid,
    bundle: Gid,
    admins: Gid,
    jira_admins: Gid,
    protected: Gid,
    offboarded: Gid,
    all_staff: Gid,
}

fn seed_groups(w: &mut World, rng: &mut StdRng, cloud_id: &str) -> Groups {
    // Groups are the org's: two sites of one org seeded alike (`spawn_org`) must not hold
    // the same group ids, or a group would seem to grant on both. A site other than the
    // default one mixes its cloud id into the ids, drawing the same random bytes, so the
    // accounts and everything else seeded after stay as they were.
    let salt = (cloud_id != SimConfig::default().cloud_id).then(|| {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(cloud_id.as_bytes());
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&digest[..16]);
        salt
    });
    let mut mk = |w: &mut World, name: &str, access: Option<&'static str>| {
        let mut bytes: [u8; 16] = rng.random();
        if let Some(salt) = salt {
            for (byte, mix) in bytes.iter_mut().zip(salt) {
                *byte ^= mix;
            }
        }
        let id = uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string();
        w.push_group(id, name.to_owned(), access)
    };
    let g = Groups {
        jsw: mk(w, GROUP_JIRA_SOFTWARE, Some("user")),
        contractors: mk(w, GROUP_JIRA_CONTRACTORS, Some("user")),
        jsm: mk(w, GROUP_JSM, Some("user")),
        confluence: mk(w, GROUP_CONFLUENCE, Some("user")),
        bundle: mk(w, GROUP_BUNDLE, Some("user")),
        admins: mk(w, GROUP_ORG_ADMINS, Some("site-admin")),
        jira_admins: mk(w, GROUP_JIRA_ADMINS, Some("admin")),
        protected: mk(w, GROUP_PROTECTED, None),
        offboarded: mk(w, GROUP_OFFBOARDED, None),
        all_staff: mk(w, GROUP_ALL_STAFF, None),
    };
    w.roles = vec![
        JiraRole {
            product: Product::JiraSoftware,
            groups: vec![],
            default_groups: vec![],
            seats: 0,
        },
        JiraRole {
            product: Product::JiraServiceDesk,
            groups: vec![],
            default_groups: vec![],
            seats: 0,
        },
    ];
    w.grant(g.jsw, Product::JiraSoftware, true);
    w.grant(g.contractors, Product::JiraSoftware, false);
    w.grant(g.bundle, Product::JiraSoftware, false);
    w.grant(g.jsm, Product::JiraServiceDesk, true);
    w.grant(g.confluence, Product::Confluence, true);
    w.grant(g.bundle, Product::Confluence, false);
    g
}

#[derive(Clone, Copy, PartialEq)]
enum Tenure {
    New,
    Established,
}

#[derive(Clone, Copy, PartialEq)]
enum Route {
    Default,
    Bundle,
    Contractor,
}

/// Builds the org and its ground truth.
pub(crate) fn seed(config: &SimConfig, anchor: DateTime<Utc>) -> (World, GroundTruth) {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let other_site = Site {
        cloud_id: uuid(&mut rng),
        name: format!("{}-labs", config.site_name),
    };
    let main_site = Site {
        cloud_id: config.cloud_id.clone(),
        name: config.site_name.clone(),
    };
    let mut w = World::new(
        config.org_id.clone(),
        "Acme Corporation".to_owned(),
        vec![main_site, other_site],
    );
    w.desk = ServiceDesk::seeded();
    let g = seed_groups(&mut w, &mut rng, &config.cloud_id);
    let mut truth = Vec::with_capacity(config.users.max(2));
    let recent = |rng: &mut StdRng| days_ago(rng, anchor, 1, 20);

    // The two credential holders come first.
    for (i, (name, email)) in [
        ("Site Admin", config.site_email.as_str()),
        ("Sam Viewer", VIEWER_EMAIL),
    ]
    .into_iter()
    .enumerate()
    {
        let added = days_ago(&mut rng, anchor, 900, 1000);
        let activity = Product::ALL
            .into_iter()
            .map(|p| Activity {
                product: p,
                site: 0,
                at: recent(&mut rng),
            })
            .collect();
        let uid = w.push_user(new_user(
            account_id(&mut rng),
            name,
            Some(email.to_owned()),
            AccountType::Atlassian,
            added,
            activity,
        ));
        let groups: &[Gid] = if i == 0 {
            &[
                g.jsw,
                g.jsm,
                g.confluence,
                g.admins,
                g.jira_admins,
                g.all_staff,
            ]
        } else {
            &[g.jsw, g.confluence, g.all_staff]
        };
        for gid in groups {
            w.add_member(*gid, uid);
        }
        let mut products: BTreeMap<_, _> = Product::ALL.map(|p| (p, Category::Active)).into();
        if i == 1 {
            products.insert(Product::JiraServiceDesk, Category::NoAccess);
        }
        truth.push(truth_of(&w, uid, products, vec![], false));
    }

    let kinds = [
        (AccountType::Atlassian, 93),
        (AccountType::App, 2),
        (AccountType::Customer, 5),
    ];
    let mut people = 0usize;
    let mut per_product = [[0usize; 2]; 3];
    for k in 0..config.users.saturating_sub(2) {
        let kind = pick(&mut rng, k, &kinds);
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let id = account_id(&mut rng);
        match kind {
            AccountType::App => {
                let added = days_ago(&mut rng, anchor, 30, 1500);
                let at = days_ago(&mut rng, anchor, 0, 400);
                let act = vec![Activity {
                    product: Product::JiraSoftware,
                    site: 0,
                    at,
                }];
                let uid = w.push_user(new_user(
                    id,
                    &format!("{first} Automation bot {k}"),
                    None,
                    kind,
                    added,
                    act,
                ));
                w.add_member(g.jsw, uid);
                let cat = if at > anchor - Duration::days(30) {
                    Category::Active
                } else {
                    Category::Inactive
                };
                let mut products: BTreeMap<_, _> =
                    Product::ALL.map(|p| (p, Category::NoAccess)).into();
                products.insert(Product::JiraSoftware, cat);
                truth.push(truth_of(&w, uid, products, vec![], false));
            }
            AccountType::Customer => {
                let added = days_ago(&mut rng, anchor, 1, 1500);
                let email = format!(
                    "{}.{}{k}@customer.example",
                    first.to_lowercase(),
                    last.to_lowercase()
                );
                let uid = w.push_user(new_user(
                    id,
                    &format!("{first} {last}"),
                    Some(email),
                    kind,
                    added,
                    vec![],
                ));
                truth.push(truth_of(
                    &w,
                    uid,
                    Product::ALL.map(|p| (p, Category::NoAccess)).into(),
                    vec![],
                    false,
                ));
            }
            AccountType::Atlassian => {
                let a = people;
                people += 1;
                let tenure = pick(&mut rng, a, &[(Tenure::New, 8), (Tenure::Established, 92)]);
                let added = match tenure {
                    Tenure::New => days_ago(&mut rng, anchor, 1, 14),
                    Tenure::Established => days_ago(&mut rng, anchor, 200, 1500),
                };
                let tenure_days = (anchor - added).num_days().max(1);
                let managed = pick(&mut rng, a, &[(true, 85), (false, 15)]);
                let hidden = a > 10 && rng.random_bool(0.01);
                let domain = if managed {
                    MANAGED_DOMAIN
                } else if a.is_multiple_of(2) {
                    "partner.example"
                } else {
                    "mail.example"
                };
                let email = (!hidden).then(|| {
                    format!(
                        "{}.{}{k}@{domain}",
                        first.to_lowercase(),
                        last.to_lowercase()
                    )
                });
                let status = pick(
                    &mut rng,
                    a.wrapping_sub(20),
                    &[
                        (AccountStatus::Active, 94),
                        (AccountStatus::Inactive, 4),
                        (AccountStatus::Closed, 2),
                    ],
                );
                let mut u = new_user(id, &format!("{first} {last}"), email, kind, added, vec![]);
                u.managed = managed;
                u.status = status;
                let uid = w.push_user(u);
                w.add_member(g.all_staff, uid);
                let mut products = BTreeMap::new();
                let mut other_only = Vec::new();
                let mut via_bundle = false;
                let closed = status == AccountStatus::Closed;
                let jsw_route = pick(
                    &mut rng,
                    a.wrapping_sub(3),
                    &[
                        (Route::Default, 85),
                        (Route::Bundle, 10),
                        (Route::Contractor, 5),
                    ],
                );
                for p in Product::ALL {
                    let chance = match p {
                        Product::JiraSoftware => 70,
                        Product::JiraServiceDesk => 20,
                        Product::Confluence => 65,
                    };
                    let bundled = p == Product::Confluence && via_bundle;
                    let has = !closed
                        && (bundled
                            || pick(
                                &mut rng,
                                a.wrapping_sub(p.index() * 2),
                                &[(true, chance), (false, 100 - chance)],
                            ));
                    if !has {
                        products.insert(p, Category::NoAccess);
                        if !closed && rng.random_bool(0.05) {
                            let at = days_ago(&mut rng, anchor, 0, 30);
                            w.users[uid as usize].activity.push(Activity {
                                product: p,
                                site: 1,
                                at,
                            });
                            w.users[uid as usize].remote_access.push((1, p));
                            other_only.push(p);
                        }
                        continue;
                    }
                    let gid = match (p, jsw_route) {
                        (Product::JiraSoftware, Route::Bundle) => {
                            via_bundle = true;
                            g.bundle
                        }
                        (Product::JiraSoftware, Route::Contractor) => g.contractors,
                        (Product::JiraSoftware, Route::Default) => g.jsw,
                        (Product::JiraServiceDesk, _) => g.jsm,
                        (Product::Confluence, _) if bundled => g.bundle,
                        (Product::Confluence, _) => g.confluence,
                    };
                    w.add_member(gid, uid);
                    let t = usize::from(tenure == Tenure::Established);
                    let c = per_product[p.index()][t];
                    per_product[p.index()][t] += 1;
                    let cat = match tenure {
                        Tenure::New => pick(
                            &mut rng,
                            c,
                            &[(Category::Active, 60), (Category::NeverAccessedNew, 40)],
                        ),
                        Tenure::Established => pick(
                            &mut rng,
                            c,
                            &[
                                (Category::Active, 50),
                                (Category::Inactive, 25),
                                (Category::NeverAccessedOld, 12),
                                (Category::ActiveElsewhereOnly, 13),
                            ],
                        ),
                    };
                    let act = match cat {
                        Category::Active => {
                            Some((0, days_ago(&mut rng, anchor, 0, 30.min(tenure_days))))
                        }
                        Category::Inactive => {
                            Some((0, days_ago(&mut rng, anchor, 120, 700.min(tenure_days))))
                        }
                        Category::ActiveElsewhereOnly => {
                            w.users[uid as usize].remote_access.push((1, p));
                            Some((1, days_ago(&mut rng, anchor, 0, 30)))
                        }
                        _ => None,
                    };
                    if let Some((site, at)) = act {
                        w.users[uid as usize].activity.push(Activity {
                            product: p,
                            site,
                            at,
                        });
                    }
                    products.insert(p, cat);
                }
                let admin = !closed && (a < 3 || rng.random_bool(0.002));
                if admin {
                    w.add_member(g.admins, uid);
                    if a == 0 {
                        w.add_member(g.jira_admins, uid);
                    }
                }
                if !closed && (a == 5 || rng.random_bool(0.01)) {
                    w.add_member(g.protected, uid);
                }
                if !closed && (a == 7 || rng.random_bool(0.01)) {
                    w.add_member(g.offboarded, uid);
                    w.update_user(uid, |u| u.suspended = true);
                } else if status == AccountStatus::Active && (a == 9 || rng.random_bool(0.01)) {
                    w.update_user(uid, |u| u.suspended = true);
                }
                truth.push(truth_of(&w, uid, products, other_only, via_bundle));
            }
        }
    }
    for role in &mut w.roles {
        let used = w.user_count[role.product.index()];
        role.seats = used + (used / 10).max(5);
    }
    let conf = w.user_count[Product::Confluence.index()];
    w.confluence_seats = conf + (conf / 10).max(5);
    (
        w,
        GroundTruth {
            anchor,
            users: truth,
        },
    )
}

fn new_user(
    account_id: String,
    name: &str,
    email: Option<String>,
    account_type: AccountType,
    added_to_org: DateTime<Utc>,
    activity: Vec<Activity>,
) -> User {
    User {
        account_id,
        account_type,
        status: AccountStatus::Active,
        suspended: false,
        managed: account_type == AccountType::Atlassian,
        synced: false,
        in_directory: true,
        name: name.to_owned(),
        email,
        added_to_org,
        groups: Vec::new(),
        activity,
        remote_access: Vec::new(),
    }
}

fn truth_of(
    w: &World,
    uid: u32,
    products: BTreeMap<Product, Category>,
    other_site_only: Vec<Product>,
    via_multi_product_group: bool,
) -> SeededUser {
    let u = w.user(uid);
    let groups: Vec<String> = u.groups.iter().map(|g| w.group(*g).name.clone()).collect();
    let has = |name: &str| groups.iter().any(|g| g == name);
    SeededUser {
        account_id: u.account_id.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
        account_type: u.account_type,
        account_status: u.status,
        suspended: u.suspended,
        managed: u.managed,
        added_to_org: u.added_to_org,
        org_admin: has(GROUP_ORG_ADMINS),
        protected: has(GROUP_PROTECTED),
        offboarded: has(GROUP_OFFBOARDED),
        products,
        other_site_only,
        groups,
        via_multi_product_group,
    }
}
