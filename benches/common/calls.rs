//! Upstream calls as the simulator logged them: what each was and which API family it
//! counts against (the sweep benches).

#![allow(dead_code)]

use std::collections::BTreeMap;

use reseat::sim::LogEntry;

/// What a logged call was, by method and path shape.
pub fn kind(e: &LogEntry) -> &'static str {
    let p = e.path.as_str();
    match e.method.as_str() {
        "GET" if p.ends_with("/last-active-dates") => "admin last-active-dates",
        "GET" if p.starts_with("/admin/v1/orgs/") && p.ends_with("/users") => "admin users listing",
        "POST" if p.starts_with("/admin/v2/orgs/") && p.ends_with("/users/search") => {
            "admin directory user search"
        }
        "GET" if p == "/rest/api/3/group/member" && e.status == 404 => {
            "jira group/member 404 (configured group not on the site)"
        }
        "GET" if p == "/rest/api/3/group/member" => "jira group/member pages",
        "GET" if p.ends_with("/role-assignments") => "admin user role-assignments",
        "POST" if p.ends_with("/roles/revoke") => "admin roles/revoke",
        "GET" if p.starts_with("/admin/v2/orgs/") && p.contains("/groups/") => {
            "admin group details"
        }
        "GET" if p.starts_with("/rest/api/3/applicationrole") => "jira applicationrole",
        "GET" if p.starts_with("/wiki/rest/api/group") => "confluence group listing",
        "GET" if p == "/rest/api/3/user/groups" => "jira user/groups",
        "DELETE" if p == "/rest/api/3/group/user" => "jira DELETE group/user",
        "DELETE" if p == "/wiki/rest/api/group/userByGroupId" => "confluence DELETE userByGroupId",
        _ => "other",
    }
}

/// The API family of a path, as the simulator limits it.
pub fn family(path: &str) -> &'static str {
    if path.starts_with("/admin/") {
        "admin"
    } else if path.starts_with("/wiki/") {
        "confluence"
    } else if path.starts_with("/rest/servicedeskapi") {
        "jsm"
    } else {
        "jira"
    }
}

#[derive(Default)]
pub struct Calls {
    pub ok: BTreeMap<&'static str, u64>,
    /// Calls made (not 429) per family.
    pub per_family: BTreeMap<&'static str, u64>,
    pub limited: u64,
    pub other_errors: u64,
}

impl Calls {
    pub fn of(log: &[LogEntry]) -> Calls {
        let mut calls = Calls::default();
        for e in log {
            match e.status {
                429 => calls.limited += 1,
                s if s >= 500 || s == 0 => calls.other_errors += 1,
                _ => {
                    *calls.ok.entry(kind(e)).or_default() += 1;
                    *calls.per_family.entry(family(&e.path)).or_default() += 1;
                }
            }
        }
        calls
    }
    pub fn get(&self, k: &str) -> u64 {
        self.ok.get(k).copied().unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.ok.values().sum()
    }
    pub fn family(&self, f: &str) -> u64 {
        self.per_family.get(f).copied().unwrap_or(0)
    }
}
