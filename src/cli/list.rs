//! `wirecheck list`: suites and their cases, as text or JSON.

use std::io::Write;

use super::error::UsageError;
use super::load;
use crate::run::{self, RunOptions};
use crate::suite::{self, Case, Suite};

/// Arguments of `wirecheck list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Suite names (under suites/) or paths; none means all.
    pub suites: Vec<String>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Only cases with this tag (repeatable), as `run --tag` picks them.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only cases whose id or suite::id matches this glob (repeatable), as `run --case` picks them.
    #[arg(long = "case", value_name = "GLOB")]
    pub cases: Vec<String>,
}

/// `wirecheck list`: exit 0, or 2 when a suite does not load.
pub fn list(args: ListArgs) -> i32 {
    let suites = match load::suites(&args.suites) {
        Ok(s) => s,
        Err(e) => return e.report(),
    };
    let globs = match args
        .cases
        .iter()
        .map(|c| glob::Pattern::new(c).map_err(|source| UsageError::CaseGlob { given: c.clone(), source }))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(g) => g,
        Err(e) => return e.report(),
    };
    let options = RunOptions {
        tags: args.tags.clone(),
        case_globs: globs,
        ..RunOptions::default()
    };
    // The suites with the cases the filters pick (all of them without filters).
    let suites: Vec<(&Suite, Vec<&Case>)> = suites
        .iter()
        .map(|s| (&**s, s.cases.iter().filter(|c| run::selected(&options, s, c)).collect::<Vec<_>>()))
        .filter(|(_, cases)| !cases.is_empty())
        .collect();
    if suites.is_empty() {
        return UsageError::NothingSelected.report();
    }
    // A closed pipe (`| head`) ends the listing quietly.
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        let doc: Vec<_> = suites
            .iter()
            .map(|(s, cases)| {
                serde_json::json!({
                    "suite": s.name, "title": s.title, "file": s.source.path.display().to_string(),
                    "protocol": s.protocol, "role": s.role, "port": s.port, "reference": s.reference,
                    "max_points": s.max_points(),
                    "cases": cases.iter().map(|c| serde_json::json!({
                        "id": c.id, "title": c.title, "rfc": c.rfc, "tags": c.tags, "points": c.points,
                        "hidden": c.hidden, "fresh_server": c.fresh_server, "premises": c.premises(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return 0;
    }
    for (s, cases) in &suites {
        let _ = writeln!(
            out,
            "{} — {} ({} cases, {} points, {} role, {})",
            s.name,
            s.title,
            s.cases.len(),
            s.max_points(),
            if s.role == suite::Role::Server { "server" } else { "client" },
            s.source.path.display()
        );
        for c in cases {
            let tags = if c.tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", c.tags.join(", "))
            };
            if writeln!(out, "  {}::{:<32} {:>4} pts{tags}  {}", s.name, c.id, c.points, c.title).is_err() {
                return 0;
            }
        }
    }
    0
}
