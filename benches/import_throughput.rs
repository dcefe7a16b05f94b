//! Import throughput: the release binary's `cognito-bridge import` against the loopback Cognito
//! directory fake and the Kratos admin double, both served from this process. Run with
//! `scripts/bench-import` (or `cargo bench --bench import_throughput`).
//!
//! Per run, for the child process: wall time (spawn to exit, so start-up, migrations and
//! `DescribeUserPool` are in it) → users/s; its CPU (user + system, from this process's
//! `cutime` + `cstime`, which take in a child when it is waited for) → µs per user; its peak
//! RSS (`VmHWM`, polled every 20 ms). Also this process's own CPU in the same window: the
//! two doubles.
//!
//! Runs: unthrottled (`import.list_rate` = 1,000,000) at N/4, N/2 and N users, each
//! `IMPORT_BENCH_REPEATS` times (default 3, medians reported), then once with
//! `import.list_rate` = 30 at N users (single run; ideally 30 pages/s × 60 = 1,800 users/s).
//! N = `$IMPORT_BENCH_USERS` (default 100,000; e.g. 6000 for a quick check);
//! `IMPORT_BENCH_THROTTLED=0` skips the throttled run.
//!
//! Other knobs: `IMPORT_BENCH_COUNTS=100000,1000000` replaces N/4, N/2, N with these counts
//! (the marginal CPU is taken between the smallest and the largest);
//! `IMPORT_BENCH_THROTTLED_USERS` is the throttled run's count (default: the largest);
//! `IMPORT_BENCH_BASELINE=0` skips the SDK listing; `IMPORT_BENCH_BINARIES=a=/path,b=/path`
//! runs these builds instead of this tree's, interleaved (a, b, a, b, … at each count and
//! repeat), for A/B comparisons in one run, with one table each.
//!
//! Baseline, in the same run and interleaved with the unthrottled imports: a fresh fake of the
//! same size listed at full speed straight through the AWS SDK (`ListUsers`, Limit 60), i.e. what the
//! fake and the SDK alone allow; with this process's CPU split into the SDK client (tokio
//! threads) and the fake (its actix threads).

mod support;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{env_number, machine, met};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::Region;
use testkit::doubles::cognito_directory_fake::{CognitoDirectoryFake, DirectoryOptions};
use testkit::doubles::kratos_admin::{AdminDoubleOptions, KratosAdminDouble};
use testkit::process::command_with_test_credentials;

const UNTHROTTLED_RATE: &str = "1000000";
const THROTTLED_RATE: f64 = 30.0;
/// Users per `ListUsers` page (Cognito's maximum, what the import asks for).
const PAGE: f64 = 60.0;
const RSS_POLL: Duration = Duration::from_millis(20);

// Goals of the issue.
const THROTTLED_SHARE_GOAL: f64 = 0.95;
const CPU_PER_USER_GOAL_US: f64 = 50.0;
/// "Flat": peak RSS at the largest count at most this much above the count before.
const RSS_GROWTH_LIMIT: f64 = 0.10;
/// Peak RSS under 100 MB (10^6 bytes) at every count.
const RSS_LIMIT_MIB: f64 = 100.0;

// --- /proc ------------------------------------------------------------------------------------

/// Clock ticks per second, for the times in `/proc/*/stat`.
fn clock_ticks() -> f64 {
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("run getconf CLK_TCK");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("getconf CLK_TCK prints a number")
}

/// The numeric fields of a `stat` file after `(comm)` and `state`: index 0 is field 4 (`ppid`).
fn stat_fields(stat: &str) -> Vec<u64> {
    let (_, rest) = stat.rsplit_once(')').expect("a stat line has (comm)");
    rest.split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect()
}

/// CPU ticks from `/proc/self/stat`.
#[derive(Debug, Clone, Copy)]
struct ProcessTimes {
    /// `utime` + `stime`: this process (the doubles, the SDK client).
    own: u64,
    /// `cutime` + `cstime`: children waited for.
    children: u64,
}

