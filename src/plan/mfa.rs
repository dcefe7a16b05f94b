//! How many users have a second factor, for `PLAN.md`: every user is listed (`ListUsers`,
//! at `import.list_rate`), a uniform random sample of them is drawn on the way (reservoir
//! sampling; `--mfa-users all` keeps everyone) and each sampled user is read with
//! `AdminGetUser` at `--mfa-rate` requests/s. A sample gives an estimate with its Wilson 95 %
//! interval. A pool with `MfaConfiguration` `OFF` costs no call at all.
//!
//! Over 400 lines: the count, its estimate and the text PLAN.md says about it belong
//! together, and about 150 lines of tests of the sampler, the interval and the text follow.

use std::fmt::Write;
use std::num::NonZeroUsize;
use std::str::FromStr;

use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cognito::UserMfa;
use crate::cognito::directory::{Directory, DirectoryError, PAGE_SIZE};
use crate::config::Policy;

/// The default `--mfa-users`: a sample of this many users.
pub const DEFAULT_SAMPLE: usize = 1000;
/// The default `--mfa-rate`: `AdminGetUser` requests/s. The UserRead quota (120/s per account
/// and region) is shared with the apps' `GetUser`, so stay well below it.
pub const DEFAULT_RATE: u32 = 20;
/// Cognito's UserRead quota (AdminGetUser, GetUser): 120 requests/s per account and region.
pub const USER_READ_QUOTA: u32 = 120;
/// `AdminGetUser` calls in flight at once (the rate limit decides the pace; this only hides
/// each call's latency).
const IN_FLIGHT: usize = 4;
/// The normal quantile of a two-sided 95 % interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// Which users `plan` reads with `AdminGetUser` (`--mfa-users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaScope {
    /// Every user: an exact count.
    All,
    /// A uniform random sample of at most this many users (all of them in a smaller pool).
    Sample(NonZeroUsize),
    /// Nobody: not counted.
    None,
}

impl Default for MfaScope {
    fn default() -> Self {
        Self::Sample(NonZeroUsize::new(DEFAULT_SAMPLE).expect("not zero"))
    }
}

impl FromStr for MfaScope {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "all" => Ok(Self::All),
            "none" => Ok(Self::None),
            number => match number.parse::<usize>() {
                Ok(n) => NonZeroUsize::new(n)
                    .map(Self::Sample)
                    .ok_or_else(|| "a sample of 0 users: use `none` to count nobody".to_owned()),
                Err(_) => Err(format!(
                    "`{number}` is not `all`, `none` or a number of users"
                )),
            },
        }
    }
}

impl std::fmt::Display for MfaScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::None => f.write_str("none"),
            Self::Sample(n) => write!(f, "{n}"),
        }
    }
}

/// How `plan` counts the users with MFA.
#[derive(Debug, Clone, Copy)]
pub struct MfaOptions {
    pub scope: MfaScope,
    /// `AdminGetUser` requests per second (`--mfa-rate`).
    pub rate: u32,
    /// Draw a progress bar on standard error (indicatif hides it off a terminal).
    pub progress: bool,
}

impl Default for MfaOptions {
    fn default() -> Self {
        Self {
            scope: MfaScope::default(),
            rate: DEFAULT_RATE,
            progress: false,
        }
    }
}

/// A uniform random sample of at most `capacity` items of a stream of unknown length
/// (Algorithm R): after `n` offers, each item offered is kept with probability
/// `min(1, capacity / n)`.
#[derive(Debug)]
pub struct Reservoir<T> {
    capacity: usize,
    seen: u64,
    items: Vec<T>,
}

impl<T> Reservoir<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: 0,
            items: Vec::new(),
        }
    }

    pub fn offer<R: Rng + ?Sized>(&mut self, item: T, rng: &mut R) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(item);
        } else {
            let slot = rng.random_range(0..self.seen);
            if let Ok(slot) = usize::try_from(slot)
                && slot < self.capacity
            {
                self.items[slot] = item;
            }
        }
    }

    /// How many items were offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

/// The Wilson score interval of a proportion: `successes` of `trials`, at the normal
/// quantile `z`. `(0, 1)` when there are no trials.
pub fn wilson(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// What `AdminGetUser` showed for the users asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MfaTally {
    /// Users listed, federated ones left out: the population.
    pub users: u64,
    /// Federated users (`EXTERNAL_PROVIDER`) listed: no password, never at the hook; not asked.
    pub federated: u64,
    /// Users asked with `AdminGetUser` (all of `users` when exact).
    pub asked: u64,
    /// Asked users Cognito no longer had (`UserNotFoundException`): deleted meanwhile.
    pub gone: u64,
    /// Asked users with at least one second factor.
    pub with_mfa: u64,
    pub sms: u64,
    pub totp: u64,
    pub email: u64,
}

/// An estimate of how many of the population have MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub users: u64,
    pub low: u64,
    pub high: u64,
}

