//! The binding rule: which user's password the hook may check, from the user rows a lookup
//! found.

/// What the hook knows about the identity logging in, for finding its Cognito username.
#[derive(Debug, Clone, Copy)]
pub struct UserLookup<'a> {
    /// From an extended body: the Kratos identity being logged in.
    pub identity_id: Option<&'a str>,
    /// From an extended body: that identity's external id (the Cognito `sub`).
    pub external_id: Option<&'a str>,
    /// The identifier as typed, trimmed.
    pub identifier: &'a str,
    /// Trimmed and lower-cased.
    pub normalized_identifier: &'a str,
}

impl UserLookup<'_> {
    fn is_extended(&self) -> bool {
        self.identity_id.is_some() || self.external_id.is_some()
    }
}

/// A user row a lookup found, with what the binding rule checks.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Candidate {
    pub cognito_username: String,
    pub kratos_identity_id: Option<String>,
    pub external_id: Option<String>,
}

/// Whose password the hook may check: the binding rule's verdict ([`Resolution::decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The one user behind the identity logging in.
    User(String),
    /// No user row matches: the identifier as typed goes to Cognito.
    NoMatch,
    /// The identifier matches several users: refused without asking Cognito.
    Ambiguous,
    /// Extended body: the rows found belong to another Kratos identity.
    IdentityMismatch,
}

impl Resolution {
    /// Apply the binding rule to the rows matching a lookup (any order; at most a handful).
    ///
    /// With an extended body, a row carrying the identity id or external id is the user;
    /// ids pointing at two users, or an identifier whose only row carries other ids, is a
    /// mismatch. Otherwise an exact Cognito username wins; else the rows whose normalised
    /// username or *verified* e-mail (import stores no other) equals the identifier must
    /// be exactly one.
    pub fn decide(lookup: &UserLookup<'_>, candidates: &[Candidate]) -> Self {
        if lookup.is_extended()
            && let Some(found) = Self::by_ids(lookup.identity_id, lookup.external_id, candidates)
        {
            return found;
        }
        let by_identifier = match candidates
            .iter()
            .find(|row| row.cognito_username == lookup.identifier)
        {
            Some(exact) => exact,
            None => match candidates {
                [] => return Self::NoMatch,
                [only] => only,
                _ => return Self::Ambiguous,
            },
        };
        // Found by identifier only: a row linked to some identity is not this one's.
        let linked =
            by_identifier.kratos_identity_id.is_some() || by_identifier.external_id.is_some();
        if lookup.is_extended() && linked {
            Self::IdentityMismatch
        } else {
            Self::User(by_identifier.cognito_username.clone())
        }
    }

    /// The rule's id half alone, for Kratos's confirmation hooks (they know the identity,
    /// not what was typed): the one row carrying the identity id or the external id; ids
    /// pointing at two users are a mismatch; no such row, no match.
    pub fn by_identity(
        identity_id: &str,
        external_id: Option<&str>,
        candidates: &[Candidate],
    ) -> Self {
        Self::by_ids(Some(identity_id), external_id, candidates).unwrap_or(Self::NoMatch)
    }

    /// The row carrying either id, a mismatch when they name two rows, `None` when neither.
    fn by_ids(
        identity_id: Option<&str>,
        external_id: Option<&str>,
        candidates: &[Candidate],
    ) -> Option<Self> {
        let same = |stored: &Option<String>, given: Option<&str>| {
            given.is_some() && stored.as_deref() == given
        };
        let mut by_id = candidates.iter().filter(|row| {
            same(&row.kratos_identity_id, identity_id) || same(&row.external_id, external_id)
        });
        match (by_id.next(), by_id.next()) {
            (Some(row), None) => Some(Self::User(row.cognito_username.clone())),
            (Some(_), Some(_)) => Some(Self::IdentityMismatch),
            (None, _) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(username: &str, identity: Option<&str>, sub: Option<&str>) -> Candidate {
        Candidate {
            cognito_username: username.to_owned(),
            kratos_identity_id: identity.map(str::to_owned),
            external_id: sub.map(str::to_owned),
        }
    }

    fn lookup<'a>(
        identifier: &'a str,
        normalized: &'a str,
        identity_id: Option<&'a str>,
        external_id: Option<&'a str>,
    ) -> UserLookup<'a> {
        UserLookup {
            identity_id,
            external_id,
            identifier,
            normalized_identifier: normalized,
        }
    }

