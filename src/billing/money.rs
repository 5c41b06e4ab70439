//! Money without floating point: prices as exact decimals (millionths of the currency's
//! major unit), sums as exact fractions, and rounding to the currency's minor unit (ISO 4217
//! exponent: 2 for USD and EUR, 0 for JPY, 3 for KWD) in one place, [`Exact::round`].

use std::fmt;

/// Decimal places a price may have.
pub const PRICE_DECIMALS: u32 = 6;
const MICROS: i128 = 1_000_000;

/// A common multiple of every length a price is spread over (28 to 31 days a month, 365 or
/// 366 a year, 12 months a year): each day's share of a price is a whole number of these
/// parts, so sums are exact and only the final figure is rounded.
pub const PARTS: i128 = 1_681_363_740;

/// An ISO 4217 currency with minor units (not gold, not a fund without them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

impl Currency {
    /// Parses an ISO 4217 code (`USD`, `eur`, ...).
    pub fn parse(text: &str) -> Result<Currency, String> {
        let code = text.trim().to_ascii_uppercase();
        let Some(currency) = iso_currency::Currency::from_code(&code) else {
            return Err(format!(
                "{text:?} is not an ISO 4217 currency code; use one such as \"USD\", \"EUR\" or \"GBP\""
            ));
        };
        let Some(exponent) = currency.exponent() else {
            return Err(format!(
                "{code} has no minor unit (ISO 4217 lists it as a commodity or fund); use the currency you are billed in"
            ));
        };
        Ok(Currency {
            code: currency.code(),
            exponent: u32::from(exponent),
        })
    }

    /// `USD`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Decimal places of the minor unit.
    pub fn exponent(&self) -> u32 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// A price per seat: millionths of the major unit (`7.53` is 7,530,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Micros(pub i64);

impl Micros {
    /// Parses a decimal such as `7.53`, `61` or `0.125` (no sign, at most 6 decimals, at
    /// most 1,000,000).
    pub fn parse(text: &str) -> Result<Micros, String> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(format!("{text} is negative; a price is 0 or more"));
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        if !digits(whole) || !(fraction.is_empty() || digits(fraction)) {
            return Err(format!(
                "expected a decimal price such as \"7.53\", got {text:?}"
            ));
        }
        if fraction.len() > PRICE_DECIMALS as usize {
            return Err(format!(
                "{text} has more than {PRICE_DECIMALS} decimal places"
            ));
        }
        let whole: i64 = whole
            .parse()
            .ok()
            .filter(|w| *w <= 1_000_000)
            .ok_or_else(|| format!("{text} is more than 1000000 per seat"))?;
        let mut fraction_micros: i64 = 0;
        for (n, c) in fraction.chars().enumerate() {
            let digit = i64::from(c.to_digit(10).unwrap_or(0));
            fraction_micros += digit * 10_i64.pow(5 - u32::try_from(n).unwrap_or(5));
        }
        let micros = whole * 1_000_000 + fraction_micros;
        if micros > 1_000_000 * 1_000_000 {
            return Err(format!("{text} is more than 1000000 per seat"));
        }
        Ok(Micros(micros))
    }
}

/// An exact amount: [`PARTS`]-ths of a millionth of the major unit. Only sums of these are
/// made; [`Exact::round`] turns one into minor units once, at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Exact(pub i128);

impl Exact {
    /// `price` spread over `length` equal parts (days of a month or a year, months of a
    /// year), times `count` of them.
    pub fn share(price: Micros, length: i128, count: i128) -> Exact {
        Exact(i128::from(price.0) * (PARTS / length) * count)
    }

    /// To minor units of `currency`, half away from zero (`0.005` USD is `0.01`).
    pub fn round(self, currency: Currency) -> Minor {
        let unit = PARTS * MICROS / 10_i128.pow(currency.exponent());
        let half = unit / 2;
        let value = if self.0 >= 0 {
            (self.0 + half) / unit
        } else {
            (self.0 - half) / unit
        };
        Minor(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl std::ops::Add for Exact {
    type Output = Exact;
    fn add(self, other: Exact) -> Exact {
        Exact(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Exact {
    fn add_assign(&mut self, other: Exact) {
        self.0 += other.0;
    }
}

/// Minor units of a currency (cents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Minor(pub i64);

impl Minor {
    /// `1234.50` for 123450 cents of USD; `1234` for 1234 JPY.
    pub fn format(self, currency: Currency) -> String {
        let exponent = currency.exponent();
        if exponent == 0 {
            return self.0.to_string();
        }
        let scale = 10_i64.pow(exponent);
        let sign = if self.0 < 0 { "-" } else { "" };
        let value = self.0.unsigned_abs();
        let scale = scale.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            value / scale,
            value % scale,
            width = exponent as usize
        )
    }
}

impl std::ops::Add for Minor {
    type Output = Minor;
    fn add(self, other: Minor) -> Minor {
        Minor(self.0 + other.0)
    }
}

impl std::iter::Sum for Minor {
    fn sum<I: Iterator<Item = Minor>>(iter: I) -> Minor {
        iter.fold(Minor(0), |a, b| a + b)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parts_divide_every_length_a_price_is_spread_over() {
        for length in [12, 28, 29, 30, 31, 365, 366] {
            assert_eq!(PARTS % length, 0, "{length}");
        }
    }

    #[test]
    fn prices_parse_exactly_and_refuse_what_is_not_a_price() {
        assert_eq!(Micros::parse("7.53").unwrap(), Micros(7_530_000));
        assert_eq!(Micros::parse("61").unwrap(), Micros(61_000_000));
        assert_eq!(Micros::parse("0.000001").unwrap(), Micros(1));
        assert!(Micros::parse("-1").unwrap_err().contains("negative"));
        assert!(Micros::parse("1.2345678").is_err());
        assert!(Micros::parse("7,53").is_err());
        assert!(Micros::parse("").is_err());
        assert!(Micros::parse("2000000").is_err());
    }

    #[test]
    fn currencies_come_from_iso_4217_with_their_minor_units() {
        assert_eq!(Currency::parse("usd").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("XAU").is_err());
    }

    #[test]
    fn ten_days_of_a_monthly_price_round_once() {
        let usd = Currency::parse("USD").unwrap();
        // 10 days of 7.53 a month in a 30-day month: 2.51 exactly.
        let ten = Exact::share(Micros::parse("7.53").unwrap(), 30, 10);
        assert_eq!(ten.round(usd), Minor(251));
        // 10 days in a 31-day month: 2.4290... -> 2.43.
        let ten = Exact::share(Micros::parse("7.53").unwrap(), 31, 10);
        assert_eq!(ten.round(usd).format(usd), "2.43");
        // A whole year of daily shares is the annual price to the cent.
        let year = Exact::share(Micros::parse("100").unwrap(), 365, 365);
        assert_eq!(year.round(usd).format(usd), "100.00");
        assert_eq!(Minor(5).format(usd), "0.05");
        assert_eq!(Minor(1234).format(Currency::parse("JPY").unwrap()), "1234");
    }
}
