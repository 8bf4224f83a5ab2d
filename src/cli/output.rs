//! The one place that prints: a command's typed result (JSON with
//! `--json`, else its human rendering) on stdout, errors and notices on
//! stderr.
//!
//! With `--json`, every stderr line is one JSON object: an error is
//! `{"error": "...", "exit_code": N}`, a notice `{"notice": "..."}`. A
//! result that is not a success (not found, failed) prints its result on
//! stdout and, with `--json`, the error object on stderr too, so a script
//! can rely on "exit code not 0 => one error object on stderr".

use std::io::Write;

use serde::Serialize;
use serde_json::json;

use super::error::{CliError, Verdict};

/// A command's result: serialisable for `--json`, with a rendering for a
/// terminal and a verdict that decides the exit code.
pub trait Report: Serialize {
    /// The text for a terminal; empty prints nothing.
    fn human(&self) -> String;
    /// How the command came out; [`Verdict::Done`] unless overridden.
    fn verdict(&self) -> Verdict {
        Verdict::Done
    }
}

/// What `dispatch` hands back: any command's [`Report`], type-erased.
pub struct Output(Box<dyn Render>);

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Output").field(&self.0.verdict()).finish()
    }
}

impl<R: Report + 'static> From<R> for Output {
    fn from(r: R) -> Self {
        Output(Box::new(r))
    }
}

/// The object-safe face of a [`Report`].
trait Render {
    fn json(&self) -> serde_json::Result<String>;
    fn human(&self) -> String;
    fn verdict(&self) -> Verdict;
}

impl<R: Report> Render for R {
    fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
    fn human(&self) -> String {
        Report::human(self)
    }
    fn verdict(&self) -> Verdict {
        Report::verdict(self)
    }
}

/// A command with nothing to print (the daemon, the simulator after it
/// stopped, the demo and the bench, which print as they go).
#[derive(Debug, Serialize)]
pub struct Nothing {}

impl Report for Nothing {
    fn human(&self) -> String {
        String::new()
    }
}

impl Output {
    /// Prints the result; returns the exit code.
    pub fn emit(&self, json: bool) -> i32 {
        let verdict = self.0.verdict();
        if json {
            match self.0.json() {
                Ok(line) => stdout_line(&line),
                Err(e) => {
                    return emit_error(json, &CliError::Runtime(format!("cannot print JSON: {e}")))
                }
            }
            if let Some(m) = verdict.message() {
                stderr_line(&error_object(m, verdict.exit_code()));
            }
        } else {
            let text = self.0.human();
            if !text.is_empty() {
                stdout_line(&text);
            }
        }
        verdict.exit_code()
    }
}

/// Prints a failure on stderr; returns its exit code.
pub fn emit_error(json: bool, e: &CliError) -> i32 {
    let code = e.exit_code();
    // The last net against secrets on stderr (under systemd: the journal).
    let message = crate::redact::redact_text(&e.to_string());
    if json {
        stderr_line(&error_object(&message, code));
    } else if let CliError::Problems(lines) = e {
        for l in lines {
            stderr_line(&crate::redact::redact_text(l));
        }
    } else {
        stderr_line(&format!("error: {message}"));
    }
    code
}

/// Prints a notice on stderr while a command runs.
pub fn notice(json: bool, message: &str) {
    if json {
        stderr_line(&json!({ "notice": message }).to_string());
    } else {
        stderr_line(&format!("note: {message}"));
    }
}

fn error_object(message: &str, code: i32) -> String {
    json!({ "error": message, "exit_code": code }).to_string()
}

// A closed pipe (`| head`) is not worth a panic: the output is dropped.
fn stdout_line(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

fn stderr_line(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}
