//! The pool itself, for `plan`: `DescribeUserPool` (attributes, sign-in attributes, MFA,
//! Lambda triggers, add-ons, user estimate) and `ListIdentityProviders`, under the directory's
//! rate limit and retries.

use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, LambdaConfigType, SchemaAttributeType, UserPoolType,
};

use super::directory::{Directory, DirectoryError, PoolGroup, every_page};

/// Cognito's largest `ListIdentityProviders` page.
const PROVIDERS_PAGE_SIZE: i32 = 60;

/// `AttributeDataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeKind {
    String,
    Number,
    DateTime,
    Boolean,
}

/// One `SchemaAttributes` entry. Cognito gives the constraints as strings; kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAttribute {
    /// `email`, `custom:tenant`, `dev:custom:x`.
    pub name: String,
    pub kind: AttributeKind,
    pub required: bool,
    pub mutable: bool,
    pub developer_only: bool,
    pub min_length: Option<String>,
    pub max_length: Option<String>,
    pub min_value: Option<String>,
    pub max_value: Option<String>,
}

impl PoolAttribute {
    /// An attribute with no constraints (for tests and hand-built descriptions).
    pub fn new(name: &str, kind: AttributeKind) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            required: false,
            mutable: true,
            developer_only: false,
            min_length: None,
            max_length: None,
            min_value: None,
            max_value: None,
        }
    }

    fn from_sdk(attribute: &SchemaAttributeType) -> Option<Self> {
        let kind = match attribute.attribute_data_type() {
            Some(AttributeDataType::Number) => AttributeKind::Number,
            Some(AttributeDataType::Datetime) => AttributeKind::DateTime,
            Some(AttributeDataType::Boolean) => AttributeKind::Boolean,
            _ => AttributeKind::String,
        };
        let strings = attribute.string_attribute_constraints();
        let numbers = attribute.number_attribute_constraints();
        let owned = |value: Option<&str>| value.map(str::to_owned).filter(|v| !v.is_empty());
        Some(Self {
            name: attribute.name()?.to_owned(),
            kind,
            required: attribute.required().unwrap_or(false),
            mutable: attribute.mutable().unwrap_or(true),
            developer_only: attribute.developer_only_attribute().unwrap_or(false),
            min_length: owned(strings.and_then(|s| s.min_length())),
            max_length: owned(strings.and_then(|s| s.max_length())),
            min_value: owned(numbers.and_then(|n| n.min_value())),
            max_value: owned(numbers.and_then(|n| n.max_value())),
        })
    }
}

/// What `plan` needs to know about the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolDescription {
    pub id: String,
    pub name: String,
    /// `EstimatedNumberOfUsers` (moto: exact).
    pub estimated_users: i64,
    pub attributes: Vec<PoolAttribute>,
    /// `UsernameAttributes`: `email`, `phone_number`.
    pub username_attributes: Vec<String>,
    /// `AliasAttributes`: `email`, `phone_number`, `preferred_username`.
    pub alias_attributes: Vec<String>,
    pub auto_verified_attributes: Vec<String>,
    /// `MfaConfiguration`: `OFF`, `ON`, `OPTIONAL`.
    pub mfa_configuration: String,
    /// An SMS configuration is present (SMS MFA and SMS messages possible).
    pub sms_configured: bool,
    /// Configured Lambda triggers: `LambdaConfig` field name and ARN, in the model's order.
    pub triggers: Vec<(String, String)>,
    /// `UserPoolAddOns.AdvancedSecurityMode` when not `OFF`.
    pub advanced_security: Option<String>,
    /// `ListIdentityProviders`: name and type (`Google`, `SAML`, `OIDC`, …).
    pub identity_providers: Vec<(String, String)>,
    /// `ListGroups` (`Directory::groups`): read by `plan` only, empty otherwise.
    pub groups: Vec<PoolGroup>,
}

