//! Per-field findings about the text values a KHQR carries: every value
//! NBC's SDK refuses ([`FieldProblem::Refused`], which [`encode`] refuses
//! too), not only the first, and the values the SDK lets through although
//! bank apps are known to refuse the KHQR ([`FieldProblem::Warning`]).
//!
//! What the SDK (npm `bakong-khqr` 1.0.20) refuses in a text field is a
//! length over its limit (in UTF-16 code units), an empty required value,
//! an account id without `@` and an MCC that is not 1 to 4 digits. It
//! refuses no character in any field: `+855 96 998 3479` as the mobile
//! number, a line feed or a NUL in a label, Khmer digits, all pass its
//! `generateIndividual`/`generateMerchant` and its `verify`. So every
//! character finding here is a warning, and [`encode`] still writes such a
//! value, byte for byte as the SDK does.
//!
//! [`encode`]: crate::encode

use super::encode::{check, text};
use super::tags;
use super::{Account, AccountKind, Khqr, KhqrError, KhqrRequest};

/// A text value of a request or of a decoded KHQR, with the limits the
/// SDK applies to it.
struct Value<'a> {
    field: &'static str,
    tag: &'static str,
    text: Option<&'a str>,
    max: usize,
    required: bool,
}

fn value<'a>(
    field: &'static str,
    tag: &'static str,
    text: Option<&'a str>,
    max: usize,
    required: bool,
) -> Value<'a> {
    Value {
        field,
        tag,
        text,
        max,
        required,
    }
}

/// Why a value the SDK accepts is still worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// A mobile number (tag 62.02) with anything but digits: bank apps are
    /// known to refuse the KHQR as malformed (a production report:
    /// `+855 96 998 3479`). The SDK's own examples write `85587575857`.
    NotDigits,
    /// Control characters (line feed, tab, NUL...): no character set of
    /// the EMV QR specification allows them, and no app can show them.
    ControlCharacters,
}

/// A value NBC's SDK accepts but bank apps are known to (or may) refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldWarning {
    /// The input field, named as in [`KhqrError::Invalid`] (`mobile_number`,
    /// `store_label`, `name`...).
    pub field: &'static str,
    /// The tag (or `tag.sub-tag`) it is written to.
    pub tag: &'static str,
    /// The value as given.
    pub value: String,
    /// The characters at fault, each once, in the order they appear.
    pub characters: Vec<char>,
    /// What is wrong with them.
    pub kind: WarningKind,
    /// The value that would be fine, when one can be made: the digits only
    /// (Khmer digits as ASCII) for a mobile number, the value without its
    /// control characters otherwise.
    pub suggestion: Option<String>,
}

impl FieldWarning {
    /// What is wrong and what to write instead, without the field and tag.
    pub fn message(&self) -> String {
        let chars = describe_chars(&self.characters);
        let v = &self.value;
        match (self.kind, &self.suggestion) {
            (WarningKind::NotDigits, Some(s)) => format!(
                "{v:?} holds {chars}: bank apps are known to refuse a KHQR whose mobile number is not digits only, although NBC's SDK accepts it; write the digits only, {s:?}"
            ),
            (WarningKind::NotDigits, None) => format!(
                "{v:?} holds {chars}: bank apps are known to refuse a KHQR whose mobile number is not digits only, although NBC's SDK accepts it; write the number in digits only (e.g. 85512345678)"
            ),
            (WarningKind::ControlCharacters, Some(s)) => format!(
                "{v:?} holds {chars}, control characters that no character set of the EMV QR specification allows: bank apps may refuse the KHQR, although NBC's SDK accepts it; write {s:?}"
            ),
            (WarningKind::ControlCharacters, None) => format!(
                "{v:?} holds {chars}, control characters that no character set of the EMV QR specification allows: bank apps may refuse the KHQR, although NBC's SDK accepts it; remove them"
            ),
        }
    }
}

impl std::fmt::Display for FieldWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (tag {}): {}", self.field, self.tag, self.message())
    }
}

/// One finding about one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// NBC's SDK refuses the value, and so does [`encode`](crate::encode).
    Refused(KhqrError),
    /// The SDK accepts it, but bank apps are known to (or may) refuse it.
    Warning(FieldWarning),
}

impl FieldProblem {
    /// The input field at fault, when one is to blame.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            FieldProblem::Refused(e) => e.field(),
            FieldProblem::Warning(w) => Some(w.field),
        }
    }

    /// Whether the encoder refuses it.
    pub fn is_refused(&self) -> bool {
        matches!(self, FieldProblem::Refused(_))
    }
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldProblem::Refused(e) => e.fmt(f),
            FieldProblem::Warning(w) => w.fmt(f),
        }
    }
}