impl MfaTally {
    fn add(&mut self, answer: UserMfa) {
        match answer {
            UserMfa::Gone => self.gone += 1,
            UserMfa::Factors { factors, .. } => {
                if answer.has_mfa() {
                    self.with_mfa += 1;
                }
                self.sms += u64::from(factors.sms);
                self.totp += u64::from(factors.totp);
                self.email += u64::from(factors.email);
            }
        }
    }

    /// Every user was asked: the count is exact.
    pub fn exact(&self) -> bool {
        self.asked >= self.users
    }

    /// Users asked who answered (not gone).
    pub fn answered(&self) -> u64 {
        self.asked - self.gone
    }

    /// The population's size and how many of it have MFA, scaled from the sample with the
    /// Wilson 95 % interval; `None` when no sampled user answered.
    pub fn estimate(&self) -> Option<Estimate> {
        let answered = self.answered();
        if answered == 0 {
            return None;
        }
        let population = self.users as f64;
        let (low, high) = wilson(self.with_mfa, answered, Z_95);
        let share = self.with_mfa as f64 / answered as f64;
        Some(Estimate {
            users: (share * population).round() as u64,
            low: (low * population).floor() as u64,
            high: (high * population).ceil() as u64,
        })
    }

    /// "exactly 3 of 10 users", "about 240 of 1000 users (sample of 100, 95 % interval
    /// 165–333)".
    pub fn headline(&self) -> String {
        if self.exact() {
            return format!(
                "exactly {} of {} users",
                self.with_mfa,
                self.users - self.gone
            );
        }
        match self.estimate() {
            Some(estimate) => format!(
                "about {} of {} users (sample of {}, 95 % interval {}–{})",
                estimate.users,
                self.users,
                self.answered(),
                estimate.low,
                estimate.high
            ),
            None => format!(
                "an unknown number of {} users (every sampled user was deleted meanwhile)",
                self.users
            ),
        }
    }
}

/// The outcome of counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaCount {
    /// `MfaConfiguration` `OFF`: no user can be asked for a second factor; nobody was read.
    Off,
    /// `--mfa-users none`.
    NotCounted,
    Counted(MfaTally),
}

impl MfaCount {
    /// One line for the command's summary.
    pub fn summary(&self) -> String {
        match self {
            Self::Off => "users with MFA: 0 (MfaConfiguration OFF)".to_owned(),
            Self::NotCounted => "users with MFA: not counted (--mfa-users none)".to_owned(),
            Self::Counted(tally) => format!(
                "users with MFA: {} ({} of {} asked have one: SMS {}, TOTP {}, e-mail OTP {}; {} \
                 gone)",
                tally.headline(),
                tally.with_mfa,
                tally.answered(),
                tally.sms,
                tally.totp,
                tally.email,
                tally.gone
            ),
        }
    }
}

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

