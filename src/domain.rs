//! Domain types: identifiers, Cognito usernames, passwords and migration states.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use serde::Serialize;
use zeroize::Zeroizing;

/// A plaintext password on its way to Cognito. No `Debug`, no `Display`, no `Serialize`;
/// the bytes are wiped when the value is dropped.
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(value: Zeroizing<String>) -> Self {
        Self(value)
    }

    /// The plaintext, for the one place that hands it to Cognito.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Cognito accepts passwords of at most 256 characters; a longer one cannot match.
    pub fn could_be_cognito_password(&self) -> bool {
        !self.0.is_empty() && self.0.chars().count() <= 256
    }
}

/// A bcrypt hash of a captured password, on its way to Kratos (through the capture outbox at
/// worst). As secret as the password for anyone who can brute-force it: no `Debug`, no
/// `Display`, no `Serialize`; wiped when dropped.
pub struct PasswordHash(Zeroizing<String>);

impl PasswordHash {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The hash, for the one place that writes it (Kratos's admin API, or the outbox row).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Trim and lower-case an identifier or e-mail address for lookups.
pub fn normalize_identifier(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// The address group the per-IP guard counts by: an IPv4 address itself, an IPv6 address's
/// /64 (one subscriber usually holds a whole /64, so counting single v6 addresses would let
/// one client change address per guess). IPv4-mapped v6 addresses count as IPv4.
pub fn ip_group(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let network = Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            );
            format!("{network}/64")
        }
    }
}

/// Keep the first character of the local part and the domain: `a***@example.com`.
pub fn redact(raw: &str) -> String {
    match raw.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => {
            let first: String = raw.chars().take(2).collect();
            format!("{first}***")
        }
    }
}

/// A value Cognito could accept as `USERNAME`: 1 to 128 characters, no whitespace
/// or control characters (Cognito's `[\p{L}\p{M}\p{S}\p{N}\p{P}]+`).
#[derive(Clone, PartialEq, Eq)]
pub struct CognitoUsername(String);

impl CognitoUsername {
    pub fn parse(raw: &str) -> Option<Self> {
        let length = raw.chars().count();
        let well_formed = (1..=128).contains(&length)
            && raw.chars().all(|c| !c.is_whitespace() && !c.is_control());
        well_formed.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl fmt::Debug for CognitoUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CognitoUsername({})", self.redacted())
    }
}

/// Where a user stands in the migration: `pending` (in Kratos, password not captured yet),
/// `migrated`, `needs_recovery` (cannot migrate lazily), `inactive` (disabled in Cognito),
/// `skipped` (no password to migrate: federated users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    Pending,
    Migrated,
    NeedsRecovery,
    Inactive,
    Skipped,
}

impl UserState {
    pub const ALL: [UserState; 5] = [
        UserState::Pending,
        UserState::Migrated,
        UserState::NeedsRecovery,
        UserState::Inactive,
        UserState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Pending => "pending",
            UserState::Migrated => "migrated",
            UserState::NeedsRecovery => "needs_recovery",
            UserState::Inactive => "inactive",
            UserState::Skipped => "skipped",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == raw)
    }
}

