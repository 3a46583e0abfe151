//! Single values of the `meta` tree besides the schema version: the key that signs the
//! settings page's action forms (created once per data directory, never rotated by itself).

use sled::Tree;

use super::{Data, StoreError, trees};

/// Length in bytes of the placement signing key.
const PLACEMENT_KEY_LEN: usize = 32;

/// Create the placement signing key if this data directory has none (called by `Store::open`).
pub(super) fn ensure_placement_key(meta: &Tree) -> Result<(), StoreError> {
    if meta.get(trees::META_PLACEMENT_KEY)?.is_some() {
        return Ok(());
    }
    let mut key = [0u8; PLACEMENT_KEY_LEN];
    // The thread RNG is a CSPRNG seeded from the operating system.
    rand::fill(&mut key[..]);
    // Only one process opens a data directory (sled locks it), so no one races this insert.
    meta.insert(trees::META_PLACEMENT_KEY, &key[..])?;
    meta.flush()?;
    Ok(())
}

impl Data {
    /// The random key that signs the CSRF tokens of the connector settings page.
    pub fn placement_key(&self) -> Result<Vec<u8>, StoreError> {
        match self.meta.get(trees::META_PLACEMENT_KEY)? {
            Some(key) if key.len() == PLACEMENT_KEY_LEN => Ok(key.to_vec()),
            _ => Err(StoreError::Corrupt {
                tree: trees::META,
                detail: format!(
                    "{} is missing or not {PLACEMENT_KEY_LEN} bytes",
                    trees::META_PLACEMENT_KEY
                ),
            }),
        }
    }
}

impl Data {
    /// The digest of the Telegram `webhook_secret` the gateway last registered for a channel
    /// (Telegram never shows the secret back, so a change is noticed here).
    pub fn telegram_webhook_digest(&self, channel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(telegram_key(channel))?.map(|v| v.to_vec()))
    }

    /// Record the digest of the secret just registered (call through `Store::commit`).
    pub fn set_telegram_webhook_digest(
        &self,
        channel: &str,
        digest: &[u8],
    ) -> Result<(), StoreError> {
        self.meta.insert(telegram_key(channel), digest)?;
        Ok(())
    }
}

fn telegram_key(channel: &str) -> Vec<u8> {
    format!("{}{channel}", trees::META_TELEGRAM_WEBHOOK_PREFIX).into_bytes()
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[tokio::test]
    async fn the_placement_key_is_made_once_per_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let key = Store::open(dir.path()).unwrap().placement_key().unwrap();
        assert_eq!(key.len(), 32);
        let again = Store::open(dir.path()).unwrap().placement_key().unwrap();
        assert_eq!(again, key, "kept across reopening");
        let other = tempfile::tempdir().unwrap();
        let elsewhere = Store::open(other.path()).unwrap().placement_key().unwrap();
        assert_ne!(elsewhere, key, "random per directory");
    }

    #[tokio::test]
    async fn the_telegram_webhook_digest_is_kept_per_channel() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.telegram_webhook_digest("tg").unwrap(), None);
        store
            .commit(|d| d.set_telegram_webhook_digest("tg", b"digest-1"))
            .await
            .unwrap();
        assert_eq!(
            store.telegram_webhook_digest("tg").unwrap().as_deref(),
            Some(&b"digest-1"[..])
        );
        assert_eq!(store.telegram_webhook_digest("tg2").unwrap(), None);
    }
}
