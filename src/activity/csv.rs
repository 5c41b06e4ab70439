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
//! apart, for the decision's reason ("active on another site"). Several columns naming one
//! product on the site ("Jira" beside "Jira Software", a repeated header) are merged: the
//! newest activity wins, and the report says so. Days are read as their last second
//! (23:59:59 UTC), the later end, so a day-granular date never makes anybody look idle
//! sooner.
//!
//! Files as admins have them: a byte-order mark, `\r\n` or `\r` line ends, blank and
//! separator-only rows (skipped, counted), `;`- or tab-separated files when the header says
//! so unambiguously. Line numbers are physical lines, counted here (the csv crate counts
//! `\n` only). A bad row is reported with its line and skipped, so its seats stay `unknown`;
//! a record whose line breaks sit where none can (an id, email, status or date field, or more
//! lines than its name explains) is rows joined by an unbalanced quote and is bad too, costing
//! every account of the lines it spans. [`CsvActivityReader::finish`] refuses the whole file
//! when the bad rows cost more than the configured share of its accounts. An unreadable
//! value under a product the sweep does not act on is ignored and noted.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};

use super::{SiteFilter, UserActivity};
use crate::activity::Seen;
use crate::atlassian::{AccountId, AccountStatus, ProductKey};

/// How many bad rows a report keeps (the count covers them all).
const KEPT_ERRORS: usize = 100;

/// The longest header read: an export's header is a few kilobytes at most.
const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// Separators tried on the header, the export's own first; Excel writes `;` in many locales.
const SEPARATORS: [u8; 3] = [b',', b';', b'\t'];

const BOM: &[u8] = b"\xef\xbb\xbf";

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
    /// 1-based physical line where the record starts (the header is line 1), whatever the
    /// line endings, a byte-order mark or blank lines before it.
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
        "no recognisable header (read as {separator}-separated): expected the directory export (`User id`, `Last seen in <Product> - <site>`, ...) or the managed-accounts export (`Atlassian ID`, `Last active date [UTC]`, ...); found {found:?}"
    )]
    NoHeader {
        separator: String,
        found: Vec<String>,
    },
    #[error(
        "the header reads as an export both {separators}-separated: save the file with `,` separators"
    )]
    AmbiguousSeparator { separators: String },
    #[error("missing column {column:?}: {hint}")]
    MissingColumn { column: String, hint: String },
    #[error(
        "{bad} of {rows} rows are bad, costing up to {lost} accounts ({percent:.1} % of the file's accounts, more than the {limit} % allowed by sweep.csv.max_bad_row_percent); first: {first}"
    )]
    TooManyBadRows {
        bad: u64,
        rows: u64,
        lost: u64,
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
    /// The field separator the header showed (`,` in Atlassian's own files).
    pub separator: Option<char>,
    /// Data rows read (good and bad).
    pub rows: u64,
    /// Bad rows, all of them counted.
    pub bad_rows: u64,
    /// Accounts the bad rows may have held: the physical lines they span (an unbalanced
    /// quote joins many rows into one bad record).
    pub lost_accounts: u64,
    /// The first bad rows, with their line numbers.
    pub errors: Vec<RowError>,
    /// Rows of separators only (`,,,,`, as Excel leaves them), skipped like blank lines.
    pub separator_only_rows: u64,
    /// Copies of the header inside the file (files joined together), skipped.
    pub repeated_headers: u64,
    /// Columns read as one product and site (the newest activity wins), one entry per
    /// product: `Last seen in Jira - acme + Last seen in Jira Software - acme`.
    pub merged_columns: Vec<String>,
    /// Unreadable values ignored, per column, in the columns of products reseat does not
    /// sweep (they decide nothing).
    pub ignored_values: BTreeMap<String, u64>,
}