/// Every finding about `req`'s values, refusals first: each text field
/// checked on its own (so two fields too long are two refusals), then the
/// encoder's other checks (account id shape, MCC, amount, language pair),
/// then the warnings. The timestamps are not checked (see
/// [`encode`](crate::encode)): a static request from a config checks fully.
pub fn field_problems(req: &KhqrRequest) -> Vec<FieldProblem> {
    let values = request_values(req);
    let mut out: Vec<FieldProblem> = values
        .iter()
        .filter_map(|v| text(v.text, v.field, v.tag, v.max, v.required).err())
        .map(FieldProblem::Refused)
        .collect();
    if let Err(e) = check(req) {
        let e = FieldProblem::Refused(e);
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out.extend(warnings_of(&values).into_iter().map(FieldProblem::Warning));
    out
}

/// The warnings alone of [`field_problems`]: values the SDK (and
/// [`encode`](crate::encode)) accepts but bank apps are known to refuse.
pub fn field_warnings(req: &KhqrRequest) -> Vec<FieldWarning> {
    warnings_of(&request_values(req))
}

impl Khqr {
    /// The values of this decoded KHQR that NBC's SDK accepts but bank
    /// apps are known to refuse (see [`field_warnings`]).
    pub fn field_warnings(&self) -> Vec<FieldWarning> {
        warnings_of(&khqr_values(self))
    }
}

fn request_values(req: &KhqrRequest) -> Vec<Value<'_>> {
    let mut v = vec![value(
        "upi_merchant_account",
        "15",
        req.upi_merchant_account.as_deref(),
        tags::MAX_UPI,
        false,
    )];
    match &req.account {
        Account::Individual {
            account_id,
            account_information,
            acquiring_bank,
        } => v.extend([
            value(
                "account_id",
                "29.00",
                Some(account_id),
                tags::MAX_ACCOUNT_ID,
                true,
            ),
            value(
                "account_information",
                "29.01",
                account_information.as_deref(),
                tags::MAX_ACCOUNT_INFORMATION,
                false,
            ),
            value(
                "acquiring_bank",
                "29.02",
                acquiring_bank.as_deref(),
                tags::MAX_ACQUIRING_BANK,
                false,
            ),
        ]),
        Account::Merchant {
            account_id,
            merchant_id,
            acquiring_bank,
        } => v.extend([
            value(
                "account_id",
                "30.00",
                Some(account_id),
                tags::MAX_ACCOUNT_ID,
                true,
            ),
            value(
                "merchant_id",
                "30.01",
                Some(merchant_id),
                tags::MAX_MERCHANT_ID,
                true,
            ),
            value(
                "acquiring_bank",
                "30.02",
                Some(acquiring_bank),
                tags::MAX_ACQUIRING_BANK,
                true,
            ),
        ]),
    }
    // As the encoder: an empty city is the SDK's default.
    let city = if req.merchant_city.is_empty() {
        tags::DEFAULT_CITY
    } else {
        &req.merchant_city
    };
    let d = &req.additional_data;
    let l = &req.alternate_language;
    v.extend([
        value("name", "59", Some(&req.merchant_name), tags::MAX_NAME, true),
        value("city", "60", Some(city), tags::MAX_CITY, true),
        value(
            "bill_number",
            "62.01",
            d.bill_number.as_deref(),
            tags::MAX_ADDITIONAL,
            false,
        ),
        value(
            "mobile_number",
            "62.02",
            d.mobile_number.as_deref(),
            tags::MAX_ADDITIONAL,
            false,
        ),
        value(
            "store_label",
            "62.03",
            d.store_label.as_deref(),
            tags::MAX_ADDITIONAL,
            false,
        ),
        value(
            "terminal_label",
            "62.07",
            d.terminal_label.as_deref(),
            tags::MAX_ADDITIONAL,
            false,
        ),
        value(
            "purpose",
            "62.08",
            d.purpose.as_deref(),
            tags::MAX_ADDITIONAL,
            false,
        ),
        value(
            "language_preference",
            "64.00",
            l.language_preference.as_deref(),
            tags::MAX_LANGUAGE_PREFERENCE,
            false,
        ),
        value(
            "alternate_name",
            "64.01",
            l.name.as_deref(),
            tags::MAX_ALTERNATE_NAME,
            false,
        ),
        value(
            "alternate_city",
            "64.02",
            l.city.as_deref(),
            tags::MAX_ALTERNATE_CITY,
            false,
        ),
    ]);
    v
}

