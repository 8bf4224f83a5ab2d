//! Money: currencies and exact decimal amounts. Never floats.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The two currencies Bakong settles in (ordered as declared: USD, then KHR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// An amount more precise than its currency allows: no valid KHQR can
/// carry it (NBC's SDK refuses USD with more than 2 decimals and KHR with
/// any), so no payment can ever match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{amount} {currency} cannot be carried by a KHQR: {currency} takes {rule} (trailing zeros are fine: \"1.50\", \"4000.00\")")]
pub struct TooPrecise {
    /// The amount as given.
    pub amount: Decimal,
    /// Its currency.
    pub currency: Currency,
    /// The rule, in words.
    pub rule: &'static str,
}

impl Currency {
    /// How many decimals an amount in this currency may have (by value:
    /// trailing zeros do not count).
    pub fn max_decimals(self) -> u32 {
        match self {
            Currency::Usd => 2,
            Currency::Khr => 0,
        }
    }
}

/// Checks that `amount` is one a KHQR in `currency` can carry: USD at most
/// 2 decimals, KHR whole, judged by value (`1.500` USD and `4000.00` KHR
/// pass). The same rule as the table's triggers (migration 3).
pub fn check_precision(amount: Decimal, currency: Currency) -> Result<(), TooPrecise> {
    if amount.normalize().scale() > currency.max_decimals() {
        return Err(TooPrecise {
            amount,
            currency,
            rule: match currency {
                Currency::Usd => "at most 2 decimals",
                Currency::Khr => "whole amounts (no decimals)",
            },
        });
    }
    Ok(())
}

/// Parses an amount as Bakong sends it: a JSON number (`1.0`, `9800`,
/// `1e2`) or a string holding one (`"1.50"`). The number's text is read
/// exactly, never through f64; `None` when the value is neither or cannot
/// be held exactly (more than 28 significant digits, out of range).
pub fn amount_from_json(v: &serde_json::Value) -> Option<Decimal> {
    match v {
        serde_json::Value::Number(n) => exact_decimal(&n.to_string()),
        serde_json::Value::String(s) => exact_decimal(s),
        _ => None,
    }
}

/// Parses an amount from its raw JSON text: a number as written
/// (`4.9999999999999999999` stays that, not 5) or a string holding one.
/// `None` for anything else or anything that cannot be held exactly.
pub fn amount_from_raw_json(raw: &str) -> Option<Decimal> {
    let raw = raw.trim();
    if raw.starts_with('"') {
        let s: String = serde_json::from_str(raw).ok()?;
        exact_decimal(&s)
    } else {
        exact_decimal(raw)
    }
}

/// A number in JSON's grammar (`-`? digits (`.` digits)? (`e` sign? digits)?,
/// leading zeros tolerated) read exactly into a normalized decimal, or
/// `None` if it does not follow the grammar or cannot be held exactly.
pub fn exact_decimal(text: &str) -> Option<Decimal> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let digits = mantissa.strip_prefix('-').unwrap_or(mantissa);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    let mut d = Decimal::from_str_exact(mantissa).ok()?;
    if let Some(e) = exponent {
        let e_digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if !all_digits(e_digits) {
            return None;
        }
        // Beyond 28 places nothing fits a Decimal exactly (zero aside,
        // which no amount is).
        let e: i64 = if e_digits.len() > 4 {
            return None;
        } else {
            e.parse().ok()?
        };
        let scale = i64::from(d.scale()) - e;
        if scale >= 0 {
            d.set_scale(u32::try_from(scale).ok()?).ok()?;
        } else {
            d.set_scale(0).ok()?;
            for _ in 0..(-scale).min(29) {
                d = d.checked_mul(Decimal::TEN)?;
            }
            if -scale > 29 && !d.is_zero() {
                return None;
            }
        }
    }
    Some(d.normalize())
}

/// An amount as the table stores what Bakong reported: plain decimal text
/// (`5`, `1.5`), the exact value with no trailing zeros.
pub fn amount_text(d: Decimal) -> String {
    d.normalize().to_string()
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
    fn json_amounts_are_read_exactly_or_not_at_all() {
        for (raw, want) in [
            ("4.9999999999999999999", "4.9999999999999999999"),
            ("5.0000000000000000001", "5.0000000000000000001"),
            ("\"4.9999999999999999999\"", "4.9999999999999999999"),
            ("1.0", "1"),
            ("9800", "9800"),
            ("1e2", "100"),
            ("1E+2", "100"),
            ("15e-1", "1.5"),
            ("\"1.50\"", "1.5"),
            ("0.01", "0.01"),
            ("-1", "-1"),
        ] {
            let got = amount_from_raw_json(raw);
            assert_eq!(got, Decimal::from_str_exact(want).ok(), "{raw}");
        }
        for raw in [
            "1e400",
            "1e29",
            "0.00000000000000000000000000000001",
            "123456789012345678901234567890.5",
            "\"1,50\"",
            "\"1.5 \"",
            "\" 1.5\"",
            "\"0x10\"",
            "\"1_000\"",
            "\"+1\"",
            "\".5\"",
            "\"5.\"",
            "\"\"",
            "null",
            "true",
            "[1]",
            "1e99999999999",
        ] {
            assert_eq!(amount_from_raw_json(raw), None, "{raw}");
        }
    }

    #[test]
    fn bad_amounts_are_refused() {
        for s in ["", "0", "0.00", "-1", "1e3", "abc", "1,5", " "] {
            assert!(parse_amount(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn amounts_a_khqr_can_carry_pass_by_value() {
        for (a, c) in [
            ("1.50", Currency::Usd),
            ("1.500", Currency::Usd),
            ("0.01", Currency::Usd),
            ("12", Currency::Usd),
            ("4000", Currency::Khr),
            ("4000.00", Currency::Khr),
            ("4000.0", Currency::Khr),
            ("100.000000", Currency::Khr),
        ] {
            let d = parse_amount(a).expect("parses");
            assert_eq!(check_precision(d, c), Ok(()), "{a} {c}");
        }
    }

    #[test]
    fn amounts_more_precise_than_their_currency_are_refused() {
        for (a, c) in [
            ("0.001", Currency::Usd),
            ("1.005", Currency::Usd),
            ("1.0001000", Currency::Usd),
            ("500.5", Currency::Khr),
            ("4000.01", Currency::Khr),
            ("0.5", Currency::Khr),
        ] {
            let d = parse_amount(a).expect("parses");
            let e = check_precision(d, c).expect_err(a);
            assert!(e.to_string().contains(c.code()), "{e}");
        }
        // Read unnormalized, as a caller other than parse_amount might.
        let raw = Decimal::from_str("500.50").expect("decimal");
        assert!(check_precision(raw, Currency::Khr).is_err());
    }

    #[test]
    fn currencies_parse_exactly() {
        assert_eq!("USD".parse::<Currency>(), Ok(Currency::Usd));
        assert!("usd".parse::<Currency>().is_err());
    }
}
