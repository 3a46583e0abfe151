use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn calls_to_one_chat_are_a_second_apart_and_the_bot_keeps_thirty_per_second() {
    let t0 = Instant::now();
    let mut f = Flood::default();
    assert_eq!(f.reserve(Some("a"), t0), t0);
    assert_eq!(f.reserve(Some("a"), t0), t0 + PER_CHAT);
    // Another chat is not held by the wait of chat "a": it takes the first free bot slot.
    let b = f.reserve(Some("b"), t0);
    assert_eq!(b, t0 + PER_BOT);
    let mut g = Flood::default();
    let slots: Vec<_> = (0..31)
        .map(|i| g.reserve(Some(&format!("chat{i}")), t0))
        .collect();
    assert_eq!(
        slots[30] - slots[0],
        PER_BOT * 30,
        "31 calls span 30 spacings"
    );
    assert!(
        PER_BOT * 30 >= Duration::from_secs(1),
        "at most 30 per second"
    );
}

#[test]
fn time_passing_frees_the_slots() {
    let t0 = Instant::now();
    let mut f = Flood::default();
    f.reserve(Some("a"), t0);
    let later = t0 + 2 * PER_CHAT;
    assert_eq!(f.reserve(Some("a"), later), later);
}

#[test]
fn a_429_holds_its_chat_for_retry_after_and_others_go_on() {
    let t0 = Instant::now();
    let mut f = Flood::new(10 * MS, MS);
    f.back_off(Some("a"), t0, Duration::from_secs(3));
    assert_eq!(f.reserve(Some("a"), t0), t0 + Duration::from_secs(3));
    assert_eq!(f.reserve(Some("b"), t0), t0, "other chats go on");
    let mut g = Flood::new(10 * MS, MS);
    g.back_off(None, t0, Duration::from_secs(2));
    assert_eq!(g.reserve(Some("c"), t0), t0 + Duration::from_secs(2));
    // A shorter later retry_after never shortens a longer wait.
    g.back_off(None, t0, Duration::from_secs(1));
    assert!(g.reserve(None, t0) >= t0 + Duration::from_secs(2));
}
