//! The admin "Export users" CSV, streamed one record at a time (a million rows never sit in
//! memory as rows).
//!
//! Two layouts are recognised from the header:
//! - the **directory export**: `User id`, `User name`, `email`, `User status`,
//!   `Added to org`, `Org role`, `<Product> - <site>` (access, `User` when granted) and
//!   `Last seen in <Product> - <site>` (`01 Jan 2024`, `Never accessed`, `Never logged in`);
//!   older exports have `Last seen in <Product>` without a site, read as the configured site;
//! - the **managed-accounts export**: `Atlassian ID`, `Name`, `Email`, `Status`,
//!   `Last active date [UTC]`, and one column per product listing the sites used. It has one
//!   date per account, not per product: that date is an upper bound of every product's last
//!   activity, so it can keep an idle seat but never remove an active one.
//!
//! Only the configured site's columns count; other sites' `Last seen in` dates are kept
//! apart, for the decision's reason ("active on another site"). A bad row is reported with
//! its line number
//! and skipped; [`CsvActivityReader::finish`] refuses the whole file when more than the
//! configured share of rows is bad. Days are read as their last second (23:59:59 UTC), the
//! later end, so a day-granular date never makes anybody look idle sooner.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

use super::{SiteFilter, UserActivity};
use crate::activity::Seen;
use crate::atlassian::{AccountId, AccountStatus, ProductKey};

/// How many bad rows a report keeps (the count covers them all).
const KEPT_ERRORS: usize = 100;

/// Which export a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Directory → Users → Export users.
    Directory,
    /// Managed accounts → Export accounts.
    ManagedAccounts,
}

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line where the record starts (the header is line 1).
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why a whole file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{path}: cannot read ({source})")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no recognisable header: expected the directory export (`User id`, `Last seen in <Product> - <site>`, ...) or the managed-accounts export (`Atlassian ID`, `Last active date [UTC]`, ...); found {found:?}"
    )]
    NoHeader { found: Vec<String> },
    #[error("missing column {column:?}: {hint}")]
    MissingColumn { column: String, hint: String },
    #[error(
        "{bad} of {rows} rows are bad ({percent:.1} %, more than the {limit} % allowed by sweep.csv.max_bad_row_percent); first: {first}"
    )]
    TooManyBadRows {
        bad: u64,
        rows: u64,
        percent: f64,
        limit: f64,
        first: String,
    },
    #[error("reading the CSV failed: {0}")]
    Csv(#[from] csv::Error),
}

/// What reading a file found.
#[derive(Debug, Clone, Default)]
pub struct CsvReport {
    pub layout: Option<Layout>,
    /// Data rows read (good and bad).
    pub rows: u64,
    /// Bad rows, all of them counted.
    pub bad_rows: u64,
    /// The first bad rows, with their line numbers.
    pub errors: Vec<RowError>,
}

struct ProductColumns {
    product: ProductKey,
    access: Option<usize>,
    last_seen: Option<usize>,
}

struct Columns {
    id: usize,
    name: Option<usize>,
    email: Option<usize>,
    status: Option<usize>,
    added: Option<usize>,
    role: Option<usize>,
    /// The managed-accounts export's one date per account.
    last_active: Option<usize>,
    products: Vec<ProductColumns>,
    /// `Last seen in <Product> - <other site>`: only for the decision's reason.
    elsewhere: Vec<(ProductKey, usize)>,
}

/// Streams [`UserActivity`] records out of an export.
pub struct CsvActivityReader<R: Read> {
    reader: csv::Reader<R>,
    layout: Layout,
    columns: Columns,
    headers: Vec<String>,
    site: SiteFilter,
    record: csv::StringRecord,
    report: CsvReport,
}

