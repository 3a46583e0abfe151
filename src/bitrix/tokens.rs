//! Where [`BitrixClient`](super::BitrixClient) reads a portal's address and tokens and records
//! what an authorization server answered: a small service, so that the client does not own the
//! store (the store never depends on this module; the dependency runs one way).

use futures_util::future::BoxFuture;

use super::BitrixError;
use crate::store::portals::RotatedTokens;
use crate::store::{PortalRecord, Store};

/// A portal's credentials, as the client needs them.
pub trait PortalTokens: Send + Sync + 'static {
    /// The portal's record (address, tokens, status), installed or not.
    fn portal(&self, member_id: &str) -> Result<Option<PortalRecord>, BitrixError>;

    /// Record the tokens of a refresh (at `now_ms`), unless the portal's refresh token is no longer
    /// `used_refresh` (another refresh or an install won meanwhile). Durable when it resolves.
    fn rotate(
        &self,
        member_id: &str,
        used_refresh: &str,
        fresh: RotatedTokens,
        now_ms: u64,
    ) -> BoxFuture<'static, Result<(), BitrixError>>;

    /// Record that the portal's authorization was revoked (`reason`, at `now_ms`), unless its refresh token
    /// is no longer `used_refresh`; true when this call marked it. Durable when it resolves.
    fn revoke(
        &self,
        member_id: &str,
        used_refresh: &str,
        reason: &str,
        now_ms: u64,
    ) -> BoxFuture<'static, Result<bool, BitrixError>>;
}

impl PortalTokens for Store {
    fn portal(&self, member_id: &str) -> Result<Option<PortalRecord>, BitrixError> {
        let data: &crate::store::Data = self;
        Ok(data.portal(member_id)?)
    }

    fn rotate(
        &self,
        member_id: &str,
        used_refresh: &str,
        fresh: RotatedTokens,
        now_ms: u64,
    ) -> BoxFuture<'static, Result<(), BitrixError>> {
        let (store, member, used) = (
            self.clone(),
            member_id.to_string(),
            used_refresh.to_string(),
        );
        Box::pin(async move {
            store
                .commit(move |d| d.rotate_tokens(&member, &used, &fresh, now_ms))
                .await?;
            Ok(())
        })
    }

    fn revoke(
        &self,
        member_id: &str,
        used_refresh: &str,
        reason: &str,
        now_ms: u64,
    ) -> BoxFuture<'static, Result<bool, BitrixError>> {
        let (store, member, used, why) = (
            self.clone(),
            member_id.to_string(),
            used_refresh.to_string(),
            reason.to_string(),
        );
        Box::pin(async move {
            Ok(store
                .commit(move |d| d.mark_needs_reinstall(&member, &used, &why, now_ms))
                .await?)
        })
    }
}