/// The configured triggers of `LambdaConfig`, named as the API names them.
fn triggers(config: &LambdaConfigType) -> Vec<(String, String)> {
    let plain = [
        ("PreSignUp", config.pre_sign_up()),
        ("CustomMessage", config.custom_message()),
        ("PostConfirmation", config.post_confirmation()),
        ("PreAuthentication", config.pre_authentication()),
        ("PostAuthentication", config.post_authentication()),
        ("DefineAuthChallenge", config.define_auth_challenge()),
        ("CreateAuthChallenge", config.create_auth_challenge()),
        (
            "VerifyAuthChallengeResponse",
            config.verify_auth_challenge_response(),
        ),
        (
            "PreTokenGeneration",
            config.pre_token_generation().or_else(|| {
                config
                    .pre_token_generation_config()
                    .map(|trigger| trigger.lambda_arn())
            }),
        ),
        ("UserMigration", config.user_migration()),
        (
            "CustomSMSSender",
            config
                .custom_sms_sender()
                .map(|trigger| trigger.lambda_arn()),
        ),
        (
            "CustomEmailSender",
            config
                .custom_email_sender()
                .map(|trigger| trigger.lambda_arn()),
        ),
        ("KMSKeyID", config.kms_key_id()),
        (
            "InboundFederation",
            config
                .inbound_federation()
                .map(|trigger| trigger.lambda_arn()),
        ),
    ];
    plain
        .into_iter()
        .filter_map(|(name, arn)| {
            arn.filter(|arn| !arn.is_empty())
                .map(|arn| (name.to_owned(), arn.to_owned()))
        })
        .collect()
}

impl PoolDescription {
    fn from_sdk(pool: &UserPoolType) -> Self {
        Self {
            id: pool.id().unwrap_or_default().to_owned(),
            name: pool.name().unwrap_or_default().to_owned(),
            estimated_users: i64::from(pool.estimated_number_of_users()),
            attributes: pool
                .schema_attributes()
                .iter()
                .filter_map(PoolAttribute::from_sdk)
                .collect(),
            username_attributes: pool
                .username_attributes()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            alias_attributes: pool
                .alias_attributes()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            auto_verified_attributes: pool
                .auto_verified_attributes()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            mfa_configuration: pool
                .mfa_configuration()
                .map_or("OFF", |mfa| mfa.as_str())
                .to_owned(),
            sms_configured: pool.sms_configuration().is_some(),
            triggers: pool.lambda_config().map(triggers).unwrap_or_default(),
            advanced_security: pool
                .user_pool_add_ons()
                .map(|add_ons| add_ons.advanced_security_mode().as_str().to_owned())
                .filter(|mode| mode != "OFF"),
            identity_providers: Vec::new(),
            groups: Vec::new(),
        }
    }
}

impl Directory {
    /// `DescribeUserPool`, then `ListIdentityProviders` (paged): two or three requests.
    pub async fn describe_pool(&self) -> Result<PoolDescription, DirectoryError> {
        let output = self
            .call("DescribeUserPool", || {
                self.client
                    .describe_user_pool()
                    .user_pool_id(&self.user_pool_id)
                    .send()
            })
            .await?;
        let mut description = output
            .user_pool()
            .map(PoolDescription::from_sdk)
            .unwrap_or_default();
        description.identity_providers = every_page(|next| async move {
            let output = self
                .call("ListIdentityProviders", || {
                    self.client
                        .list_identity_providers()
                        .user_pool_id(&self.user_pool_id)
                        .max_results(PROVIDERS_PAGE_SIZE)
                        .set_next_token(next.clone())
                        .send()
                })
                .await?;
            let providers = output
                .providers()
                .iter()
                .filter_map(|provider| {
                    Some((
                        provider.provider_name()?.to_owned(),
                        provider
                            .provider_type()
                            .map(|kind| kind.as_str().to_owned())
                            .unwrap_or_default(),
                    ))
                })
                .collect();
            Ok((providers, output.next_token().map(str::to_owned)))
        })
        .await?;
        Ok(description)
    }
}
