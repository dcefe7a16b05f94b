//! `DescribeUserPool`, as far as `check` needs it: the estimated user count and the pool's
//! Lambda triggers.

use super::directory::{Directory, DirectoryError};

/// What `check` reads of the pool description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolDescription {
    /// `EstimatedNumberOfUsers`: an estimate on real Cognito, exact on moto.
    pub estimated_users: i64,
    /// The `LambdaConfig` triggers set on the pool, by their Cognito names
    /// (`PreSignUp`, `UserMigration`, …), in the model's order.
    pub triggers: Vec<&'static str>,
}

impl Directory {
    /// `DescribeUserPool` (rate-limited and retried like every directory call).
    pub async fn describe_pool(&self) -> Result<PoolDescription, DirectoryError> {
        let output = self
            .call("DescribeUserPool", || {
                self.client
                    .describe_user_pool()
                    .user_pool_id(&self.user_pool_id)
                    .send()
            })
            .await?;
        let Some(pool) = output.user_pool() else {
            return Ok(PoolDescription::default());
        };
        let mut triggers = Vec::new();
        if let Some(config) = pool.lambda_config() {
            let set = |value: Option<&str>| value.is_some_and(|arn| !arn.is_empty());
            for (name, present) in [
                ("PreSignUp", set(config.pre_sign_up())),
                ("CustomMessage", set(config.custom_message())),
                ("PostConfirmation", set(config.post_confirmation())),
                ("PreAuthentication", set(config.pre_authentication())),
                ("PostAuthentication", set(config.post_authentication())),
                ("DefineAuthChallenge", set(config.define_auth_challenge())),
                ("CreateAuthChallenge", set(config.create_auth_challenge())),
                (
                    "VerifyAuthChallengeResponse",
                    set(config.verify_auth_challenge_response()),
                ),
                (
                    "PreTokenGeneration",
                    set(config.pre_token_generation())
                        || config
                            .pre_token_generation_config()
                            .is_some_and(|c| !c.lambda_arn().is_empty()),
                ),
                ("UserMigration", set(config.user_migration())),
                ("CustomSMSSender", config.custom_sms_sender().is_some()),
                ("CustomEmailSender", config.custom_email_sender().is_some()),
                ("KMSKeyID", set(config.kms_key_id())),
                ("InboundFederation", config.inbound_federation().is_some()),
            ] {
                if present {
                    triggers.push(name);
                }
            }
        }
        Ok(PoolDescription {
            estimated_users: i64::from(pool.estimated_number_of_users()),
            triggers,
        })
    }
}