impl CsvActivityReader<BufReader<File>> {
    /// Opens a file and reads its header.
    pub fn open(path: &Path, site: SiteFilter) -> Result<Self, CsvError> {
        let file = File::open(path).map_err(|source| CsvError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(BufReader::with_capacity(256 * 1024, file), site)
    }
}

impl<R: Read> CsvActivityReader<R> {
    /// Reads the header and recognises the layout.
    pub fn new(input: R, site: SiteFilter) -> Result<Self, CsvError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(input);
        let headers: Vec<String> = reader
            .headers()?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
            .collect();
        let (layout, columns) = recognise(&headers, &site)?;
        Ok(CsvActivityReader {
            reader,
            layout,
            columns,
            headers,
            site,
            record: csv::StringRecord::new(),
            report: CsvReport {
                layout: Some(layout),
                ..CsvReport::default()
            },
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The next good record; bad rows are counted, kept in the report and skipped.
    /// `Ok(None)` at the end of the file.
    pub fn next_activity(&mut self) -> Result<Option<UserActivity>, CsvError> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {
                    self.report.rows += 1;
                    let line = self.record.position().map_or(0, |p| p.line());
                    match self.parse_record() {
                        Ok(activity) => return Ok(Some(activity)),
                        Err(message) => self.bad(line, message),
                    }
                }
                Err(error) => {
                    if matches!(error.kind(), csv::ErrorKind::Io(_)) {
                        return Err(error.into());
                    }
                    self.report.rows += 1;
                    let line = error.position().map_or(0, |p| p.line());
                    self.bad(line, error.to_string());
                }
            }
        }
    }

    fn bad(&mut self, line: u64, message: String) {
        tracing::warn!(line, %message, "skipping a bad CSV row");
        self.report.bad_rows += 1;
        if self.report.errors.len() < KEPT_ERRORS {
            self.report.errors.push(RowError { line, message });
        }
    }

    /// What was read so far.
    pub fn report(&self) -> &CsvReport {
        &self.report
    }

    /// Ends the read: the report, or a refusal when too many rows were bad.
    pub fn finish(self, max_bad_row_percent: f64) -> Result<CsvReport, CsvError> {
        let report = self.report;
        if report.rows > 0 && report.bad_rows > 0 {
            let percent = report.bad_rows as f64 * 100.0 / report.rows as f64;
            if percent > max_bad_row_percent {
                let first = report
                    .errors
                    .iter()
                    .take(3)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(CsvError::TooManyBadRows {
                    bad: report.bad_rows,
                    rows: report.rows,
                    percent,
                    limit: max_bad_row_percent,
                    first,
                });
            }
        }
        Ok(report)
    }

    fn parse_record(&self) -> Result<UserActivity, String> {
        let record = &self.record;
        if record.len() != self.headers.len() {
            return Err(format!(
                "expected {} fields, found {}",
                self.headers.len(),
                record.len()
            ));
        }
        let cell = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let id = cell(Some(self.columns.id)).ok_or("empty account id")?;
        let account = AccountId::parse(id).map_err(|e| e.to_string())?;
        let mut activity = UserActivity::new(account);
        activity.name = cell(self.columns.name).map(str::to_owned);
        activity.email = cell(self.columns.email).map(str::to_owned);
        activity.status = cell(self.columns.status).map(parse_status);
        activity.added_to_org = cell(self.columns.added)
            .map(|text| parse_day(text).map_err(|e| format!("Added to org: {e}")))
            .transpose()?;
        activity.org_admin =
            cell(self.columns.role).is_some_and(|role| role.to_ascii_lowercase().contains("admin"));
        let account_wide = match self.layout {
            Layout::ManagedAccounts => Some(
                cell(self.columns.last_active)
                    .map(|text| parse_seen(text).map_err(|e| format!("Last active date: {e}")))
                    .transpose()?
                    .unwrap_or(Seen::Unknown),
            ),
            Layout::Directory => None,
        };
        for columns in &self.columns.products {
            let access = columns.access.map(|i| {
                let value = record.get(i).unwrap_or_default().trim();
                match self.layout {
                    Layout::Directory => !value.is_empty(),
                    Layout::ManagedAccounts => lists_site(value, &self.site),
                }
            });
            let seen = match (account_wide, columns.last_seen) {
                (Some(seen), _) => {
                    if access == Some(false) {
                        continue;
                    }
                    seen
                }
                (None, Some(i)) => match cell(Some(i)) {
                    Some(text) => {
                        parse_seen(text).map_err(|e| format!("{}: {e}", self.headers[i]))?
                    }
                    None => Seen::Unknown,
                },
                (None, None) => Seen::Unknown,
            };
            activity.record(columns.product.clone(), access, seen);
        }
        // Another site's dates only explain a decision: one that does not parse is ignored
        // rather than costing the row.
        for (product, i) in &self.columns.elsewhere {
            if let Some(Ok(Seen::At(at))) = cell(Some(*i)).map(parse_seen) {
                activity.record_elsewhere(product, Some(at));
            }
        }
        Ok(activity)
    }
}