impl CsvReport {
    /// What the plan summary says about the file besides the counts.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(separator) = self.separator.filter(|s| *s != ',') {
            notes.push(format!("read as {separator:?}-separated"));
        }
        for merged in &self.merged_columns {
            notes.push(format!(
                "columns merged (the newest activity wins): {merged}"
            ));
        }
        if self.separator_only_rows > 0 {
            notes.push(format!(
                "{} separator-only rows skipped",
                self.separator_only_rows
            ));
        }
        if self.repeated_headers > 0 {
            notes.push(format!(
                "{} repeated header rows skipped",
                self.repeated_headers
            ));
        }
        for (column, n) in &self.ignored_values {
            notes.push(format!(
                "{column}: {n} unreadable values ignored (the product is not swept)"
            ));
        }
        notes
    }
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
    /// Several last-seen columns of one product on the site, for the report.
    merged: Vec<String>,
}

impl Columns {
    /// Whether a column may hold a line break: names, and the managed-accounts export's
    /// site lists. Ids, emails, statuses, dates and access cells never do; one that does
    /// is a sign of rows joined by an unbalanced quote.
    fn may_break(&self, i: usize, layout: Layout) -> bool {
        self.name == Some(i)
            || (layout == Layout::ManagedAccounts
                && self.products.iter().any(|p| p.access == Some(i)))
    }

    /// Whether reseat reads the column (a line break in one it does not read is caught by
    /// the record's line count).
    fn reads(&self, i: usize) -> bool {
        [
            Some(self.id),
            self.email,
            self.status,
            self.added,
            self.role,
            self.last_active,
        ]
        .contains(&Some(i))
            || self
                .products
                .iter()
                .any(|p| p.access == Some(i) || p.last_seen == Some(i))
            || self.elsewhere.iter().any(|(_, e)| *e == i)
    }
}

/// Physical lines of the input, counted where the csv crate cannot (it counts `\n` only, and
/// places a record after blank lines on the first of them).
#[derive(Debug, Default)]
struct Lines {
    /// Offsets (in the normalised stream) of line breaks not yet passed.
    breaks: VecDeque<u64>,
    /// Line breaks passed.
    passed: u64,
    /// Bytes handed to the csv reader.
    written: u64,
}

