//! `import --from sqlite://PATH`: copies every row of an existing SQLite
//! payments database into the PostgreSQL database `database.url` names, so
//! a merchant who outgrows one host keeps the history and the pending
//! rows. Idempotent: rows whose md5 is already there are left as they are,
//! so a second run copies nothing twice.

use clap::Args;
use serde::Serialize;

use super::{CliError, Context, Report};
use crate::app;
use crate::redact::redact_url;
use crate::store::postgres::ImportReport;
use crate::store::Store;

/// `import` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  bakong-poller --config /etc/bakong-poller/bakong-poller.toml import --from sqlite:///var/lib/bakong-poller/db/payments.db"
)]
pub struct ImportArgs {
    /// The SQLite database to copy from (sqlite://PATH). It is brought to
    /// the latest schema first, as `run` would; its rows are only read.
    #[arg(long, value_name = "URL")]
    pub from: String,
}

/// `import`'s result.
#[derive(Debug, Serialize)]
pub struct Imported {
    /// The source, as given.
    pub from: String,
    /// `database.url`, redacted.
    pub to: String,
    /// What was copied.
    #[serde(flatten)]
    pub report: ImportReport,
}

impl Report for Imported {
    fn human(&self) -> String {
        let r = &self.report;
        let mut out = format!(
            "read {} row(s) from {}: copied {}, already in {} {}, refused {}",
            r.read,
            self.from,
            r.copied,
            self.to,
            r.already_there,
            r.refused.len()
        );
        for (md5, why) in &r.refused {
            out.push_str(&format!(
                "\nrefused {md5}: {why} (fix the row and run import again)"
            ));
        }
        out
    }
}

/// Copies the SQLite database `--from` into the PostgreSQL `database.url`.
pub async fn run(ctx: &Context, a: &ImportArgs) -> Result<Imported, CliError> {
    let Some(rest) = a.from.strip_prefix("sqlite://") else {
        return Err(CliError::Usage(format!(
            "--from: {:?} is not of the form sqlite://PATH (the SQLite database to copy)",
            redact_url(&a.from)
        )));
    };
    // Connecting would create a missing file: say so instead.
    let path = std::path::Path::new(rest.split('?').next().unwrap_or_default());
    if !path.is_file() {
        return Err(CliError::Usage(format!(
            "--from: {} does not exist or is not a file",
            path.display()
        )));
    }
    let settings = ctx.quiet_settings()?;
    if !crate::store::postgres::accepts(&settings.database.url) {
        return Err(CliError::Usage(format!(
            "database.url: import copies into a PostgreSQL database, and {:?} is not one; set database.url to postgres://USER@HOST/DATABASE",
            redact_url(&settings.database.url)
        )));
    }
    let to = app::open_store(&settings).await?;
    let result = async {
        let from = Store::connect(&a.from, settings.database.busy_timeout).await?;
        let copied = match from.migrate().await {
            Ok(()) => to.import_from(&from).await,
            Err(e) => Err(e),
        };
        from.close().await;
        copied
    }
    .await;
    to.close().await;
    Ok(Imported {
        from: redact_url(&a.from),
        to: redact_url(&settings.database.url),
        report: result?,
    })
}
