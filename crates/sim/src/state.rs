//! [`SimState`]: the shared, lock-protected state of one simulator, and the inspection
//! and mutation helpers that Rust tests and the `/_sim/` control API use.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::SimConfig;
use super::consistency::Pending;
use super::faults::{FaultPatch, FaultSettings, Faults, LogEntry};
use super::jsm_model::{PROJECT_KEY, RESTORE_REQUEST_TYPE_ID, Request};
use super::model::{AccountStatus, AccountType, Activity, Product, User, World};
use super::seed::{self, GroundTruth};
use super::views::{
    GroupView, NewRequest, NewUser, RequestView, UserPatch, UserView, group_view, request_view,
    user_view,
};

/// Errors of the inspection and mutation helpers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    /// No account with that id.
    #[error("no user with account id {0}")]
    UnknownUser(String),
    /// No group with that id or name.
    #[error("no group with id or name {0}")]
    UnknownGroup(String),
    /// No site with that cloud id.
    #[error("no site with cloud id {0}")]
    UnknownSite(String),
    /// No JSM request with that key or id.
    #[error("no request {0}")]
    UnknownRequest(String),
    /// The thing exists already.
    #[error("{0}")]
    Conflict(String),
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the simulator's data half-written in a
    // way that matters more than stopping; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shared state of one simulator; cheap to clone.
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    base_url: String,
    world: RwLock<World>,
    truth: RwLock<Arc<GroundTruth>>,
    faults: Faults,
    /// Accepted changes not yet visible (see [`super::consistency`]).
    pending: Pending,
    /// Answers that violated the vendored specs (with `validate_responses`).
    violations: Mutex<Vec<String>>,
    shutdown: CancellationToken,
    /// The org's other sites, when this simulator serves the org's admin API for several
    /// (see [`SimState::add_site`]).
    peers: RwLock<Vec<SimState>>,
}

impl SimState {
    pub(crate) fn new(
        config: SimConfig,
        base_url: String,
        shutdown: CancellationToken,
    ) -> SimState {
        let (world, truth) = seed::seed(&config, anchor());
        let faults = Faults::new(initial_faults(&config), config.seed);
        SimState {
            inner: Arc::new(Inner {
                config,
                base_url,
                world: RwLock::new(world),
                truth: RwLock::new(Arc::new(truth)),
                faults,
                pending: Pending::default(),
                violations: Mutex::new(Vec::new()),
                shutdown,
                peers: RwLock::new(Vec::new()),
            }),
        }
    }

    /// The world as reads see it now: due eventual changes are made first.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, World> {
        if self.inner.pending.any_due() {
            drop(self.write());
        }
        self.inner.world.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The world for a change: due eventual changes are made first.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, World> {
        let mut w = self.inner.world.write().unwrap_or_else(|e| e.into_inner());
        self.inner.pending.apply(&mut w, false);
        w
    }

    /// Makes `change`, which an Atlassian API accepted, visible after the consistency delay
    /// (at once, on `world`, when the delay is 0). `world` is the caller's write guard. See
    /// [`super::consistency`] for the rules.
    pub(crate) fn change_eventually(
        &self,
        world: &mut World,
        change: impl FnOnce(&mut World) + Send + Sync + 'static,
    ) {
        let delay = Duration::from_millis(lock(&self.inner.faults.settings).consistency_ms);
        if delay.is_zero() {
            change(world);
        } else {
            self.inner.pending.push(delay, Box::new(change));
        }
    }

    /// Makes `site`, another simulator of the same org (same org id, admin key and seed),
    /// a site of this one's org: this simulator's admin API then answers for both. Its
    /// directory listing and last-active dates carry the other site's activity, its role
    /// reads carry the other site's resources, role changes on the other site's resources
    /// reach it, and suspending, restoring or removing an account happens on every site.
    /// Each site keeps its own groups and memberships, changed through its own site APIs.
    pub fn add_site(&self, site: SimState) {
        self.inner
            .peers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(site);
    }

