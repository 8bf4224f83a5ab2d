//! The KHQR tags this module knows: numbers, names for messages, and the
//! length limits NBC's SDK (1.0.20) enforces, in UTF-16 code units.

/// MCC the SDK writes when none is given.
pub const DEFAULT_MCC: &str = "5999";
/// City the SDK writes when none is given.
pub const DEFAULT_CITY: &str = "Phnom Penh";
/// Country code, always `KH`.
pub const COUNTRY_CODE: &str = "KH";

// Limits (UTF-16 code units), from the SDK's `INVALID_LENGTH`.
/// Bakong account id (29/30 sub-tag 00).
pub const MAX_ACCOUNT_ID: usize = 32;
/// Account information (29 sub-tag 01).
pub const MAX_ACCOUNT_INFORMATION: usize = 32;
/// Merchant id (30 sub-tag 01).
pub const MAX_MERCHANT_ID: usize = 32;
/// Acquiring bank (29/30 sub-tag 02).
pub const MAX_ACQUIRING_BANK: usize = 32;
/// Merchant name (tag 59).
pub const MAX_NAME: usize = 25;
/// Merchant city (tag 60).
pub const MAX_CITY: usize = 15;
/// Merchant category code (tag 52), in digits.
pub const MAX_MCC: usize = 4;
/// Amount text (tag 54).
pub const MAX_AMOUNT: usize = 13;
/// Each tag 62 sub-field.
pub const MAX_ADDITIONAL: usize = 25;
/// Language preference (64 sub-tag 00).
pub const MAX_LANGUAGE_PREFERENCE: usize = 2;
/// Alternate-language name (64 sub-tag 01).
pub const MAX_ALTERNATE_NAME: usize = 25;
/// Alternate-language city (64 sub-tag 02).
pub const MAX_ALTERNATE_CITY: usize = 15;
/// UnionPay merchant account (tag 15).
pub const MAX_UPI: usize = 99;
/// Every TLV value: the length field has two digits.
pub const MAX_VALUE: usize = 99;
/// Epoch milliseconds in tag 99 have exactly this many digits.
pub const TIMESTAMP_DIGITS: usize = 13;

/// What a top-level tag holds, for messages.
pub fn name(tag: &str) -> &'static str {
    match tag {
        "00" => "payload format indicator",
        "01" => "point of initiation method",
        "15" => "UnionPay merchant account",
        "29" => "individual account",
        "30" => "merchant account",
        "52" => "merchant category code",
        "53" => "transaction currency",
        "54" => "transaction amount",
        "58" => "country code",
        "59" => "merchant name",
        "60" => "merchant city",
        "62" => "additional data",
        "63" => "CRC",
        "64" => "alternate language",
        "99" => "timestamps",
        _ => "unknown tag",
    }
}

/// What a sub-tag of a template holds, for messages.
pub fn sub_name(tag: &str, sub: &str) -> &'static str {
    match (tag, sub) {
        ("29" | "30", "00") => "Bakong account id",
        ("29", "01") => "account information",
        ("30", "01") => "merchant id",
        ("29" | "30", "02") => "acquiring bank",
        ("62", "01") => "bill number",
        ("62", "02") => "mobile number",
        ("62", "03") => "store label",
        ("62", "07") => "terminal label",
        ("62", "08") => "purpose of transaction",
        ("64", "00") => "language preference",
        ("64", "01") => "merchant name in the alternate language",
        ("64", "02") => "merchant city in the alternate language",
        ("99", "00") => "creation timestamp",
        ("99", "01") => "expiration timestamp",
        _ => "unknown sub-tag",
    }
}

/// Length in UTF-16 code units, the way JavaScript's `String.length` counts.
pub fn units(s: &str) -> usize {
    s.encode_utf16().count()
}
