use std::sync::Arc;

use super::*;
use crate::bitrix::messages::ItemResult;
use crate::outbox::queue::Method;
use crate::settings::{BitrixSettings, RetrySettings};
use crate::store::Store;

/// A pending deletion item of `message` in `chat` (also used by the worker's tests).
pub(crate) fn op(seq: u64, chat: &str, message: &str) -> Op {
    Op {
        seq,
        item: 0,
        channel: "ch".into(),
        portal: "p".into(),
        line: 7,
        chat_id: chat.into(),
        kind: OpKind::Delete {
            deletion_id: "d".into(),
            message_id: message.into(),
            user_id: "u".into(),
        },
        attempts: 0,
        accepted_at_ms: 0,
        due_at_ms: 0,
        last_error: None,
    }
}

fn item(chat: Option<&str>, message: Option<&str>, success: bool) -> ItemResult {
    ItemResult {
        chat_id: chat.map(Into::into),
        message_id: message.map(Into::into),
        success,
        errors: if success {
            vec![]
        } else {
            vec![format!("no {}", message.unwrap_or("?"))]
        },
        user: None,
        session: None,
    }
}

#[test]
fn results_are_matched_by_ids_whatever_their_order() {
    let ops = vec![op(1, "a", "m1"), op(2, "b", "m1"), op(3, "a", "m3")];
    let items = vec![
        item(Some("a"), Some("m3"), false),
        item(Some("b"), Some("m1"), true),
        item(Some("a"), Some("m1"), false),
    ];
    let matched = match_items(&ops, items);
    let got: Vec<_> = matched
        .iter()
        .map(|m| m.as_ref().map(|i| (i.chat_id.clone().unwrap(), i.success)))
        .collect();
    assert_eq!(
        got,
        vec![
            Some(("a".into(), false)),
            Some(("b".into(), true)),
            Some(("a".into(), false))
        ]
    );
}

#[test]
fn an_op_without_an_entry_is_left_unmatched() {
    let ops = vec![op(1, "a", "m1"), op(2, "a", "m2")];
    let matched = match_items(&ops, vec![item(Some("a"), Some("m2"), true)]);
    assert!(matched[0].is_none());
    assert!(matched[1].is_some());
}

#[test]
fn entries_without_ids_match_by_position_only_when_counts_agree() {
    let ops = vec![op(1, "a", "m1"), op(2, "a", "m2")];
    let two = vec![item(None, None, true), item(None, None, false)];
    let matched = match_items(&ops, two);
    assert_eq!(
        matched
            .iter()
            .map(|m| m.as_ref().unwrap().success)
            .collect::<Vec<_>>(),
        vec![true, false]
    );
    let one = vec![item(None, None, true)];
    assert!(match_items(&ops, one).iter().all(Option::is_none));
}

fn executor_parts() -> (tempfile::TempDir, BitrixClient, RetrySettings, Metrics) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let settings = BitrixSettings {
        client_id: "id".into(),
        client_secret: "s".into(),
        oauth_servers: vec!["http://127.0.0.1:1/".into()],
        portals: Vec::new(),
        oauth_url: None,
        rate_per_second: 2.0,
        burst: 50,
        request_timeout_ms: 1000,
        request_budget_ms: 20_000,
    };
    let client = BitrixClient::new(settings, store, Arc::new(Metrics::default())).unwrap();
    let retry = RetrySettings {
        initial_backoff_ms: 1000,
        max_backoff_ms: 8000,
        max_attempts: 3,
        max_age_secs: 3600,
    };
    (dir, client, retry, Metrics::default())
}

fn call(ops: Vec<Op>) -> Call {
    Call {
        line: 7,
        method: Method::Delete,
        ops,
    }
}

fn api(status: u16, code: &str) -> BitrixError {
    BitrixError::Api {
        status,
        code: code.into(),
        description: "d".into(),
        operating_reset_at: None,
    }
}