    #[test]
    fn default_body_exact_username_wins_else_exactly_one_row() {
        let carol = row("carol@corp.com", Some("id-carol"), Some("sub-carol"));
        let mallory = row("mallory", Some("id-mallory"), Some("sub-mallory"));
        let typed = lookup("carol@corp.com", "carol@corp.com", None, None);
        let user = |name: &str| Resolution::User(name.to_owned());
        // The review's scenario: Mallory's row matches by e-mail, Carol's by username.
        assert_eq!(
            Resolution::decide(&typed, &[mallory.clone(), carol.clone()]),
            user("carol@corp.com")
        );
        // Another spelling matches both, and neither exactly: refused.
        let spelled = lookup("Carol@Corp.com", "carol@corp.com", None, None);
        assert_eq!(
            Resolution::decide(&spelled, &[mallory.clone(), carol.clone()]),
            Resolution::Ambiguous
        );
        assert_eq!(
            Resolution::decide(&spelled, std::slice::from_ref(&carol)),
            user("carol@corp.com")
        );
        assert_eq!(Resolution::decide(&spelled, &[]), Resolution::NoMatch);
    }

    #[test]
    fn extended_body_binds_to_the_identity_being_logged_in() {
        let carol = row("carol@corp.com", Some("id-carol"), Some("sub-carol"));
        let mallory = row("mallory", Some("id-mallory"), Some("sub-mallory"));
        let both = [mallory.clone(), carol.clone()];
        let user = |name: &str| Resolution::User(name.to_owned());
        let as_carol = lookup("carol@corp.com", "carol@corp.com", Some("id-carol"), None);
        assert_eq!(Resolution::decide(&as_carol, &both), user("carol@corp.com"));
        let by_sub = lookup("anything", "anything", None, Some("sub-carol"));
        assert_eq!(Resolution::decide(&by_sub, &both), user("carol@corp.com"));
        // The identifier's only row is another identity's.
        let as_other = lookup(
            "mallory",
            "mallory",
            Some("id-someone"),
            Some("sub-someone"),
        );
        assert_eq!(
            Resolution::decide(&as_other, std::slice::from_ref(&mallory)),
            Resolution::IdentityMismatch
        );
        // Identity id and external id name two different users.
        let split = lookup("x", "x", Some("id-carol"), Some("sub-mallory"));
        assert_eq!(
            Resolution::decide(&split, &both),
            Resolution::IdentityMismatch
        );
        // A row no import linked may still be the user; nothing at all is no match.
        let unlinked = row("dave", None, None);
        let as_dave = lookup("dave", "dave", Some("id-dave"), None);
        assert_eq!(
            Resolution::decide(&as_dave, std::slice::from_ref(&unlinked)),
            user("dave")
        );
        assert_eq!(Resolution::decide(&as_dave, &[]), Resolution::NoMatch);
    }

    #[test]
    fn a_confirmation_binds_by_the_ids_alone() {
        let carol = row("carol", Some("id-carol"), Some("sub-carol"));
        let mallory = row("mallory", Some("id-mallory"), Some("sub-mallory"));
        let unlinked = row("dave", None, None);
        let rows = [carol, mallory, unlinked];
        let user = |name: &str| Resolution::User(name.to_owned());
        assert_eq!(
            Resolution::by_identity("id-carol", None, &rows),
            user("carol")
        );
        assert_eq!(
            Resolution::by_identity("id-new", Some("sub-carol"), &rows),
            user("carol"),
            "the external id finds the row when the identity id is not stored"
        );
        assert_eq!(
            Resolution::by_identity("id-carol", Some("sub-mallory"), &rows),
            Resolution::IdentityMismatch
        );
        // No identifier to fall back on: a row without ids is never this identity's.
        assert_eq!(
            Resolution::by_identity("id-dave", None, &rows),
            Resolution::NoMatch
        );
    }
}
