//! The decision for one user and one product: pure, so that every rule is unit-tested and
//! every decision carries its reason.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::{ProductPolicy, SweepConfig};
use crate::activity::Seen;

/// What the plan says to do with one user's access to one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Active (or within a grace period, or kept on request): nothing to do.
    Keep,
    /// Inactive or about to be: send a warning with a "keep my access" link.
    Warn,
    /// Inactive and warned long enough ago (or warnings are off): remove product access.
    Remove,
    /// Org-level suspension (a later step of the ladder).
    Suspend,
    /// Removal from the org directory (a later step of the ladder).
    Delete,
    /// Never touched: app, customer, protected, admin, multi-product group.
    Exempt,
    /// No usable activity data: never acted on.
    Unknown,
}

impl Decision {
    pub const ALL: [Decision; 7] = [
        Decision::Keep,
        Decision::Warn,
        Decision::Remove,
        Decision::Suspend,
        Decision::Delete,
        Decision::Exempt,
        Decision::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Warn => "warn",
            Decision::Remove => "remove",
            Decision::Suspend => "suspend",
            Decision::Delete => "delete",
            Decision::Exempt => "exempt",
            Decision::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Decision> {
        Decision::ALL.into_iter().find(|d| d.as_str() == text)
    }
}

/// Why a user is exempt, decided before activity is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exemption {
    App,
    Customer,
    ProtectedAccount,
    ProtectedEmail,
    ProtectedGroup(String),
    OrgAdmin(String),
    /// Holds the product only through a group that also grants other products.
    MultiProductGroup {
        group: String,
        products: String,
    },
    /// Holds the product through a group that grants access on other sites of the org too.
    SharedWithSites {
        group: String,
        sites: String,
    },
}

impl Exemption {
    pub fn reason(&self) -> String {
        match self {
            Exemption::App => "app account (bot or integration)".to_owned(),
            Exemption::Customer => "customer account (portal only, holds no seat)".to_owned(),
            Exemption::ProtectedAccount => "protected account (sweep.protect.accounts)".to_owned(),
            Exemption::ProtectedEmail => "protected email (sweep.protect.emails)".to_owned(),
            Exemption::ProtectedGroup(group) => format!("member of protected group {group}"),
            Exemption::OrgAdmin(group) => {
                format!("org admin (member of {group}; sweep.protect.include_org_admins is off)")
            }
            Exemption::MultiProductGroup { group, products } => format!(
                "holds the product only through {group}, which also grants {products}: removing would take more than one product"
            ),
            Exemption::SharedWithSites { group, sites } => format!(
                "holds the product through {group}, which also grants access on {sites}: removing would take it there too"
            ),
        }
    }
}

/// What the evaluation needs to know of one user and product.
#[derive(Debug, Clone)]
pub struct Facts {
    pub exemption: Option<Exemption>,
    pub seen: Seen,
    pub added_to_org: Option<DateTime<Utc>>,
    /// The user asked to keep the product until then.
    pub kept_until: Option<DateTime<Utc>>,
    /// Access given back for a while (a rule's `approve_for`) and not ended.
    pub granted: Option<crate::ledger::grants::Grant>,
    /// When the user was last warned for this product, if after their last activity.
    pub warned_at: Option<DateTime<Utc>>,
    /// Newest activity in the product on another site of the org: it does not count here,
    /// and the reason says so.
    pub active_elsewhere: Option<DateTime<Utc>>,
    /// Activity on this site that a source could not attribute to a product (an unknown or
    /// unreadable product key): it may be this product's, so the seat is `unknown`.
    pub unattributed: Option<String>,
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    pub reason: String,
    pub last_active: Option<DateTime<Utc>>,
    /// The threshold that applied, in days (`inactive_after`, or the never-accessed grace).
    pub threshold_days: Option<i64>,
}

fn days(d: Duration) -> i64 {
    (d.as_secs() / 86_400) as i64
}

fn as_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// A seat given back for a while and not used since: kept until the end, warned before it
/// (with keep and restore links), taken back at the end, after the warning's notice.
fn time_bound(
    config: &SweepConfig,
    facts: &Facts,
    grant: crate::ledger::grants::Grant,
    now: DateTime<Utc>,
    verdict: &dyn Fn(Decision, String, Option<i64>) -> Verdict,
) -> Verdict {
    let ladder = &config.ladder;
    let warn_before = as_chrono(ladder.warn_before);
    let length = (grant.until - grant.granted_at).num_days();
    let what = format!(
        "time-bound access: given back {} for {length} days, until {}; not used since",
        day(grant.granted_at),
        day(grant.until)
    );
    if now < grant.until {
        if ladder.warn && ladder.remove && now >= grant.until - warn_before {
            return verdict(
                Decision::Warn,
                format!("{what}; ends in {} days", (grant.until - now).num_days()),
                None,
            );
        }
        return verdict(Decision::Keep, what, None);
    }
    let ended = format!("{what}; ended");
    if !ladder.remove {
        let decision = if ladder.warn {
            Decision::Warn
        } else {
            Decision::Keep
        };
        return verdict(
            decision,
            format!("{ended}; removal is off (sweep.ladder.remove)"),
            None,
        );
    }
    if !ladder.warn {
        return verdict(Decision::Remove, ended, None);
    }
    match facts.warned_at.filter(|w| *w >= grant.granted_at) {
        Some(warned) if now - warned >= warn_before => verdict(
            Decision::Remove,
            format!("{ended}; warned {}", day(warned)),
            None,
        ),
        Some(warned) => verdict(
            Decision::Warn,
            format!("{ended}; warned {}, removal after the notice", day(warned)),
            None,
        ),
        None => verdict(Decision::Warn, format!("{ended}; warning first"), None),
    }
}