/// A progress bar on standard error, or a hidden one.
fn progress_bar(enabled: bool, length: u64, template: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    // indicatif draws nothing when standard error is not a terminal.
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Count the users with MFA: nothing for a pool with MFA `OFF` or scope `none`; otherwise
/// every user is listed through `listing` (sampled on the way) and each sampled user asked
/// through `reading` (`AdminGetUser`, at its own rate). `estimated_users` sizes the bar.
pub async fn count(
    listing: &Directory,
    reading: &Directory,
    configuration: &str,
    estimated_users: i64,
    options: &MfaOptions,
) -> Result<MfaCount, DirectoryError> {
    if configuration == "OFF" {
        return Ok(MfaCount::Off);
    }
    let capacity = match options.scope {
        MfaScope::None => return Ok(MfaCount::NotCounted),
        MfaScope::All => usize::MAX,
        MfaScope::Sample(n) => n.get(),
    };
    let bar = progress_bar(
        options.progress,
        u64::try_from(estimated_users).unwrap_or(0),
        "{spinner} listing users for the MFA count: {human_pos}/~{human_len} [{elapsed}]",
    );
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut reservoir = Reservoir::new(capacity);
    let mut federated = 0;
    let mut token: Option<String> = None;
    loop {
        let page = listing.list_users(token.as_deref(), PAGE_SIZE).await?;
        bar.inc(page.users.len() as u64);
        for user in page.users {
            if user.status == "EXTERNAL_PROVIDER" {
                federated += 1;
            } else {
                reservoir.offer(user.username, &mut rng);
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    let mut tally = MfaTally {
        users: reservoir.seen(),
        federated,
        ..MfaTally::default()
    };
    let sample = reservoir.into_items();
    tally.asked = sample.len() as u64;
    let bar = progress_bar(
        options.progress,
        tally.asked,
        "{bar:30} {human_pos}/{human_len} users read (AdminGetUser) [{elapsed}, ~{eta} left]",
    );
    let mut answers = stream::iter(&sample)
        .map(|username| reading.user_mfa(username))
        .buffer_unordered(IN_FLIGHT);
    while let Some(answer) = answers.try_next().await? {
        tally.add(answer);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(MfaCount::Counted(tally))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cognito::MfaFactors;

    #[test]
    fn the_scope_parses_all_none_and_positive_numbers_only() {
        assert_eq!("all".parse(), Ok(MfaScope::All));
        assert_eq!("none".parse(), Ok(MfaScope::None));
        assert_eq!(
            "250".parse(),
            Ok(MfaScope::Sample(NonZeroUsize::new(250).unwrap()))
        );
        assert!("0".parse::<MfaScope>().unwrap_err().contains("none"));
        assert!("-3".parse::<MfaScope>().unwrap_err().contains("-3"));
        assert!("some".parse::<MfaScope>().is_err());
        assert_eq!(
            MfaScope::default(),
            MfaScope::Sample(NonZeroUsize::new(DEFAULT_SAMPLE).unwrap())
        );
    }

    #[test]
    fn a_stream_shorter_than_the_reservoir_is_kept_whole() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut reservoir = Reservoir::new(10);
        for i in 0..6 {
            reservoir.offer(i, &mut rng);
        }
        assert_eq!(reservoir.seen(), 6);
        assert_eq!(reservoir.into_items(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_reservoir_keeps_each_item_with_equal_probability() {
        // 20 items, samples of 5: each item is kept in a quarter of 20,000 draws (5,000;
        // one standard deviation is about 61).
        let mut rng = StdRng::seed_from_u64(42);
        let mut kept = [0u32; 20];
        for _ in 0..20_000 {
            let mut reservoir = Reservoir::new(5);
            for i in 0..20usize {
                reservoir.offer(i, &mut rng);
            }
            assert_eq!(reservoir.seen(), 20);
            let items = reservoir.into_items();
            assert_eq!(items.len(), 5);
            let mut distinct = items.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 5, "{items:?}");
            for item in items {
                kept[item] += 1;
            }
        }
        for (item, count) in kept.iter().enumerate() {
            assert!((4_750..=5_250).contains(count), "item {item}: {count}");
        }
    }

    #[test]
    fn the_wilson_interval_matches_published_values() {
        let close = |(low, high): (f64, f64), (want_low, want_high): (f64, f64)| {
            assert!(
                (low - want_low).abs() < 5e-4 && (high - want_high).abs() < 5e-4,
                "{low} {high} vs {want_low} {want_high}"
            );
        };
        // Newcombe (1998), Statistics in Medicine 17, table I: 81/263, 15/148, 0/20, 1/29.
        close(wilson(81, 263, Z_95), (0.2553, 0.3662));
        close(wilson(15, 148, Z_95), (0.0624, 0.1605));
        close(wilson(0, 20, Z_95), (0.0, 0.1611));
        close(wilson(1, 29, Z_95), (0.0061, 0.1718));
        close(wilson(20, 20, Z_95), (0.8389, 1.0));
        assert_eq!(wilson(0, 0, Z_95), (0.0, 1.0));
    }

    fn tally(users: u64, asked: u64, with_mfa: u64) -> MfaTally {
        MfaTally {
            users,
            asked,
            with_mfa,
            ..MfaTally::default()
        }
    }

    #[test]
    fn an_exact_count_and_a_sampled_estimate_read_differently() {
        let mut exact = tally(10, 10, 3);
        exact.gone = 1;
        assert!(exact.exact());
        assert_eq!(exact.headline(), "exactly 3 of 9 users");

        let sampled = tally(1000, 100, 24);
        assert!(!sampled.exact());
        let estimate = sampled.estimate().unwrap();
        let (low, high) = wilson(24, 100, Z_95);
        assert_eq!(estimate.users, 240);
        assert_eq!(estimate.low, (low * 1000.0).floor() as u64);
        assert_eq!(estimate.high, (high * 1000.0).ceil() as u64);
        assert!(estimate.low < 240 && 240 < estimate.high);
        assert_eq!(
            sampled.headline(),
            format!(
                "about 240 of 1000 users (sample of 100, 95 % interval {}–{})",
                estimate.low, estimate.high
            )
        );
        let mut all_gone = tally(1000, 5, 0);
        all_gone.gone = 5;
        assert_eq!(all_gone.estimate(), None);
        assert!(all_gone.headline().contains("unknown"));
    }

    #[test]
    fn the_tally_counts_factors_by_kind_and_gone_users_apart() {
        let mut tally = MfaTally::default();
        let factors = |sms, totp| UserMfa::Factors {
            factors: MfaFactors {
                sms,
                totp,
                email: false,
            },
            has_unknown: false,
        };
        for answer in [
            factors(true, false),
            factors(true, true),
            factors(false, false),
            UserMfa::Gone,
        ] {
            tally.add(answer);
        }
        assert_eq!(
            (tally.with_mfa, tally.sms, tally.totp, tally.gone),
            (2, 2, 1, 1)
        );
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
