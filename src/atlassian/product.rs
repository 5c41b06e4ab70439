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
typed_id!(
    /// An organization id (the UUID in `admin.atlassian.com/o/<orgId>`).
    OrgId, "organization id", &[':']
);
typed_id!(
    /// A Jira issue id or key, e.g. `HELP-42` or `10010`.
    IssueKey, "issue key", &[]
);

/// One row of the product table: how one product is named in each place it appears.
struct ProductNames {
    product: KnownProduct,
    /// `product_access[].key` in the Organizations admin API.
    admin_key: &'static str,
    /// Jira application role key (`/rest/api/3/applicationrole`, `group/bulk?applicationKey=`),
    /// when the product is a Jira application.
    jira_application_key: Option<&'static str>,
    /// Product names used in admin CSV export column headers (`<Product> - <site>`,
    /// `Last seen in <Product> - <site>`), first is the current one.
    csv_names: &'static [&'static str],
    /// Further spellings accepted when parsing (config files, older APIs).
    aliases: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KnownProduct {
    JiraSoftware,
    JiraServiceManagement,
    Confluence,
    JiraWorkManagement,
    JiraProductDiscovery,
}

/// The one place product names are mapped. `"Jira"` in current exports is the merged Jira app
/// (formerly Jira Software); older exports said `"Jira Software"`.
const PRODUCTS: &[ProductNames] = &[
    ProductNames {
        product: KnownProduct::JiraSoftware,
        admin_key: "jira-software",
        jira_application_key: Some("jira-software"),
        csv_names: &["Jira", "Jira Software"],
        aliases: &[],
    },
    ProductNames {
        product: KnownProduct::JiraServiceManagement,
        admin_key: "jira-service-desk",
        jira_application_key: Some("jira-servicedesk"),
        csv_names: &["Jira Service Management", "Jira Service Desk"],
        aliases: &["jira-servicedesk", "jira-servicemanagement", "jsm"],
    },
    ProductNames {
        product: KnownProduct::Confluence,
        admin_key: "confluence",
        jira_application_key: None,
        csv_names: &["Confluence"],
        aliases: &[],
    },
    ProductNames {
        product: KnownProduct::JiraWorkManagement,
        admin_key: "jira-core",
        jira_application_key: Some("jira-core"),
        csv_names: &["Jira Work Management", "Jira Core"],
        aliases: &[],
    },
    ProductNames {
        product: KnownProduct::JiraProductDiscovery,
        admin_key: "jira-product-discovery",
        jira_application_key: Some("jira-product-discovery"),
        csv_names: &["Jira Product Discovery"],
        aliases: &[],
    },
];

/// An Atlassian product. Open: keys reseat does not know are kept exactly as they came, so a
/// new product in an API response is reported, not refused.
///
/// The canonical spelling ([`ProductKey::as_str`], serde) is the admin API key
/// (`jira-software`, `jira-service-desk`, `confluence`); parsing also accepts Jira application
/// keys (`jira-servicedesk`) and the aliases in the product table.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProductKey(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Known(KnownProduct),
    Other(String),
}

impl ProductKey {
    /// Jira Software (the "Jira" app).
    pub const JIRA_SOFTWARE: ProductKey = ProductKey(Repr::Known(KnownProduct::JiraSoftware));
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

    /// Parses any spelling of a product key (admin key, Jira application key, alias).
    /// Unknown non-empty keys are kept as they are (lower-cased, trimmed).
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let key = text.trim().to_ascii_lowercase();
        check("product key", &key, &['.'])?;
        let known = PRODUCTS.iter().find(|row| {
            row.admin_key == key
                || row.jira_application_key == Some(key.as_str())
                || row.aliases.contains(&key.as_str())
        });
        Ok(match known {
            Some(row) => ProductKey(Repr::Known(row.product)),
            None => ProductKey(Repr::Other(key)),
        })
    }

    /// From `product_access[].key` of the admin API.
    pub fn from_admin_key(key: &str) -> Result<Self, InvalidId> {
        Self::parse(key)
    }

    /// From a Jira application role key (`jira-software`, `jira-servicedesk`, ...).
    pub fn from_jira_application_key(key: &str) -> Result<Self, InvalidId> {
        Self::parse(key)
    }

    /// From the product part of an admin CSV export header (`Jira`, `Jira Software`,
    /// `Jira Service Management`, `Confluence`). `None` for products reseat does not map.
    pub fn from_csv_product_name(name: &str) -> Option<Self> {
        let name = name.trim();
        PRODUCTS
            .iter()
            .find(|row| row.csv_names.iter().any(|n| n.eq_ignore_ascii_case(name)))
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

    /// The Jira application role key, if this product is a Jira application. Unknown keys are
    /// passed through, since Jira may know applications reseat does not.
    pub fn jira_application_key(&self) -> Option<&str> {
        match &self.0 {
            Repr::Known(_) => self.names().and_then(|row| row.jira_application_key),
            Repr::Other(key) => Some(key),
        }
    }

    /// The product name used in current admin CSV export headers.
    pub fn csv_product_name(&self) -> Option<&'static str> {
        self.names().and_then(|row| row.csv_names.first().copied())
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
    fn jsm_has_three_spellings_and_one_meaning() {
        let from_admin = ProductKey::from_admin_key("jira-service-desk").unwrap();
        let from_jira = ProductKey::from_jira_application_key("jira-servicedesk").unwrap();
        let from_csv = ProductKey::from_csv_product_name("Jira Service Management").unwrap();
        assert_eq!(from_admin, ProductKey::JIRA_SERVICE_MANAGEMENT);
        assert_eq!(from_jira, from_admin);
        assert_eq!(from_csv, from_admin);
        assert_eq!(from_admin.admin_key(), "jira-service-desk");
        assert_eq!(from_admin.jira_application_key(), Some("jira-servicedesk"));
        assert_eq!(
            from_admin.csv_product_name(),
            Some("Jira Service Management")
        );
    }

    #[test]
    fn csv_jira_and_jira_software_are_the_same_product() {
        assert_eq!(
            ProductKey::from_csv_product_name("Jira"),
            Some(ProductKey::JIRA_SOFTWARE)
        );
        assert_eq!(
            ProductKey::from_csv_product_name("Jira Software"),
            Some(ProductKey::JIRA_SOFTWARE)
        );
        assert_eq!(ProductKey::from_csv_product_name("Bitbucket"), None);
        assert_eq!(ProductKey::CONFLUENCE.jira_application_key(), None);
    }

    #[test]
    fn unknown_keys_are_kept_as_they_came() {
        let key: ProductKey = serde_json::from_str("\"atlas\"").unwrap();
        assert!(!key.is_known());
        assert_eq!(key.as_str(), "atlas");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"atlas\"");
        assert!(ProductKey::parse("").is_err());
        assert!(ProductKey::parse("jira software").is_err());
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
