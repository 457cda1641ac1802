//! Gate `http-check`: what clients reach through a traffic switch, or what
//! one backend answers before it takes traffic, judged as an Argo Rollouts
//! analysis is: failed requests, latency, and which backend answered.

use runner_sdk::prelude::*;
use runner_sdk::traffic::{self, HttpObservation, HttpRequests};
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    switch: String,
    backend: String,
    path: String,
    requests: u32,
    interval_ms: u32,
    timeout_ms: u32,
    body_contains: String,
    max_failure_share: String,
    #[serde(default)]
    max_p99_ms: Option<u32>,
    expect_backend: String,
    min_backend_share: String,
}

/// A share as the operator wrote it (`0.5%`) and its value in percent.
#[derive(Debug, PartialEq)]
struct Share {
    text: String,
    percent: f64,
}

impl Share {
    fn parse(key: &str, text: &str) -> Result<Share, Error> {
        let text = text.trim();
        text.strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
            .map(|percent| Share { text: text.to_string(), percent })
            .ok_or_else(|| Error::invalid(format!("config `{key}`: `{text}` is not a share between 0% and 100% (`0%`, `0.5%`, `5%`)")))
    }
}

/// `part` of `whole` in percent, for people: `6%`, `0.04%`, `33.33%`.
fn percent(part: u32, whole: u32) -> String {
    let value = if whole == 0 { 0.0 } else { f64::from(part) * 100.0 / f64::from(whole) };
    let text = format!("{value:.2}");
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// Whether `part` of `whole` is more than `share`, compared exactly
/// (`1 of 2500` is more than `0%` although it prints as `0.04%`).
fn above(part: u32, whole: u32, share: &Share) -> bool {
    f64::from(part) * 100.0 > share.percent * f64::from(whole)
}

/// What made the failed requests fail: `2 with no answer, 3 answered 503`.
fn failure_kinds(o: &HttpObservation, body_contains: &str) -> Vec<String> {
    let mut kinds: Vec<String> = o
        .statuses
        .iter()
        .filter(|(status, n)| *n > 0 && !(200..300).contains(status))
        .map(|(status, n)| if *status == 0 { format!("{n} with no answer") } else { format!("{n} answered {status}") })
        .collect();
    let without_body = o.succeeded.saturating_sub(o.body_matches);
    if !body_contains.is_empty() && without_body > 0 {
        kinds.push(format!("{without_body} 2xx without `{body_contains}` in the body"));
    }
    kinds
}

/// Judge what the requests met against the bounds.
fn judge(check: &mut Check, cfg: &Config, max_failures: &Share, min_backend: &Share, o: &HttpObservation) {
    let to = traffic::target(&cfg.switch, (!cfg.backend.is_empty()).then_some(cfg.backend.as_str()));
    if o.requests == 0 {
        check.fail(format!("{to}: no request was sent"));
        return;
    }
    let good = if cfg.body_contains.is_empty() { o.succeeded } else { o.body_matches.min(o.succeeded) };
    let failed = o.requests.saturating_sub(good);
    if above(failed, o.requests, max_failures) {
        check.fail(format!(
            "{failed} of {} requests failed ({}) > {}: {}",
            o.requests,
            percent(failed, o.requests),
            max_failures.text,
            failure_kinds(o, &cfg.body_contains).join(", ")
        ));
    }
    // Latency is measured on answered requests only; with none there is nothing to bound.
    if let Some(max) = cfg.max_p99_ms
        && o.answered() > 0
        && o.p99_ms > max
    {
        check.fail(format!("p99 {} ms > {max} ms", o.p99_ms));
    }
    if !cfg.expect_backend.is_empty() {
        let expected = cfg.expect_backend.as_str();
        let answered = o.answered();
        let served = o.served_by(expected);
        if answered == 0 {
            check.fail(format!("no answer came from {expected}: no request was answered"));
        } else if f64::from(served) * 100.0 < min_backend.percent * f64::from(answered) {
            let others: Vec<String> = o.backends.iter().filter(|(name, n)| name != expected && *n > 0).map(|(name, n)| format!("{name} {n}")).collect();
            check.fail(format!(
                "{expected} served {served} of {answered} answers ({}) < {}; the others: {}",
                percent(served, answered),
                min_backend.text,
                if others.is_empty() { "none".to_string() } else { others.join(", ") }
            ));
        }
    }
    check.note(format!("{to}, GET {}: {}", cfg.path, o.describe()));
}

fn evaluate(cfg: &Config) -> Result<Verdict, Error> {
    if cfg.switch.trim().is_empty() {
        return Err(Error::invalid("config `switch` is empty: name the traffic switch"));
    }
    let max_failures = Share::parse("max-failure-share", &cfg.max_failure_share)?;
    let min_backend = Share::parse("min-backend-share", &cfg.min_backend_share)?;
    let backend = (!cfg.backend.is_empty()).then_some(cfg.backend.as_str());
    let requests = HttpRequests {
        path: cfg.path.clone(),
        count: cfg.requests,
        interval_ms: cfg.interval_ms,
        timeout_ms: cfg.timeout_ms,
        body_contains: cfg.body_contains.clone(),
    };
    let mut check = Check::new();
    check.evidence("switch", &cfg.switch).evidence("backend", backend).evidence("path", &cfg.path);
    match traffic::observe(&cfg.switch, backend, &requests) {
        Ok(observation) => {
            if let Value::Object(fields) = observation.to_json() {
                for (key, value) in fields {
                    check.evidence(&key, value);
                }
            }
            judge(&mut check, cfg, &max_failures, &min_backend, &observation);
        }
        // What cannot be reached does not take traffic: that is the answer, not a crash.
        Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::Unavailable | ErrorCode::Timeout) => {
            check.evidence("error", json!({"code": e.code.to_string(), "message": e.message}));
            check.fail(format!("{} ({})", e.message, e.code));
        }
        Err(e) => return Err(e),
    }
    Ok(check.verdict())
}

