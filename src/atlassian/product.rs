//! Typed identifiers parsed at the edge, and the one table that maps product names between
//! the admin API, Jira application roles and the admin CSV export.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why an identifier from config, a request or an upstream response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason} (got {value:?})")]
pub struct InvalidId {
    /// Which kind of identifier ("account id", "group id", ...).
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
    /// The refused text, cut to 80 characters.
    pub value: String,
}

fn check(kind: &'static str, text: &str, extra: &[char]) -> Result<(), InvalidId> {
    let refuse = |reason| {
        Err(InvalidId {
            kind,
            reason,
            value: text.chars().take(80).collect(),
        })
    };
    if text.is_empty() {
        return refuse("must not be empty");
    }
    if text.len() > 128 {
        return refuse("longer than 128 characters");
    }
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    {
        return refuse("contains characters other than letters, digits and - _ : .");
    }
    Ok(())
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the identifier.
            pub fn parse(text: impl Into<String>) -> Result<Self, InvalidId> {
                let text = text.into();
                check($kind, &text, $extra)?;
                Ok(Self(text))
            }

            /// The identifier as Atlassian spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(text: &str) -> Result<Self, InvalidId> {
                Self::parse(text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(text).map_err(serde::de::Error::custom)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// An Atlassian account id, e.g. `5b10ac8d82e05b22cc7d4ef5` or `557058:f58131cb-...`.
    AccountId, "account id", &[':']
);
typed_id!(
    /// A group id (a UUID on Jira and Confluence Cloud).
    GroupId, "group id", &[':', '.']
);

impl GroupId {
    /// Whether this looks like an Atlassian Cloud group id (a UUID such as
    /// `5e471e1f-3739-492e-9243-da17fc8090eb`), not a group's name.
    pub fn is_cloud_shaped(&self) -> bool {
        let text = self.as_str();
        text.len() == 36
            && text.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            })
    }
}

/// The hint of every "expected a group id" message.
pub const GROUP_ID_HINT: &str = "expected a group id (a UUID such as 5e471e1f-3739-492e-9243-da17fc8090eb, from admin.atlassian.com > Directory > Groups > the group's address), not its name";
typed_id!(
    /// An organization id (the UUID in `admin.atlassian.com/o/<orgId>`).
    OrgId, "organization id", &[':']
);
typed_id!(
    /// A Jira issue id or key, e.g. `HELP-42` or `10010`.
    IssueKey, "issue key", &[]
);

/// How reseat changes who holds a product's seat on a site: through the Jira platform API
/// (`/rest/api/3/group/user`, Jira application roles) or the Confluence API
/// (`/wiki/rest/api/group/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiFamily {
    /// A Jira application (Jira, Jira Service Management, Jira Product Discovery).
    Jira,
    /// Confluence.
    Confluence,
}

/// One row of the product table: how one product is named in each place it appears.
struct ProductNames {
    product: KnownProduct,
    /// The canonical key: `product_access[].key` of the v1 admin API. Stored plans, journal
    /// rows and config sections use it.
    admin_key: &'static str,
    /// `productAccess[].key` spellings of the v2 directory user search (`jira`,
    /// `confluence`, ...). No source confirms the Jira Service Management one, so every
    /// spelling seen in Atlassian's APIs is accepted.
    v2_keys: &'static [&'static str],
    /// Jira application role key (`/rest/api/3/applicationrole`, `group/bulk?applicationKey=`),
    /// when the product is a Jira application.
    jira_application_key: Option<&'static str>,
    /// Display names, the current one first, then older ones: admin CSV export headers
    /// (`<App> - <site>`, `Last seen in <App> - <site>`), JSM request fields, emails.
    display_names: &'static [&'static str],
    /// Further spellings accepted when parsing (config files, request bodies, older APIs).
    aliases: &'static [&'static str],
    /// Which API changes its seats; `None` for products reseat knows by name but cannot
    /// manage (their activity is attributed, never acted on).
    family: Option<ApiFamily>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KnownProduct {
    Jira,
    JiraServiceManagement,
    Confluence,
    JiraProductDiscovery,
    Bitbucket,
    Trello,
    Opsgenie,
    Statuspage,
    Loom,
    Compass,
    Goals,
}

