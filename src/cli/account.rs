//! `account`: whether a Bakong account exists (exit 0 yes, 3 no).

use clap::Args;
use serde::Serialize;

use super::{CliError, Context, Report, Verdict};
use crate::app;

/// `account` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bakong-poller account shop@aclb")]
pub struct AccountArgs {
    /// The account id (name@bank).
    pub account_id: String,
}

/// `account`'s result.
#[derive(Debug, Serialize)]
pub struct Account {
    /// The id asked about.
    pub account_id: String,
    /// Whether Bakong knows it.
    pub exists: bool,
}

impl Report for Account {
    fn human(&self) -> String {
        let what = if self.exists { "exists" } else { "not found" };
        format!("{}: {what}", self.account_id)
    }

    fn verdict(&self) -> Verdict {
        if self.exists {
            Verdict::Done
        } else {
            Verdict::NotFound(format!("account {} not found", self.account_id))
        }
    }
}

/// Asks `check_bakong_account`.
pub async fn run(ctx: &Context, a: &AccountArgs) -> Result<Account, CliError> {
    let settings = ctx.quiet_settings()?;
    let client = app::build_client(&settings, false)?;
    let exists = client.check_account(&a.account_id).await?;
    Ok(Account {
        account_id: a.account_id.clone(),
        exists,
    })
}