impl Lines {
    /// The 1-based line of byte `at`; calls come in increasing order of `at`.
    fn line_of(&mut self, at: u64) -> u64 {
        while self.breaks.front().is_some_and(|&b| b < at) {
            self.breaks.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }

    /// The first line and the number of lines of the record in `start..end` (`end` just
    /// after its terminator), passing over the blank lines the csv reader skipped first.
    fn record(&mut self, start: u64, end: u64) -> (u64, u64) {
        let mut start = start;
        self.line_of(start);
        while self.breaks.front() == Some(&start) {
            self.breaks.pop_front();
            self.passed += 1;
            start += 1;
        }
        let first = self.passed + 1;
        let last = self.line_of(end.saturating_sub(1).max(start));
        (first, last - first + 1)
    }
}

/// The input as the csv reader sees it: without a byte-order mark, every line break
/// (`\r\n`, `\r`, `\n`) as `\n`, and each break's offset noted in [`Lines`].
struct Normalised<R> {
    inner: R,
    /// Bytes read ahead while looking for the byte-order mark.
    pending: Vec<u8>,
    after_cr: bool,
    lines: Arc<Mutex<Lines>>,
}

impl<R: Read> Normalised<R> {
    fn new(mut inner: R, lines: Arc<Mutex<Lines>>) -> std::io::Result<Self> {
        let mut pending = vec![0; BOM.len()];
        let mut filled = 0;
        while filled < pending.len() {
            match inner.read(&mut pending[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        pending.truncate(filled);
        if pending == BOM {
            pending.clear();
        }
        Ok(Normalised {
            inner,
            pending,
            after_cr: false,
            lines,
        })
    }
}

impl<R: Read> Read for Normalised<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = if self.pending.is_empty() {
                self.inner.read(buf)?
            } else {
                let n = self.pending.len().min(buf.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                n
            };
            if n == 0 {
                return Ok(0);
            }
            let mut lines = self
                .lines
                .lock()
                .map_err(|_| std::io::Error::other("the line counter is poisoned"))?;
            // Most files have no `\r`: the bytes stay where they are, only breaks are noted.
            if !self.after_cr && !buf[..n].contains(&b'\r') {
                let base = lines.written;
                for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
                    lines.breaks.push_back(base + i as u64);
                }
                lines.written += n as u64;
                return Ok(n);
            }
            let mut out = 0;
            let mut i = 0;
            while i < n {
                let byte = buf[i];
                i += 1;
                if byte == b'\n' && self.after_cr {
                    self.after_cr = false;
                    continue;
                }
                self.after_cr = byte == b'\r';
                let byte = if self.after_cr { b'\n' } else { byte };
                if byte == b'\n' {
                    let at = lines.written + out as u64;
                    lines.breaks.push_back(at);
                }
                buf[out] = byte;
                out += 1;
            }
            lines.written += out as u64;
            if out > 0 {
                return Ok(out);
            }
        }
    }
}

/// The header line, up to its line break outside quotes (included).
fn header_line(input: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut quoted = false;
    let mut byte = [0u8];
    while line.len() < MAX_HEADER_BYTES && input.read(&mut byte)? == 1 {
        line.push(byte[0]);
        match byte[0] {
            b'"' => quoted = !quoted,
            b'\n' if !quoted && line.len() > 1 => break,
            b'\n' if !quoted => line.clear(),
            _ => {}
        }
    }
    Ok(line)
}

fn split_header(line: &[u8], separator: u8) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .has_headers(false)
        .flexible(true)
        .from_reader(line);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => record
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

fn separator_name(separator: u8) -> String {
    match separator {
        b'\t' => "tab".to_owned(),
        other => format!("`{}`", other as char),
    }
}

/// The header's separator, fields, layout and columns: the one separator under which the
/// header is a known export.
fn read_header(
    line: &[u8],
    site: &SiteFilter,
) -> Result<(u8, Vec<String>, Layout, Columns), CsvError> {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    for separator in SEPARATORS {
        let headers = split_header(line, separator);
        match recognise(&headers, site, separator) {
            Ok((layout, columns)) => found.push((separator, headers, layout, columns)),
            Err(error) => refused.push((headers.len(), error)),
        }
    }
    if found.len() > 1 {
        return Err(CsvError::AmbiguousSeparator {
            separators: found
                .iter()
                .map(|(s, ..)| separator_name(*s))
                .collect::<Vec<_>>()
                .join(" and "),
        });
    }
    if let Some(found) = found.pop() {
        return Ok(found);
    }
    // The separator that splits the header most is the one the file uses: its refusal
    // says what is missing (the export's own `,` when none splits it).
    let mut best = 0;
    for (i, (fields, _)) in refused.iter().enumerate() {
        if *fields > refused[best].0 {
            best = i;
        }
    }
    Err(refused.swap_remove(best).1)
}

/// Streams [`UserActivity`] records out of an export.
pub struct CsvActivityReader<R: Read> {
    reader: csv::Reader<std::io::Chain<Cursor<Vec<u8>>, Normalised<R>>>,
    lines: Arc<Mutex<Lines>>,
    layout: Layout,
    separator: u8,
    columns: Columns,
    headers: Vec<String>,
    site: SiteFilter,
    /// The products the sweep acts on (`None`: every product reseat can manage).
    swept: Option<Vec<ProductKey>>,
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
    /// Reads the header and recognises the layout and the separator.
    pub fn new(input: R, site: SiteFilter) -> Result<Self, CsvError> {
        let lines = Arc::new(Mutex::new(Lines::default()));
        let mut input = Normalised::new(input, lines.clone()).map_err(csv::Error::from)?;
        let line = header_line(&mut input).map_err(csv::Error::from)?;
        let (separator, headers, layout, columns) = read_header(&line, &site)?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(separator)
            .flexible(true)
            .has_headers(true)
            .from_reader(Cursor::new(line).chain(input));
        reader.headers()?;
        Ok(CsvActivityReader {
            reader,
            lines,
            layout,
            separator,
            report: CsvReport {
                layout: Some(layout),
                separator: Some(separator as char),
                merged_columns: columns.merged.clone(),
                ..CsvReport::default()
            },
            columns,
            headers,
            site,
            swept: None,
            record: csv::StringRecord::new(),
        })
    }