/// The one place product names are mapped. Jira Software and Jira Work Management are one
/// app, "Jira", since 2024: both old names (and the `jira-core` key) mean it. The Jira
/// platform API still names its application `jira-software`.
const PRODUCTS: &[ProductNames] = &[
    ProductNames {
        product: KnownProduct::Jira,
        admin_key: "jira-software",
        v2_keys: &["jira", "jira-software"],
        jira_application_key: Some("jira-software"),
        display_names: &["Jira", "Jira Software", "Jira Work Management", "Jira Core"],
        aliases: &["jira-core", "jira-work-management", "jwm"],
        family: Some(ApiFamily::Jira),
    },
    ProductNames {
        product: KnownProduct::JiraServiceManagement,
        admin_key: "jira-service-desk",
        v2_keys: &[
            "jira-service-management",
            "jira-servicedesk",
            "jira-service-desk",
            "jira-servicemanagement",
        ],
        jira_application_key: Some("jira-servicedesk"),
        display_names: &["Jira Service Management", "Jira Service Desk"],
        aliases: &["jsm", "service-management"],
        family: Some(ApiFamily::Jira),
    },
    ProductNames {
        product: KnownProduct::Confluence,
        admin_key: "confluence",
        v2_keys: &["confluence"],
        jira_application_key: None,
        display_names: &["Confluence"],
        aliases: &[],
        family: Some(ApiFamily::Confluence),
    },
    ProductNames {
        product: KnownProduct::JiraProductDiscovery,
        admin_key: "jira-product-discovery",
        v2_keys: &["jira-product-discovery"],
        jira_application_key: Some("jira-product-discovery"),
        display_names: &["Jira Product Discovery"],
        aliases: &["jpd"],
        family: Some(ApiFamily::Jira),
    },
    unmanaged(KnownProduct::Bitbucket, "bitbucket", &["Bitbucket"]),
    unmanaged(KnownProduct::Trello, "trello", &["Trello"]),
    unmanaged(KnownProduct::Opsgenie, "opsgenie", &["Opsgenie"]),
    unmanaged(KnownProduct::Statuspage, "statuspage", &["Statuspage"]),
    unmanaged(KnownProduct::Loom, "loom", &["Loom"]),
    unmanaged(KnownProduct::Compass, "compass", &["Compass"]),
    unmanaged(KnownProduct::Goals, "townsquare", &["Goals", "Atlas"]),
];

/// A product reseat knows by name, so that its activity is attributed, but does not manage.
const fn unmanaged(
    product: KnownProduct,
    key: &'static str,
    display_names: &'static [&'static str],
) -> ProductNames {
    ProductNames {
        product,
        admin_key: key,
        v2_keys: &[],
        jira_application_key: None,
        display_names,
        aliases: &[],
        family: None,
    }
}

/// An Atlassian product. Open: keys reseat does not know are kept exactly as they came, so a
/// new product in an API response is reported, not refused.
///
/// The canonical spelling ([`ProductKey::as_str`], serde) is the v1 admin API key
/// (`jira-software`, `jira-service-desk`, `confluence`); parsing accepts every spelling in
/// the product table: v2 keys (`jira`), Jira application keys (`jira-servicedesk`), aliases
/// and display names old and new.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProductKey(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Known(KnownProduct),
    Other(String),
}

impl ProductKey {
    /// Jira (formerly Jira Software and Jira Work Management).
    pub const JIRA_SOFTWARE: ProductKey = ProductKey(Repr::Known(KnownProduct::Jira));
    /// Jira Service Management (agents hold the seat).
    pub const JIRA_SERVICE_MANAGEMENT: ProductKey =
        ProductKey(Repr::Known(KnownProduct::JiraServiceManagement));
    /// Confluence.
    pub const CONFLUENCE: ProductKey = ProductKey(Repr::Known(KnownProduct::Confluence));

