//! Tests of `signature`: every vector and negative case of messenger-webhooks.md §1.4, plus edges.

mod headers;
mod secrets;

use super::*;

// SW-A: the vector shared by the Python, JS, Go, C#, PHP and Ruby libraries.
const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_A_BARE: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID_A: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS_A: i64 = 1614265330;
const PAYLOAD_A: &[u8] = br#"{"test": 2432232314}"#;
const SIG_A: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// SW-B: the Rust crate's own vector.
const SECRET_B: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const ID_B: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const TS_B: i64 = 1649367553;
const PAYLOAD_B: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const SIG_B: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

fn secret(s: &str) -> WebhookSecret {
    WebhookSecret::parse(s).expect("test secret parses")
}

/// Verifies SW-A's id and payload with the given timestamp and signature header, at `now`.
fn verify_a(timestamp: &str, signature: &str, now: i64) -> Result<(), SignatureError> {
    let headers = ReceivedHeaders {
        id: Some(ID_A),
        timestamp: Some(timestamp),
        signature: Some(signature),
    };
    verify(&secret(SECRET_A), &headers, PAYLOAD_A, now)
}

/// Verifies SW-A's id, timestamp and payload against a signature header, clock pinned at TS_A.
fn verify_a_sig(signature: &str) -> Result<(), SignatureError> {
    verify_a(&TS_A.to_string(), signature, TS_A)
}

/// Verifies SW-B's id, timestamp and payload against a signature header, clock pinned at TS_B.
fn verify_b_sig(signature: &str) -> Result<(), SignatureError> {
    let ts = TS_B.to_string();
    let headers = ReceivedHeaders {
        id: Some(ID_B),
        timestamp: Some(&ts),
        signature: Some(signature),
    };
    verify(&secret(SECRET_B), &headers, PAYLOAD_B, TS_B)
}

// ---- published vectors -------------------------------------------------------------------

#[test]
fn sw_a_signs_to_the_published_signature_with_the_whsec_secret() {
    assert_eq!(sign(&secret(SECRET_A), ID_A, TS_A, PAYLOAD_A), SIG_A);
}

#[test]
fn sw_a_signs_to_the_published_signature_with_the_bare_base64_secret() {
    assert_eq!(sign(&secret(SECRET_A_BARE), ID_A, TS_A, PAYLOAD_A), SIG_A);
}

#[test]
fn sw_a_secret_decodes_to_24_bytes_and_renders_back_with_the_prefix() {
    let s = secret(SECRET_A_BARE);
    assert_eq!(s.key.expose_secret().len(), 24);
    assert_eq!(s.to_whsec(), SECRET_A);
}

#[test]
fn sw_a_published_signature_verifies_with_both_secret_forms() {
    assert_eq!(verify_a_sig(SIG_A), Ok(()));
    let ts = TS_A.to_string();
    let headers = ReceivedHeaders {
        id: Some(ID_A),
        timestamp: Some(&ts),
        signature: Some(SIG_A),
    };
    assert_eq!(
        verify(&secret(SECRET_A_BARE), &headers, PAYLOAD_A, TS_A),
        Ok(())
    );
}

#[test]
fn sw_b_signs_to_the_published_signature() {
    assert_eq!(sign(&secret(SECRET_B), ID_B, TS_B, PAYLOAD_B), SIG_B);
}

#[test]
fn sw_b_published_signature_verifies() {
    assert_eq!(verify_b_sig(SIG_B), Ok(()));
}

#[test]
fn sign_headers_carries_the_id_the_timestamp_and_the_signature() {
    let h = sign_headers(&secret(SECRET_A), ID_A, TS_A, PAYLOAD_A);
    assert_eq!(
        h,
        SignedHeaders {
            id: ID_A.to_owned(),
            timestamp: "1614265330".to_owned(),
            signature: SIG_A.to_owned(),
        }
    );
}

// ---- negative values of the §1.4 table ---------------------------------------------------

