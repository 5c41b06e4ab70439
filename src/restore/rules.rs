//! The restore rule engine: hard guards first (no rule can override them), then the ordered
//! rules from the configuration, first match wins, `manual` when nothing matches.
//!
//! Everything here is pure: the worker gathers [`Facts`] from Atlassian and the journal, and
//! [`evaluate`] decides. `reseat rules explain` prints the same [`Verdict`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::atlassian::{AccountType, GroupId, ProductKey};

/// Where a restore request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A Jira Service Management portal request, via a Jira Automation rule.
    Jsm,
    /// A Jira Automation rule (e.g. "assigned an issue but has no access").
    Automation,
    /// A signed Standard Webhooks call from another system.
    Webhook,
    /// A signed link from an email.
    Link,
    /// A Slack slash command (`/reseat restore jira`).
    Slack,
    /// A message to reseat's Microsoft Teams outgoing webhook.
    Teams,
    /// The user signed in to the product through the identity provider (Okta Event Hooks,
    /// or a Standard Webhooks sign-in event).
    Signin,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Jsm => "jsm",
            Channel::Automation => "automation",
            Channel::Webhook => "webhook",
            Channel::Link => "link",
            Channel::Slack => "slack",
            Channel::Teams => "teams",
            Channel::Signin => "signin",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        match text {
            "jsm" => Some(Channel::Jsm),
            "automation" => Some(Channel::Automation),
            "webhook" => Some(Channel::Webhook),
            "link" => Some(Channel::Link),
            "slack" => Some(Channel::Slack),
            "teams" => Some(Channel::Teams),
            "signin" => Some(Channel::Signin),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Restore now.
    Approve,
    /// Queue for an admin.
    Manual,
    /// Refuse, with the rule's message shown to the user.
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Manual => "manual",
            Decision::Deny => "deny",
        }
    }
}

/// One rule of `[[restore.rules]]`. Every condition left out matches anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Shown in explanations, the audit log and the admin pages.
    pub name: String,
    /// Products the rule applies to (`jira-software`, `jira-service-desk`, `confluence`).
    #[serde(default)]
    pub products: Vec<ProductKey>,
    /// Channels the rule applies to (`jsm`, `automation`, `webhook`, `link`, `slack`,
    /// `teams`, `signin`).
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Email domains (from Atlassian's record of the account, never from the request);
    /// `example.com` also matches `eu.example.com`.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// The account must be in at least one of these groups (names or ids); a group reseat
    /// removed the account from (per the journal) counts as one it is in.
    #[serde(default)]
    pub member_of_any: Vec<String>,
    /// The account must be in none of these groups (names or ids), journaled ones included.
    #[serde(default)]
    pub member_of_none: Vec<String>,
    /// `true`: only accounts whose access reseat removed for inactivity (per the journal);
    /// `false`: only accounts reseat never removed.
    #[serde(default)]
    pub removed_by_reseat: Option<bool>,
    /// Matches only while more than this many seats of the product remain free (from the
    /// Jira application role; a product with unknown seat counts does not match).
    #[serde(default)]
    pub seat_reserve: Option<i64>,
    /// `approve`, `manual` or `deny`.
    pub decision: Decision,
    /// Told to the user (deny) or the admin (manual).
    #[serde(default)]
    pub message: Option<String>,
    /// Groups (ids) a user with no journal entry is added to when this rule approves.
    /// Without them, such a user goes to an admin instead.
    #[serde(default)]
    pub grant_groups: Vec<GroupId>,
    /// With `approve`: give the access back for this long only (`"14d"`). The sweep takes
    /// it back at the end, after a warning with keep and restore links, unless the user
    /// worked in the product since or asked to keep it.
    #[serde(default, with = "crate::config::duration::option")]
    pub approve_for: Option<std::time::Duration>,
    /// The request must say why the access is needed (a justification on any channel). A
    /// request this rule matches without one is denied, the requester told to ask again
    /// with a reason; the rule's other conditions are checked first.
    #[serde(default)]
    pub require_justification: bool,
}

/// A group the account is in, or was removed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupFact {
    pub id: GroupId,
    pub name: String,
}

/// Free seats of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Seats {
    Unlimited,
    Remaining(i64),
    Unknown,
}

