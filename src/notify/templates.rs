//! The emails reseat sends, each a subject, a plain-text part and an HTML part rendered by
//! askama from `templates/email/` (HTML auto-escaped, so display names, reasons and other
//! user-controlled text cannot inject markup).

use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};

use super::config::MailConfig;

/// What every message says about the organisation, from `[mail]`.
#[derive(Debug, Clone)]
pub struct Branding {
    pub organisation: String,
    pub support_contact: Option<String>,
    pub portal_url: Option<String>,
}

impl Branding {
    pub fn from_config(mail: &MailConfig) -> Branding {
        Branding {
            organisation: mail.organisation.clone(),
            support_contact: mail.support_contact.clone(),
            portal_url: mail.portal_url.clone(),
        }
    }
}

/// A rendered message, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The template's name (`warning`, `removal`, …).
    pub template: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A kind of email.
pub trait Email {
    /// The template's name, as `reseat mail preview` and the outbox know it.
    const NAME: &'static str;

    fn subject(&self, brand: &Branding) -> String;

    /// Renders subject, text and HTML.
    fn render(&self, brand: &Branding) -> Result<Rendered, askama::Error>;
}

/// The names of every template, for `reseat mail preview`.
pub const TEMPLATES: &[&str] = &[
    Warning::NAME,
    Removal::NAME,
    Restored::NAME,
    Pending::NAME,
    Declined::NAME,
    AdminDigest::NAME,
];

fn long_date(day: NaiveDate) -> String {
    day.format("%-d %B %Y").to_string()
}

fn long_time(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y %H:%M UTC").to_string()
}

/// Before removal: the product, when it was last used, when it will be removed, and the
/// keep and restore links.
#[derive(Debug, Clone)]
pub struct Warning {
    pub display_name: String,
    pub product_name: String,
    /// `None` when the user never used the product.
    pub last_active: Option<NaiveDate>,
    pub removal_date: NaiveDate,
    pub keep_url: String,
    pub restore_url: String,
}

impl Warning {
    fn last_active_day(&self) -> Option<String> {
        self.last_active.map(long_date)
    }
    fn removal_day(&self) -> String {
        long_date(self.removal_date)
    }
}

/// After removal: the restore link (and the portal from configuration).
#[derive(Debug, Clone)]
pub struct Removal {
    pub display_name: String,
    pub product_name: String,
    pub last_active: Option<NaiveDate>,
    pub removed_on: NaiveDate,
    pub restore_url: String,
}

impl Removal {
    fn last_active_day(&self) -> Option<String> {
        self.last_active.map(long_date)
    }
    fn removed_day(&self) -> String {
        long_date(self.removed_on)
    }
}

/// Access was given back.
#[derive(Debug, Clone)]
pub struct Restored {
    pub display_name: String,
    pub product_name: String,
    /// The end of access given back for a while (`approve_for`); none: for good.
    pub until: Option<DateTime<Utc>>,
}

impl Restored {
    fn time_bound(&self) -> Option<String> {
        self.until
            .map(|until| crate::restore::status::time_bound(&self.product_name, until))
    }
}

/// A request waits for an admin.
#[derive(Debug, Clone)]
pub struct Pending {
    pub display_name: String,
    pub product_name: String,
    pub request_id: String,
}

/// A request was declined, with the reason shown to the user.
#[derive(Debug, Clone)]
pub struct Declined {
    pub display_name: String,
    pub product_name: String,
    pub request_id: String,
    pub reason: String,
}

/// The admins' digest.
#[derive(Debug, Clone, Default)]
pub struct AdminDigest {
    pub pending: Vec<PendingRequest>,
    pub last_run: Option<RunSummary>,
    pub reclaimed: Vec<ReclaimedSeats>,
    pub alerts: Vec<LicenceAlert>,
    /// Messages in the outbox that could not be delivered (dead-lettered).
    pub undelivered: u64,
    pub dashboard_url: Option<String>,
    /// Money saved to date (with `[billing]` prices).
    pub savings: Option<DigestSavings>,
    /// Seats used at the next renewal, beside the licence alerts.
    pub forecasts: Vec<DigestForecast>,
}