#[test]
fn a_one_bit_flip_in_the_last_digest_byte_is_rejected() {
    assert_eq!(
        verify_a_sig("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn a_mangled_unpadded_tail_is_rejected() {
    assert_eq!(
        verify_a_sig("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLawdd"),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn a_short_garbage_signature_is_rejected() {
    assert_eq!(
        verify_a_sig("v1,dawfeoifkpqwoekfpqoekf"),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn an_empty_v1_signature_is_rejected() {
    assert_eq!(
        verify_a_sig("v1,"),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn the_first_eight_characters_of_a_valid_signature_are_rejected() {
    // Both readings of "first 8 characters": of the header value, and of the base64 part.
    assert_eq!(
        verify_a_sig(&SIG_A[..8]),
        Err(SignatureError::NoMatchingSignature)
    );
    assert_eq!(
        verify_a_sig(&format!("v1,{}", &SIG_A[3..11])),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn the_rust_crate_decoy_is_rejected_against_sw_b() {
    assert_eq!(
        verify_b_sig("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU="),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn the_valid_digest_under_the_wrong_version_label_v2_is_rejected() {
    assert_eq!(
        verify_a_sig("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn the_valid_digest_under_the_asymmetric_label_v1a_is_rejected() {
    assert_eq!(
        verify_a_sig("v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn a_token_without_a_comma_is_rejected() {
    assert_eq!(
        verify_a_sig("invalid_signature"),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn a_v1_token_with_a_non_base64_value_is_rejected() {
    assert_eq!(
        verify_a_sig("v1,invalid_signature"),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn a_non_canonical_encoding_of_the_valid_digest_is_rejected() {
    // `…NIOLJ1OF=` differs from `…NIOLJ1OE=` only in trailing bits a lenient decoder drops.
    let non_canonical = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=";
    assert!(STANDARD.decode(non_canonical).is_err());
    assert_eq!(
        verify_a_sig(&format!("v1,{non_canonical}")),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn a_valid_signature_among_decoys_of_several_versions_is_accepted() {
    let decoy = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    let header = format!("v1,{decoy} v2,{decoy} {SIG_A} v1,{decoy}");
    assert_eq!(verify_a_sig(&header), Ok(()));
}

#[test]
fn the_rust_crate_multi_signature_header_is_accepted_with_the_valid_one() {
    let header = format!(
        "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= {SIG_B} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
    );
    assert_eq!(verify_b_sig(&header), Ok(()));
}

#[test]
fn the_rust_crate_multi_signature_header_is_rejected_without_the_valid_one() {
    let header = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=";
    assert_eq!(
        verify_b_sig(header),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn empty_and_garbage_tokens_are_skipped_rather_than_failing_the_request() {
    let header = format!("  v1, garbage ,,, v1,!!!! {SIG_A} ");
    assert_eq!(verify_a_sig(&header), Ok(()));
}

// ---- round trips -------------------------------------------------------------------------

#[test]
fn sign_then_verify_round_trips_and_any_change_breaks_it() {
    let s = WebhookSecret::generate();
    let now = 1_700_000_000;
    let body = br#"{"type":"message.created","data":{}}"#;
    let h = sign_headers(&s, "msg_roundtrip", now, body);
    assert_eq!(verify(&s, &h.as_received(), body, now), Ok(()));

    let other_body = br#"{"type":"message.created","data":{} }"#;
    assert_eq!(
        verify(&s, &h.as_received(), other_body, now),
        Err(SignatureError::NoMatchingSignature)
    );
    let other_id = ReceivedHeaders {
        id: Some("msg_other"),
        ..h.as_received()
    };
    assert_eq!(
        verify(&s, &other_id, body, now),
        Err(SignatureError::NoMatchingSignature)
    );
    assert_eq!(
        verify(&WebhookSecret::generate(), &h.as_received(), body, now),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn payloads_are_raw_bytes_and_need_not_be_utf8() {
    let s = WebhookSecret::generate();
    let body = [0xff, 0xfe, 0x00, b'.', 0x80];
    let h = sign_headers(&s, "msg_bin", 42, &body);
    assert_eq!(verify(&s, &h.as_received(), &body, 42), Ok(()));
}

#[test]
fn a_secret_survives_the_whsec_round_trip_with_the_same_signatures() {
    let s = WebhookSecret::generate();
    let again = secret(&s.to_whsec());
    assert_eq!(
        sign(&s, ID_A, TS_A, PAYLOAD_A),
        sign(&again, ID_A, TS_A, PAYLOAD_A)
    );
}

#[test]
fn errors_display_without_revealing_anything_secret() {
    assert_eq!(
        SignatureError::MissingHeader(HEADER_SIGNATURE).to_string(),
        "missing header webhook-signature"
    );
    assert_eq!(SecretError::Empty.to_string(), "webhook secret is empty");
}
