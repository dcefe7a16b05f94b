//! Admin recovery for `finalize`: `POST /admin/recovery/code` (a code and the link of the
//! recovery flow it belongs to) or `POST /admin/recovery/link` (a link that carries its own
//! token), same request and answer on v1.3.x and v25.4.0+. Kratos sends no e-mail for these:
//! the caller hands them to a mailer. A code or link lets anyone holding it into the account,
//! so it is wrapped as a secret, never logged, and a malformed answer is reported by position
//! only (serde's message may quote it).

use clap::ValueEnum;
use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{ErrorEnvelope, KratosAdmin, KratosError, endpoint, unexpected};

/// Which admin recovery to ask Kratos for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryKind {
    /// A code, valid only in the recovery flow named by the link that comes with it
    /// (Kratos's `code` method; enabled by default).
    Code,
    /// A link with its own token (Kratos's `link` method, which must be enabled).
    Link,
}

impl std::fmt::Display for RecoveryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecoveryKind::Code => "code",
            RecoveryKind::Link => "link",
        })
    }
}

/// What Kratos issued for one identity.
pub struct RecoveryGrant {
    /// The code (`--recovery code` only).
    pub code: Option<SecretString>,
    /// The recovery flow's link (with a code: the flow to type it into).
    pub link: SecretString,
    /// When the code or link expires, as Kratos wrote it (RFC 3339).
    pub expires_at: Option<String>,
}

#[derive(Serialize)]
struct RecoveryRequest<'a> {
    identity_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<&'a str>,
}

#[derive(Deserialize)]
struct RecoveryAnswer {
    #[serde(default)]
    recovery_code: Option<String>,
    recovery_link: String,
    #[serde(default)]
    expires_at: Option<String>,
}

impl KratosAdmin {
    /// A recovery code or link for identity `id`, valid for `expires_in` (Kratos's duration
    /// syntax, e.g. `72h`; `None`: Kratos's configured lifespan). `None` when Kratos has no
    /// such identity.
    pub async fn create_recovery(
        &self,
        kind: RecoveryKind,
        id: &str,
        expires_in: Option<&str>,
    ) -> Result<Option<RecoveryGrant>, KratosError> {
        let url = endpoint(&self.admin_url, &["admin", "recovery", &kind.to_string()]);
        let body = serde_json::to_vec(&RecoveryRequest {
            identity_id: id,
            expires_in,
        })
        .map_err(|error| KratosError::Malformed {
            path: url.path().to_owned(),
            reason: error.to_string(),
        })?;
        let request = self
            .http
            .admin(Method::POST, &url)
            .header("Content-Type", "application/json")
            .body(body);
        let (status, body) = self.http.send(request, &url).await?;
        match status {
            200 | 201 => {}
            // Kratos's JSON 404 is about the identity; a text 404 means no such route.
            404 if serde_json::from_slice::<ErrorEnvelope>(&body).is_ok() => return Ok(None),
            _ => return Err(unexpected("POST", &url, status, &body)),
        }
        let answer: RecoveryAnswer =
            serde_json::from_slice(&body).map_err(|error| KratosError::Malformed {
                path: url.path().to_owned(),
                reason: format!(
                    "not a recovery answer (line {}, column {})",
                    error.line(),
                    error.column()
                ),
            })?;
        drop(body);
        if kind == RecoveryKind::Code && answer.recovery_code.is_none() {
            return Err(KratosError::Malformed {
                path: url.path().to_owned(),
                reason: "no recovery_code in the answer".to_owned(),
            });
        }
        Ok(Some(RecoveryGrant {
            code: answer.recovery_code.map(SecretString::from),
            link: SecretString::from(answer.recovery_link),
            expires_at: answer.expires_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::kratos::fake::{FakeKratos, FakeOptions};
    use crate::kratos::tests::client;

    #[tokio::test]
    async fn codes_come_back_as_secrets_and_a_missing_identity_or_route_is_told_apart() {
        let fake = FakeKratos::start(FakeOptions::legacy()).await;
        let id = fake.insert(serde_json::json!({"traits": {"email": "a@example.com"}}));
        let kratos = client(&fake.url);

        let grant = kratos
            .create_recovery(RecoveryKind::Code, &id, Some("72h"))
            .await
            .unwrap()
            .expect("a code for a stored identity");
        assert_eq!(grant.code.unwrap().expose_secret(), "123456");
        assert!(
            grant
                .link
                .expose_secret()
                .ends_with(&format!("flow=f-{id}"))
        );
        assert_eq!(grant.expires_at.as_deref(), Some("2026-12-04T00:00:00Z"));

        let missing = uuid::Uuid::new_v4().to_string();
        assert!(
            kratos
                .create_recovery(RecoveryKind::Code, &missing, None)
                .await
                .unwrap()
                .is_none(),
            "Kratos's JSON 404: no such identity"
        );
        let no_route = kratos.create_recovery(RecoveryKind::Link, &id, None).await;
        assert!(
            matches!(no_route, Err(KratosError::Status { status: 404, .. })),
            "a text 404 is no such route, not a missing identity"
        );
        let garbled = kratos
            .create_recovery(RecoveryKind::Code, "garbled", None)
            .await
            .err()
            .expect("a malformed answer is an error");
        let message = garbled.to_string();
        assert!(!message.contains("secret-123456"), "{message}");
        assert!(message.contains("line 1"), "{message}");
    }
}
