//! JUnit XML, GitLab-safe: one testsuite per part, unique test names that stay the same from
//! a failing run to a passing one (`PART::CASE`), points as properties, and the failure text as element content
//! (GitLab shows content, not the message attribute).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::super::score::{Grade, Status};
use super::{case_text, shows_details, xml_text, Audience};

/// The report's bytes.
pub fn render(g: &Grade, audience: Audience) -> Vec<u8> {
    let mut report = Report::new(format!("wirecheck {}", g.assignment));
    report.set_time(g.duration);
    let mut suites: Vec<(String, TestSuite)> = Vec::new();
    if !g.build.ok {
        let mut ts = TestSuite::new("build");
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        st.set_message(xml_text(g.build.error.as_deref().unwrap_or_default()));
        st.set_description(xml_text(&g.build.output));
        ts.add_test_case(TestCase::new("build", st));
        suites.push(("build".into(), ts));
    }
    for c in &g.cases {
        let part = c.name.split("::").next().unwrap_or("").to_string();
        let show = shows_details(c, audience);
        let status = match c.status {
            Status::Passed => TestCaseStatus::success(),
            Status::NotRun => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(xml_text(c.reason.as_deref().unwrap_or_default()));
                s
            }
            Status::NotApplicable => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(if show {
                    xml_text(c.reason.as_deref().unwrap_or_default())
                } else {
                    super::redacted_line(c)
                });
                s.set_description(case_text(c, show));
                s
            }
            st => {
                let kind = if st == Status::Error {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(if show {
                    xml_text(c.reason.as_deref().unwrap_or_default())
                } else {
                    super::redacted_line(c)
                });
                s.set_description(case_text(c, show));
                s
            }
        };
        // The name stays the same from a failing run to a passing one, so a CI dashboard keeps
        // the test's history; the points are properties.
        let mut tc = TestCase::new(c.name.clone(), status);
        tc.classname = Some(format!("{}.{}", g.assignment, part).into());
        tc.time = Some(c.duration.max(Duration::ZERO));
        tc.add_property(("points", c.score.to_string().as_str()));
        tc.add_property(("max_points", c.max_score.to_string().as_str()));
        tc.add_property(("visibility", c.visibility.as_str()));
        tc.add_property(("status", c.status.as_str()));
        match suites.iter_mut().find(|(n, _)| *n == part) {
            Some((_, ts)) => {
                ts.add_test_case(tc);
            }
            None => {
                let mut ts = TestSuite::new(part.clone());
                ts.add_test_case(tc);
                suites.push((part, ts));
            }
        }
    }
    for (_, ts) in suites {
        report.add_test_suite(ts);
    }
    report.to_string().map(String::into_bytes).unwrap_or_default()
}