    fn names(&self) -> Option<&'static ProductNames> {
        match &self.0 {
            Repr::Known(known) => PRODUCTS.iter().find(|row| row.product == *known),
            Repr::Other(_) => None,
        }
    }

    /// Parses any spelling of a product: admin key, v2 key, Jira application key, alias, or
    /// display name old or new (`Jira`, `Jira Software`, `Jira Service Desk`, ...), in any
    /// case. Unknown non-empty keys are kept as they are (lower-cased, trimmed).
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        if let Some(known) = Self::from_display_name(text) {
            return Ok(known);
        }
        let key = text.trim().to_ascii_lowercase();
        check("product key", &key, &['.'])?;
        let known = PRODUCTS.iter().find(|row| {
            row.admin_key == key
                || row.v2_keys.contains(&key.as_str())
                || row.jira_application_key == Some(key.as_str())
                || row.aliases.contains(&key.as_str())
        });
        Ok(match known {
            Some(row) => ProductKey(Repr::Known(row.product)),
            None => ProductKey(Repr::Other(key)),
        })
    }

    /// A product as a person or a form names it (a JSM field, an automation body): any
    /// spelling [`ProductKey::parse`] accepts; a name reseat does not know is kept as a key
    /// made of it (`Jira Align` → `jira-align`), so that the request reaches an
    /// administrator instead of being refused.
    pub fn from_request_text(text: &str) -> Result<Self, InvalidId> {
        if let Ok(key) = Self::parse(text) {
            return Ok(key);
        }
        let mut slug = String::new();
        for c in text.trim().chars() {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        Self::parse(slug.trim_end_matches('-'))
    }

    /// From a display name, old or new (`Jira`, `Jira Software`, `Jira Work Management`,
    /// `Jira Service Management`, `Jira Service Desk`, `Confluence`), as admin CSV export
    /// headers and JSM fields write them. `None` for names reseat does not know.
    pub fn from_display_name(name: &str) -> Option<Self> {
        let name = name.trim();
        PRODUCTS
            .iter()
            .find(|row| {
                row.display_names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|row| ProductKey(Repr::Known(row.product)))
    }

    /// The canonical key (the admin API spelling for known products).
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Known(_) => self.names().map_or("", |row| row.admin_key),
            Repr::Other(key) => key,
        }
    }

    /// The key the admin API uses in `product_access[].key`.
    pub fn admin_key(&self) -> &str {
        self.as_str()
    }

    /// The Jira application role key, if this product is a Jira application reseat knows.
    pub fn jira_application_key(&self) -> Option<&str> {
        self.names().and_then(|row| row.jira_application_key)
    }

    /// Which API changes this product's seats; `None` for a product reseat cannot manage
    /// (unknown keys included): configuring one is an error, never a guess.
    pub fn family(&self) -> Option<ApiFamily> {
        self.names().and_then(|row| row.family)
    }

    /// The product's current display name (`Jira`, `Jira Service Management`,
    /// `Confluence`); the key itself for a product reseat does not know.
    pub fn display_name(&self) -> &str {
        match self
            .names()
            .and_then(|row| row.display_names.first().copied())
        {
            Some(name) => name,
            None => self.as_str(),
        }
    }

    /// Every display name of the product, current first (for CSV headers).
    pub fn display_names(&self) -> &'static [&'static str] {
        self.names().map_or(&[], |row| row.display_names)
    }

    /// Every product the table knows, in its order (for messages listing the valid keys).
    pub fn known() -> impl Iterator<Item = ProductKey> {
        PRODUCTS
            .iter()
            .map(|row| ProductKey(Repr::Known(row.product)))
    }

    /// Parses a product a person typed where only known products make sense (a CLI
    /// option): like [`ProductKey::parse`], but a key the table does not know is refused,
    /// with the keys it knows.
    pub fn parse_known(text: &str) -> Result<Self, String> {
        let product = Self::parse(text).map_err(|e| e.to_string())?;
        if product.is_known() {
            return Ok(product);
        }
        let known: Vec<String> = Self::known()
            .map(|p| format!("{} ({})", p.as_str(), p.display_name()))
            .collect();
        Err(format!(
            "unknown product {:?}; known products: {}",
            text.trim(),
            known.join(", ")
        ))
    }

    /// Whether reseat knows this product (false for keys kept as they came).
    pub fn is_known(&self) -> bool {
        matches!(self.0, Repr::Known(_))
    }
}