/// Savings to date and the run rate, as the overview shows them.
#[derive(Debug, Clone)]
pub struct DigestSavings {
    /// `USD 1234.50`.
    pub saved: String,
    pub run_rate: String,
    pub free_now: u64,
}

/// The seat forecast of one product on one site.
#[derive(Debug, Clone)]
pub struct DigestForecast {
    pub product_name: String,
    pub site: String,
    pub current: u64,
    pub at_renewal: u64,
    /// `2027-03-01`.
    pub renewal: String,
}

#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub request_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub product_name: String,
    pub channel: String,
    pub received: DateTime<Utc>,
}

impl PendingRequest {
    fn received_at(&self) -> String {
        long_time(self.received)
    }
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub started: DateTime<Utc>,
    /// `dry-run` or `live`.
    pub mode: String,
    pub status: String,
    pub warned: u64,
    pub removed: u64,
    pub restored: u64,
    pub failed: u64,
}

impl RunSummary {
    fn started_at(&self) -> String {
        long_time(self.started)
    }
}

#[derive(Debug, Clone)]
pub struct ReclaimedSeats {
    pub product_name: String,
    pub seats: u64,
}

/// A product close to (or over) its licence count.
#[derive(Debug, Clone)]
pub struct LicenceAlert {
    pub product_name: String,
    pub used: u64,
    pub limit: u64,
}

impl LicenceAlert {
    fn percent(&self) -> u64 {
        (self.used * 100).checked_div(self.limit).unwrap_or(100)
    }
}

macro_rules! parts {
    ($email:ty, $text:ident, $text_path:literal, $html:ident, $html_path:literal) => {
        #[derive(Template)]
        #[template(path = $text_path)]
        struct $text<'a> {
            m: &'a $email,
            brand: &'a Branding,
        }

        #[derive(Template)]
        #[template(path = $html_path)]
        struct $html<'a> {
            m: &'a $email,
            brand: &'a Branding,
        }

        impl $email {
            fn parts(&self, brand: &Branding) -> Result<(String, String), askama::Error> {
                let text = $text { m: self, brand }.render()?;
                let html = $html { m: self, brand }.render()?;
                Ok((text, html))
            }
        }
    };
}

parts!(
    Warning,
    WarningText,
    "email/warning.txt",
    WarningHtml,
    "email/warning.html"
);
parts!(
    Removal,
    RemovalText,
    "email/removal.txt",
    RemovalHtml,
    "email/removal.html"
);
parts!(
    Restored,
    RestoredText,
    "email/restored.txt",
    RestoredHtml,
    "email/restored.html"
);
parts!(
    Pending,
    PendingText,
    "email/pending.txt",
    PendingHtml,
    "email/pending.html"
);
parts!(
    Declined,
    DeclinedText,
    "email/declined.txt",
    DeclinedHtml,
    "email/declined.html"
);
parts!(
    AdminDigest,
    DigestText,
    "email/digest.txt",
    DigestHtml,
    "email/digest.html"
);

macro_rules! email {
    ($email:ty, $name:literal, |$m:ident, $brand:ident| $subject:expr) => {
        impl Email for $email {
            const NAME: &'static str = $name;

            fn subject(&self, $brand: &Branding) -> String {
                let $m = self;
                $subject
            }

            fn render(&self, brand: &Branding) -> Result<Rendered, askama::Error> {
                let (text, html) = self.parts(brand)?;
                Ok(Rendered {
                    template: Self::NAME,
                    subject: self.subject(brand),
                    text,
                    html,
                })
            }
        }
    };
}

// Subjects are header text, never HTML; lettre encodes them.
email!(Warning, "warning", |m, b| format!(
    "Your {} access at {} will be removed on {}",
    m.product_name,
    b.organisation,
    m.removal_day()
));
email!(Removal, "removal", |m, b| format!(
    "Your {} access at {} was removed",
    m.product_name, b.organisation
));
email!(Restored, "restored", |m, b| format!(
    "Your {} access at {} is back",
    m.product_name, b.organisation
));
email!(Pending, "pending", |m, _b| format!(
    "Your {} access request is waiting for approval",
    m.product_name
));
email!(Declined, "declined", |m, _b| format!(
    "Your {} access request was declined",
    m.product_name
));
email!(AdminDigest, "digest", |m, b| format!(
    "reseat digest for {}: {} waiting for approval",
    b.organisation,
    m.pending.len()
));

