//! Portals that installed the app, and their OAuth tokens.

use super::codec::{decode, encode};
use super::{Data, PortalRecord, PortalStatus, StoreError, trees};

/// A portal's new tokens from its authorization server.
pub struct RotatedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: i64,
    /// The portal's (REST address, host) as the authorization server gave them.
    pub client_endpoint: Option<(String, String)>,
}

impl Data {
    /// The portal with this member_id, installed or not.
    pub fn portal(&self, member_id: &str) -> Result<Option<PortalRecord>, StoreError> {
        self.portals
            .get(member_id)?
            .map(|v| decode(trees::MEMBERID_PORTAL, &v))
            .transpose()
    }

    /// Every known portal.
    pub fn portals(&self) -> Result<Vec<PortalRecord>, StoreError> {
        self.portals
            .iter()
            .values()
            .map(|v| decode(trees::MEMBERID_PORTAL, &v?))
            .collect()
    }

    /// Insert or replace a portal record (call inside `Store::commit`).
    pub fn put_portal(&self, portal: &PortalRecord) -> Result<(), StoreError> {
        self.portals
            .insert(portal.member_id.as_bytes(), encode(portal))?;
        Ok(())
    }

    /// Record that setup completed for the current installation (unless it was replaced or
    /// uninstalled meanwhile: `installed_at_ms` identifies the installation).
    pub fn mark_setup(
        &self,
        member_id: &str,
        installed_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let Some(old) = self.portals.get(member_id)? else {
            return Ok(false);
        };
        let mut portal: PortalRecord = decode(trees::MEMBERID_PORTAL, &old)?;
        if portal.status != PortalStatus::Installed || portal.installed_at_ms != installed_at_ms {
            return Ok(false);
        }
        portal.setup_at_ms = Some(now_ms);
        Ok(self
            .portals
            .compare_and_swap(member_id, Some(old), Some(encode(&portal)))?
            .is_ok())
    }

    /// Record the portal's chat-bot (None: no bot).
    pub fn set_bot(&self, member_id: &str, bot_id: Option<u64>) -> Result<(), StoreError> {
        if let Some(mut portal) = self.portal(member_id)? {
            portal.bot_id = bot_id;
            self.put_portal(&portal)?;
        }
        Ok(())
    }

    /// Replace a portal's tokens after an OAuth refresh, unless the portal changed meanwhile
    /// (compare-and-swap on the refresh token that was used). The authorization server's
    /// `client_endpoint`, when given, replaces the stored address (the portal moved).
    pub fn rotate_tokens(
        &self,
        member_id: &str,
        used_refresh_token: &str,
        fresh: &RotatedTokens,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let Some(old) = self.portals.get(member_id)? else {
            return Ok(false);
        };
        let mut portal: PortalRecord = decode(trees::MEMBERID_PORTAL, &old)?;
        if portal.refresh_token != used_refresh_token || portal.status != PortalStatus::Installed {
            return Ok(false);
        }
        portal.access_token = fresh.access_token.clone();
        portal.refresh_token = fresh.refresh_token.clone();
        portal.expires_at = fresh.expires_at;
        if let Some((endpoint, domain)) = &fresh.client_endpoint {
            portal.client_endpoint = endpoint.clone();
            portal.domain = domain.clone();
        }
        portal.updated_at_ms = now_ms;
        Ok(self
            .portals
            .compare_and_swap(member_id, Some(old), Some(encode(&portal)))?
            .is_ok())
    }

    /// Mark the portal as needing a reinstall (its refresh token was refused for good), unless
    /// it was reinstalled meanwhile (compare on the refresh token that was refused).
    pub fn mark_needs_reinstall(
        &self,
        member_id: &str,
        refused_refresh_token: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let Some(old) = self.portals.get(member_id)? else {
            return Ok(false);
        };
        let mut portal: PortalRecord = decode(trees::MEMBERID_PORTAL, &old)?;
        if portal.refresh_token != refused_refresh_token {
            return Ok(false);
        }
        portal.needs_reinstall = Some(reason.to_string());
        portal.updated_at_ms = now_ms;
        Ok(self
            .portals
            .compare_and_swap(member_id, Some(old), Some(encode(&portal)))?
            .is_ok())
    }
}