fn find(headers: &[String], name: &str) -> Option<usize> {
    headers.iter().position(|h| h.eq_ignore_ascii_case(name))
}

/// `<Product> - <site>` → (product, site); `<Product>` → (product, None).
fn split_product_site(text: &str) -> (&str, Option<&str>) {
    match text.rsplit_once(" - ") {
        Some((product, site)) => (product.trim(), Some(site.trim())),
        None => (text.trim(), None),
    }
}

fn site_matches(site: Option<&str>, filter: &SiteFilter) -> bool {
    match (site, filter.site_name.as_deref()) {
        (None, _) => true,
        (Some(site), Some(name)) => {
            let site = site.to_ascii_lowercase();
            let name = name.to_ascii_lowercase();
            site == name || site == format!("{name}.atlassian.net")
        }
        (Some(_), None) => false,
    }
}

fn lists_site(value: &str, filter: &SiteFilter) -> bool {
    value
        .split([',', ';', ' ', '\n'])
        .map(|token| {
            token
                .trim()
                .trim_start_matches("https://")
                .trim_end_matches('/')
        })
        .filter(|token| !token.is_empty())
        .any(|token| site_matches(Some(token), filter))
}

fn recognise(headers: &[String], site: &SiteFilter) -> Result<(Layout, Columns), CsvError> {
    if let Some(id) = find(headers, "User id") {
        let mut products: Vec<ProductColumns> = Vec::new();
        let mut other_sites = Vec::new();
        let mut elsewhere = Vec::new();
        for (i, header) in headers.iter().enumerate() {
            let (is_last_seen, rest) = match header.strip_prefix("Last seen in ") {
                Some(rest) => (true, rest),
                None => (false, header.as_str()),
            };
            let (name, header_site) = split_product_site(rest);
            if !is_last_seen && header_site.is_none() {
                continue;
            }
            let Some(product) = ProductKey::from_display_name(name) else {
                continue;
            };
            if !site_matches(header_site, site) {
                other_sites.extend(header_site.map(str::to_owned));
                if is_last_seen {
                    elsewhere.push((product, i));
                }
                continue;
            }
            // Several columns may name one product ("Jira" beside "Jira Software" after the
            // rename, or a header repeated in a merged file): each is read, and the newest
            // activity wins when the row is recorded.
            let free = |p: &ProductColumns| {
                p.product == product
                    && if is_last_seen {
                        p.last_seen.is_none()
                    } else {
                        p.access.is_none()
                    }
            };
            let entry = match products.iter_mut().find(|p| free(p)) {
                Some(entry) => entry,
                None => {
                    products.push(ProductColumns {
                        product,
                        access: None,
                        last_seen: None,
                    });
                    products.last_mut().ok_or_else(|| CsvError::NoHeader {
                        found: headers.to_vec(),
                    })?
                }
            };
            if is_last_seen {
                entry.last_seen = Some(i);
            } else {
                entry.access = Some(i);
            }
        }
        if !products.iter().any(|p| p.last_seen.is_some()) {
            other_sites.sort();
            other_sites.dedup();
            return Err(CsvError::MissingColumn {
                column: format!(
                    "Last seen in <Product> - {}",
                    site.site_name.as_deref().unwrap_or("<site>")
                ),
                hint: if other_sites.is_empty() {
                    "the export has no last-seen columns; export with product access included"
                        .to_owned()
                } else {
                    format!(
                        "the export only has other sites ({}); check atlassian.site_name",
                        other_sites.join(", ")
                    )
                },
            });
        }
        return Ok((
            Layout::Directory,
            Columns {
                id,
                name: find(headers, "User name"),
                email: find(headers, "email"),
                status: find(headers, "User status"),
                added: find(headers, "Added to org"),
                role: find(headers, "Org role"),
                last_active: None,
                products,
                elsewhere,
            },
        ));
    }
    if let Some(id) = find(headers, "Atlassian ID") {
        let last_active =
            find(headers, "Last active date [UTC]").ok_or_else(|| CsvError::MissingColumn {
                column: "Last active date [UTC]".to_owned(),
                hint: "the managed-accounts export needs it".to_owned(),
            })?;
        let products = headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                ProductKey::from_display_name(h).map(|product| ProductColumns {
                    product,
                    access: Some(i),
                    last_seen: None,
                })
            })
            .collect();
        return Ok((
            Layout::ManagedAccounts,
            Columns {
                id,
                name: find(headers, "Name"),
                email: find(headers, "Email"),
                status: find(headers, "Status"),
                added: None,
                role: None,
                last_active: Some(last_active),
                products,
                elsewhere: Vec::new(),
            },
        ));
    }
    Err(CsvError::NoHeader {
        found: headers.iter().take(8).cloned().collect(),
    })
}

