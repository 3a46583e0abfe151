use super::*;

fn op(seq: u64, attempts: u32) -> Op {
    let mut op = crate::outbox::execute::tests::op(seq, "c", &format!("m{seq}"));
    op.attempts = attempts;
    op
}

#[test]
fn every_op_counts_an_attempt_and_only_retries_are_written_ahead() {
    let mut calls = vec![Call {
        line: 7,
        method: Method::Delete,
        ops: vec![op(1, 0), op(2, 1), op(3, 4)],
    }];
    let ahead = count_attempt(&mut calls);
    let counted: Vec<u32> = calls[0].ops.iter().map(|o| o.attempts).collect();
    assert_eq!(counted, vec![1, 2, 5]);
    let ahead: Vec<(u64, u32)> = ahead.iter().map(|o| (o.seq, o.attempts)).collect();
    assert_eq!(
        ahead,
        vec![(2, 2), (3, 5)],
        "a first attempt is not written ahead"
    );
}