/// What is known about the account and the request, gathered before deciding.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub product: ProductKey,
    pub channel: Channel,
    /// Whether the product is one reseat manages (configured).
    pub product_configured: bool,
    #[serde(serialize_with = "account_type_str")]
    pub account_type: AccountType,
    /// False for deactivated or closed accounts.
    pub active: bool,
    /// Suspended at the organization (offboarding).
    pub suspended: bool,
    /// The email as Atlassian reports it (None when hidden).
    pub email: Option<String>,
    /// Groups the account is in now.
    pub groups: Vec<GroupFact>,
    /// Groups reseat removed for this product and site and has not given back.
    pub journal_groups: Vec<GroupFact>,
    /// Direct roles reseat revoked for this product and site and has not given back (a
    /// restore grants them back).
    #[serde(default)]
    pub journal_roles: Vec<String>,
    pub seats: Seats,
    /// Whether the request carries a justification.
    #[serde(default)]
    pub has_justification: bool,
}

fn account_type_str<S: serde::Serializer>(value: &AccountType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(account_type_name(value))
}

pub fn account_type_name(value: &AccountType) -> &str {
    match value {
        AccountType::Atlassian => "atlassian",
        AccountType::Customer => "customer",
        AccountType::App => "app",
        AccountType::Other(other) => other,
    }
}

/// A guard that refused before any rule was looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    ProductNotConfigured,
    AppAccount,
    CustomerAccount,
    UnknownAccountType,
    AccountInactive,
    AccountSuspended,
    Offboarded { group: String },
}

impl Guard {
    /// What the user is told.
    pub fn user_message(&self) -> &'static str {
        match self {
            Guard::ProductNotConfigured => "This product's access is not managed here.",
            Guard::AppAccount | Guard::CustomerAccount | Guard::UnknownAccountType => {
                "This account cannot hold a product licence."
            }
            Guard::AccountInactive | Guard::AccountSuspended | Guard::Offboarded { .. } => {
                "This account cannot have its access restored automatically. Please contact your administrator."
            }
        }
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Guard::ProductNotConfigured => f.write_str("the product is not configured in reseat"),
            Guard::AppAccount => {
                f.write_str("app accounts (bots, integrations) are never restored")
            }
            Guard::CustomerAccount => f.write_str("customer accounts hold no product licence"),
            Guard::UnknownAccountType => f.write_str("the account type is unknown"),
            Guard::AccountInactive => f.write_str("the account is deactivated or closed"),
            Guard::AccountSuspended => f.write_str("the account is suspended at the organization"),
            Guard::Offboarded { group } => {
                write!(f, "the account is in the offboarding group {group:?}")
            }
        }
    }
}

/// Why one rule matched or not.
#[derive(Debug, Clone, Serialize)]
pub struct RuleTrace {
    pub rule: String,
    pub matched: bool,
    /// One line per condition checked, in order; the first failing one ends the rule.
    pub conditions: Vec<String>,
}

/// The decision with its explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    /// The rule that decided (None for a guard or the default).
    pub rule: Option<String>,
    pub guard: Option<Guard>,
    /// For the user (deny) or the admin (manual).
    pub message: String,
    /// The groups an approval adds: the journal's, else the rule's grant groups. Never others.
    pub groups_to_add: Vec<GroupFact>,
    /// An approval for a while: the deciding rule's `approve_for`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    pub approve_for: Option<std::time::Duration>,
    pub trace: Vec<RuleTrace>,
}

/// Decides a request. `offboarding_groups` are names or ids from `restore.offboarding_groups`.
pub fn evaluate(facts: &Facts, rules: &[Rule], offboarding_groups: &[String]) -> Verdict {
    // A product the product table does not know (a new app, a typo in a form): an
    // administrator decides, the requester is not refused for reseat's ignorance.
    if !facts.product.is_known() {
        return Verdict {
            decision: Decision::Manual,
            rule: None,
            guard: None,
            message: format!(
                "reseat does not know the product {:?} named in the request; an administrator will review it.",
                facts.product.as_str()
            ),
            groups_to_add: Vec::new(),
            approve_for: None,
            trace: Vec::new(),
        };
    }
    if let Some(guard) = guard(facts, offboarding_groups) {
        return Verdict {
            decision: Decision::Deny,
            rule: None,
            message: guard.user_message().to_string(),
            guard: Some(guard),
            groups_to_add: Vec::new(),
            approve_for: None,
            trace: Vec::new(),
        };
    }
    let mut trace = Vec::new();
    for rule in rules {
        let (matched, conditions) = check_rule(rule, facts);
        trace.push(RuleTrace {
            rule: rule.name.clone(),
            matched,
            conditions,
        });
        if matched {
            return decide(rule, facts, trace);
        }
    }
    Verdict {
        decision: Decision::Manual,
        rule: None,
        guard: None,
        message: "No rule matched; an administrator will review the request.".into(),
        groups_to_add: Vec::new(),
        approve_for: None,
        trace,
    }
}

