//! Money: currencies and exact decimal amounts. Never floats.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The two currencies Bakong settles in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Currency {
    /// US dollar, two decimals.
    #[serde(rename = "USD")]
    Usd,
    /// Cambodian riel, no decimals.
    #[serde(rename = "KHR")]
    Khr,
}

impl Currency {
    /// The ISO 4217 code as Bakong spells it.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Khr => "KHR",
        }
    }

    /// The ISO 4217 numeric code used in KHQR tag 53.
    pub fn numeric(self) -> &'static str {
        match self {
            Currency::Usd => "840",
            Currency::Khr => "116",
        }
    }

    /// Currency from the KHQR numeric code.
    pub fn from_numeric(code: &str) -> Option<Self> {
        match code {
            "840" => Some(Currency::Usd),
            "116" => Some(Currency::Khr),
            _ => None,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A currency string that is neither `USD` nor `KHR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency {0:?}: expected \"USD\" or \"KHR\"")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "USD" => Ok(Currency::Usd),
            "KHR" => Ok(Currency::Khr),
            other => Err(UnknownCurrency(other.to_string())),
        }
    }
}

/// An amount that is not a positive decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid amount {0:?}: expected a positive decimal such as \"1.50\" or \"4000\"")]
pub struct InvalidAmount(pub String);

/// Parses a positive decimal amount written in plain notation
/// (`"1.5"`, `"1.50"`, `"4000"`). Exponents, signs and zero are refused.
pub fn parse_amount(s: &str) -> Result<Decimal, InvalidAmount> {
    let bad = || InvalidAmount(s.to_string());
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let d = Decimal::from_str(t).map_err(|_| bad())?;
    if d <= Decimal::ZERO {
        return Err(bad());
    }
    Ok(d.normalize())
}

/// Parses an amount as Bakong sends it: a JSON number (`1.0`, `9800`) or a
/// string. The JSON text of the number is read exactly, never through f64.
pub fn amount_from_json(v: &serde_json::Value) -> Option<Decimal> {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
        .map(|d| d.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_compare_as_exact_decimals() {
        assert_eq!(parse_amount("1.5"), parse_amount("1.50"));
        assert_eq!(
            amount_from_json(&serde_json::json!(1.5)),
            parse_amount("1.50").ok()
        );
        assert_ne!(parse_amount("0.1"), parse_amount("0.10000001"));
    }

    #[test]
    fn bad_amounts_are_refused() {
        for s in ["", "0", "0.00", "-1", "1e3", "abc", "1,5", " "] {
            assert!(parse_amount(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn currencies_parse_exactly() {
        assert_eq!("USD".parse::<Currency>(), Ok(Currency::Usd));
        assert!("usd".parse::<Currency>().is_err());
    }
}
