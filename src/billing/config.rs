//! The `[billing]` section: what a seat costs, per product and, where it differs, per site,
//! and when the licences renew.

use serde::{Deserialize, Serialize};

use super::money::{Currency, Micros};
use crate::atlassian::ProductKey;
use crate::config::ConfigError;

/// Prices and the renewal date. Without prices, reseat counts seats but no money.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// What one seat costs: one entry per product, plus one per site where that site pays
    /// another price. Every price names its currency; all prices share one currency, as
    /// savings are summed across products and sites.
    pub prices: Vec<PriceConfig>,
    /// The next renewal date of the licences (`"2027-03-01"` or a TOML date, UTC): the
    /// overview and the digest forecast the seats used then.
    #[serde(deserialize_with = "date_text")]
    pub renewal: Option<String>,
}

/// A date as a string or a TOML date (`renewal = 2027-03-01`), kept as its text.
fn date_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Date(toml::value::Datetime),
    }
    Ok(
        Option::<Raw>::deserialize(deserializer)?.map(|raw| match raw {
            Raw::Text(text) => text,
            Raw::Date(date) => date.to_string(),
        }),
    )
}

/// One price.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// The product, by any name the product table knows (`jira-software`, `confluence`,
    /// `jsm`, ...).
    pub product: String,
    /// The site this price is for; absent: every site without its own price.
    #[serde(default)]
    pub site: Option<String>,
    /// Per seat, per cycle: a decimal such as `"7.53"` (a TOML number is read the same).
    pub price: PriceText,
    /// ISO 4217 code: `"USD"`, `"EUR"`, ...
    #[serde(default)]
    pub currency: Option<String>,
    /// `monthly` (the price is per seat per month) or `annual` (per seat per year).
    #[serde(default)]
    pub cycle: Option<String>,
}

/// A price as written: a string or a TOML number, kept as its decimal text (never a float
/// in sums).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceText(pub String);

impl Serialize for PriceText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PriceText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Integer(i64),
            // The shortest decimal that reads back as the same number: what was typed.
            Float(f64),
        }
        Ok(PriceText(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Integer(n) => n.to_string(),
            Raw::Float(f) => f.to_string(),
        }))
    }
}

/// How a price is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cycle {
    /// Per seat per month: a free day is worth the price over the days of its month.
    Monthly,
    /// Per seat per year: a free day is worth the price over the days of its year.
    Annual,
}

/// A validated price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub product: ProductKey,
    pub site: Option<String>,
    pub amount: Micros,
    pub currency: Currency,
    pub cycle: Cycle,
}

impl BillingConfig {
    /// The prices, validated; `sites` are the sites reseat manages.
    pub fn prices(&self, sites: &[&str]) -> Result<Vec<Price>, ConfigError> {
        let mut prices: Vec<Price> = Vec::new();
        for (n, entry) in self.prices.iter().enumerate() {
            let place = format!("billing.prices[{n}]");
            let product = ProductKey::parse_known(&entry.product)
                .map_err(|e| ConfigError::key(format!("{place}.product"), e))?;
            let place = format!("{place} ({})", product.as_str());
            if let Some(site) = &entry.site
                && !sites.contains(&site.as_str())
            {
                return Err(ConfigError::key(
                    format!("{place}.site"),
                    format!(
                        "unknown site {site:?}; the sites reseat manages: {}",
                        sites.join(", ")
                    ),
                ));
            }
            let amount = Micros::parse(&entry.price.0)
                .map_err(|e| ConfigError::key(format!("{place}.price"), e))?;
            let Some(code) = &entry.currency else {
                return Err(ConfigError::key(
                    format!("{place}.currency"),
                    "a price needs its currency: add currency = \"USD\" (an ISO 4217 code)",
                ));
            };
            let currency = Currency::parse(code)
                .map_err(|e| ConfigError::key(format!("{place}.currency"), e))?;
            let cycle = match entry.cycle.as_deref().map(str::trim) {
                Some("monthly") => Cycle::Monthly,
                Some("annual") => Cycle::Annual,
                Some(other) => {
                    return Err(ConfigError::key(
                        format!("{place}.cycle"),
                        format!(
                            "unknown billing cycle {other:?}; use \"monthly\" or \"annual\" (per seat)"
                        ),
                    ));
                }
                None => {
                    return Err(ConfigError::key(
                        format!("{place}.cycle"),
                        "a price needs its billing cycle: cycle = \"monthly\" or \"annual\" (per seat)",
                    ));
                }
            };
            if let Some(first) = prices.first()
                && first.currency != currency
            {
                return Err(ConfigError::key(
                    format!("{place}.currency"),
                    format!(
                        "{currency}, but billing.prices[0] ({}) is in {}: savings are summed across products and sites, so every price must be in one currency",
                        first.product.as_str(),
                        first.currency
                    ),
                ));
            }
            if prices
                .iter()
                .any(|p| p.product == product && p.site == entry.site)
            {
                return Err(ConfigError::key(
                    place,
                    format!(
                        "{} has a price {} already",
                        product.as_str(),
                        match &entry.site {
                            Some(site) => format!("for site {site:?}"),
                            None => "for every site".to_string(),
                        }
                    ),
                ));
            }
            prices.push(Price {
                product,
                site: entry.site.clone(),
                amount,
                currency,
                cycle,
            });
        }
        Ok(prices)
    }