/// What one hook call decided, as written to the attempt log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Cognito accepted the password.
    Verified,
    /// Password accepted, MFA not passed, allowed by `hooks.mfa_policy = allow`.
    VerifiedMfaDropped,
    /// Temporary password accepted, allowed by `hooks.temporary_password_policy = allow`.
    VerifiedTemporaryPassword,
    /// `NotAuthorizedException`: wrong password, disabled, locked out or bad secret hash.
    NotAuthorized,
    /// `UserNotFoundException`.
    UnknownUser,
    /// The identifier or password cannot be a Cognito credential; Cognito was not called.
    Unverifiable,
    /// `PasswordResetRequiredException`.
    ResetRequired,
    /// `UserNotConfirmedException`.
    Unconfirmed,
    /// An MFA challenge refused by `hooks.mfa_policy = deny`.
    MfaDenied,
    /// `NEW_PASSWORD_REQUIRED` refused by `hooks.temporary_password_policy = deny`.
    TemporaryPasswordDenied,
    /// A challenge this tool does not know.
    UnexpectedChallenge,
    /// `UserLambdaValidationException`: one of the pool's Lambda triggers (pre-authentication,
    /// user migration, ...) refused this user. It says nothing about our settings, and the
    /// password may have been right.
    RefusedByLambda,
    /// Cognito did not decide within the deadline (throttled, 5xx, timeout, connection error).
    Unavailable,
    /// Cognito rejected our call itself (bad pool, client, region, credentials or permissions).
    Misconfigured,
    /// The brute-force guard refused the attempt before Cognito was asked (403).
    RefusedLocally,
    /// No Cognito capacity (`cognito.max_rps`, `cognito.max_concurrency`) within the deadline.
    OverQuota,
    /// The circuit breaker is open after repeated unavailability; Cognito was not asked.
    CircuitOpen,
    /// The identifier matches several users (a username and another user's e-mail, or an
    /// e-mail two users share); Cognito was not asked, so no one's password is checked for
    /// an identifier that is not theirs alone.
    AmbiguousIdentifier,
    /// The identifier's user belongs to another Kratos identity than the one logging in
    /// (extended body); Cognito was not asked.
    IdentityMismatch,
}

/// How an attempt counts for the brute-force guard (`attempts.guard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardEffect {
    Failure,
    Success,
}

