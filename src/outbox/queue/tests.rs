use super::*;

const LIMITS: Limits = Limits {
    max_batch: 50,
    linger_ms: 200,
    max_calls: 50,
    budget_ms: Limits::UNBUDGETED.1,
    item_ms: Limits::UNBUDGETED.0,
};

fn op(seq: u64, line: u64, chat: &str, method: Method, at: u64) -> OpRef {
    OpRef {
        seq,
        item: 0,
        portal: "p".into(),
        line,
        chat: chat.into(),
        method,
        due_at_ms: at,
    }
}

fn send(seq: u64, line: u64, chat: &str, at: u64) -> OpRef {
    op(seq, line, chat, Method::Send, at)
}

fn delete(seq: u64, line: u64, chat: &str, at: u64) -> OpRef {
    op(seq, line, chat, Method::Delete, at)
}

fn no_block(_: Method) -> Option<u64> {
    None
}

fn all_open(_: u64) -> bool {
    true
}

fn calls(plan: Plan) -> Vec<Call<OpRef>> {
    match plan {
        Plan::Send(calls) => calls,
        Plan::Wait(at) => panic!("expected calls, got Wait({at:?})"),
    }
}

fn shape(calls: &[Call<OpRef>]) -> Vec<(u64, Method, usize)> {
    calls
        .iter()
        .map(|c| (c.line, c.method, c.ops.len()))
        .collect()
}