fn process_times() -> ProcessTimes {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // After `state`: ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime(14) stime(15) cutime(16) cstime(17): indices 10..=13 once `state` is skipped.
    let fields = stat_fields(&stat);
    ProcessTimes {
        own: fields[10] + fields[11],
        children: fields[12] + fields[13],
    }
}

/// CPU time of each of this process's threads (`schedstat`'s run time, in ns), with its name.
fn thread_cpu() -> HashMap<u32, (String, u64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return HashMap::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns = schedstat.split_whitespace().next()?.parse().ok()?;
            Some((tid, (name.trim().to_owned(), ns)))
        })
        .collect()
}

/// CPU used since `before` by threads whose name starts with `prefix`, and by the others.
fn thread_cpu_split(before: &HashMap<u32, (String, u64)>, prefix: &str) -> (Duration, Duration) {
    let (mut matching, mut others) = (0, 0);
    for (tid, (name, ns)) in thread_cpu() {
        let used = ns.saturating_sub(before.get(&tid).map_or(0, |(_, ns)| *ns));
        if name.starts_with(prefix) {
            matching += used;
        } else {
            others += used;
        }
    }
    (Duration::from_nanos(matching), Duration::from_nanos(others))
}

/// `VmHWM` of a running process, in KiB (0 once it has exited).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

// --- the runs ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ImportRun {
    users: usize,
    wall: Duration,
    /// The child's CPU (user + system).
    child_cpu: Duration,
    peak_rss_kib: u64,
    /// This process's CPU meanwhile: both doubles.
    doubles_cpu: Duration,
    /// What the import printed about its own run (`… in 12.3 s (8130 users/s) …`).
    summary: String,
}

impl ImportRun {
    fn users_per_s(&self) -> f64 {
        self.users as f64 / self.wall.as_secs_f64()
    }
    fn cpu_us_per_user(&self) -> f64 {
        self.child_cpu.as_secs_f64() * 1e6 / self.users as f64
    }
    fn doubles_us_per_user(&self) -> f64 {
        self.doubles_cpu.as_secs_f64() * 1e6 / self.users as f64
    }
    fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

#[derive(Debug, Clone)]
struct BaselineRun {
    users: usize,
    wall: Duration,
    /// This process's CPU for the SDK client (everything but the fake's actix threads).
    client_cpu: Duration,
    /// The fake's actix threads.
    fake_cpu: Duration,
}

impl BaselineRun {
    fn users_per_s(&self) -> f64 {
        self.users as f64 / self.wall.as_secs_f64()
    }
    fn client_us_per_user(&self) -> f64 {
        self.client_cpu.as_secs_f64() * 1e6 / self.users as f64
    }
    fn fake_us_per_user(&self) -> f64 {
        self.fake_cpu.as_secs_f64() * 1e6 / self.users as f64
    }
}

/// The fake listed at full speed straight through the AWS SDK: the ceiling the import's
/// listing has here.
async fn baseline(users: usize) -> BaselineRun {
    let fake = CognitoDirectoryFake::start(DirectoryOptions::with_users(users)).await;
    let config = aws_sdk_cognitoidentityprovider::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "bench",
        )))
        .http_client(cognito_bridge::cognito::sdk_http_client())
        .endpoint_url(&fake.endpoint)
        .build();
    let client = Client::from_conf(config);

    let before = thread_cpu();
    let started = Instant::now();
    let mut token: Option<String> = None;
    let mut listed = 0;
    loop {
        let page = client
            .list_users()
            .user_pool_id(&fake.user_pool_id)
            .limit(60)
            .set_pagination_token(token.take())
            .send()
            .await
            .expect("ListUsers from the directory fake");
        listed += page.users().len();
        match page.pagination_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    let wall = started.elapsed();
    // The fake serves from its actix threads; the SDK client runs on this runtime's threads.
    let (fake_cpu, client_cpu) = thread_cpu_split(&before, "actix");
    assert_eq!(listed, users, "the baseline listed every user");
    BaselineRun {
        users,
        wall,
        client_cpu,
        fake_cpu,
    }
}