impl GuardEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardEffect::Failure => "failure",
            GuardEffect::Success => "success",
        }
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::VerifiedMfaDropped => "verified_mfa_dropped",
            Outcome::VerifiedTemporaryPassword => "verified_temporary_password",
            Outcome::NotAuthorized => "not_authorized",
            Outcome::UnknownUser => "unknown_user",
            Outcome::Unverifiable => "unverifiable",
            Outcome::ResetRequired => "reset_required",
            Outcome::Unconfirmed => "unconfirmed",
            Outcome::MfaDenied => "mfa_denied",
            Outcome::TemporaryPasswordDenied => "temporary_password_denied",
            Outcome::UnexpectedChallenge => "unexpected_challenge",
            Outcome::RefusedByLambda => "refused_by_lambda",
            Outcome::Unavailable => "unavailable",
            Outcome::Misconfigured => "misconfigured",
            Outcome::RefusedLocally => "refused_locally",
            Outcome::OverQuota => "over_quota",
            Outcome::CircuitOpen => "circuit_open",
            Outcome::AmbiguousIdentifier => "ambiguous_identifier",
            Outcome::IdentityMismatch => "identity_mismatch",
        }
    }

    /// Why a refusal (403) was decided without Cognito for a binding reason, if so: the
    /// answer names it (`reason`).
    pub fn binding_refusal(self) -> Option<&'static str> {
        matches!(
            self,
            Outcome::AmbiguousIdentifier | Outcome::IdentityMismatch
        )
        .then(|| self.as_str())
    }

    /// Whether Kratos may store the password (`200 password_match`).
    pub fn is_match(self) -> bool {
        matches!(
            self,
            Outcome::Verified | Outcome::VerifiedMfaDropped | Outcome::VerifiedTemporaryPassword
        )
    }

    /// Whether Cognito (or our policy) decided; undecided outcomes answer 424.
    pub fn is_decided(self) -> bool {
        !matches!(
            self,
            Outcome::Unavailable
                | Outcome::Misconfigured
                | Outcome::OverQuota
                | Outcome::CircuitOpen
        )
    }

    /// What this outcome means to the brute-force guard: a failed guess counts toward the
    /// limits, a match clears the identifier's count, anything else is neutral (Cognito did
    /// not judge the password, or judged it right but refused for another reason).
    pub fn guard_effect(self) -> Option<GuardEffect> {
        match self {
            Outcome::NotAuthorized | Outcome::UnknownUser | Outcome::Unverifiable => {
                Some(GuardEffect::Failure)
            }
            outcome if outcome.is_match() => Some(GuardEffect::Success),
            _ => None,
        }
    }

    /// Whether Cognito's answer proves the user exists there (a row may be created).
    /// `NotAuthorizedException` does not: app clients that prevent user-existence errors
    /// answer it for unknown users too.
    pub fn proves_user_exists(self) -> bool {
        self.new_state().is_some() || self == Outcome::UnexpectedChallenge
    }

    /// The state the user's row moves to, if this outcome moves it at all.
    pub fn new_state(self) -> Option<UserState> {
        match self {
            Outcome::Verified
            | Outcome::VerifiedMfaDropped
            | Outcome::VerifiedTemporaryPassword => Some(UserState::Migrated),
            Outcome::ResetRequired
            | Outcome::Unconfirmed
            | Outcome::MfaDenied
            | Outcome::TemporaryPasswordDenied => Some(UserState::NeedsRecovery),
            Outcome::NotAuthorized
            | Outcome::UnknownUser
            | Outcome::Unverifiable
            | Outcome::UnexpectedChallenge
            | Outcome::RefusedByLambda
            | Outcome::Unavailable
            | Outcome::Misconfigured
            | Outcome::RefusedLocally
            | Outcome::OverQuota
            | Outcome::CircuitOpen
            | Outcome::AmbiguousIdentifier
            | Outcome::IdentityMismatch => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_trims_and_lowercases() {
        assert_eq!(
            normalize_identifier("  Alice@Example.COM \t"),
            "alice@example.com"
        );
    }

    #[test]
    fn ip_groups_are_v4_addresses_and_v6_slash_64s() {
        let group = |raw: &str| ip_group(raw.parse().unwrap());
        assert_eq!(group("203.0.113.9"), "203.0.113.9");
        assert_eq!(group("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(group("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            group("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "2001:db8:1:2::/64"
        );
        assert_ne!(group("2001:db8:1:3::1"), group("2001:db8:1:2::1"));
    }

    #[test]
    fn redaction_never_shows_the_whole_address() {
        assert_eq!(redact("alice@example.com"), "a***@example.com");
        assert_eq!(redact("bob"), "bo***");
        assert_eq!(redact(""), "***");
    }

    #[test]
    fn cognito_usernames_reject_whitespace_empty_and_overlong() {
        assert!(CognitoUsername::parse("alice@example.com").is_some());
        assert!(CognitoUsername::parse("Ünïcode+tag").is_some());
        assert!(CognitoUsername::parse("").is_none());
        assert!(CognitoUsername::parse(" alice").is_none());
        assert!(CognitoUsername::parse("a b").is_none());
        assert!(CognitoUsername::parse("tab\there").is_none());
        assert!(CognitoUsername::parse(&"x".repeat(128)).is_some());
        assert!(CognitoUsername::parse(&"x".repeat(129)).is_none());
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in UserState::ALL {
            assert_eq!(UserState::parse(state.as_str()), Some(state));
        }
        assert_eq!(UserState::parse("bogus"), None);
    }

    #[test]
    fn only_verified_outcomes_match_and_only_unavailable_ones_are_undecided() {
        assert!(Outcome::Verified.is_match());
        assert!(Outcome::VerifiedMfaDropped.is_match());
        assert!(!Outcome::NotAuthorized.is_match());
        assert!(!Outcome::MfaDenied.is_match());
        assert!(!Outcome::Unavailable.is_decided());
        assert!(!Outcome::Misconfigured.is_decided());
        assert!(Outcome::UnknownUser.is_decided());
    }

    #[test]
    fn a_lambda_refusal_is_decided_neutral_for_the_guard_and_moves_no_one() {
        let refused = Outcome::RefusedByLambda;
        assert_eq!(refused.as_str(), "refused_by_lambda");
        assert!(refused.is_decided() && !refused.is_match());
        // The password may be right: no failure counted, nor a success.
        assert_eq!(refused.guard_effect(), None);
        // A user migration Lambda can refuse users the pool does not have.
        assert!(!refused.proves_user_exists());
        assert_eq!(refused.new_state(), None);
    }
}