fn parse_status(text: &str) -> AccountStatus {
    match text.to_ascii_lowercase().as_str() {
        "active" => AccountStatus::Active,
        "inactive" | "deactivated" | "suspended" => AccountStatus::Inactive,
        "closed" | "deleted" => AccountStatus::Closed,
        other => AccountStatus::Other(other.to_owned()),
    }
}

/// A last-seen cell: a day, or one of the "never" spellings.
pub fn parse_seen(text: &str) -> Result<Seen, String> {
    let text = text.trim();
    if text
        .get(..5)
        .is_some_and(|start| start.eq_ignore_ascii_case("never"))
    {
        return Ok(Seen::Never);
    }
    parse_day(text).map(Seen::At)
}

/// `01 Jan 2024`, the export's own format, without a general-purpose parser: a million-row
/// file has millions of these. `None` sends the text to the general formats.
fn export_day(text: &str) -> Option<NaiveDate> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let mut parts = text.split(' ');
    let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !digits(day, 1..=2) || !digits(year, 4..=4) {
        return None;
    }
    let month = MONTHS
        .iter()
        .position(|name| name.eq_ignore_ascii_case(month))?;
    NaiveDate::from_ymd_opt(year.parse().ok()?, month as u32 + 1, day.parse().ok()?)
}

/// `01 Jan 2024` (the export's format), `1 January 2024`, `2024-01-01` or an RFC 3339
/// timestamp; a day is read as its last second.
pub fn parse_day(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Some(end) = export_day(text).and_then(|day| day.and_hms_opt(23, 59, 59)) {
        return Ok(end.and_utc());
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_utc());
    }
    for format in ["%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%b %d, %Y"] {
        if let Ok(day) = NaiveDate::parse_from_str(text, format)
            && let Some(end) = day.and_hms_opt(23, 59, 59)
        {
            return Ok(end.and_utc());
        }
    }
    Err(format!("not a date like \"01 Jan 2024\": {text:?}"))
}

/// Writes a directory export for `site` (the layout [`CsvActivityReader`] reads): tests and
/// benchmarks generate files with it.
pub mod write {
    use super::*;

