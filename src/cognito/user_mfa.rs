//! One user's second factors, for `plan`: `AdminGetUser` (`UserMFASettingList`, and the
//! legacy `MFAOptions`), under the directory's rate limit and retries. A user deleted since
//! it was listed is an answer (`Gone`), not an error.

use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserOutput;
use aws_sdk_cognitoidentityprovider::types::DeliveryMediumType;

use super::directory::{Directory, DirectoryError};

/// The kinds of second factor a Cognito user can have set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MfaFactors {
    /// `SMS_MFA`, or a legacy `MFAOptions` entry delivered by SMS.
    pub sms: bool,
    /// `SOFTWARE_TOKEN_MFA` (an authenticator app: TOTP).
    pub totp: bool,
    /// `EMAIL_OTP` (Essentials and Plus feature plans).
    pub email: bool,
}

impl MfaFactors {
    pub fn any(&self) -> bool {
        self.sms || self.totp || self.email
    }

    /// What `AdminGetUser` says; an unknown factor name counts toward no kind, but still as
    /// a factor when it is the only one (so a new Cognito factor is not read as "none").
    fn of(output: &AdminGetUserOutput) -> (Self, bool) {
        let mut factors = Self::default();
        let mut unknown = false;
        for setting in output.user_mfa_setting_list() {
            match setting.as_str() {
                "SMS_MFA" => factors.sms = true,
                "SOFTWARE_TOKEN_MFA" => factors.totp = true,
                "EMAIL_OTP" => factors.email = true,
                "" => {}
                _ => unknown = true,
            }
        }
        for option in output.mfa_options() {
            match option.delivery_medium() {
                Some(DeliveryMediumType::Sms) => factors.sms = true,
                Some(DeliveryMediumType::Email) => factors.email = true,
                _ => unknown = true,
            }
        }
        (factors, unknown)
    }
}

/// One user's answer to `AdminGetUser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMfa {
    /// The user's factors (`has_unknown`: a factor this version does not know by name).
    Factors {
        factors: MfaFactors,
        has_unknown: bool,
    },
    /// `UserNotFoundException`: deleted since it was listed.
    Gone,
}

impl UserMfa {
    /// Whether the user has any second factor.
    pub fn has_mfa(&self) -> bool {
        match self {
            Self::Factors {
                factors,
                has_unknown,
            } => factors.any() || *has_unknown,
            Self::Gone => false,
        }
    }
}

impl Directory {
    /// `AdminGetUser` for `username`: its second factors, or `Gone`. Throttling and transient
    /// faults are retried (the directory's backoff); any other refusal is an error naming
    /// `AdminGetUser`.
    pub async fn user_mfa(&self, username: &str) -> Result<UserMfa, DirectoryError> {
        let answer = self
            .call("AdminGetUser", || {
                self.client
                    .admin_get_user()
                    .user_pool_id(&self.user_pool_id)
                    .username(username)
                    .send()
            })
            .await;
        match answer {
            Ok(output) => {
                let (factors, has_unknown) = MfaFactors::of(&output);
                Ok(UserMfa::Factors {
                    factors,
                    has_unknown,
                })
            }
            Err(DirectoryError::Refused { code, .. }) if code == "UserNotFoundException" => {
                Ok(UserMfa::Gone)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cognitoidentityprovider::types::MfaOptionType;

    fn output(settings: &[&str], legacy: &[DeliveryMediumType]) -> AdminGetUserOutput {
        let mut builder = AdminGetUserOutput::builder().username("u");
        for setting in settings {
            builder = builder.user_mfa_setting_list(*setting);
        }
        for medium in legacy {
            builder = builder.mfa_options(
                MfaOptionType::builder()
                    .delivery_medium(medium.clone())
                    .attribute_name("phone_number")
                    .build(),
            );
        }
        builder.build().unwrap()
    }

    #[test]
    fn factors_come_from_the_setting_list_and_the_legacy_options() {
        let none = MfaFactors::of(&output(&[], &[]));
        assert_eq!(none, (MfaFactors::default(), false));
        let both = MfaFactors::of(&output(&["SOFTWARE_TOKEN_MFA", "SMS_MFA"], &[]));
        assert_eq!(
            both.0,
            MfaFactors {
                sms: true,
                totp: true,
                email: false
            }
        );
        let legacy = MfaFactors::of(&output(&[], &[DeliveryMediumType::Sms]));
        assert!(legacy.0.sms && !legacy.0.totp && !legacy.1);
        let email = MfaFactors::of(&output(&["EMAIL_OTP"], &[]));
        assert!(email.0.email && email.0.any());
        let unknown = MfaFactors::of(&output(&["WEB_AUTHN_SOMEDAY"], &[]));
        assert!(!unknown.0.any() && unknown.1);
        assert!(
            UserMfa::Factors {
                factors: unknown.0,
                has_unknown: unknown.1
            }
            .has_mfa()
        );
        assert!(!UserMfa::Gone.has_mfa());
    }
}
