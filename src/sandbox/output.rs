//! What the sandbox prints: numbered steps with timings, summaries of what the fake portal
//! received, and the final tally.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use openchannel_sim::portal::RequestRecord;

/// The REST method that carries deletions.
pub(super) const DELETE_METHOD: &str = "imconnector.delete.messages";

/// Prints numbered steps to stdout, each with the time it took.
pub(super) struct Printer {
    total: usize,
    step: usize,
    started: Instant,
    step_started: Instant,
}

impl Printer {
    /// A printer for a script of `total` steps.
    pub(super) fn new(total: usize) -> Printer {
        let now = Instant::now();
        Printer {
            total,
            step: 0,
            started: now,
            step_started: now,
        }
    }

    /// Start the next step.
    pub(super) fn step(&mut self, title: &str) {
        self.step += 1;
        self.step_started = Instant::now();
        println!("\n[{}/{}] {title}", self.step, self.total);
    }

    /// The step being played (for error messages).
    pub(super) fn current(&self) -> usize {
        self.step
    }

    /// One indented line of the current step.
    pub(super) fn line(&self, text: impl AsRef<str>) {
        println!("      {}", text.as_ref());
        // Progress lines must show up at once even when stdout is a pipe.
        let _ = std::io::stdout().flush();
    }

    /// Close the current step with its duration.
    pub(super) fn done(&self, what: impl AsRef<str>) {
        self.line(format!(
            "ok: {} ({})",
            what.as_ref(),
            human(self.step_started.elapsed())
        ));
    }

    /// Time since the script started.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// `850 ms` or `2.35 s`.
pub(super) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Text shortened for one line.
pub(super) fn quote(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let short: String = text.chars().take(MAX - 1).collect();
        format!("{:?}", format!("{short}…"))
    }
}

/// How one request looks in a listing: the method, or `batch(3× imconnector.send.messages)`.
fn label(r: &RequestRecord) -> String {
    if r.commands.is_empty() {
        r.method.clone()
    } else {
        format!(
            "{}({})",
            r.method,
            counted(r.commands.iter().map(String::as_str))
        )
    }
}

/// `a, 6× b, c` in first-seen order.
fn counted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        let n = counts.entry(name).or_insert(0);
        if *n == 0 {
            order.push(name);
        }
        *n += 1;
    }
    let mut out = String::new();
    for (i, name) in order.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match counts[name] {
            1 => out.push_str(name),
            n => {
                let _ = write!(out, "{n}× {name}");
            }
        }
    }
    out
}

/// A compact listing of requests: `imconnector.register, 6× event.bind, batch(2× ...)`.
pub(super) fn describe(requests: &[RequestRecord]) -> String {
    let labels: Vec<String> = requests.iter().map(label).collect();
    counted(labels.iter().map(String::as_str))
}

/// Calls of `method` among `requests`, made directly or inside `batch`.
pub(super) fn calls_of(requests: &[RequestRecord], method: &str) -> usize {
    requests
        .iter()
        .map(|r| {
            if r.method.eq_ignore_ascii_case(method) {
                1
            } else {
                r.commands
                    .iter()
                    .filter(|c| c.eq_ignore_ascii_case(method))
                    .count()
            }
        })
        .sum()
}

/// Requests that carried at least one call of `method`.
pub(super) fn requests_with(requests: &[RequestRecord], method: &str) -> usize {
    requests
        .iter()
        .filter(|r| calls_of(std::slice::from_ref(r), method) > 0)
        .count()
}

/// What the script did, for the final summary.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub messages_sent: usize,
    pub messages_delivered: usize,
    pub edits_sent: usize,
    pub edits_applied: usize,
    pub deletion_events: usize,
    pub deletion_items: usize,
    pub deletion_succeeded: usize,
    pub deletion_failed: usize,
    pub deletion_requests: usize,
    pub deletion_calls: usize,
    pub operator_sent: usize,
    pub operator_relayed: usize,
    /// The Telegram chapter's one-line result.
    pub telegram: Option<String>,
}

impl Tally {
    /// The closing summary, given the portal's full request log.
    pub(super) fn print(&self, requests: &[RequestRecord], elapsed: Duration) {
        let rejected = requests.iter().filter(|r| r.status == 503).count();
        println!("\nSummary");
        println!(
            "  customer messages delivered  {}/{}",
            self.messages_delivered, self.messages_sent
        );
        println!(
            "  edits applied                {}/{}",
            self.edits_applied, self.edits_sent
        );
        println!(
            "  deletions completed          {} items in {} events: {} succeeded, {} failed",
            self.deletion_items,
            self.deletion_events,
            self.deletion_succeeded,
            self.deletion_failed
        );
        println!(
            "  deletions carried by         {} Bitrix24 requests ({} {DELETE_METHOD} calls)",
            self.deletion_requests, self.deletion_calls
        );
        println!(
            "  operator replies relayed     {}/{}",
            self.operator_relayed, self.operator_sent
        );
        if let Some(telegram) = &self.telegram {
            println!("  telegram business chat       {telegram}");
        }
        println!(
            "  Bitrix24 requests used       {} in total, {rejected} rejected by the rate limit",
            requests.len()
        );
        println!("  total time                   {}", human(elapsed));
    }
}
