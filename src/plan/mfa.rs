//! How many users have a second factor, for `PLAN.md`: every user is listed (`ListUsers`,
//! at `import.list_rate`), a uniform random sample of them is drawn on the way (reservoir
//! sampling; `--mfa-users all` keeps everyone) and each sampled user is read with
//! `AdminGetUser` at `--mfa-rate` requests/s. A sample gives an estimate with its Wilson 95 %
//! interval (`sample.rs`). A pool with `MfaConfiguration` `OFF` costs no call at all. What
//! PLAN.md says about the count is in `mfa_text.rs`.
//!
//! Over 400 lines: the scope, the listing's population, the tally with its estimate and the
//! count itself are one flow read top to bottom; about 100 lines of tests follow.

use std::num::NonZeroUsize;
use std::str::FromStr;

use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::sample::{Reservoir, Z_95, wilson};
use crate::cognito::UserMfa;
use crate::cognito::directory::{CognitoUser, Directory, DirectoryError, PAGE_SIZE};

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

/// The users listed, as the sample is drawn from them: federated users are counted apart.
struct Population {
    reservoir: Reservoir<String>,
    federated: u64,
}

impl Population {
    fn new(capacity: usize) -> Self {
        Self {
            reservoir: Reservoir::new(capacity),
            federated: 0,
        }
    }

    fn offer<R: rand::Rng + ?Sized>(&mut self, user: CognitoUser, rng: &mut R) {
        // No password, never at the hook: `hooks.mfa_policy` never applies to them.
        if user.status == "EXTERNAL_PROVIDER" {
            self.federated += 1;
        } else {
            self.reservoir.offer(user.username, rng);
        }
    }

    /// The tally so far (population, federated, asked) and the usernames to ask.
    fn into_sample(self) -> (MfaTally, Vec<String>) {
        let users = self.reservoir.seen();
        let sample = self.reservoir.into_items();
        let tally = MfaTally {
            users,
            federated: self.federated,
            asked: sample.len() as u64,
            ..MfaTally::default()
        };
        (tally, sample)
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
    let mut population = Population::new(capacity);
    let mut token: Option<String> = None;
    loop {
        let page = listing.list_users(token.as_deref(), PAGE_SIZE).await?;
        bar.inc(page.users.len() as u64);
        for user in page.users {
            population.offer(user, &mut rng);
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    let (mut tally, sample) = population.into_sample();
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
    fn federated_users_are_left_out_of_the_population_and_the_sample() {
        let user = |name: &str, status: &str| CognitoUser {
            username: name.to_owned(),
            enabled: true,
            status: status.to_owned(),
            attributes: Vec::new(),
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut population = Population::new(10);
        population.offer(user("a", "CONFIRMED"), &mut rng);
        population.offer(user("google_1", "EXTERNAL_PROVIDER"), &mut rng);
        population.offer(user("b", "FORCE_CHANGE_PASSWORD"), &mut rng);
        population.offer(user("c", "RESET_REQUIRED"), &mut rng);
        let (tally, sample) = population.into_sample();
        assert_eq!(sample, ["a", "b", "c"]);
        assert_eq!((tally.users, tally.federated, tally.asked), (3, 1, 3));
        assert!(tally.exact());
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
}
