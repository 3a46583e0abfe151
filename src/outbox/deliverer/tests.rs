use super::*;

#[tokio::test]
async fn a_wake_names_only_the_channels_that_got_a_delivery_once_each() {
    let wakes = DeliveryWakes::default();
    wakes.wake("line1".into());
    wakes.wake("line1".into());
    wakes.wake("line2".into());
    // The notification is stored: a waiter that comes later still wakes.
    wakes.notify.notified().await;
    let mut named: Vec<String> = wakes.take().into_iter().collect();
    named.sort();
    assert_eq!(named, ["line1", "line2"]);
    assert!(
        wakes.take().is_empty(),
        "taken channels are not named again"
    );
}
