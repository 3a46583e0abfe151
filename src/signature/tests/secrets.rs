//! Secret parsing, rendering and masking.

use super::*;

#[test]
fn unpadded_secrets_are_rejected_unlike_the_python_library() {
    for s in [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
    ] {
        assert_eq!(
            WebhookSecret::parse(s).err(),
            Some(SecretError::InvalidBase64),
            "{s}"
        );
    }
}

#[test]
fn a_secret_with_non_canonical_trailing_bits_is_rejected() {
    // "QQ==" is canonical for b"A"; "QR==" carries non-zero trailing bits.
    assert!(WebhookSecret::parse("QQ==").is_ok());
    assert_eq!(
        WebhookSecret::parse("QR==").err(),
        Some(SecretError::InvalidBase64)
    );
}

#[test]
fn an_empty_secret_is_rejected_with_or_without_the_prefix() {
    assert_eq!(WebhookSecret::parse("").err(), Some(SecretError::Empty));
    assert_eq!(
        WebhookSecret::parse("whsec_").err(),
        Some(SecretError::Empty)
    );
    assert_eq!(
        WebhookSecret::from_bytes(Vec::new()).err(),
        Some(SecretError::Empty)
    );
}

#[test]
fn a_secret_is_not_trimmed_and_url_safe_base64_is_refused() {
    for s in [
        " whsec_QQ==",
        "whsec_QQ== ",
        "whsec_QQ==\n",
        "whsec__-8=",
        "WHSEC_QQ==",
    ] {
        assert_eq!(
            WebhookSecret::parse(s).err(),
            Some(SecretError::InvalidBase64),
            "{s:?}"
        );
    }
}

#[test]
fn debug_output_masks_the_key() {
    assert_eq!(format!("{:?}", secret(SECRET_A)), "WebhookSecret(***)");
}

#[test]
fn generated_secrets_are_32_random_bytes_that_render_as_whsec_and_parse_back() {
    let a = WebhookSecret::generate();
    let b = WebhookSecret::generate();
    assert_eq!(a.key.expose_secret().len(), 32);
    assert!(a.to_whsec().starts_with("whsec_"));
    assert_ne!(a.to_whsec(), b.to_whsec());
    assert_eq!(secret(&a.to_whsec()).to_whsec(), a.to_whsec());
}