/// Decides for one user and product at `now`.
pub fn evaluate(
    config: &SweepConfig,
    policy: &ProductPolicy,
    facts: &Facts,
    now: DateTime<Utc>,
) -> Verdict {
    let verdict = |decision, reason: String, threshold: Option<i64>| Verdict {
        decision,
        reason,
        last_active: facts.seen.at(),
        threshold_days: threshold,
    };
    if let Some(exemption) = &facts.exemption {
        return verdict(Decision::Exempt, exemption.reason(), None);
    }
    if let Some(until) = facts.kept_until.filter(|until| *until > now) {
        return verdict(
            Decision::Keep,
            format!("the user asked to keep access until {}", day(until)),
            None,
        );
    }
    if let Some(grant) = facts.granted
        && facts.seen.at().is_none_or(|at| at <= grant.granted_at)
    {
        return time_bound(config, facts, grant, now, &verdict);
    }
    let inactive_days = days(policy.inactive_after);
    if let Some(what) = &facts.unattributed {
        return verdict(
            Decision::Unknown,
            format!(
                "activity on this site that reseat cannot attribute to a product ({what}): it may be this product's, so nothing is done"
            ),
            Some(inactive_days),
        );
    }
    let lag = as_chrono(config.lag_margin);
    // `idle` is how long the user has been idle by the data, less the lag margin.
    let (idle, limit, threshold, what) = match facts.seen {
        Seen::Unknown => {
            return verdict(
                Decision::Unknown,
                "no activity data for this product on the site".to_owned(),
                Some(inactive_days),
            );
        }
        Seen::At(at) => {
            let idle = now - at - lag;
            (
                idle,
                as_chrono(policy.inactive_after),
                inactive_days,
                format!(
                    "last active {} ({} days ago)",
                    day(at),
                    (now - at).num_days()
                ),
            )
        }
        Seen::Never => {
            let Some(added) = facts.added_to_org else {
                return verdict(
                    Decision::Unknown,
                    "never accessed, and the date the user was added to the org is unknown"
                        .to_owned(),
                    Some(days(config.never_accessed_grace)),
                );
            };
            (
                now - added - lag,
                as_chrono(config.never_accessed_grace),
                days(config.never_accessed_grace),
                format!(
                    "never accessed; added to the org {} ({} days ago)",
                    day(added),
                    (now - added).num_days()
                ),
            )
        }
    };
    let what = match facts.active_elsewhere {
        Some(at) if facts.seen.at().is_none_or(|here| at > here) => format!(
            "{what}; active on another site of the org {}, which does not count for this site",
            day(at)
        ),
        _ => what,
    };
    let ladder = &config.ladder;
    let warn_before = as_chrono(ladder.warn_before);
    if idle <= limit {
        if ladder.warn && ladder.remove && idle > limit - warn_before {
            return verdict(
                Decision::Warn,
                format!(
                    "{what}; inactive after {threshold} days, in {} days",
                    (limit - idle).num_days()
                ),
                Some(threshold),
            );
        }
        return verdict(
            Decision::Keep,
            format!("{what}; within {threshold} days"),
            Some(threshold),
        );
    }
    let inactive = format!("{what}; inactive after {threshold} days");
    if !ladder.remove {
        let decision = if ladder.warn {
            Decision::Warn
        } else {
            Decision::Keep
        };
        return verdict(
            decision,
            format!("{inactive}; removal is off (sweep.ladder.remove)"),
            Some(threshold),
        );
    }
    if !ladder.warn {
        return verdict(Decision::Remove, inactive, Some(threshold));
    }
    match facts.warned_at {
        Some(warned) if now - warned >= warn_before => verdict(
            Decision::Remove,
            format!("{inactive}; warned {}", day(warned)),
            Some(threshold),
        ),
        Some(warned) => verdict(
            Decision::Warn,
            format!(
                "{inactive}; warned {}, removal from {}",
                day(warned),
                day(warned + warn_before)
            ),
            Some(threshold),
        ),
        None => verdict(
            Decision::Warn,
            format!("{inactive}; not warned yet"),
            Some(threshold),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(warn: bool) -> (SweepConfig, ProductPolicy) {
        let mut config = SweepConfig::default();
        config.ladder.warn = warn;
        (config, ProductPolicy::default())
    }

    fn facts(seen: Seen) -> Facts {
        Facts {
            exemption: None,
            seen,
            added_to_org: None,
            kept_until: None,
            granted: None,
            warned_at: None,
            active_elsewhere: None,
            unattributed: None,
        }
    }

    fn ago(now: DateTime<Utc>, d: i64) -> DateTime<Utc> {
        now - chrono::Duration::days(d)
    }

    #[test]
    fn activity_within_the_threshold_and_the_lag_margin_keeps() {
        let (config, policy) = config(false);
        let now = Utc::now();
        let v = evaluate(&config, &policy, &facts(Seen::At(ago(now, 10))), now);
        assert_eq!(v.decision, Decision::Keep);
        // 90 days and 12 hours: inside the 1-day lag margin.
        let edge = now - chrono::Duration::hours(90 * 24 + 12);
        let v = evaluate(&config, &policy, &facts(Seen::At(edge)), now);
        assert_eq!(v.decision, Decision::Keep, "{}", v.reason);
        let v = evaluate(&config, &policy, &facts(Seen::At(ago(now, 92))), now);
        assert_eq!(v.decision, Decision::Remove);
        assert!(v.reason.contains("inactive after 90 days"), "{}", v.reason);
        assert_eq!(v.threshold_days, Some(90));
    }

    #[test]
    fn never_accessed_has_a_grace_period_from_added_to_org() {
        let (config, policy) = config(false);
        let now = Utc::now();
        let mut f = facts(Seen::Never);
        let v = evaluate(&config, &policy, &f, now);
        assert_eq!(v.decision, Decision::Unknown);
        f.added_to_org = Some(ago(now, 5));
        let v = evaluate(&config, &policy, &f, now);
        assert_eq!(v.decision, Decision::Keep, "{}", v.reason);
        f.added_to_org = Some(ago(now, 200));
        let v = evaluate(&config, &policy, &f, now);
        assert_eq!(v.decision, Decision::Remove, "{}", v.reason);
        assert!(v.reason.starts_with("never accessed"));
    }

    #[test]
    fn activity_on_another_site_keeps_nothing_here_and_is_named() {
        let (config, policy) = config(false);
        let now = Utc::now();
        let mut f = facts(Seen::At(ago(now, 200)));
        f.active_elsewhere = Some(ago(now, 2));
        let v = evaluate(&config, &policy, &f, now);
        assert_eq!(v.decision, Decision::Remove, "{}", v.reason);
        assert!(
            v.reason.contains("active on another site of the org")
                && v.reason.contains("does not count for this site"),
            "{}",
            v.reason
        );
        // Older than the activity here: not worth a mention.
        f.active_elsewhere = Some(ago(now, 300));
        let v = evaluate(&config, &policy, &f, now);
        assert!(!v.reason.contains("another site"), "{}", v.reason);
    }

    #[test]
    fn activity_reseat_cannot_attribute_makes_the_seat_unknown() {
        let (config, policy) = config(false);
        let now = Utc::now();
        let mut f = facts(Seen::Never);
        f.added_to_org = Some(ago(now, 400));
        assert_eq!(
            evaluate(&config, &policy, &f, now).decision,
            Decision::Remove
        );
        f.unattributed = Some("product key \"jira-next\"".into());
        let v = evaluate(&config, &policy, &f, now);
        assert_eq!(v.decision, Decision::Unknown);
        assert!(v.reason.contains("cannot attribute"), "{}", v.reason);
        assert!(v.reason.contains("jira-next"), "{}", v.reason);
    }

    #[test]
    fn unknown_and_exempt_are_never_acted_on() {
        let (config, policy) = config(false);
        let now = Utc::now();
        let v = evaluate(&config, &policy, &facts(Seen::Unknown), now);
        assert_eq!(v.decision, Decision::Unknown);
        let mut f = facts(Seen::At(ago(now, 400)));
        f.exemption = Some(Exemption::App);
        let v = evaluate(&config, &policy, &f, now);
        assert_eq!(v.decision, Decision::Exempt);
        assert!(v.reason.contains("app account"));
        f.exemption = None;
        f.kept_until = Some(ago(now, -10));
        assert_eq!(evaluate(&config, &policy, &f, now).decision, Decision::Keep);
    }

    #[test]
    fn the_ladder_warns_first_and_removes_after_warn_before() {
        let (config, policy) = config(true);
        let now = Utc::now();
        // 80 days idle: warned ahead of the 90-day threshold.
        let v = evaluate(&config, &policy, &facts(Seen::At(ago(now, 80))), now);
        assert_eq!(v.decision, Decision::Warn, "{}", v.reason);
        let mut f = facts(Seen::At(ago(now, 200)));
        assert_eq!(evaluate(&config, &policy, &f, now).decision, Decision::Warn);
        f.warned_at = Some(ago(now, 3));
        let v = evaluate(&config, &policy, &f, now);
        assert_eq!(v.decision, Decision::Warn);
        assert!(v.reason.contains("removal from"), "{}", v.reason);
        f.warned_at = Some(ago(now, 15));
        assert_eq!(
            evaluate(&config, &policy, &f, now).decision,
            Decision::Remove
        );
    }
}