/// One `cognito-bridge import` child against fresh doubles and a fresh SQLite database.
async fn import(binary: &str, users: usize, list_rate: &str, ticks: f64) -> ImportRun {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cognito = CognitoDirectoryFake::start(DirectoryOptions::with_users(users)).await;
    let kratos = KratosAdminDouble::start(AdminDoubleOptions {
        validate_contract: false,
        ..AdminDoubleOptions::default()
    })
    .await;
    let database_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut command = command_with_test_credentials(
        binary,
        dir.path(),
        &["import", "--no-progress"],
        &[
            ("COGNITO_BRIDGE__DATABASE__URL", &database_url),
            (
                "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
                &cognito.user_pool_id,
            ),
            ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", &cognito.endpoint),
            ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
            ("COGNITO_BRIDGE__KRATOS__ADMIN_URL", &kratos.url),
            ("COGNITO_BRIDGE__IMPORT__LIST_RATE", list_rate),
            ("COGNITO_BRIDGE__LOG__LEVEL", "warn"),
        ],
    );
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("create the stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("create the stderr file"));

    let before = process_times();
    let started = Instant::now();
    let mut child = command.spawn().expect("start cognito-bridge");
    let pid = child.id().expect("a running child has a pid");
    let mut peak = 0;
    let mut poll = tokio::time::interval(RSS_POLL);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.expect("wait for cognito-bridge"),
            _ = poll.tick() => peak = peak.max(peak_rss_kib(pid)),
        }
    };
    let wall = started.elapsed();
    let after = process_times();

    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "cognito-bridge import exited with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        kratos.creates(),
        users,
        "the Kratos double holds every user\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("{users} created")),
        "the summary says every user was created: {stdout}"
    );
    assert!(peak > 0, "VmHWM was read at least once");
    let seconds = |ticks_used: u64| Duration::from_secs_f64(ticks_used as f64 / ticks);
    ImportRun {
        users,
        wall,
        child_cpu: seconds(after.children - before.children),
        peak_rss_kib: peak,
        doubles_cpu: seconds(after.own - before.own),
        summary: stdout.lines().next().unwrap_or_default().to_owned(),
    }
}

// --- figures ----------------------------------------------------------------------------------

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Medians of the repeats at one size.
struct ImportRow {
    users: usize,
    runs: usize,
    wall_s: f64,
    users_per_s: f64,
    cpu_us: f64,
    peak_rss_mib: f64,
    doubles_us: f64,
}

fn import_row(runs: &[ImportRun]) -> ImportRow {
    let of = |f: fn(&ImportRun) -> f64| median(runs.iter().map(f).collect());
    ImportRow {
        users: runs[0].users,
        runs: runs.len(),
        wall_s: of(|r| r.wall.as_secs_f64()),
        users_per_s: of(ImportRun::users_per_s),
        cpu_us: of(ImportRun::cpu_us_per_user),
        peak_rss_mib: of(ImportRun::peak_rss_mib),
        doubles_us: of(ImportRun::doubles_us_per_user),
    }
}

/// The builds to run: `(label, path)`; this tree's release build unless
/// `IMPORT_BENCH_BINARIES` names others.
fn binaries() -> Vec<(String, String)> {
    match std::env::var("IMPORT_BENCH_BINARIES") {
        Ok(list) => list
            .split(',')
            .map(|entry| {
                let (label, path) = entry.split_once('=').unwrap_or_else(|| {
                    panic!("IMPORT_BENCH_BINARIES: {entry:?} is not label=/path")
                });
                assert!(
                    std::path::Path::new(path).is_file(),
                    "IMPORT_BENCH_BINARIES: {path} is not a file"
                );
                (label.to_owned(), path.to_owned())
            })
            .collect(),
        // The release build of this tree.
        Err(_) => vec![("this tree".to_owned(), testkit::bridge_binary!().to_owned())],
    }
}

