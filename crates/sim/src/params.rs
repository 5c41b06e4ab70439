//! Query-string access that supports repeated keys (`groupId=a&groupId=b`) and reports
//! bad numbers and booleans in a way each API turns into its own 400.

/// Decoded query parameters, in order.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// First value of a key (empty values count as absent).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a key; comma-separated values are split too.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A non-negative integer, or the default when absent.
    pub fn uint(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| n as usize)
                .ok_or_else(|| format!("Invalid value '{v}' for parameter '{key}': expected a non-negative integer.")),
        }
    }

    /// A boolean, or the default when absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(format!(
                "Invalid value '{v}' for parameter '{key}': expected true or false."
            )),
        }
    }
}

/// Percent-encodes a query value.
pub(crate) fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
