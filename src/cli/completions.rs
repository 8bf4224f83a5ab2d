//! `completions`: shell completion scripts generated from the command
//! line's own definition.

use clap::{Args, CommandFactory};
use serde::Serialize;

use super::{Cli, Report};

/// `completions` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  bakong-poller completions bash > /etc/bash_completion.d/bakong-poller"
)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// A completion script.
#[derive(Debug, Serialize)]
pub struct Completions {
    /// The shell it is for.
    pub shell: String,
    /// The script.
    pub script: String,
}

impl Report for Completions {
    fn human(&self) -> String {
        self.script.trim_end().to_string()
    }
}

/// Generates the script.
pub fn run(a: &CompletionsArgs) -> Completions {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "bakong-poller", &mut buf);
    Completions {
        shell: a.shell.to_string(),
        script: String::from_utf8_lossy(&buf).into_owned(),
    }
}
