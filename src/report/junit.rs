//! `--report junit:PATH`: JUnit XML with the failure text as element content (GitLab shows it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::console::failure_text;
use crate::run::{CaseResult, Reporter, Summary, Verdict};

/// Collects results and writes one JUnit document at the end.
pub struct Junit {
    path: PathBuf,
    suites: BTreeMap<String, Vec<TestCase>>,
}

impl Junit {
    /// A reporter writing to `path` (`-` for stdout).
    pub fn new(path: PathBuf) -> Junit {
        Junit {
            path,
            suites: BTreeMap::new(),
        }
    }
}

impl Reporter for Junit {
    fn case_finished(&mut self, r: &CaseResult) {
        let case = r.case();
        let status = match r.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::NotApplicable => {
                let mut s = TestCaseStatus::skipped();
                // XML 1.0 forbids most control characters, which a program's bytes may hold.
                let xml = |s: &str| super::escape::visible_controls(s).into_owned();
                s.set_message(xml(&format!("n/a: {}", r.premise().unwrap_or("the case does not apply"))));
                s.set_description(xml(&super::console::not_applicable_text(r, r.premise().unwrap_or(""), false)));
                s
            }
            v => {
                let kind = if v == Verdict::Fail {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut s = TestCaseStatus::non_success(kind);
                if let Some(f) = &r.failure {
                    s.set_message(super::escape::visible_controls(&f.message).into_owned());
                }
                s.set_description(failure_text(r, false));
                s
            }
        };
        let mut tc = TestCase::new(format!("{} [{} pts]", case.id, case.points), status);
        tc.classname = Some(r.suite.name.clone().into());
        tc.time = Some(r.duration);
        if let Some(rfc) = &case.rfc {
            tc.add_property(("rfc", rfc.as_str()));
        }
        tc.add_property(("points", r.points.to_string().as_str()));
        tc.add_property(("max_points", r.max_points().to_string().as_str()));
        tc.add_property(("verdict", r.verdict.as_str()));
        for (name, value) in super::figures::totals(&r.dialogue) {
            tc.add_property((format!("figure {name}").as_str(), value.to_string().as_str()));
        }
        self.suites.entry(r.suite.name.clone()).or_default().push(tc);
    }

    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        let mut report = Report::new("wirecheck");
        report.set_time(Duration::from_millis(summary.duration_ms));
        for (name, cases) in std::mem::take(&mut self.suites) {
            let mut ts = TestSuite::new(name);
            ts.add_test_cases(cases);
            report.add_test_suite(ts);
        }
        let xml = report.to_string().map_err(std::io::Error::other)?;
        super::write_output(&self.path, xml.as_bytes())
    }
}