#[test]
fn a_whole_call_failure_is_final_or_retried_by_its_class() {
    let (_dir, client, retry, metrics) = executor_parts();
    let ex = Executor {
        client: &client,
        portal: "p",
        connector: "c",
        retry: &retry,
        metrics: &metrics,
    };
    let now = 10_000;
    let rejected = ex.outcomes(
        call(vec![Op {
            attempts: 1,
            ..op(1, "a", "m1")
        }]),
        Err(api(400, "ERROR_ARGUMENT")),
        now,
    );
    assert!(
        matches!(&rejected[0].outcome, OpOutcome::Failed { errors } if errors[0].contains("ERROR_ARGUMENT"))
    );
    assert_eq!(rejected[0].op.attempts, 1);

    let throttled = ex.outcomes(
        call(vec![op(1, "a", "m1"), op(2, "a", "m2")]),
        Err(api(503, "QUERY_LIMIT_EXCEEDED")),
        now,
    );
    for r in &throttled {
        assert_eq!(r.outcome, OpOutcome::Retry);
        assert!(
            (now + 500..=now + 1000).contains(&r.op.due_at_ms),
            "{}",
            r.op.due_at_ms
        );
        assert!(
            r.op.last_error
                .as_deref()
                .unwrap()
                .contains("QUERY_LIMIT_EXCEEDED")
        );
    }
}

#[test]
fn an_operating_limit_waits_for_the_announced_reset() {
    let (_dir, client, retry, metrics) = executor_parts();
    let ex = Executor {
        client: &client,
        portal: "p",
        connector: "c",
        retry: &retry,
        metrics: &metrics,
    };
    let err = BitrixError::Api {
        status: 429,
        code: "OPERATION_TIME_LIMIT".into(),
        description: String::new(),
        operating_reset_at: Some(500),
    };
    let r = ex.outcomes(call(vec![op(1, "a", "m1")]), Err(err), 10_000);
    assert_eq!(r[0].outcome, OpOutcome::Retry);
    assert_eq!(r[0].op.due_at_ms, 500_000);
}

#[test]
fn an_item_still_failing_after_max_attempts_ends_failed_with_its_last_error() {
    let (_dir, client, retry, metrics) = executor_parts();
    let ex = Executor {
        client: &client,
        portal: "p",
        connector: "c",
        retry: &retry,
        metrics: &metrics,
    };
    let mut tired = op(1, "a", "m1");
    tired.attempts = 3;
    let r = ex.outcomes(call(vec![tired]), Err(BitrixError::Timeout), 10_000);
    match &r[0].outcome {
        OpOutcome::Failed { errors } => assert_eq!(
            errors,
            &vec!["gave up after 3 attempts: request timed out".to_string()]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn per_item_results_become_done_or_failed_and_missing_ones_retry() {
    let (_dir, client, retry, metrics) = executor_parts();
    let ex = Executor {
        client: &client,
        portal: "p",
        connector: "c",
        retry: &retry,
        metrics: &metrics,
    };
    let reply = serde_json::json!({"SUCCESS": false, "DATA": {"RESULT": [
        {"chat": {"id": "a"}, "message": {"id": "m2"}, "SUCCESS": false, "ERRORS": ["Message not found"]},
        {"chat": {"id": "a"}, "message": {"id": "m1"}, "SUCCESS": true}
    ]}});
    let r = ex.outcomes(
        call(vec![op(1, "a", "m1"), op(2, "a", "m2"), op(3, "a", "m3")]),
        Ok(reply),
        0,
    );
    assert!(matches!(r[0].outcome, OpOutcome::Done { .. }));
    assert_eq!(
        r[1].outcome,
        OpOutcome::Failed {
            errors: vec!["Message not found".into()]
        }
    );
    assert_eq!(r[2].outcome, OpOutcome::Retry);
}

#[test]
fn batch_back_reference_patterns_are_found_anywhere_in_the_values() {
    use super::has_back_reference;
    for text in [
        "$result[c0]",
        "see $time[x] now",
        "$next page",
        "a $total of 3",
        "$error",
    ] {
        let params = json!({"MESSAGES": [{"message": {"text": text}}]});
        assert!(has_back_reference(&params), "{text}");
    }
    for text in ["$5 only", "result[c0]", "costs 10$", "next $ total"] {
        let params = json!({"MESSAGES": [{"message": {"text": text}}]});
        assert!(!has_back_reference(&params), "{text}");
    }
}
