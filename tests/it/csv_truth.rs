//! A property over generated export files with a known truth: names with commas, quotes,
//! semicolons and line breaks, a byte-order mark, CRLF or CR line ends, `,` or `;`, merged
//! `Last seen` columns, blank and separator-only rows, and sometimes a quote left open. Read
//! and decided as a plan decides, no active user is ever planned for removal; a clean file is
//! read exactly.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use reseat::activity::csv::CsvActivityReader;
use reseat::activity::{Seen, SiteFilter};
use reseat::atlassian::ProductKey;
use reseat::sweep::Decision;
use reseat::sweep::config::{ProductPolicy, SweepConfig};
use reseat::sweep::policy::{Facts, evaluate};

/// One `Last seen in Jira` cell.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Empty,
    Never,
    DaysAgo(i64),
}

#[derive(Debug, Clone)]
struct User {
    name: String,
    quote_name: bool,
    /// "Jira" and "Jira Software": one product, merged.
    jira: Cell,
    jira_software: Cell,
}

#[derive(Debug, Clone)]
struct File {
    users: Vec<User>,
    bom: bool,
    line_end: &'static str,
    separator: char,
    /// After which rows a blank line or a separator-only row comes.
    blank_after: Vec<usize>,
    separators_after: Vec<usize>,
    /// A user whose quoted name loses its closing quote.
    open_quote: Option<usize>,
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        1 => Just(Cell::Empty),
        2 => Just(Cell::Never),
        3 => (0i64..30).prop_map(Cell::DaysAgo),
        3 => (120i64..400).prop_map(Cell::DaysAgo),
    ]
}

fn user() -> impl Strategy<Value = User> {
    (
        proptest::string::string_regex("[A-Za-z ,;\"\n\r=@-]{0,14}").unwrap(),
        any::<bool>(),
        cell(),
        cell(),
    )
        .prop_map(|(name, quote_name, jira, jira_software)| User {
            name,
            quote_name,
            jira,
            jira_software,
        })
}

fn file() -> impl Strategy<Value = File> {
    (
        proptest::collection::vec(user(), 1..25),
        any::<bool>(),
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        prop_oneof![Just(','), Just(';')],
        proptest::collection::vec(0usize..25, 0..4),
        proptest::collection::vec(0usize..25, 0..4),
        proptest::option::weighted(0.3, 0usize..25),
    )
        .prop_map(
            |(users, bom, line_end, separator, blank_after, separators_after, open_quote)| File {
                open_quote: open_quote.filter(|i| *i < users.len()),
                users,
                bom,
                line_end,
                separator,
                blank_after,
                separators_after,
            },
        )
}

fn text_of(cell: Cell) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Never => "Never accessed".into(),
        Cell::DaysAgo(days) => (now() - Duration::days(days))
            .format("%d %b %Y")
            .to_string(),
    }
}

fn field(text: &str, separator: char, quote: bool) -> String {
    if quote || text.contains([separator, '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn write(file: &File) -> String {
    let sep = file.separator.to_string();
    let header = [
        "User id",
        "User name",
        "email",
        "User status",
        "Added to org",
        "Jira - acme",
        "Last seen in Jira - acme",
        "Last seen in Jira Software - acme",
    ];
    let mut lines = vec![header.join(&sep)];
    for (i, user) in file.users.iter().enumerate() {
        let mut name = field(&user.name, file.separator, user.quote_name);
        if file.open_quote == Some(i) {
            name = format!("\"{}", user.name.replace('"', "\"\""));
        }
        lines.push(
            [
                format!("u{i}"),
                name,
                format!("u{i}@acme.example"),
                "Active".into(),
                "01 Jan 2020".into(),
                "User".into(),
                text_of(user.jira),
                text_of(user.jira_software),
            ]
            .join(&sep),
        );
        if file.blank_after.contains(&i) {
            lines.push(String::new());
        }
        if file.separators_after.contains(&i) {
            lines.push(sep.repeat(header.len() - 1));
        }
    }
    let bom = if file.bom { "\u{feff}" } else { "" };
    format!("{bom}{}{}", lines.join(file.line_end), file.line_end)
}

/// What the truth says of a user's Jira: the newest of both columns.
fn truth(user: &User) -> Seen {
    let seen = |cell| match cell {
        Cell::Empty => Seen::Unknown,
        Cell::Never => Seen::Never,
        Cell::DaysAgo(days) => {
            let day = (now() - Duration::days(days)).date_naive();
            Seen::At(day.and_hms_opt(23, 59, 59).unwrap().and_utc())
        }
    };
    seen(user.jira).merge(seen(user.jira_software))
}

fn active(user: &User) -> bool {
    [user.jira, user.jira_software]
        .iter()
        .any(|c| matches!(c, Cell::DaysAgo(d) if *d < 90))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_active_user_is_ever_planned_for_removal(file in file()) {
        let text = write(&file);
        let site = SiteFilter { cloud_id: None, site_name: Some("acme".into()) };
        let mut reader = CsvActivityReader::new(text.as_bytes(), site)
            .unwrap()
            .sweeping(&[ProductKey::JIRA_SOFTWARE]);
        let mut read = HashMap::new();
        while let Some(activity) = reader.next_activity().unwrap() {
            read.insert(activity.account_id.to_string(), activity);
        }
        // Every share of bad rows accepted: a bad row must make its seats unknown, whatever
        // the threshold.
        let report = reader.finish(100.0).unwrap();
        // No warning step: an idle seat is a removal at once.
        let mut config = SweepConfig::default();
        config.ladder.warn = false;
        let policy = ProductPolicy::default();
        for (i, user) in file.users.iter().enumerate() {
            let Some(activity) = read.get(&format!("u{i}")) else {
                continue; // unknown: never a removal
            };
            let facts = Facts {
                exemption: None,
                seen: activity.seen(&ProductKey::JIRA_SOFTWARE),
                added_to_org: activity.added_to_org,
                kept_until: None,
                granted: None,
                warned_at: None,
                active_elsewhere: None,
                unattributed: activity.unattributed(),
            };
            let verdict = evaluate(&config, &policy, &facts, now());
            if active(user) {
                prop_assert!(
                    matches!(verdict.decision, Decision::Keep | Decision::Unknown),
                    "u{} is active, planned {:?}: {:?}\n{:?}\n{}",
                    i, verdict.decision, user, report.errors, text
                );
            }
            if file.open_quote.is_none() {
                prop_assert_eq!(facts.seen, truth(user), "u{}\n{}", i, text);
            }
        }
        if file.open_quote.is_none() {
            // A clean file loses nobody but a name whose line breaks look like joined rows.
            for (i, user) in file.users.iter().enumerate() {
                prop_assert!(
                    read.contains_key(&format!("u{i}")) || user.name.contains(['\n', '\r']),
                    "u{} {:?} lost: {:?}\n{}", i, user, report.errors, text
                );
            }
            prop_assert_eq!(report.separator_only_rows as usize, file.separators_after.iter().filter(|i| **i < file.users.len()).collect::<std::collections::BTreeSet<_>>().len());
        }
    }
}