/// The decoded text values, for warnings only (limits are [`verify`]'s
/// business, and a decoded KHQR may lack required parts).
///
/// [`verify`]: crate::verify
fn khqr_values(k: &Khqr) -> Vec<Value<'_>> {
    fn w<'a>(field: &'static str, tag: &'static str, text: Option<&'a String>) -> Value<'a> {
        value(field, tag, text.map(String::as_str), 0, false)
    }
    let mut v = vec![w(
        "upi_merchant_account",
        "15",
        k.upi_merchant_account.as_ref(),
    )];
    if let Some(a) = &k.account {
        let (id, info, bank, field) = match a.kind {
            AccountKind::Individual => ("29.00", "29.01", "29.02", "account_information"),
            AccountKind::Merchant => ("30.00", "30.01", "30.02", "merchant_id"),
        };
        v.push(w("account_id", id, a.account_id.as_ref()));
        v.push(w(field, info, a.information.as_ref()));
        v.push(w("acquiring_bank", bank, a.acquiring_bank.as_ref()));
    }
    v.push(w("name", "59", k.merchant_name.as_ref()));
    v.push(w("city", "60", k.merchant_city.as_ref()));
    if let Some(d) = &k.additional_data {
        v.extend([
            w("bill_number", "62.01", d.bill_number.as_ref()),
            w("mobile_number", "62.02", d.mobile_number.as_ref()),
            w("store_label", "62.03", d.store_label.as_ref()),
            w("terminal_label", "62.07", d.terminal_label.as_ref()),
            w("purpose", "62.08", d.purpose.as_ref()),
        ]);
    }
    if let Some(l) = &k.alternate_language {
        v.extend([
            w(
                "language_preference",
                "64.00",
                l.language_preference.as_ref(),
            ),
            w("alternate_name", "64.01", l.name.as_ref()),
            w("alternate_city", "64.02", l.city.as_ref()),
        ]);
    }
    v
}

fn warnings_of(values: &[Value<'_>]) -> Vec<FieldWarning> {
    values
        .iter()
        .filter_map(|v| warning(v.field, v.tag, v.text?))
        .collect()
}

/// An ASCII digit for an ASCII or a Khmer digit (U+17E0 to U+17E9).
fn ascii_digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '\u{17E0}'..='\u{17E9}' => char::from_u32(u32::from(c) - 0x17E0 + u32::from(b'0')),
        _ => None,
    }
}