/// The unthrottled counts: `IMPORT_BENCH_COUNTS`, or N/4, N/2, N; ascending.
fn counts(largest: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = match std::env::var("IMPORT_BENCH_COUNTS") {
        Ok(list) => {
            list.split(',')
                .map(|count| {
                    count.trim().replace('_', "").parse().unwrap_or_else(|_| {
                        panic!("IMPORT_BENCH_COUNTS: {count:?} is not a number")
                    })
                })
                .collect()
        }
        Err(_) => vec![largest / 4, largest / 2, largest],
    };
    counts.sort_unstable();
    counts.dedup();
    assert!(
        counts.len() >= 2 && counts[0] > 0,
        "the bench needs two counts above 0 (IMPORT_BENCH_COUNTS or IMPORT_BENCH_USERS ≥ 4)"
    );
    counts
}

fn main() {
    let largest = env_number::<usize>("IMPORT_BENCH_USERS", 100_000);
    let repeats = env_number::<usize>("IMPORT_BENCH_REPEATS", 3).max(1);
    let with_throttled = env_number::<usize>("IMPORT_BENCH_THROTTLED", 1) != 0;
    let with_baseline = env_number::<usize>("IMPORT_BENCH_BASELINE", 1) != 0;
    let sizes = counts(largest);
    let throttled_users = env_number::<usize>(
        "IMPORT_BENCH_THROTTLED_USERS",
        *sizes.last().expect("two counts"),
    );
    let builds = binaries();
    let ticks = clock_ticks();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let bench_started = Instant::now();

    let (imports, baselines, throttled) = runtime.block_on(async {
        // imports[build][size]: the runs.
        let mut imports: Vec<Vec<Vec<ImportRun>>> = vec![vec![Vec::new(); sizes.len()]; builds.len()];
        let mut baselines: Vec<Vec<BaselineRun>> = vec![Vec::new(); sizes.len()];
        for repeat in 1..=repeats {
            for (i, &users) in sizes.iter().enumerate() {
                if with_baseline {
                    let base = baseline(users).await;
                    println!(
                        "[{repeat}/{repeats}] baseline SDK listing {users:>7} users: {:>6.2} s, {:>6.0} users/s, SDK client {:.1} µs/user, fake {:.1} µs/user",
                        base.wall.as_secs_f64(),
                        base.users_per_s(),
                        base.client_us_per_user(),
                        base.fake_us_per_user(),
                    );
                    baselines[i].push(base);
                }
                for (b, (label, binary)) in builds.iter().enumerate() {
                    let run = import(binary, users, UNTHROTTLED_RATE, ticks).await;
                    println!(
                        "[{repeat}/{repeats}] {label}: import unthrottled {users:>7} users: {:>6.2} s, {:>6.0} users/s, CPU {:.1} µs/user, peak RSS {:.1} MiB, doubles {:.1} µs/user | {}",
                        run.wall.as_secs_f64(),
                        run.users_per_s(),
                        run.cpu_us_per_user(),
                        run.peak_rss_mib(),
                        run.doubles_us_per_user(),
                        run.summary,
                    );
                    imports[b][i].push(run);
                }
            }
        }
        let mut throttled = Vec::new();
        if with_throttled {
            for (label, binary) in &builds {
                let run = import(binary, throttled_users, &THROTTLED_RATE.to_string(), ticks).await;
                println!(
                    "[1/1] {label}: import list_rate = 30 {throttled_users:>7} users: {:>6.2} s, {:>6.0} users/s, CPU {:.1} µs/user, peak RSS {:.1} MiB, doubles {:.1} µs/user | {}",
                    run.wall.as_secs_f64(),
                    run.users_per_s(),
                    run.cpu_us_per_user(),
                    run.peak_rss_mib(),
                    run.doubles_us_per_user(),
                    run.summary,
                );
                throttled.push(run);
            }
        }
        (imports, baselines, throttled)
    });
    let total = bench_started.elapsed();
    println!();
    println!(
        "machine: {}; load average {}; bench took {:.0} s",
        machine(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        total.as_secs_f64()
    );
    for (b, (label, binary)) in builds.iter().enumerate() {
        println!();
        println!("=== {label} ({binary})");
        report(&imports[b], &baselines, throttled.get(b), &sizes);
    }
}

/// The plain table, the goals, and the same figures as Markdown, for one build.
fn report(
    imports: &[Vec<ImportRun>],
    baselines: &[Vec<BaselineRun>],
    throttled: Option<&ImportRun>,
    sizes: &[usize],
) {
    let rows: Vec<ImportRow> = imports.iter().map(|runs| import_row(runs)).collect();
    // Users/s, SDK client µs/user, fake µs/user: medians per size (none when skipped).
    let base_rows: Vec<Option<(f64, f64, f64)>> = baselines
        .iter()
        .map(|runs| {
            (!runs.is_empty()).then(|| {
                (
                    median(runs.iter().map(BaselineRun::users_per_s).collect()),
                    median(runs.iter().map(BaselineRun::client_us_per_user).collect()),
                    median(runs.iter().map(BaselineRun::fake_us_per_user).collect()),
                )
            })
        })
        .collect();
    let (small, large) = (&rows[0], &rows[rows.len() - 1]);
    let before_large = &rows[rows.len() - 2];
    // CPU of the users added between the smallest and the largest count: start-up and other
    // fixed costs cancel out.
    let cpu_s = |row: &ImportRow| row.cpu_us * row.users as f64 / 1e6;
    let marginal_cpu_us = (cpu_s(large) - cpu_s(small)) * 1e6 / (large.users - small.users) as f64;
    let worst_cpu = rows
        .iter()
        .map(|r| r.cpu_us)
        .fold(marginal_cpu_us, f64::max);
    let growth = |from: &ImportRow, to: &ImportRow| to.peak_rss_mib / from.peak_rss_mib - 1.0;
    let bytes_per_user = |from: &ImportRow, to: &ImportRow| {
        (to.peak_rss_mib - from.peak_rss_mib) * 1024.0 * 1024.0 / (to.users - from.users) as f64
    };
    let worst_rss = rows.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    let ideal = THROTTLED_RATE * PAGE;
    let spread = |size: usize, f: fn(&ImportRun) -> f64| {
        let values: Vec<f64> = imports[size].iter().map(f).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        (min, max)
    };

    println!(
        "{:<30} {:>7} {:>4} {:>7} {:>8} {:>12} {:>11} {:>9} {:>13}",
        "run",
        "users",
        "runs",
        "wall s",
        "users/s",
        "CPU µs/user",
        "(min–max)",
        "peak MiB",
        "doubles µs/u"
    );
    for (i, (row, base)) in rows.iter().zip(&base_rows).enumerate() {
        if let Some(base) = base {
            println!(
                "{:<30} {:>7} {:>4} {:>7.2} {:>8.0} {:>12} {:>11} {:>9} {:>13}",
                "baseline: SDK ListUsers only",
                row.users,
                row.runs,
                row.users as f64 / base.0,
                base.0,
                format!("{:.1}+{:.1}", base.1, base.2),
                "",
                "-",
                "-",
            );
        }
        let (min, max) = spread(i, ImportRun::cpu_us_per_user);
        println!(
            "{:<30} {:>7} {:>4} {:>7.2} {:>8.0} {:>12.1} {:>11} {:>9.1} {:>13.1}",
            "import, unthrottled",
            row.users,
            row.runs,
            row.wall_s,
            row.users_per_s,
            row.cpu_us,
            format!("{min:.1}–{max:.1}"),
            row.peak_rss_mib,
            row.doubles_us,
        );
    }
    if let Some(run) = throttled {
        println!(
            "{:<30} {:>7} {:>4} {:>7.2} {:>8.0} {:>12.1} {:>11} {:>9.1} {:>13.1}",
            "import, list_rate = 30",
            run.users,
            1,
            run.wall.as_secs_f64(),
            run.users_per_s(),
            run.cpu_us_per_user(),
            "",
            run.peak_rss_mib(),
            run.doubles_us_per_user(),
        );
    }
    println!(
        "(medians over the runs; baseline CPU = SDK client + fake, of this process; import CPU = \
         the child's user + system; doubles = this process meanwhile)"
    );
    println!(
        "marginal CPU per user from {} to {} users: {marginal_cpu_us:.1} µs",
        small.users, large.users
    );

    let mut goals = Vec::new();
    if let Some(run) = throttled {
        let share = run.users_per_s() / ideal;
        goals.push(format!(
            "list_rate = 30: at least 95 % of {} users/s — {} users/s = {:.1} % at {} users — {}",
            thousands(ideal),
            thousands(run.users_per_s()),
            share * 100.0,
            thousands(run.users as f64),
            met(share >= THROTTLED_SHARE_GOAL)
        ));
    }
    let listed = |values: Vec<String>| values.join(" / ");
    goals.push(format!(
        "unthrottled: at most {CPU_PER_USER_GOAL_US:.0} µs CPU per user, marginal included — {} µs at {} users (marginal {marginal_cpu_us:.1} µs) — {}",
        listed(rows.iter().map(|r| format!("{:.1}", r.cpu_us)).collect()),
        listed(sizes.iter().map(|&n| thousands(n as f64)).collect()),
        met(worst_cpu <= CPU_PER_USER_GOAL_US)
    ));
    goals.push(format!(
        "memory under {RSS_LIMIT_MIB:.0} MB and flat (peak RSS at the largest count at most {:.0} % above the one before) — {} MiB at {} users: {:+.1} % from {} to {} ({:.0} bytes per added user) — {}",
        RSS_GROWTH_LIMIT * 100.0,
        listed(rows.iter().map(|r| format!("{:.1}", r.peak_rss_mib)).collect()),
        listed(sizes.iter().map(|&n| thousands(n as f64)).collect()),
        growth(before_large, large) * 100.0,
        thousands(before_large.users as f64),
        thousands(large.users as f64),
        bytes_per_user(before_large, large),
        met(growth(before_large, large) <= RSS_GROWTH_LIMIT && worst_rss * 1.048_576 < RSS_LIMIT_MIB)
    ));
    for goal in &goals {
        println!("goal: {goal}");
    }

    // The same as Markdown, to paste into BENCHMARKS.md.
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| run | users | runs | wall | users/s | CPU per user (min–max) | peak RSS | doubles' CPU per user |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (i, (row, base)) in rows.iter().zip(&base_rows).enumerate() {
        if let Some(base) = base {
            let _ = writeln!(
                md,
                "| baseline: SDK `ListUsers` only | {} | {} | {:.2} s | {} | {:.1} µs SDK client + {:.1} µs fake | — | — |",
                thousands(row.users as f64),
                row.runs,
                row.users as f64 / base.0,
                thousands(base.0),
                base.1,
                base.2,
            );
        }
        let share = base
            .map(|base| {
                format!(
                    " ({:.0} % of the baseline)",
                    row.users_per_s / base.0 * 100.0
                )
            })
            .unwrap_or_default();
        let (min, max) = spread(i, ImportRun::cpu_us_per_user);
        let _ = writeln!(
            md,
            "| import, unthrottled | {} | {} | {:.2} s | {}{share} | {:.1} µs ({min:.1}–{max:.1}) | {:.1} MiB | {:.1} µs |",
            thousands(row.users as f64),
            row.runs,
            row.wall_s,
            thousands(row.users_per_s),
            row.cpu_us,
            row.peak_rss_mib,
            row.doubles_us,
        );
    }
    if let Some(run) = throttled {
        let _ = writeln!(
            md,
            "| import, `list_rate = 30` | {} | 1 | {:.2} s | {} ({:.1} % of {}) | {:.1} µs | {:.1} MiB | {:.1} µs |",
            thousands(run.users as f64),
            run.wall.as_secs_f64(),
            thousands(run.users_per_s()),
            run.users_per_s() / ideal * 100.0,
            thousands(ideal),
            run.cpu_us_per_user(),
            run.peak_rss_mib(),
            run.doubles_us_per_user(),
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Marginal CPU per user from {} to {} users: {marginal_cpu_us:.1} µs.",
        thousands(small.users as f64),
        thousands(large.users as f64)
    );
    let _ = writeln!(md);
    for goal in &goals {
        let _ = writeln!(md, "- {goal}");
    }
    println!();
    println!("Markdown:");
    println!();
    print!("{md}");
}