fn guard(facts: &Facts, offboarding_groups: &[String]) -> Option<Guard> {
    if !facts.product_configured {
        return Some(Guard::ProductNotConfigured);
    }
    match &facts.account_type {
        AccountType::Atlassian => {}
        AccountType::App => return Some(Guard::AppAccount),
        AccountType::Customer => return Some(Guard::CustomerAccount),
        AccountType::Other(_) => return Some(Guard::UnknownAccountType),
    }
    if !facts.active {
        return Some(Guard::AccountInactive);
    }
    if facts.suspended {
        return Some(Guard::AccountSuspended);
    }
    facts
        .groups
        .iter()
        .find(|group| in_list(group, offboarding_groups))
        .map(|group| Guard::Offboarded {
            group: group.name.clone(),
        })
}

fn in_list(group: &GroupFact, names_or_ids: &[String]) -> bool {
    names_or_ids
        .iter()
        .any(|entry| entry == group.id.as_str() || entry.eq_ignore_ascii_case(&group.name))
}

fn check_rule(rule: &Rule, facts: &Facts) -> (bool, Vec<String>) {
    let mut lines = Vec::new();
    macro_rules! condition {
        ($ok:expr, $text:expr) => {{
            let ok = $ok;
            lines.push(format!("{} {}", if ok { "ok  " } else { "FAIL" }, $text));
            if !ok {
                return (false, lines);
            }
        }};
    }
    if !rule.products.is_empty() {
        let names: Vec<&str> = rule.products.iter().map(ProductKey::as_str).collect();
        condition!(
            rule.products.contains(&facts.product),
            format!(
                "product {} in [{}]",
                facts.product.as_str(),
                names.join(", ")
            )
        );
    }
    if !rule.channels.is_empty() {
        let names: Vec<&str> = rule.channels.iter().map(|c| c.as_str()).collect();
        condition!(
            rule.channels.contains(&facts.channel),
            format!("channel {} in [{}]", facts.channel, names.join(", "))
        );
    }
    if !rule.email_domains.is_empty() {
        let domain = facts
            .email
            .as_deref()
            .and_then(|email| email.rsplit_once('@'))
            .map(|(_, domain)| domain.to_ascii_lowercase());
        let ok = domain.as_deref().is_some_and(|domain| {
            rule.email_domains.iter().any(|wanted| {
                let wanted = wanted.trim_start_matches('@').to_ascii_lowercase();
                domain == wanted || domain.ends_with(&format!(".{wanted}"))
            })
        });
        condition!(
            ok,
            format!(
                "email domain {} in [{}]",
                domain.as_deref().unwrap_or("(hidden)"),
                rule.email_domains.join(", ")
            )
        );
    }
    // Membership counts the groups the account is in and those reseat took away (and would
    // give back): a contractor removed from "contractors" is still a contractor.
    let groups = || facts.groups.iter().chain(&facts.journal_groups);
    if !rule.member_of_any.is_empty() {
        let hit = groups().find(|g| in_list(g, &rule.member_of_any));
        condition!(
            hit.is_some(),
            match hit {
                Some(group) => format!("member of {:?}", group.name),
                None => format!("member of any of [{}]", rule.member_of_any.join(", ")),
            }
        );
    }
    if !rule.member_of_none.is_empty() {
        let hit = groups().find(|g| in_list(g, &rule.member_of_none));
        condition!(
            hit.is_none(),
            match hit {
                Some(group) => format!(
                    "member of none of [{}] (is in {:?})",
                    rule.member_of_none.join(", "),
                    group.name
                ),
                None => format!("member of none of [{}]", rule.member_of_none.join(", ")),
            }
        );
    }
    if let Some(wanted) = rule.removed_by_reseat {
        let removed = !facts.journal_groups.is_empty() || !facts.journal_roles.is_empty();
        condition!(
            removed == wanted,
            format!(
                "removed by reseat for inactivity: {} (rule wants {wanted})",
                if removed { "yes" } else { "no" }
            )
        );
    }
    if let Some(reserve) = rule.seat_reserve {
        let (ok, have) = match facts.seats {
            Seats::Unlimited => (true, "unlimited".to_string()),
            Seats::Remaining(n) => (n > reserve, n.to_string()),
            Seats::Unknown => (false, "unknown".to_string()),
        };
        condition!(
            ok,
            format!("free seats {have} above the reserve of {reserve}")
        );
    }
    (true, lines)
}