    /// The other sites added with [`Self::add_site`].
    pub(crate) fn peers(&self) -> Vec<SimState> {
        self.inner
            .peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Cloud id of this simulator's own (configured) site.
    pub fn cloud_id(&self) -> &str {
        &self.inner.config.cloud_id
    }

    /// Every spec violation found in the simulator's answers so far (with
    /// `SimConfig::validate_responses`), oldest first.
    pub fn spec_violations(&self) -> Vec<String> {
        lock(&self.inner.violations).clone()
    }

    #[cfg_attr(not(feature = "validate"), allow(dead_code))]
    pub(crate) fn record_violations(&self, found: Vec<String>) {
        if !found.is_empty() {
            lock(&self.inner.violations).extend(found);
        }
    }

    /// Makes every accepted change visible now, due or not.
    pub fn settle(&self) {
        let mut w = self.inner.world.write().unwrap_or_else(|e| e.into_inner());
        self.inner.pending.apply(&mut w, true);
    }

    /// Accepted changes not yet visible to reads.
    pub fn pending_changes(&self) -> usize {
        self.inner.pending.len()
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// The configuration the simulator was started with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Cloud id of the second site (activity there must not count for the configured one).
    pub fn other_cloud_id(&self) -> String {
        self.read()
            .sites
            .get(1)
            .map(|s| s.cloud_id.clone())
            .unwrap_or_default()
    }

    /// What the seed generated (unchanged by later mutations; refreshed by [`Self::reset`]).
    pub fn ground_truth(&self) -> Arc<GroundTruth> {
        self.inner
            .truth
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-seeds the org from the configuration, resets faults and clears the log.
    pub fn reset(&self) {
        let (world, truth) = seed::seed(&self.inner.config, anchor());
        self.inner.pending.clear();
        *self.write() = world;
        *self.inner.truth.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(truth);
        *lock(&self.inner.faults.settings) = initial_faults(&self.inner.config);
        self.clear_log();
    }

    /// One account, or `None`.
    pub fn user(&self, account_id: &str) -> Option<UserView> {
        let w = self.read();
        w.uid(account_id).map(|uid| user_view(&w, uid))
    }

    /// Account ids of a group's members.
    pub fn group_members(&self, group: &str) -> Result<Vec<String>, SimError> {
        let w = self.read();
        let gid = w
            .gid(group)
            .ok_or_else(|| SimError::UnknownGroup(group.to_owned()))?;
        Ok(w.group(gid)
            .members
            .iter()
            .map(|u| w.user(*u).account_id.clone())
            .collect())
    }

    /// Every group.
    pub fn groups(&self) -> Vec<GroupView> {
        let w = self.read();
        (0..w.groups.len() as u32)
            .map(|g| group_view(&w, g))
            .collect()
    }

    /// One group by id or name.
    pub fn group(&self, group: &str) -> Option<GroupView> {
        let w = self.read();
        w.gid(group).map(|g| group_view(&w, g))
    }

    /// Accounts with access to a product on the configured site (the role's `userCount`).
    pub fn user_count(&self, product: Product) -> u32 {
        self.read().user_count[product.index()]
    }

    /// Seats bought for a product.
    pub fn seats(&self, product: Product) -> u32 {
        self.read().seats(product)
    }

    /// Creates an account.
    pub fn create_user(&self, new: NewUser) -> Result<UserView, SimError> {
        let mut w = self.write();
        let account_id = match new.account_id {
            Some(id) if w.uid(&id).is_some() => {
                return Err(SimError::Conflict(format!("account {id} exists")));
            }
            Some(id) if id.is_empty() || id.len() > 128 => {
                return Err(SimError::Invalid(
                    "account_id must be 1..=128 characters".into(),
                ));
            }
            Some(id) => id,
            None => loop {
                let id = seed::account_id(&mut rand::rng());
                if w.uid(&id).is_none() {
                    break id;
                }
            },
        };
        if let Some(e) = &new.email
            && w.by_email.contains_key(&e.to_ascii_lowercase())
        {
            return Err(SimError::Conflict(format!("email {e} is taken")));
        }
        let gids = new
            .groups
            .iter()
            .map(|g| w.gid(g).ok_or_else(|| SimError::UnknownGroup(g.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let account_type = new.account_type.unwrap_or(AccountType::Atlassian);
        let uid = w.push_user(User {
            account_id,
            account_type,
            status: new.account_status.unwrap_or(AccountStatus::Active),
            suspended: false,
            managed: new
                .managed
                .unwrap_or(account_type == AccountType::Atlassian),
            synced: new.synced.unwrap_or(false),
            in_directory: true,
            name: new.name,
            email: new.email,
            added_to_org: new.added_to_org.unwrap_or_else(Utc::now),
            groups: Vec::new(),
            activity: Vec::new(),
            remote_access: Vec::new(),
        });
        for gid in gids {
            w.add_member(gid, uid);
        }
        Ok(user_view(&w, uid))
    }

    /// Changes an account's status or suspension.
    pub fn update_user(&self, account_id: &str, patch: UserPatch) -> Result<UserView, SimError> {
        let mut w = self.write();
        let uid = w
            .uid(account_id)
            .ok_or_else(|| SimError::UnknownUser(account_id.to_owned()))?;
        w.update_user(uid, |u| {
            if let Some(s) = patch.account_status {
                u.status = s;
            }
            if let Some(s) = patch.suspended {
                u.suspended = s;
            }
            if let Some(s) = patch.synced {
                u.synced = s;
            }
        });
        Ok(user_view(&w, uid))
    }

    /// Creates a group that grants the given products on the configured site.
    pub fn create_group(&self, name: &str, grants: &[Product]) -> Result<GroupView, SimError> {
        let mut w = self.write();
        if name.trim().is_empty() {
            return Err(SimError::Invalid("group name must not be empty".into()));
        }
        if w.group_by_name.contains_key(name) {
            return Err(SimError::Conflict(format!("group {name} exists")));
        }
        let gid = w.push_group(
            uuid::Uuid::new_v4().to_string(),
            name.to_owned(),
            Some("user"),
        );
        for p in grants {
            w.grant(gid, *p, false);
        }
        Ok(group_view(&w, gid))
    }

    /// Makes the group `name` of another site of the org (`from`) grant `grants` on this
    /// site too, as an org's group can: the same id, name and members (accounts this site
    /// does not hold are left out). Membership is copied once, not kept in step.
    pub fn share_group(
        &self,
        from: &SimState,
        name: &str,
        grants: &[Product],
    ) -> Result<GroupView, SimError> {
        let theirs = from
            .group(name)
            .ok_or_else(|| SimError::UnknownGroup(name.to_owned()))?;
        let members = from.group_members(name)?;
        let mut w = self.write();
        if w.group_by_name.contains_key(name) {
            return Err(SimError::Conflict(format!("group {name} exists")));
        }
        let gid = w.push_group(theirs.id, name.to_owned(), Some("user"));
        for p in grants {
            w.grant(gid, *p, false);
        }
        for account in members {
            if let Some(uid) = w.uid(&account) {
                w.add_member(gid, uid);
            }
        }
        Ok(group_view(&w, gid))
    }

    /// Adds a membership; `Ok(false)` if it existed.
    pub fn add_member(&self, group: &str, account_id: &str) -> Result<bool, SimError> {
        let mut w = self.write();
        let gid = w
            .gid(group)
            .ok_or_else(|| SimError::UnknownGroup(group.to_owned()))?;
        let uid = w
            .uid(account_id)
            .ok_or_else(|| SimError::UnknownUser(account_id.to_owned()))?;
        Ok(w.add_member(gid, uid))
    }

    /// Removes a membership; `Ok(false)` if there was none.
    pub fn remove_member(&self, group: &str, account_id: &str) -> Result<bool, SimError> {
        let mut w = self.write();
        let gid = w
            .gid(group)
            .ok_or_else(|| SimError::UnknownGroup(group.to_owned()))?;
        let uid = w
            .uid(account_id)
            .ok_or_else(|| SimError::UnknownUser(account_id.to_owned()))?;
        Ok(w.remove_member(gid, uid))
    }

    /// Sets (or with `None` clears) the last-active time of a product on a site
    /// (the configured site when `cloud_id` is `None`).
    pub fn set_last_active(
        &self,
        account_id: &str,
        product: Product,
        cloud_id: Option<&str>,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), SimError> {
        let mut w = self.write();
        let uid = w
            .uid(account_id)
            .ok_or_else(|| SimError::UnknownUser(account_id.to_owned()))?;
        let site = match cloud_id {
            None => 0,
            Some(c) => w
                .sites
                .iter()
                .position(|s| s.cloud_id == c)
                .ok_or_else(|| SimError::UnknownSite(c.to_owned()))? as u8,
        };
        let u = &mut w.users[uid as usize];
        u.activity
            .retain(|a| !(a.product == product && a.site == site));
        if let Some(at) = at {
            u.activity.push(Activity { product, site, at });
        }
        Ok(())
    }

    /// Creates a portal request as if the reporter raised it on the portal.
    pub fn create_request(&self, new: NewRequest) -> Result<RequestView, SimError> {
        let mut w = self.write();
        let reporter = w
            .uid(&new.reporter)
            .ok_or_else(|| SimError::UnknownUser(new.reporter.clone()))?;
        let request_type_id = new
            .request_type_id
            .unwrap_or_else(|| RESTORE_REQUEST_TYPE_ID.to_owned());
        if !w.desk.request_types.iter().any(|t| t.id == request_type_id) {
            return Err(SimError::Invalid(format!(
                "no request type {request_type_id}"
            )));
        }
        let n = w.desk.requests.len() + 1;
        let now = Utc::now();
        let summary = new.summary.unwrap_or_else(|| match new.product {
            Some(p) => format!("Please restore my {} access", p.display_name()),
            None => "Please restore my access".to_owned(),
        });
        w.desk.requests.push(Request {
            issue_id: (10_000 + n).to_string(),
            key: format!("{PROJECT_KEY}-{n}"),
            request_type_id,
            reporter,
            created: now,
            summary,
            description: new.description.unwrap_or_default(),
            product: new.product,
            justification: new.justification.filter(|j| !j.trim().is_empty()),
            status: 0,
            status_date: now,
            comments: Vec::new(),
        });
        Ok(request_view(&w, n - 1))
    }

    /// A request by key or id.
    pub fn request(&self, key: &str) -> Option<RequestView> {
        let w = self.read();
        w.desk.find(key).map(|i| request_view(&w, i))
    }

    /// Current fault settings.
    pub fn faults_settings(&self) -> FaultSettings {
        lock(&self.inner.faults.settings).clone()
    }

    /// Changes fault settings at run time.
    pub fn set_faults(&self, patch: FaultPatch) -> Result<FaultSettings, SimError> {
        let mut s = lock(&self.inner.faults.settings);
        let mut next = s.clone();
        next.apply(patch).map_err(SimError::Invalid)?;
        *s = next.clone();
        Ok(next)
    }

    /// Every logged Atlassian request, oldest first.
    pub fn log(&self) -> Vec<LogEntry> {
        self.inner.faults.log()
    }

    /// Forgets the logged requests.
    pub fn clear_log(&self) {
        self.inner.faults.clear_log()
    }

    /// How many logged requests had this method and exact path.
    pub fn calls(&self, method: &str, path: &str) -> usize {
        self.inner.faults.count(method, path)
    }
}

/// The fault settings a simulator starts (and resets) with.
fn initial_faults(c: &SimConfig) -> FaultSettings {
    FaultSettings {
        latency_ms: c.latency.as_millis() as u64,
        rate_limit: c.rate_limit.filter(|r| *r > 0),
        family_rate_limits: c.family_rate_limits.normalized(),
        fail_rate: c.fail_rate.clamp(0.0, 1.0),
        lose_rate: c.lose_rate.clamp(0.0, 1.0),
        consistency_ms: c.consistency.as_millis() as u64,
        ..FaultSettings::default()
    }
}

/// Today's midnight UTC.
fn anchor() -> DateTime<Utc> {
    let today = Utc::now().date_naive();
    today
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
        .unwrap_or_else(Utc::now)
}