    /// One user's row.
    pub struct Row<'a> {
        pub account_id: &'a str,
        pub name: &'a str,
        pub email: Option<&'a str>,
        pub status: &'a str,
        pub added_to_org: DateTime<Utc>,
        pub org_admin: bool,
        /// Per product: access, and last seen (`None` = never accessed).
        pub products: Vec<(ProductKey, bool, Option<DateTime<Utc>>)>,
    }

    /// The header for these products on `site`.
    pub fn header(site: &str, products: &[ProductKey]) -> Vec<String> {
        let mut header: Vec<String> = [
            "User id",
            "User name",
            "email",
            "User status",
            "Added to org",
            "Org role",
        ]
        .map(str::to_owned)
        .into();
        for p in products {
            let name = p.display_name();
            header.push(format!("{name} - {site}"));
            header.push(format!("Last seen in {name} - {site}"));
        }
        header
    }

    /// The record of one row, in [`header`]'s order.
    pub fn record(row: &Row<'_>, products: &[ProductKey]) -> Vec<String> {
        let day = |at: DateTime<Utc>| at.format("%d %b %Y").to_string();
        let mut out = vec![
            row.account_id.to_owned(),
            row.name.to_owned(),
            row.email.unwrap_or_default().to_owned(),
            row.status.to_owned(),
            day(row.added_to_org),
            if row.org_admin { "Org admin" } else { "" }.to_owned(),
        ];
        for p in products {
            match row.products.iter().find(|(k, _, _)| k == p) {
                Some((_, access, seen)) => {
                    out.push(if *access { "User" } else { "" }.to_owned());
                    out.push(match seen {
                        Some(at) => day(*at),
                        None => "Never accessed".to_owned(),
                    });
                }
                None => {
                    out.push(String::new());
                    out.push(String::new());
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn acme() -> SiteFilter {
        SiteFilter {
            cloud_id: None,
            site_name: Some("acme".into()),
        }
    }

    fn read_all(text: &str, limit: f64) -> Result<(Vec<UserActivity>, CsvReport), CsvError> {
        let mut reader = CsvActivityReader::new(text.as_bytes(), acme())?;
        let mut out = Vec::new();
        while let Some(a) = reader.next_activity()? {
            out.push(a);
        }
        let report = reader.finish(limit)?;
        Ok((out, report))
    }

    const HEADER: &str = "User id,User name,email,User status,Added to org,Org role,Jira - acme,Last seen in Jira - acme,Confluence - acme,Last seen in Confluence - acme,Jira - acme-labs,Last seen in Jira - acme-labs\n";

    #[test]
    fn reads_the_directory_export_for_the_configured_site_only() {
        let text = format!(
            "\u{feff}{HEADER}a1,\"Doe, Jane\",jane@acme.example,Active,01 Jan 2020,,User,15 Mar 2024,User,Never accessed,User,01 Jun 2024\n\
             a2,\"Multi\nLine\",,Active,02 Feb 2021,Org admin,User,Never logged in,,,,\n"
        );
        let (rows, report) = read_all(&text, 0.0).unwrap();
        assert_eq!(report.layout, Some(Layout::Directory));
        assert_eq!(report.rows, 2);
        let jane = &rows[0];
        assert_eq!(jane.name.as_deref(), Some("Doe, Jane"));
        assert_eq!(
            jane.seen(&ProductKey::JIRA_SOFTWARE),
            Seen::At(parse_day("15 Mar 2024").unwrap()),
            "the acme-labs date must not count"
        );
        // ... but it is kept apart, for the reason.
        assert_eq!(
            jane.elsewhere(&ProductKey::JIRA_SOFTWARE),
            Some(parse_day("01 Jun 2024").unwrap())
        );
        assert_eq!(jane.seen(&ProductKey::CONFLUENCE), Seen::Never);
        assert_eq!(jane.elsewhere(&ProductKey::CONFLUENCE), None);
        assert_eq!(
            jane.added_to_org.unwrap().to_rfc3339(),
            "2020-01-01T23:59:59+00:00"
        );
        let multi = &rows[1];
        assert_eq!(multi.name.as_deref(), Some("Multi\nLine"));
        assert!(multi.org_admin);
        assert_eq!(multi.seen(&ProductKey::JIRA_SOFTWARE), Seen::Never);
        assert_eq!(multi.seen(&ProductKey::CONFLUENCE), Seen::Unknown);
        assert_eq!(multi.products[1].access, Some(false));
    }

    #[test]
    fn bad_rows_are_reported_with_their_line_and_skipped() {
        let text = format!(
            "{HEADER}a1,A,,Active,01 Jan 2020,,User,31 Feb 2024,,,,\n\
             a2,B,,Active,01 Jan 2020,,User\n\
             a3,\"C\nD\",,Active,01 Jan 2020,,User,01 Jan 2024,,,,\n\
             bad id,E,,Active,01 Jan 2020,,User,01 Jan 2024,,,,\n\
             a5,F,,Active,yesterday,,User,01 Jan 2024,,,,\n"
        );
        let mut reader = CsvActivityReader::new(text.as_bytes(), acme()).unwrap();
        let mut good = Vec::new();
        while let Some(a) = reader.next_activity().unwrap() {
            good.push(a.account_id.to_string());
        }
        assert_eq!(good, ["a3"]);
        let lines: Vec<u64> = reader.report().errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 6, 7]);
        assert!(reader.report().errors[0].message.contains("31 Feb 2024"));
        assert!(
            reader.report().errors[1]
                .message
                .contains("expected 12 fields")
        );
        let refused = reader.finish(50.0).unwrap_err();
        assert!(
            refused.to_string().contains("4 of 5 rows are bad"),
            "{refused}"
        );
    }

    #[test]
    fn export_days_read_the_same_by_the_fast_path_and_the_general_formats() {
        for text in ["01 Jan 2024", "1 jan 2024", "29 Feb 2024", "31 DEC 1999"] {
            let general = NaiveDate::parse_from_str(text, "%d %b %Y").unwrap();
            assert_eq!(export_day(text), Some(general), "{text}");
        }
        for text in [
            "31 Feb 2024",
            "01 Jan 24",
            "001 Jan 2024",
            "01 Janu 2024",
            "+1 Jan 2024",
        ] {
            assert_eq!(export_day(text), None, "{text}");
        }
        assert!(parse_day("31 Feb 2024").is_err());
        assert!(
            parse_day("1 January 2024").is_ok(),
            "the general formats still apply"
        );
        assert_eq!(parse_seen("Never logged in"), Ok(Seen::Never));
        assert_eq!(parse_seen(" never accessed "), Ok(Seen::Never));
        assert!(parse_seen("Nev").is_err());
    }

    #[test]
    fn a_file_without_a_known_header_or_site_is_refused() {
        let err = read_all("name,when\nx,y\n", 1.0).unwrap_err();
        assert!(matches!(err, CsvError::NoHeader { .. }), "{err}");
        let err = read_all("User id,Last seen in Jira - other\nx,01 Jan 2024\n", 1.0).unwrap_err();
        assert!(
            err.to_string().contains("only has other sites (other)"),
            "{err}"
        );
    }

    #[test]
    fn reads_the_managed_accounts_export_as_an_upper_bound() {
        let text = "Atlassian ID,Name,Email,Status,Last active date [UTC],Jira,Confluence\n\
                    m1,M,m@acme.example,Active,01 Jan 2024,\"acme.atlassian.net, acme-labs.atlassian.net\",acme-labs.atlassian.net\n";
        let (rows, report) = read_all(text, 0.0).unwrap();
        assert_eq!(report.layout, Some(Layout::ManagedAccounts));
        let m = &rows[0];
        assert_eq!(
            m.seen(&ProductKey::JIRA_SOFTWARE),
            Seen::At(parse_day("01 Jan 2024").unwrap())
        );
        assert_eq!(m.seen(&ProductKey::CONFLUENCE), Seen::Unknown);
    }
}