    /// The products the sweep acts on: an unreadable value in another product's column is
    /// ignored (and noted) instead of costing the row.
    pub fn sweeping(mut self, products: &[ProductKey]) -> Self {
        self.swept = Some(products.to_vec());
        self
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    fn swept(&self, product: &ProductKey) -> bool {
        match &self.swept {
            Some(products) => products.contains(product),
            None => product.family().is_some(),
        }
    }

    /// The first line and the line count of the record in `start..end`.
    fn lines_of(&self, start: u64, end: u64) -> Result<(u64, u64), CsvError> {
        let mut lines = self
            .lines
            .lock()
            .map_err(|_| csv::Error::from(std::io::Error::other("the line counter is poisoned")))?;
        Ok(lines.record(start, end))
    }

    /// The next good record; bad rows are counted, kept in the report and skipped.
    /// `Ok(None)` at the end of the file.
    pub fn next_activity(&mut self) -> Result<Option<UserActivity>, CsvError> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {
                    let start = self.record.position().map_or(0, |p| p.byte());
                    let (line, span) = self.lines_of(start, self.reader.position().byte())?;
                    if self.record.iter().all(|f| f.trim().is_empty()) {
                        self.report.separator_only_rows += 1;
                        continue;
                    }
                    if self.is_header() {
                        self.report.repeated_headers += 1;
                        continue;
                    }
                    self.report.rows += 1;
                    match self.parse_record(span) {
                        Ok(activity) => return Ok(Some(activity)),
                        Err(message) => self.bad(line, span, message),
                    }
                }
                Err(error) => {
                    if matches!(error.kind(), csv::ErrorKind::Io(_)) {
                        return Err(error.into());
                    }
                    self.report.rows += 1;
                    let start = error.position().map_or(0, |p| p.byte());
                    let end = self.reader.position().byte().max(start + 1);
                    let (line, span) = self.lines_of(start, end)?;
                    let message = match error.kind() {
                        csv::ErrorKind::Utf8 { err, .. } => {
                            format!("field {} is not UTF-8 text", err.field() + 1)
                        }
                        _ => error.to_string(),
                    };
                    self.bad(line, span, message);
                }
            }
        }
    }

    /// A copy of the header (files joined together).
    fn is_header(&self) -> bool {
        self.record.len() == self.headers.len()
            && self
                .record
                .iter()
                .zip(&self.headers)
                .all(|(field, header)| field.trim().eq_ignore_ascii_case(header))
    }

    fn bad(&mut self, line: u64, span: u64, message: String) {
        tracing::warn!(line, span, %message, "skipping a bad CSV row");
        self.report.bad_rows += 1;
        self.report.lost_accounts += span.max(1);
        if self.report.errors.len() < KEPT_ERRORS {
            self.report.errors.push(RowError { line, message });
        }
    }

    /// What was read so far.
    pub fn report(&self) -> &CsvReport {
        &self.report
    }

    /// Ends the read: the report, or a refusal when the bad rows cost more than the
    /// configured share of the file's accounts.
    pub fn finish(self, max_bad_row_percent: f64) -> Result<CsvReport, CsvError> {
        let report = self.report;
        if report.rows > 0 && report.bad_rows > 0 {
            let accounts = report.rows - report.bad_rows + report.lost_accounts;
            let percent = report.lost_accounts as f64 * 100.0 / accounts as f64;
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
                    lost: report.lost_accounts,
                    percent,
                    limit: max_bad_row_percent,
                    first,
                });
            }
        }
        Ok(report)
    }

    /// Refuses a record whose line breaks sit where none can: rows joined by an unbalanced
    /// quote.
    fn check_breaks(&self, span: u64) -> Result<(), String> {
        let mut explained = 0u64;
        for (i, field) in self.record.iter().enumerate() {
            let breaks = field.bytes().filter(|b| *b == b'\n').count() as u64;
            if breaks == 0 {
                continue;
            }
            if self.columns.may_break(i, self.layout) {
                let joined = if self.columns.name == Some(i) {
                    looks_joined(field, self.separator)
                } else {
                    // A site list: sites, never an email or a quote of the next row.
                    field.contains(['"', '@'])
                };
                if joined {
                    return Err(format!(
                        "{} runs over {span} lines and holds what looks like other rows: an unbalanced quote joins rows",
                        self.headers[i]
                    ));
                }
                explained += breaks;
            } else if self.columns.reads(i) {
                return Err(format!(
                    "{} holds a line break, which it cannot: an unbalanced quote joins rows (the record runs over {span} lines)",
                    self.headers[i]
                ));
            }
        }
        if span > explained + 1 {
            return Err(format!(
                "the record runs over {span} lines, its name fields explain {}: an unbalanced quote joins rows",
                explained + 1
            ));
        }
        Ok(())
    }

    fn parse_record(&mut self, span: u64) -> Result<UserActivity, String> {
        if self.record.len() != self.headers.len() {
            let joined = if span > 1 {
                format!(" in a record of {span} lines (an unbalanced quote?)")
            } else {
                String::new()
            };
            return Err(format!(
                "expected {} fields, found {}{joined}",
                self.headers.len(),
                self.record.len()
            ));
        }
        self.check_breaks(span)?;
        let mut ignored: Vec<usize> = Vec::new();
        let activity = {
            let record = &self.record;
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
            activity.org_admin = cell(self.columns.role)
                .is_some_and(|role| role.to_ascii_lowercase().contains("admin"));
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
                    (None, Some(i)) => match cell(Some(i)).map(parse_seen) {
                        Some(Ok(seen)) => seen,
                        // A product the sweep does not act on decides nothing: its
                        // unreadable value is noted, and the row stands.
                        Some(Err(_)) if !self.swept(&columns.product) => {
                            ignored.push(i);
                            continue;
                        }
                        Some(Err(e)) => return Err(format!("{}: {e}", self.headers[i])),
                        None => Seen::Unknown,
                    },
                    (None, None) => Seen::Unknown,
                };
                activity.record(columns.product.clone(), access, seen);
            }
            // Another site's dates only explain a decision: one that does not parse is
            // ignored rather than costing the row.
            for (product, i) in &self.columns.elsewhere {
                if let Some(Ok(Seen::At(at))) = cell(Some(*i)).map(parse_seen) {
                    activity.record_elsewhere(product, Some(at));
                }
            }
            activity
        };
        for i in ignored {
            *self
                .report
                .ignored_values
                .entry(self.headers[i].clone())
                .or_default() += 1;
        }
        Ok(activity)
    }
}