#[test]
fn sends_leave_at_once_while_a_few_deletes_linger() {
    let mut q = PortalQueue::default();
    q.push(send(1, 7, "a", 1000));
    q.push(delete(2, 7, "b", 1000));
    let planned = calls(q.plan(1000, LIMITS, no_block, all_open));
    assert_eq!(shape(&planned), vec![(7, Method::Send, 1)]);
    q.take(&planned);
    match q.plan(1000, LIMITS, no_block, all_open) {
        Plan::Wait(Some(at)) => assert_eq!(at, 1200, "delete waits linger_ms"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        shape(&calls(q.plan(1200, LIMITS, no_block, all_open))),
        vec![(7, Method::Delete, 1)]
    );
}

#[test]
fn a_full_batch_of_deletes_does_not_wait_for_the_linger() {
    let mut q = PortalQueue::default();
    for seq in 0..50 {
        q.push(delete(seq, 7, &format!("c{}", seq % 3), 1000));
    }
    assert_eq!(
        shape(&calls(q.plan(1000, LIMITS, no_block, all_open))),
        vec![(7, Method::Delete, 50)]
    );
}

#[test]
fn a_delete_waits_behind_an_earlier_send_of_its_chat() {
    let mut q = PortalQueue::default();
    q.push(send(1, 7, "a", 0));
    q.push(delete(2, 7, "a", 0));
    let first = calls(q.plan(5000, LIMITS, no_block, all_open));
    assert_eq!(shape(&first), vec![(7, Method::Send, 1)]);
    q.take(&first);
    assert_eq!(
        shape(&calls(q.plan(5000, LIMITS, no_block, all_open))),
        vec![(7, Method::Delete, 1)]
    );
}

#[test]
fn three_hundred_deletes_over_two_lines_fill_six_calls_of_one_request() {
    let mut q = PortalQueue::default();
    for seq in 0..300 {
        let line = if seq % 2 == 0 { 7 } else { 9 };
        q.push(delete(seq, line, &format!("c{}", seq % 5), 1000));
    }
    let planned = calls(q.plan(1200, LIMITS, no_block, all_open));
    let mut shapes = shape(&planned);
    shapes.sort();
    assert_eq!(
        shapes,
        vec![
            (7, Method::Delete, 50),
            (7, Method::Delete, 50),
            (7, Method::Delete, 50),
            (9, Method::Delete, 50),
            (9, Method::Delete, 50),
            (9, Method::Delete, 50),
        ]
    );
    q.take(&planned);
    assert!(q.is_empty());
}

#[test]
fn at_most_max_calls_calls_are_planned_and_the_rest_stays_queued() {
    let mut q = PortalQueue::default();
    for seq in 0..300 {
        q.push(delete(seq, 7, "c", 0));
    }
    let limits = Limits {
        max_calls: 4,
        ..LIMITS
    };
    let planned = calls(q.plan(1000, limits, no_block, all_open));
    assert_eq!(planned.len(), 4);
    q.take(&planned);
    assert_eq!(q.len(), 100);
}

#[test]
fn a_chats_sends_are_never_split_across_calls() {
    let mut q = PortalQueue::default();
    for seq in 0..30 {
        q.push(send(seq, 7, "a", 0));
    }
    for seq in 30..60 {
        q.push(send(seq, 7, "b", 0));
    }
    for seq in 60..130 {
        q.push(send(seq, 7, "c", 0));
    }
    let planned = calls(q.plan(0, LIMITS, no_block, all_open));
    // a (30) fits, b (30) does not fit beside it, c is capped at 50 in a call of its own.
    assert_eq!(
        shape(&planned),
        vec![
            (7, Method::Send, 30),
            (7, Method::Send, 30),
            (7, Method::Send, 50)
        ]
    );
    for call in &planned {
        let chats: std::collections::HashSet<_> = call.ops.iter().map(|o| &o.chat).collect();
        let seqs: Vec<u64> = call.ops.iter().map(|o| o.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        assert_eq!(chats.len(), 1);
    }
    q.take(&planned);
    assert_eq!(q.len(), 20, "the rest of chat c waits for the next request");
}

#[test]
fn an_op_put_back_after_a_failure_is_again_its_chats_head() {
    let mut q = PortalQueue::default();
    q.push(send(1, 7, "a", 0));
    q.push(send(2, 7, "a", 0));
    let mut planned = calls(q.plan(0, LIMITS, no_block, all_open));
    q.take(&planned);
    assert!(q.is_empty());
    let mut retried = planned.remove(0).ops;
    for op in &mut retried {
        op.due_at_ms = 500;
    }
    q.push(retried[1].clone());
    q.push(retried[0].clone());
    match q.plan(100, LIMITS, no_block, all_open) {
        Plan::Wait(Some(500)) => {}
        other => panic!("{other:?}"),
    }
    let again = calls(q.plan(500, LIMITS, no_block, all_open));
    let seqs: Vec<u64> = again[0].ops.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, vec![1, 2]);
}

#[test]
fn a_blocked_method_waits_while_other_methods_go() {
    let mut q = PortalQueue::default();
    q.push(send(1, 7, "a", 0));
    q.push(delete(2, 7, "b", 0));
    let blocked = |m: Method| (m == Method::Delete).then_some(60_000);
    let planned = calls(q.plan(1000, LIMITS, blocked, all_open));
    assert_eq!(shape(&planned), vec![(7, Method::Send, 1)]);
    q.take(&planned);
    match q.plan(1000, LIMITS, blocked, all_open) {
        Plan::Wait(Some(60_000)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_empty_queue_waits_for_nothing() {
    assert!(matches!(
        PortalQueue::default().plan(0, LIMITS, no_block, all_open),
        Plan::Wait(None)
    ));
}

#[test]
fn items_of_a_closed_line_are_held() {
    let mut q = PortalQueue::default();
    q.push(send(1, 7, "a", 0));
    q.push(send(2, 9, "b", 0));
    let planned = calls(q.plan(0, LIMITS, no_block, |line| line != 7));
    assert_eq!(shape(&planned), vec![(9, Method::Send, 1)]);
    q.take(&planned);
    assert!(matches!(
        q.plan(0, LIMITS, no_block, |line| line != 7),
        Plan::Wait(None)
    ));
    assert_eq!(
        shape(&calls(q.plan(0, LIMITS, no_block, all_open))),
        vec![(7, Method::Send, 1)]
    );
}

#[test]
fn a_request_carries_no_more_server_time_than_its_budget() {
    let mut q = PortalQueue::default();
    // Two chats of 30 sends each, then deletes on another line.
    for i in 0..30 {
        q.push(send(i, 7, "a", 0));
        q.push(send(100 + i, 7, "b", 0));
    }
    for i in 0..40 {
        q.push(delete(200 + i, 9, "c", 0));
    }
    let mut limits = LIMITS;
    limits.linger_ms = 0;
    limits.budget_ms = 20_000.0;
    limits.item_ms[Method::Send.index()] = 1_500.0;
    limits.item_ms[Method::Delete.index()] = 100.0;
    // 13 sends fit in 20 s: all from chat "a" (its oldest first), nothing else.
    let planned = calls(q.plan(0, limits, no_block, all_open));
    assert_eq!(shape(&planned), vec![(7, Method::Send, 13)]);
    let seqs: Vec<u64> = planned[0].ops.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, (0..13).collect::<Vec<_>>(), "a chat's order is kept");
    q.take(&planned);
    // Cheap sends: both chats and the deletes share one request.
    limits.item_ms[Method::Send.index()] = 10.0;
    let planned = calls(q.plan(0, limits, no_block, all_open));
    let total: usize = planned.iter().map(|c| c.ops.len()).sum();
    assert_eq!(total, 17 + 30 + 40);
    // One item always goes, even when it alone exceeds the budget.
    let mut q = PortalQueue::default();
    q.push(send(1, 7, "a", 0));
    q.push(send(2, 7, "a", 0));
    limits.item_ms[Method::Send.index()] = 50_000.0;
    assert_eq!(
        shape(&calls(q.plan(0, limits, no_block, all_open))),
        vec![(7, Method::Send, 1)]
    );
}