/// A sample of the template `name`, rendered with `display_name` wherever a user's or
/// requester's name appears (`reseat mail preview`, and tests that check escaping).
pub fn sample(
    name: &str,
    display_name: &str,
    brand: &Branding,
    base_url: &str,
) -> Option<Result<Rendered, askama::Error>> {
    let today = Utc::now().date_naive();
    let day = |days: i64| today + chrono::Duration::days(days);
    let link = |purpose: &str| format!("{base_url}/{purpose}/v1.k1.SAMPLE.SIGNATURE");
    let who = display_name.to_string();
    // The name every email uses, from the product table.
    let product = crate::atlassian::ProductKey::JIRA_SOFTWARE
        .display_name()
        .to_string();
    Some(match name {
        "warning" => Warning {
            display_name: who,
            product_name: product,
            last_active: Some(day(-97)),
            removal_date: day(14),
            keep_url: link("keep"),
            restore_url: link("restore"),
        }
        .render(brand),
        "removal" => Removal {
            display_name: who,
            product_name: product,
            last_active: None,
            removed_on: today,
            restore_url: link("restore"),
        }
        .render(brand),
        "restored" => Restored {
            display_name: who,
            product_name: product,
            until: None,
        }
        .render(brand),
        "pending" => Pending {
            display_name: who,
            product_name: product,
            request_id: "REQ-42".into(),
        }
        .render(brand),
        "declined" => Declined {
            display_name: who.clone(),
            product_name: product,
            request_id: "REQ-43".into(),
            reason: format!(
                "{who} is in the contractors group, which may not use {product_name}",
                product_name = crate::atlassian::ProductKey::JIRA_SOFTWARE.display_name()
            ),
        }
        .render(brand),
        "digest" => AdminDigest {
            pending: vec![PendingRequest {
                request_id: "REQ-42".into(),
                display_name: who,
                email: Some("ada@example.com".into()),
                product_name: product.clone(),
                channel: "jsm".into(),
                received: Utc::now(),
            }],
            last_run: Some(RunSummary {
                started: Utc::now() - chrono::Duration::hours(5),
                mode: "live".into(),
                status: "completed".into(),
                warned: 12,
                removed: 31,
                restored: 2,
                failed: 0,
            }),
            reclaimed: vec![
                ReclaimedSeats {
                    product_name: product.clone(),
                    seats: 31,
                },
                ReclaimedSeats {
                    product_name: "Confluence".into(),
                    seats: 18,
                },
            ],
            alerts: vec![LicenceAlert {
                product_name: product,
                used: 475,
                limit: 500,
            }],
            undelivered: 1,
            dashboard_url: Some(format!("{base_url}/admin")),
            savings: Some(DigestSavings {
                saved: "USD 1204.75".into(),
                run_rate: "USD 288.30".into(),
                free_now: 31,
            }),
            forecasts: vec![DigestForecast {
                product_name: "Jira".into(),
                site: "acme".into(),
                current: 475,
                at_renewal: 452,
                renewal: "2027-03-01".into(),
            }],
        }
        .render(brand),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> Branding {
        Branding {
            organisation: "Acme & Co".into(),
            support_contact: Some("it@acme.example".into()),
            portal_url: Some("https://acme.atlassian.net/servicedesk/customer/portal/1".into()),
        }
    }

    #[test]
    fn every_template_renders_both_parts() {
        for name in TEMPLATES {
            let rendered = sample(name, "Ada Lovelace", &brand(), "https://r.example")
                .expect("known template")
                .expect("renders");
            assert_eq!(rendered.template, *name);
            assert!(!rendered.subject.is_empty());
            assert!(rendered.text.contains("Acme & Co"), "{name} text");
            assert!(rendered.html.contains("Acme &#38; Co"), "{name} html");
            assert!(rendered.html.contains("it@acme.example"), "{name} html");
            assert!(!rendered.text.contains("&#"), "{name}: text is not escaped");
        }
        assert!(sample("nope", "x", &brand(), "").is_none());
    }
}