impl fmt::Display for ProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProductKey({:?})", self.as_str())
    }
}

impl std::str::FromStr for ProductKey {
    type Err = InvalidId;
    fn from_str(text: &str) -> Result<Self, InvalidId> {
        Self::parse(text)
    }
}

impl<'de> Deserialize<'de> for ProductKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ProductKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn jsm_has_many_spellings_and_one_meaning() {
        for spelling in [
            "jira-service-desk",
            "jira-servicedesk",
            "jira-service-management",
            "jira-servicemanagement",
            "jsm",
            "Jira Service Management",
            "jira service desk",
        ] {
            assert_eq!(
                ProductKey::parse(spelling).unwrap(),
                ProductKey::JIRA_SERVICE_MANAGEMENT,
                "{spelling}"
            );
        }
        let jsm = ProductKey::JIRA_SERVICE_MANAGEMENT;
        assert_eq!(jsm.as_str(), "jira-service-desk");
        assert_eq!(jsm.jira_application_key(), Some("jira-servicedesk"));
        assert_eq!(jsm.display_name(), "Jira Service Management");
        assert_eq!(jsm.family(), Some(ApiFamily::Jira));
    }

    #[test]
    fn jira_is_one_app_under_every_old_and_new_name() {
        for spelling in [
            "jira",
            "Jira",
            "jira-software",
            "Jira Software",
            "Jira Work Management",
            "jira-core",
            "Jira Core",
        ] {
            assert_eq!(
                ProductKey::parse(spelling).unwrap(),
                ProductKey::JIRA_SOFTWARE,
                "{spelling}"
            );
        }
        assert_eq!(ProductKey::JIRA_SOFTWARE.display_name(), "Jira");
        assert_eq!(
            ProductKey::JIRA_SOFTWARE.jira_application_key(),
            Some("jira-software")
        );
        assert_eq!(ProductKey::CONFLUENCE.jira_application_key(), None);
        assert_eq!(ProductKey::CONFLUENCE.family(), Some(ApiFamily::Confluence));
    }

    #[test]
    fn products_reseat_cannot_manage_have_no_api_family() {
        let bitbucket = ProductKey::from_display_name("Bitbucket").unwrap();
        assert!(bitbucket.is_known());
        assert_eq!(bitbucket.family(), None);
        let new_app = ProductKey::parse("jira-new-thing").unwrap();
        assert!(!new_app.is_known());
        assert_eq!(new_app.family(), None);
        assert_eq!(new_app.jira_application_key(), None);
        assert_eq!(new_app.display_name(), "jira-new-thing");
        assert_eq!(ProductKey::from_display_name("Jira Align"), None);
        let named = ProductKey::from_request_text(" Jira Align ").unwrap();
        assert_eq!(named.as_str(), "jira-align");
        assert!(!named.is_known());
        assert_eq!(
            ProductKey::from_request_text("Jira Service Desk").unwrap(),
            ProductKey::JIRA_SERVICE_MANAGEMENT
        );
        assert!(ProductKey::from_request_text("  ").is_err());
    }

    #[test]
    fn unknown_keys_are_kept_as_they_came() {
        let key: ProductKey = serde_json::from_str("\"rovo-next\"").unwrap();
        assert!(!key.is_known());
        assert_eq!(key.as_str(), "rovo-next");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"rovo-next\"");
        assert!(ProductKey::parse("").is_err());
        assert!(ProductKey::parse("jira next gen").is_err());
    }

    #[test]
    fn ids_are_checked_at_the_edge() {
        assert!(AccountId::parse("557058:f58131cb-b67d-43c7-b30d-6b58d40bd077").is_ok());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse("a/b").is_err());
        assert!(AccountId::parse("x".repeat(129)).is_err());
        assert!(GroupId::parse("3571b9a7-348f-414a-9087-8e1ea03a7df8").is_ok());
        assert!(GroupId::parse("../admin").is_err());
        assert!(IssueKey::parse("HELP-42").is_ok());
        assert!(IssueKey::parse("HELP 42").is_err());
        let parsed: Result<AccountId, _> = serde_json::from_str("\"bad id\"");
        assert!(parsed.is_err());
    }
}
