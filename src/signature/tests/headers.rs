//! Timestamp window and missing-header checks.

use super::*;

// ---- timestamps --------------------------------------------------------------------------

#[test]
fn a_non_integer_timestamp_is_rejected() {
    for ts in [
        "hello",
        "161426533.0",
        "1614265330.0",
        "+1614265330",
        " 1614265330",
        "1614265330 ",
        "1e9",
        "-",
        "99999999999999999999",
    ] {
        assert_eq!(
            verify_a(ts, SIG_A, TS_A),
            Err(SignatureError::InvalidTimestamp),
            "{ts:?}"
        );
    }
}

#[test]
fn the_published_signature_is_accepted_exactly_300_seconds_either_side() {
    let ts = TS_A.to_string();
    assert_eq!(verify_a(&ts, SIG_A, TS_A + TOLERANCE_SECS), Ok(()));
    assert_eq!(verify_a(&ts, SIG_A, TS_A - TOLERANCE_SECS), Ok(()));
}

#[test]
fn the_published_signature_is_rejected_301_seconds_either_side() {
    let ts = TS_A.to_string();
    assert_eq!(
        verify_a(&ts, SIG_A, TS_A + 301),
        Err(SignatureError::TimestampTooOld)
    );
    assert_eq!(
        verify_a(&ts, SIG_A, TS_A - 301),
        Err(SignatureError::TimestampInFuture)
    );
}

#[test]
fn freshly_signed_requests_at_the_window_edges_follow_the_same_boundaries() {
    let s = WebhookSecret::generate();
    let now = 1_700_000_000;
    let check = |ts: i64| {
        verify(
            &s,
            &sign_headers(&s, "msg_x", ts, b"{}").as_received(),
            b"{}",
            now,
        )
    };
    assert_eq!(check(now - 300), Ok(()));
    assert_eq!(check(now + 300), Ok(()));
    assert_eq!(check(now - 301), Err(SignatureError::TimestampTooOld));
    assert_eq!(check(now + 301), Err(SignatureError::TimestampInFuture));
}

#[test]
fn extreme_timestamps_do_not_overflow() {
    assert_eq!(
        verify_a(&i64::MIN.to_string(), SIG_A, TS_A),
        Err(SignatureError::TimestampTooOld)
    );
    assert_eq!(
        verify_a(&i64::MAX.to_string(), SIG_A, TS_A),
        Err(SignatureError::TimestampInFuture)
    );
    assert_eq!(
        verify_a(&TS_A.to_string(), SIG_A, i64::MIN),
        Err(SignatureError::TimestampInFuture)
    );
}

#[test]
fn the_window_is_checked_before_the_signature() {
    assert_eq!(
        verify_a(&TS_A.to_string(), "v1,AAAA", TS_A + 1000),
        Err(SignatureError::TimestampTooOld)
    );
}

#[test]
fn the_mac_covers_the_timestamp_exactly_as_received() {
    // Same integer, different text: the sender signed "1614265330", not "01614265330".
    assert_eq!(
        verify_a("01614265330", SIG_A, TS_A),
        Err(SignatureError::NoMatchingSignature)
    );
}

// ---- missing headers ---------------------------------------------------------------------

#[test]
fn each_missing_header_is_named() {
    let ts = TS_A.to_string();
    let full = ReceivedHeaders {
        id: Some(ID_A),
        timestamp: Some(&ts),
        signature: Some(SIG_A),
    };
    let s = secret(SECRET_A);
    let cases = [
        (ReceivedHeaders { id: None, ..full }, HEADER_ID),
        (
            ReceivedHeaders {
                timestamp: None,
                ..full
            },
            HEADER_TIMESTAMP,
        ),
        (
            ReceivedHeaders {
                signature: None,
                ..full
            },
            HEADER_SIGNATURE,
        ),
    ];
    for (headers, name) in cases {
        assert_eq!(
            verify(&s, &headers, PAYLOAD_A, TS_A),
            Err(SignatureError::MissingHeader(name))
        );
    }
    assert_eq!(
        verify(&s, &ReceivedHeaders::default(), PAYLOAD_A, TS_A),
        Err(SignatureError::MissingHeader("webhook-id"))
    );
}

#[test]
fn each_empty_header_counts_as_missing() {
    let ts = TS_A.to_string();
    let full = ReceivedHeaders {
        id: Some(ID_A),
        timestamp: Some(&ts),
        signature: Some(SIG_A),
    };
    let s = secret(SECRET_A);
    let cases = [
        (
            ReceivedHeaders {
                id: Some(""),
                ..full
            },
            "webhook-id",
        ),
        (
            ReceivedHeaders {
                timestamp: Some(""),
                ..full
            },
            "webhook-timestamp",
        ),
        (
            ReceivedHeaders {
                signature: Some(""),
                ..full
            },
            "webhook-signature",
        ),
    ];
    for (headers, name) in cases {
        assert_eq!(
            verify(&s, &headers, PAYLOAD_A, TS_A),
            Err(SignatureError::MissingHeader(name))
        );
    }
}