/// A multi-line name that holds what looks like other rows: a line with several
/// separators, or a quote left over from the next row's quoted field.
fn looks_joined(field: &str, separator: u8) -> bool {
    field.contains('"')
        || field
            .split('\n')
            .any(|line| line.bytes().filter(|b| *b == separator).count() >= 2)
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

fn recognise(
    headers: &[String],
    site: &SiteFilter,
    separator: u8,
) -> Result<(Layout, Columns), CsvError> {
    let no_header = || CsvError::NoHeader {
        separator: separator_name(separator),
        found: headers.iter().take(8).cloned().collect(),
    };
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
                    products.last_mut().ok_or_else(no_header)?
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
        let mut merged = Vec::new();
        for (n, p) in products.iter().enumerate() {
            let first = products.iter().position(|q| q.product == p.product);
            let columns: Vec<&str> = products
                .iter()
                .filter(|q| q.product == p.product)
                .filter_map(|q| q.last_seen.map(|i| headers[i].as_str()))
                .collect();
            if first == Some(n) && columns.len() > 1 {
                merged.push(format!("{} ({})", columns.join(" + "), p.product));
            }
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
                merged,
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
                merged: Vec::new(),
            },
        ));
    }
    Err(no_header())
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
    fn a_site_list_that_swallowed_the_next_row_is_refused() {
        let text = "Atlassian ID,Name,Email,Status,Last active date [UTC],Jira\n\
                    m1,M,m@acme.example,Active,26 Nov 2026,\"acme.atlassian.net\n\
                    m2,N,n@acme.example,Active,01 Jan 2020,\"acme.atlassian.net\"\n\
                    m3,O,o@acme.example,Active,26 Nov 2026,\"acme.atlassian.net\nacme-labs.atlassian.net\"\n";
        let (rows, report) = read_all(text, 100.0).unwrap();
        assert_eq!(rows.len(), 1, "{:?}", report.errors);
        assert_eq!(rows[0].account_id.as_str(), "m3");
        assert_eq!(lines_of(&report), [2]);
        assert_eq!(report.lost_accounts, 2);
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

    fn day(text: &str) -> Seen {
        Seen::At(parse_day(text).unwrap())
    }

    fn lines_of(report: &CsvReport) -> Vec<u64> {
        report.errors.iter().map(|e| e.line).collect()
    }

    #[test]
    fn columns_of_one_product_and_site_are_merged_the_newest_activity_winning() {
        // "Jira" beside "Jira Software" after the rename, both orders of date and never.
        let text = "User id,User name,Jira - acme,Last seen in Jira - acme,Jira Software - acme,Last seen in Jira Software - acme\n\
                    a1,A,User,26 Nov 2026,User,Never accessed\n\
                    a2,B,User,Never accessed,User,26 Nov 2026\n\
                    a3,C,User,01 Jan 2026,,\n\
                    a4,D,,,User,02 Feb 2026\n";
        let (rows, report) = read_all(text, 0.0).unwrap();
        for (row, want) in rows.iter().zip([
            day("26 Nov 2026"),
            day("26 Nov 2026"),
            day("01 Jan 2026"),
            day("02 Feb 2026"),
        ]) {
            assert_eq!(row.seen(&ProductKey::JIRA_SOFTWARE), want, "{row:?}");
            assert_eq!(row.products[0].access, Some(true));
        }
        assert_eq!(
            report.merged_columns,
            ["Last seen in Jira - acme + Last seen in Jira Software - acme (jira-software)"]
        );
        assert!(
            report.notes()[0].starts_with("columns merged (the newest activity wins)"),
            "{:?}",
            report.notes()
        );

        // A header repeated in a merged file: the same column twice.
        let text = "User id,Last seen in Confluence - acme,Last seen in Confluence - acme\n\
                    c1,26 Nov 2026,Never accessed\n\
                    c2,Never accessed,26 Nov 2026\n";
        let (rows, report) = read_all(text, 0.0).unwrap();
        assert!(
            rows.iter()
                .all(|r| r.seen(&ProductKey::CONFLUENCE) == day("26 Nov 2026"))
        );
        assert_eq!(report.merged_columns.len(), 1);
    }

    #[test]
    fn an_unbalanced_quote_that_joins_rows_refuses_the_joined_record() {
        // Jane's name opens a quote that Bob's quoted name closes: without the check Jane
        // would get Bob's (old) date and Bob would vanish.
        let text = format!(
            "{HEADER}a1,\"Jane,jane@acme.example,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n\
             a2,\"Bob\",bob@acme.example,Active,01 Jan 2020,,User,01 Jan 2020,,,,\n\
             a3,Carl,,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n"
        );
        let mut reader = CsvActivityReader::new(text.as_bytes(), acme()).unwrap();
        let mut good = Vec::new();
        while let Some(a) = reader.next_activity().unwrap() {
            good.push(a.account_id.to_string());
        }
        assert_eq!(good, ["a3"], "the joined record is refused, not read as a1");
        let report = reader.report().clone();
        assert_eq!(lines_of(&report), [2]);
        assert!(
            report.errors[0].message.contains("unbalanced quote"),
            "{:?}",
            report.errors
        );
        assert_eq!(
            (report.bad_rows, report.lost_accounts),
            (1, 2),
            "one bad record, two accounts lost"
        );

        // A quote opened in a date field: a field that cannot hold a line break.
        let text = format!(
            "{HEADER}a1,Jane,,Active,\"01 Jan 2020,,User,26 Nov 2026,,,,\n\
             a2,Bob,,Active,01 Jan 2020\",,User,01 Jan 2020,,,,\n"
        );
        let (rows, report) = read_all(&text, 100.0).unwrap();
        assert!(rows.is_empty());
        assert_eq!(lines_of(&report), [2]);
        assert!(
            report.errors[0]
                .message
                .contains("Added to org holds a line break"),
            "{:?}",
            report.errors
        );

        // A quote never closed: the rest of the file is one field, costing every account
        // after it, and the file is refused.
        let mut text = format!("{HEADER}a0,\"Zed,,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n");
        for i in 1..=40 {
            text.push_str(&format!(
                "a{i},N{i},,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n"
            ));
        }
        let mut reader = CsvActivityReader::new(text.as_bytes(), acme()).unwrap();
        while reader.next_activity().unwrap().is_some() {}
        assert_eq!(reader.report().lost_accounts, 41);
        let refused = reader.finish(1.0).unwrap_err().to_string();
        assert!(
            refused.contains("1 of 1 rows are bad, costing up to 41 accounts"),
            "{refused}"
        );
    }

    #[test]
    fn a_record_over_more_lines_than_its_name_explains_is_refused() {
        // `Notes` is no column reseat reads, but its line break is none a name explains.
        let text = "User id,User name,Notes,Last seen in Jira - acme\n\
                    a1,\"Doe\nJane\",\"x\ny\",26 Nov 2026\n\
                    a2,B,,26 Nov 2026\n";
        let (rows, report) = read_all(text, 100.0).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(lines_of(&report), [2]);
        assert!(
            report.errors[0]
                .message
                .contains("the record runs over 3 lines, its name fields explain 2"),
            "{:?}",
            report.errors
        );
        assert_eq!(report.lost_accounts, 3);
    }

    #[test]
    fn multi_line_names_are_explained_and_read() {
        let text = format!(
            "{HEADER}a1,\"Doe, Jane\nSmith\",,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n\
             a2,B,,Active,01 Jan 2020,,User,bad date,,,,\n"
        );
        let (rows, report) = read_all(&text, 100.0).unwrap();
        assert_eq!(rows[0].name.as_deref(), Some("Doe, Jane\nSmith"));
        assert_eq!(lines_of(&report), [4]);
    }

    #[test]
    fn line_numbers_are_physical_for_every_line_ending() {
        // Bad rows at physical lines 3 and 7; a blank line at 4 and a two-line name at 5-6.
        let lf = format!(
            "{HEADER}a1,A,,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n\
             a2,B,,Active,01 Jan 2020,,User,bad date,,,,\n\
             \n\
             a3,\"C\nD\",,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n\
             a4,E,,Active,yesterday,,User,26 Nov 2026,,,,\n"
        );
        for (label, text) in [
            ("LF", lf.clone()),
            (
                "CRLF with a BOM",
                format!("\u{feff}{}", lf.replace('\n', "\r\n")),
            ),
            ("CR", lf.replace('\n', "\r")),
            ("BOM", format!("\u{feff}{lf}")),
        ] {
            let (rows, report) = read_all(&text, 100.0).unwrap();
            assert_eq!(lines_of(&report), [3, 7], "{label}");
            assert_eq!(rows.len(), 2, "{label}");
            assert_eq!(rows[1].name.as_deref(), Some("C\nD"), "{label}");
        }
        // Several blank lines before the first record.
        let text = format!("{HEADER}\n\n\nx y,A,,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n");
        let (_, report) = read_all(&text, 100.0).unwrap();
        assert_eq!(lines_of(&report), [5]);
    }

    #[test]
    fn separator_only_rows_and_repeated_headers_are_skipped_and_counted() {
        let text = format!(
            "{HEADER}a1,A,,Active,01 Jan 2020,,User,26 Nov 2026,,,,\n\
             ,,,,,,,,,,,\n\
             ,,,,\n\
             {HEADER}a2,B,,Active,01 Jan 2020,,User,bad,,,,\n"
        );
        let (rows, report) = read_all(&text, 100.0).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            report.rows, 2,
            "separator-only rows and headers are no rows"
        );
        assert_eq!(report.separator_only_rows, 2);
        assert_eq!(report.repeated_headers, 1);
        assert_eq!(lines_of(&report), [6]);
        assert!(
            report
                .notes()
                .contains(&"2 separator-only rows skipped".to_owned())
        );
    }

    #[test]
    fn an_unreadable_value_of_a_product_not_swept_is_ignored_and_noted() {
        let text = "User id,Last seen in Jira - acme,Last seen in Jira Product Discovery - acme\n\
                    a1,26 Nov 2026,No access\n\
                    a2,No access,26 Nov 2026\n";
        let mut reader = CsvActivityReader::new(text.as_bytes(), acme())
            .unwrap()
            .sweeping(&[ProductKey::JIRA_SOFTWARE]);
        let mut rows = Vec::new();
        while let Some(a) = reader.next_activity().unwrap() {
            rows.push(a);
        }
        let report = reader.finish(100.0).unwrap();
        assert_eq!(rows.len(), 1, "a2's swept product does not read");
        assert_eq!(rows[0].seen(&ProductKey::JIRA_SOFTWARE), day("26 Nov 2026"));
        assert_eq!(lines_of(&report), [3]);
        assert_eq!(
            report.notes(),
            [
                "Last seen in Jira Product Discovery - acme: 1 unreadable values ignored (the product is not swept)"
            ]
        );
    }

    #[test]
    fn a_semicolon_file_is_read_when_its_header_says_so() {
        let text = "\u{feff}User id;User name;Jira - acme;Last seen in Jira - acme\r\n\
                    a1;\"Doe; Jane\";User;26 Nov 2026\r\n\
                    a2;B, C;User;bad\r\n";
        let (rows, report) = read_all(text, 100.0).unwrap();
        assert_eq!(report.separator, Some(';'));
        assert_eq!(rows[0].name.as_deref(), Some("Doe; Jane"));
        assert_eq!(rows[0].seen(&ProductKey::JIRA_SOFTWARE), day("26 Nov 2026"));
        assert_eq!(lines_of(&report), [3]);
        assert_eq!(report.notes(), ["read as ';'-separated"]);

        // A `;` header reseat does not know: the refusal names the separator.
        let err = read_all("Benutzer-ID;Name;E-Mail\n1;2;3\n", 1.0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no recognisable header (read as `;`-separated)"),
            "{err}"
        );
        // A header that is an export under two separators: refused, both named.
        let err = read_all(
            "a;User id;b,User id,Last seen in Jira - acme,c;Last seen in Jira - acme\n",
            1.0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("both `,` and `;`"), "{err}");
    }
}
