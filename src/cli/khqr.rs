//! `khqr decode` and `khqr verify`: read a KHQR string offline. `decode` is
//! lenient (as NBC's SDK decode); `verify` is strict and uses the clock:
//! exit 0 valid, 1 malformed, 4 well formed but expired. Both also warn
//! about values NBC's SDK accepts but bank apps are known to refuse (a
//! mobile number that is not digits only), without changing the exit code.

use chrono::Utc;
use clap::Subcommand;
use serde::Serialize;

use super::{CliError, Context, Report, Verdict};
use crate::khqr::{self, Khqr, KhqrError};

/// `khqr` subcommands.
#[derive(Debug, Subcommand)]
pub enum KhqrCommand {
    /// Decode a KHQR string: every tag, typed (checks the CRC and the structure only).
    #[command(
        after_help = "Example:\n  bakong-poller khqr decode '00020101021229...6304ABCD' --json"
    )]
    Decode {
        /// The KHQR string (quote it: it may hold spaces).
        qr: String,
    },
    /// Verify a KHQR string strictly, as of now: exit 0 valid, 1 malformed, 4 expired.
    #[command(after_help = "Example:\n  bakong-poller khqr verify '00020101021229...6304ABCD'")]
    Verify {
        /// The KHQR string (quote it: it may hold spaces).
        qr: String,
    },
}

/// `khqr decode` / `khqr verify`'s result.
#[derive(Debug, Serialize)]
pub struct Checked {
    /// Which check ran: `decode` (CRC and structure) or `verify` (strict).
    pub check: &'static str,
    /// Whether the string passed (decode: is readable; verify: is valid now).
    pub valid: bool,
    /// Whether it is a well-formed dynamic KHQR past its expiration.
    pub expired: bool,
    /// The first problem, by tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Values NBC's SDK accepts but bank apps are known to refuse, by tag.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// md5 of the whole string (the payment's key).
    pub md5: String,
    /// The decoded tags, when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub khqr: Option<Khqr>,
}

fn opt(label: &str, v: Option<impl std::fmt::Display>) -> String {
    v.map(|v| format!("{label:<22}{v}\n")).unwrap_or_default()
}

fn describe(k: &Khqr) -> String {
    let mut s = String::new();
    s += &opt(
        "type",
        k.initiation.map(|i| match i {
            khqr::Initiation::Static => "static (11)",
            khqr::Initiation::Dynamic => "dynamic (12)",
        }),
    );
    if let Some(a) = &k.account {
        s += &opt(
            "account",
            a.account_id.as_deref().map(|id| {
                format!(
                    "{id} ({})",
                    match a.kind {
                        khqr::AccountKind::Individual => "individual, tag 29",
                        khqr::AccountKind::Merchant => "merchant, tag 30",
                    }
                )
            }),
        );
        let info = match a.kind {
            khqr::AccountKind::Individual => "account information",
            khqr::AccountKind::Merchant => "merchant id",
        };
        s += &opt(info, a.information.as_deref());
        s += &opt("acquiring bank", a.acquiring_bank.as_deref());
    }
    s += &opt("amount", k.amount);
    s += &opt("currency", k.currency);
    s += &opt("merchant name", k.merchant_name.as_deref());
    s += &opt("merchant city", k.merchant_city.as_deref());
    s += &opt("mcc", k.mcc.as_deref());
    s += &opt("country", k.country_code.as_deref());
    s += &opt("unionpay account", k.upi_merchant_account.as_deref());
    if let Some(d) = &k.additional_data {
        s += &opt("bill number", d.bill_number.as_deref());
        s += &opt("mobile number", d.mobile_number.as_deref());
        s += &opt("store label", d.store_label.as_deref());
        s += &opt("terminal label", d.terminal_label.as_deref());
        s += &opt("purpose", d.purpose.as_deref());
    }
    if let Some(l) = &k.alternate_language {
        s += &opt("language", l.language_preference.as_deref());
        s += &opt("alternate name", l.name.as_deref());
        s += &opt("alternate city", l.city.as_deref());
    }
    s += &opt("created", k.created_at());
    s += &opt("expires", k.expires_at());
    for f in &k.unknown {
        s += &format!("{:<22}{}\n", format!("tag {}", f.tag), f.value);
    }
    s += &opt("crc", Some(&k.crc));
    s
}

impl Report for Checked {
    fn human(&self) -> String {
        let mut s = match (&self.error, self.expired) {
            (None, _) if self.check == "decode" => {
                "decoded (CRC and structure; `khqr verify` checks the rest)\n".to_string()
            }
            (None, _) => "valid\n".to_string(),
            (Some(e), true) => format!("expired: {e}\n"),
            (Some(e), false) => format!("malformed: {e}\n"),
        };
        for w in &self.warnings {
            s += &format!("warning: {w}\n");
        }
        s += &format!("{:<22}{}\n", "md5", self.md5);
        if let Some(k) = &self.khqr {
            s += &describe(k);
        }
        s.trim_end().to_string()
    }

    fn verdict(&self) -> Verdict {
        match &self.error {
            None => Verdict::Done,
            Some(e) if self.expired => Verdict::Expired(e.clone()),
            Some(e) => Verdict::Failed(format!("malformed KHQR: {e}")),
        }
    }
}

fn checked(check: &'static str, qr: &str, result: Result<Khqr, KhqrError>) -> Checked {
    let md5 = khqr::md5_hex(qr);
    let warnings = |k: &Option<Khqr>| {
        k.iter()
            .flat_map(Khqr::field_warnings)
            .map(|w| w.to_string())
            .collect()
    };
    match result {
        Ok(k) => {
            let khqr = Some(k);
            Checked {
                check,
                valid: true,
                expired: false,
                error: None,
                warnings: warnings(&khqr),
                md5,
                khqr,
            }
        }
        Err(e) => {
            // What can be read is still shown (verify fails on strings
            // that decode, e.g. one without an expiration).
            let khqr = khqr::decode(qr).ok();
            Checked {
                check,
                valid: false,
                expired: e.is_expired(),
                error: Some(e.to_string()),
                warnings: warnings(&khqr),
                md5,
                khqr,
            }
        }
    }
}

/// Runs a `khqr` subcommand (offline: no config, network or token).
pub fn run(_ctx: &Context, c: &KhqrCommand) -> Result<Checked, CliError> {
    Ok(match c {
        KhqrCommand::Decode { qr } => checked("decode", qr, khqr::decode(qr)),
        KhqrCommand::Verify { qr } => checked("verify", qr, khqr::verify(qr, Utc::now())),
    })
}