/// What a requester is told when a rule needs a justification and the request has none.
pub const JUSTIFICATION_NEEDED: &str =
    "This request needs a justification: please ask again and say why you need the access.";

fn decide(rule: &Rule, facts: &Facts, mut trace: Vec<RuleTrace>) -> Verdict {
    if rule.require_justification {
        if let Some(step) = trace.last_mut() {
            step.conditions.push(format!(
                "{} justification given (the rule requires one)",
                if facts.has_justification {
                    "ok  "
                } else {
                    "FAIL"
                }
            ));
        }
        if !facts.has_justification && rule.decision != Decision::Deny {
            return Verdict {
                decision: Decision::Deny,
                rule: Some(rule.name.clone()),
                guard: None,
                message: JUSTIFICATION_NEEDED.into(),
                groups_to_add: Vec::new(),
                approve_for: None,
                trace,
            };
        }
    }
    let verdict = |decision, message: String, groups| Verdict {
        decision,
        rule: Some(rule.name.clone()),
        guard: None,
        message,
        groups_to_add: groups,
        approve_for: (decision == Decision::Approve)
            .then_some(rule.approve_for)
            .flatten(),
        trace: trace.clone(),
    };
    match rule.decision {
        Decision::Deny => verdict(
            Decision::Deny,
            rule.message
                .clone()
                .unwrap_or_else(|| "Your request was declined.".into()),
            Vec::new(),
        ),
        Decision::Manual => verdict(
            Decision::Manual,
            rule.message
                .clone()
                .unwrap_or_else(|| "An administrator will review the request.".into()),
            Vec::new(),
        ),
        Decision::Approve
            if !facts.journal_groups.is_empty() || !facts.journal_roles.is_empty() =>
        {
            verdict(
                Decision::Approve,
                rule.message
                    .clone()
                    .unwrap_or_else(|| "Access restored.".into()),
                facts.journal_groups.clone(),
            )
        }
        Decision::Approve if !rule.grant_groups.is_empty() => verdict(
            Decision::Approve,
            rule.message
                .clone()
                .unwrap_or_else(|| "Access granted.".into()),
            rule.grant_groups
                .iter()
                .map(|id| GroupFact {
                    id: id.clone(),
                    name: id.to_string(),
                })
                .collect(),
        ),
        Decision::Approve => verdict(
            Decision::Manual,
            format!(
                "Rule {:?} approves, but reseat has no record of removing this access and the rule names no groups to grant; an administrator will review the request.",
                rule.name
            ),
            Vec::new(),
        ),
    }
}

impl Verdict {
    /// The explanation as printed by `reseat rules explain`.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        if let Some(guard) = &self.guard {
            out.push_str(&format!("guard: {guard}; no rule can override it\n"));
        }
        for step in &self.trace {
            out.push_str(&format!(
                "rule {:?}: {}\n",
                step.rule,
                if step.matched { "MATCHED" } else { "no match" }
            ));
            for line in &step.conditions {
                out.push_str(&format!("  {line}\n"));
            }
        }
        if self.guard.is_none() && self.rule.is_none() {
            out.push_str("no rule matched: default decision\n");
        }
        out.push_str(&format!("decision: {}", self.decision.as_str()));
        if let Some(rule) = &self.rule {
            out.push_str(&format!(" (rule {rule:?})"));
        }
        out.push('\n');
        out.push_str(&format!("message: {}\n", self.message));
        if !self.groups_to_add.is_empty() {
            let names: Vec<String> = self
                .groups_to_add
                .iter()
                .map(|g| format!("{} ({})", g.name, g.id))
                .collect();
            out.push_str(&format!("groups to add: {}\n", names.join(", ")));
        }
        if let Some(period) = self.approve_for {
            out.push_str(&format!(
                "for: {}, then taken back unless the user works in the product or asks to keep it\n",
                crate::config::duration::format(period)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