fn distinct(chars: impl Iterator<Item = char>) -> Vec<char> {
    let mut out: Vec<char> = Vec::new();
    for c in chars {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn warning(field: &'static str, tag: &'static str, v: &str) -> Option<FieldWarning> {
    let (characters, kind, suggestion) = if field == "mobile_number" {
        let odd = distinct(v.chars().filter(|c| !c.is_ascii_digit()));
        let digits: String = v.chars().filter_map(ascii_digit).collect();
        (odd, WarningKind::NotDigits, digits)
    } else {
        let odd = distinct(v.chars().filter(|c| c.is_control()));
        let clean: String = v.chars().filter(|c| !c.is_control()).collect();
        (odd, WarningKind::ControlCharacters, clean)
    };
    if characters.is_empty() {
        return None;
    }
    Some(FieldWarning {
        field,
        tag,
        value: v.to_string(),
        characters,
        kind,
        suggestion: (!suggestion.is_empty()).then_some(suggestion),
    })
}

/// `'+'`, `space`, `line feed`, `U+00A0`...: a character as a message can
/// show it.
fn char_name(c: char) -> String {
    match c {
        ' ' => "space".into(),
        '\t' => "tab".into(),
        '\n' => "line feed".into(),
        '\r' => "carriage return".into(),
        c if c.is_control() || c.is_whitespace() => format!("U+{:04X}", u32::from(c)),
        c => format!("'{c}'"),
    }
}

/// `'+' and space`, `'(', ')', space and '-'`.
fn describe_chars(chars: &[char]) -> String {
    let names: Vec<String> = chars.iter().map(|&c| char_name(c)).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic on a bad fixture
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::{decode, encode, verify};

    fn req() -> KhqrRequest {
        KhqrRequest::individual("shop@devb", "Sok Chea Shop", "Phnom Penh")
    }

    fn with_mobile(m: &str) -> KhqrRequest {
        let mut r = req();
        r.additional_data.mobile_number = Some(m.into());
        r
    }

    #[test]
    fn a_mobile_number_with_a_plus_sign_and_spaces_is_a_warning_that_suggests_the_digits() {
        let w = field_warnings(&with_mobile("+855 96 998 3479"));
        assert_eq!(w.len(), 1, "{w:?}");
        let w = &w[0];
        assert_eq!((w.field, w.tag), ("mobile_number", "62.02"));
        assert_eq!(w.characters, vec!['+', ' ']);
        assert_eq!(w.kind, WarningKind::NotDigits);
        assert_eq!(w.suggestion.as_deref(), Some("855969983479"));
        let text = w.to_string();
        assert!(
            text.starts_with("mobile_number (tag 62.02): \"+855 96 998 3479\" holds '+' and space"),
            "{text}"
        );
        assert!(text.ends_with("\"855969983479\""), "{text}");
    }

    #[test]
    fn dashes_parentheses_dots_and_letters_in_a_mobile_number_are_named_each_once() {
        let w = &field_warnings(&with_mobile("(096) 998-34.79x"))[0];
        assert_eq!(w.characters, vec!['(', ')', ' ', '-', '.', 'x']);
        assert_eq!(w.suggestion.as_deref(), Some("0969983479"));
        assert!(
            w.message().contains("'(', ')', space, '-', '.' and 'x'"),
            "{}",
            w.message()
        );
    }

    #[test]
    fn khmer_digits_in_a_mobile_number_are_suggested_as_ascii_digits() {
        let w = &field_warnings(&with_mobile("៨៥៥៩៦៩៩៨៣៤៧៩"))[0];
        assert_eq!(w.suggestion.as_deref(), Some("855969983479"));
        let none = &field_warnings(&with_mobile("call me"))[0];
        assert_eq!(none.suggestion, None);
        assert!(none.message().contains("digits only (e.g."), "{none}");
    }

    #[test]
    fn a_digits_only_mobile_number_and_plain_text_give_no_warning() {
        let mut r = with_mobile("85596998347");
        r.merchant_name = "ហាង\u{200B}កាហ្វេ".into(); // Khmer uses zero-width spaces
        r.additional_data.store_label = Some("Store #1 (Riverside)".into());
        r.additional_data.bill_number = Some("INV-1042/+1".into());
        assert_eq!(field_problems(&r), vec![]);
    }

    #[test]
    fn control_characters_in_any_field_are_a_warning_naming_them() {
        let mut r = req();
        r.additional_data.store_label = Some("Store\n1".into());
        r.additional_data.terminal_label = Some("T\t1\u{0}".into());
        r.merchant_name = "Shop\r".into();
        let w = field_warnings(&r);
        let got: Vec<_> = w.iter().map(|w| (w.field, w.characters.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("name", vec!['\r']),
                ("store_label", vec!['\n']),
                ("terminal_label", vec!['\t', '\0']),
            ]
        );
        assert!(w[2].message().contains("tab and U+0000"), "{}", w[2]);
        assert_eq!(w[1].suggestion.as_deref(), Some("Store1"));
    }

    #[test]
    fn the_encoder_writes_what_the_sdk_accepts_and_verify_reports_the_warning() {
        // NBC's SDK 1.0.20 generates and verifies this string (see the
        // fixture case "mobile number with a plus sign and spaces").
        let now = Utc.timestamp_millis_opt(1_764_500_000_000).unwrap();
        let mut r = with_mobile("+855 96 998 3479");
        r.amount = Some(100.into());
        r.expires_at = Some(now + Duration::days(1));
        let qr = encode(&r, now).unwrap();
        assert!(qr.contains("0216+855 96 998 3479"), "{qr}");
        let k = verify(&qr, now).unwrap();
        let w = k.field_warnings();
        assert_eq!(w, field_warnings(&r));
        assert_eq!(decode(&qr).unwrap().field_warnings(), w);
    }

    #[test]
    fn every_refused_field_is_reported_not_only_the_first() {
        let mut r = with_mobile("+855 96 998 3479 ext 12345");
        r.merchant_name = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".into();
        r.merchant_city = "Siem Reap Provin".into();
        r.mcc = "59a9".into();
        let p = field_problems(&r);
        let refused: Vec<_> = p
            .iter()
            .filter(|p| p.is_refused())
            .map(|p| p.field().unwrap())
            .collect();
        // The MCC comes from the encoder's own check, after the text fields.
        assert_eq!(refused, vec!["name", "city", "mobile_number", "mcc"]);
        let warned: Vec<_> = p
            .iter()
            .filter(|p| !p.is_refused())
            .map(|p| p.field().unwrap())
            .collect();
        assert_eq!(warned, vec!["mobile_number"]);
        // The encoder refuses the first of them.
        let e = encode(&r, Utc::now()).unwrap_err();
        assert!(p.contains(&FieldProblem::Refused(e)));
    }

    #[test]
    fn the_encoders_own_refusal_is_not_repeated() {
        let mut r = req();
        r.merchant_name = String::new();
        let p = field_problems(&r);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field(), Some("name"));
        assert!(p[0].to_string().contains("required"), "{}", p[0]);
    }

    #[test]
    fn merchant_accounts_name_the_merchant_id() {
        let mut r = req();
        r.account = Account::Merchant {
            account_id: "shop@devb".into(),
            merchant_id: "M\n1".into(),
            acquiring_bank: "Dev Bank".into(),
        };
        let w = field_warnings(&r);
        assert_eq!((w[0].field, w[0].tag), ("merchant_id", "30.01"));
    }
}
