//! TLS for outgoing HTTPS: reqwest is built with rustls but without a bundled crypto provider
//! (no aws-lc C build); this installs ring as the process default, once.

/// Install ring as rustls' process-wide crypto provider (idempotent).
pub fn install_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