    /// The renewal date, validated.
    pub fn renewal_date(&self) -> Result<Option<chrono::NaiveDate>, ConfigError> {
        self.renewal
            .as_deref()
            .map(|text| {
                chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                    ConfigError::key(
                        "billing.renewal",
                        format!("expected a date like \"2027-03-01\", got {text:?}"),
                    )
                })
            })
            .transpose()
    }

    /// Checks the section; `sites` are the sites reseat manages.
    pub fn validate(&self, sites: &[&str]) -> Result<(), ConfigError> {
        self.prices(sites)?;
        self.renewal_date()?;
        Ok(())
    }
}

/// The prices in force: the site's own price of a product, else the product's price.
#[derive(Debug, Clone, Default)]
pub struct PriceList {
    prices: Vec<Price>,
}

impl PriceList {
    pub fn new(prices: Vec<Price>) -> PriceList {
        PriceList { prices }
    }

    /// The price of a product on a site, if one is configured.
    pub fn price(&self, site: &str, product: &str) -> Option<&Price> {
        let product = ProductKey::parse(product).ok()?;
        self.prices
            .iter()
            .find(|p| p.product == product && p.site.as_deref() == Some(site))
            .or_else(|| {
                self.prices
                    .iter()
                    .find(|p| p.product == product && p.site.is_none())
            })
    }

    /// The one currency of every price (config refuses two).
    pub fn currency(&self) -> Option<Currency> {
        self.prices.first().map(|p| p.currency)
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn billing(text: &str) -> BillingConfig {
        toml::from_str(text).unwrap()
    }

    fn error(text: &str) -> String {
        billing(text).validate(&["acme"]).unwrap_err().to_string()
    }

    #[test]
    fn prices_per_product_and_per_site() {
        let config = billing(
            r#"
            renewal = "2027-03-01"
            [[prices]]
            product = "jira"
            price = 7.53
            currency = "USD"
            cycle = "monthly"
            [[prices]]
            product = "jira-software"
            site = "acme"
            price = "6.90"
            currency = "usd"
            cycle = "monthly"
            [[prices]]
            product = "Confluence"
            price = 61
            currency = "USD"
            cycle = "annual"
            "#,
        );
        let list = PriceList::new(config.prices(&["acme", "other"]).unwrap());
        assert_eq!(
            list.price("acme", "jira-software").unwrap().amount,
            Micros(6_900_000)
        );
        assert_eq!(
            list.price("other", "jira").unwrap().amount,
            Micros(7_530_000)
        );
        assert_eq!(
            list.price("acme", "confluence").unwrap().cycle,
            Cycle::Annual
        );
        assert!(list.price("acme", "jira-service-desk").is_none());
        assert_eq!(list.currency().unwrap().code(), "USD");
        assert!(config.renewal_date().unwrap().is_some());
    }

    #[test]
    fn bad_prices_are_one_line_naming_the_key() {
        let price = |extra: &str| format!("[[prices]]\nproduct = \"jira-software\"\n{extra}");
        let e = error(&price("price = \"7.53\"\ncycle = \"monthly\""));
        assert!(
            e.contains("billing.prices[0] (jira-software).currency")
                && e.contains("needs its currency"),
            "{e}"
        );
        let e = error(&price(
            "price = -1\ncurrency = \"USD\"\ncycle = \"monthly\"",
        ));
        assert!(e.contains(".price") && e.contains("negative"), "{e}");
        let e = error(&price("price = 1\ncurrency = \"USD\"\ncycle = \"weekly\""));
        assert!(e.contains("unknown billing cycle \"weekly\""), "{e}");
        let e = error(&price(
            "price = 1\ncurrency = \"DOLLARS\"\ncycle = \"monthly\"",
        ));
        assert!(e.contains("ISO 4217"), "{e}");
        let e = error(
            "[[prices]]\nproduct = \"jira-next\"\nprice = 1\ncurrency = \"USD\"\ncycle = \"monthly\"",
        );
        assert!(
            e.contains("billing.prices[0].product") && e.contains("unknown product"),
            "{e}"
        );
        let e = error(&format!(
            "{}\n[[prices]]\nproduct = \"confluence\"\nprice = 1\ncurrency = \"EUR\"\ncycle = \"monthly\"",
            price("price = 1\ncurrency = \"USD\"\ncycle = \"monthly\"")
        ));
        assert!(e.contains("one currency") && e.contains("EUR"), "{e}");
        let e = error(&price(
            "price = 1\ncurrency = \"USD\"\ncycle = \"monthly\"\nsite = \"elsewhere\"",
        ));
        assert!(e.contains("unknown site \"elsewhere\""), "{e}");
        let e = error(&format!(
            "{0}\n{0}",
            price("price = 1\ncurrency = \"USD\"\ncycle = \"monthly\"")
        ));
        assert!(e.contains("has a price for every site already"), "{e}");
        assert!(
            billing("renewal = 2027-03-01")
                .renewal_date()
                .unwrap()
                .is_some()
        );
        let e = error("renewal = \"next march\"");
        assert!(e.contains("billing.renewal"), "{e}");
        assert!(!e.contains('\n'));
    }
}