struct Gate;

impl runner_sdk::gate::Guest for Gate {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        evaluate(&parse_config(&config)?)
    }
}

runner_sdk::export_gate!(Gate);

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            switch: "web".into(),
            backend: String::new(),
            path: "/health".into(),
            requests: 200,
            interval_ms: 50,
            timeout_ms: 1000,
            body_contains: String::new(),
            max_failure_share: "0%".into(),
            max_p99_ms: Some(500),
            expect_backend: String::new(),
            min_backend_share: "100%".into(),
        }
    }

    fn observation(succeeded: u32, statuses: Vec<(u16, u32)>, backends: Vec<(&str, u32)>, p99_ms: u32) -> HttpObservation {
        HttpObservation {
            requests: 200,
            succeeded,
            statuses,
            backends: backends.into_iter().map(|(b, n)| (b.to_string(), n)).collect(),
            body_matches: succeeded,
            p50_ms: 10,
            p99_ms,
            max_ms: p99_ms + 10,
        }
    }

    fn reasons(cfg: &Config, o: &HttpObservation) -> (Outcome, Vec<String>) {
        let mut check = Check::new();
        judge(&mut check, cfg, &Share::parse("m", &cfg.max_failure_share).unwrap(), &Share::parse("b", &cfg.min_backend_share).unwrap(), o);
        let v = check.verdict();
        (v.outcome, v.reasons)
    }

    #[test]
    fn one_reason_per_bound_broken_with_its_figure() {
        let o = observation(188, vec![(0, 4), (200, 188), (503, 8)], vec![("blue", 150), ("green", 46)], 840);
        let cfg = Config { expect_backend: "green".into(), ..config() };
        let (outcome, reasons) = reasons(&cfg, &o);
        assert_eq!(outcome, Outcome::Fail);
        assert_eq!(
            reasons[..3],
            [
                "12 of 200 requests failed (6%) > 0%: 4 with no answer, 8 answered 503",
                "p99 840 ms > 500 ms",
                "green served 46 of 196 answers (23.47%) < 100%; the others: blue 150",
            ]
        );
        assert!(reasons[3].starts_with("switch web, GET /health: 200 requests, 188 answered 2xx"), "{}", reasons[3]);
    }

    #[test]
    fn within_the_bounds_passes_and_a_tiny_share_still_counts() {
        let all = observation(200, vec![(200, 200)], vec![("green", 200)], 40);
        let cfg = Config { expect_backend: "green".into(), ..config() };
        assert_eq!(reasons(&cfg, &all).0, Outcome::Pass);
        let one = HttpObservation { requests: 2500, succeeded: 2499, statuses: vec![(200, 2499), (0, 1)], ..all.clone() };
        assert_eq!(reasons(&config(), &one).1[0], "1 of 2500 requests failed (0.04%) > 0%: 1 with no answer");
        assert_eq!(reasons(&Config { max_failure_share: "0.5%".into(), ..config() }, &one).0, Outcome::Pass);
        let body = HttpObservation { body_matches: 190, ..all };
        assert_eq!(
            reasons(&Config { body_contains: "ok".into(), ..config() }, &body).1[0],
            "10 of 200 requests failed (5%) > 0%: 10 2xx without `ok` in the body"
        );
    }

    #[test]
    fn nobody_answering_is_named_once_per_bound() {
        let none = observation(0, vec![(0, 200)], vec![], 0);
        let cfg = Config { backend: "green".into(), expect_backend: "green".into(), ..config() };
        let (_, reasons) = reasons(&cfg, &none);
        assert_eq!(reasons[..2], ["200 of 200 requests failed (100%) > 0%: 200 with no answer", "no answer came from green: no request was answered"]);
        assert!(reasons[2].starts_with("backend green of switch web, GET /health"));
    }

    #[test]
    fn shares_are_percentages() {
        assert_eq!(Share::parse("k", " 5% ").unwrap(), Share { text: "5%".into(), percent: 5.0 });
        assert!(Share::parse("k", "5").unwrap_err().message.contains("config `k`"));
        assert!(Share::parse("k", "120%").is_err());
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(0, 0), "0%");
    }
}
