//! What PLAN.md says about the users with MFA: its MFA section and its "Does not map" line,
//! with what `hooks.mfa_policy` does to those users.

use std::fmt::Write;

use super::mfa::MfaCount;
use crate::config::Policy;

/// What PLAN.md says about MFA: the count and the policy the hook applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaPlan {
    pub count: MfaCount,
    /// `hooks.mfa_policy`.
    pub policy: Policy,
}

impl Default for MfaPlan {
    fn default() -> Self {
        Self {
            count: MfaCount::NotCounted,
            policy: Policy::Deny,
        }
    }
}

/// "1 user was", "3 users were".
fn users(n: u64) -> String {
    if n == 1 {
        "1 user was".to_owned()
    } else {
        format!("{n} users were")
    }
}

fn policy_name(policy: Policy) -> &'static str {
    match policy {
        Policy::Deny => "deny",
        Policy::Allow => "allow",
    }
}

impl MfaPlan {
    /// PLAN.md's MFA section, after its `MfaConfiguration` line.
    pub fn section(&self) -> String {
        let mut out = String::new();
        match &self.count {
            MfaCount::Off => {
                out.push_str(
                    "Users with a second factor: 0. MFA is off for the pool, so Cognito asks \
                     nobody for one and `hooks.mfa_policy` never applies (no `AdminGetUser` \
                     call was made).\n",
                );
                return out;
            }
            MfaCount::NotCounted => out.push_str(
                "Users with a second factor: not counted (`--mfa-users none`). \
                 `cognito-bridge plan --mfa-users N` reads a random sample of N users with \
                 `AdminGetUser`, `--mfa-users all` every user.\n",
            ),
            MfaCount::Counted(tally) => {
                let _ = write!(out, "Users with a second factor: {}", tally.headline());
                if tally.exact() {
                    let _ = writeln!(
                        out,
                        ": SMS {}, TOTP {}, e-mail OTP {} (one user can have several).",
                        tally.sms, tally.totp, tally.email
                    );
                } else {
                    let _ = writeln!(
                        out,
                        ". In the sample, {} of {} users have one: SMS {}, TOTP {}, e-mail OTP \
                         {} (one user can have several). The sample is drawn uniformly at \
                         random from every listed user; `--mfa-users all` counts exactly.",
                        tally.with_mfa,
                        tally.answered(),
                        tally.sms,
                        tally.totp,
                        tally.email
                    );
                }
                if tally.gone > 0 {
                    let _ = writeln!(
                        out,
                        "{} deleted between the listing and `AdminGetUser` (not counted).",
                        users(tally.gone)
                    );
                }
                if tally.federated > 0 {
                    let _ = writeln!(
                        out,
                        "Federated users (`EXTERNAL_PROVIDER`) not asked, as they have no \
                         password and never reach the hook: {}.",
                        tally.federated
                    );
                }
            }
        }
        out.push('\n');
        out.push_str(&self.consequence("Each of them"));
        out.push('\n');
        out
    }

    /// What the hook does with a user who has a second factor, under the configured policy.
    fn consequence(&self, who: &str) -> String {
        let configured = policy_name(self.policy);
        match self.policy {
            Policy::Deny => format!(
                "{who} gets an MFA challenge from Cognito that the hook cannot pass: under \
                 `hooks.mfa_policy = \"{configured}\"` (the default) the hook refuses them at \
                 their first login through it and they go to `needs_recovery` (their way in is \
                 Kratos's account recovery). With `allow` they would migrate at that login with \
                 the second factor dropped (flagged `mfa_dropped`)."
            ),
            Policy::Allow => format!(
                "{who} gets an MFA challenge from Cognito that the hook cannot pass: under \
                 `hooks.mfa_policy = \"{configured}\"` they migrate at their first login with \
                 the second factor dropped (flagged `mfa_dropped`; a password alone signs them \
                 in until they enrol again in Kratos). With `deny` (the default) they would go \
                 to `needs_recovery`."
            ),
        }
    }

    /// The MFA line of "Does not map", for a pool whose `MfaConfiguration` is not `OFF`.
    pub fn warning(&self, configuration: &str) -> String {
        let mut warning = format!(
            "MFA is {configuration}: second factors do not migrate (Cognito exports no TOTP \
             secrets); users enrol again in Kratos (totp, webauthn, lookup_secret)."
        );
        let who = match &self.count {
            MfaCount::Counted(tally) => format!("Users with one ({})", tally.headline()),
            _ => "Users with one (not counted)".to_owned(),
        };
        let consequence = match self.policy {
            Policy::Deny => {
                "go to `needs_recovery` at their first login through the hook \
                             (`hooks.mfa_policy = \"deny\"`; `allow` would migrate them with \
                             the factor dropped, `mfa_dropped`)"
            }
            Policy::Allow => {
                "migrate at their first login with the factor dropped, \
                              `mfa_dropped` (`hooks.mfa_policy = \"allow\"`; `deny` would send \
                              them to `needs_recovery`)"
            }
        };
        let _ = write!(warning, " {who} {consequence}.");
        warning
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::MfaTally;

    fn tally(users: u64, asked: u64, with_mfa: u64) -> MfaTally {
        MfaTally {
            users,
            asked,
            with_mfa,
            ..MfaTally::default()
        }
    }

    #[test]
    fn the_text_names_the_policy_and_what_happens_to_the_users() {
        let counted = MfaCount::Counted(tally(10, 10, 3));
        let deny = MfaPlan {
            count: counted,
            policy: Policy::Deny,
        };
        let section = deny.section();
        assert!(section.contains("exactly 3 of 10 users"), "{section}");
        assert!(section.contains("`needs_recovery`"), "{section}");
        let warning = deny.warning("OPTIONAL");
        assert!(warning.contains("MFA is OPTIONAL"), "{warning}");
        assert!(
            warning.contains("(exactly 3 of 10 users) go to `needs_recovery`"),
            "{warning}"
        );
        let allow = MfaPlan {
            count: counted,
            policy: Policy::Allow,
        };
        assert!(allow.warning("ON").contains("migrate at their first login"));
        assert!(allow.section().contains("`hooks.mfa_policy = \"allow\"`"));
        let off = MfaPlan {
            count: MfaCount::Off,
            policy: Policy::Deny,
        };
        assert!(off.section().starts_with("Users with a second factor: 0."));
        assert!(MfaPlan::default().section().contains("not counted"));
    }
}
