//! Writing a captured hash into the user's Kratos identity (found by our row's id, else by
//! external id or identifier, per Kratos line), for the capture endpoint and the outbox
//! worker alike.

use std::sync::Arc;

use tokio::sync::{Notify, OnceCell};

use crate::config::KratosSettings;
use crate::domain::PasswordHash;
use crate::kratos::{KratosAdmin, KratosError, KratosLine, PasswordWrite};
use crate::metrics::Metrics;
use crate::store::Store;

/// Whose identity a hash goes to.
pub struct Recipient<'a> {
    pub username: &'a str,
    /// Known from our row (the import linked it) or the outbox entry.
    pub identity_id: Option<&'a str>,
    /// The Cognito `sub`, to find the identity when the id is not known.
    pub sub: Option<&'a str>,
    /// Identifiers the identity may sign in with, for v1.3.x's lookup.
    pub identifiers: Vec<&'a str>,
}

/// What a delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Written to this identity.
    Written(String),
    AlreadySet,
    NoIdentity,
}

/// Writes hashes into Kratos, for the capture endpoint and the outbox worker alike.
pub struct Delivery {
    kratos: KratosAdmin,
    line: OnceCell<KratosLine>,
    pub(super) store: Arc<dyn Store>,
    pub(super) metrics: Arc<Metrics>,
    /// Wakes the outbox worker when a hash is queued.
    pub(super) queued: Notify,
}

impl Delivery {
    pub fn new(
        kratos: &KratosSettings,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, KratosError> {
        Ok(Self {
            kratos: KratosAdmin::new(kratos)?,
            line: OnceCell::new(),
            store,
            metrics,
            queued: Notify::new(),
        })
    }

    /// The Kratos line, asked once (and again after a failure).
    async fn line(&self) -> Result<KratosLine, KratosError> {
        self.line
            .get_or_try_init(|| async { Ok(self.kratos.detect_line().await?.0) })
            .await
            .copied()
    }

    /// Find the recipient's identity and write `hash` into it, unless it has a password.
    pub async fn deliver(
        &self,
        recipient: &Recipient<'_>,
        hash: &PasswordHash,
    ) -> Result<Delivered, KratosError> {
        let line = self.line().await?;
        let identity_id = match recipient.identity_id {
            Some(id) => id.to_owned(),
            None => {
                let Some(sub) = recipient.sub else {
                    return Ok(Delivered::NoIdentity);
                };
                match self
                    .kratos
                    .find_user_identity(line, sub, &recipient.identifiers)
                    .await?
                {
                    Some(id) => id,
                    None => return Ok(Delivered::NoIdentity),
                }
            }
        };
        Ok(
            match self
                .kratos
                .write_password_hash(line, &identity_id, hash)
                .await?
            {
                PasswordWrite::Written => Delivered::Written(identity_id),
                PasswordWrite::AlreadySet => Delivered::AlreadySet,
                PasswordWrite::NoIdentity => Delivered::NoIdentity,
            },
        )
    }
}
