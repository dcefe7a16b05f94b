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
/// "Flat": peak RSS at N at most this much above peak RSS at N/2 (N/4 is printed too).
const RSS_GROWTH_LIMIT: f64 = 0.10;

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
async fn import(users: usize, list_rate: &str, ticks: f64) -> ImportRun {
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
    // The release build of this tree.
    let mut command = command_with_test_credentials(
        testkit::bridge_binary!(),
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

fn main() {
    let largest = env_number::<usize>("IMPORT_BENCH_USERS", 100_000);
    let repeats = env_number::<usize>("IMPORT_BENCH_REPEATS", 3).max(1);
    let with_throttled = env_number::<usize>("IMPORT_BENCH_THROTTLED", 1) != 0;
    assert!(largest >= 4, "IMPORT_BENCH_USERS must be at least 4");
    let sizes = [largest / 4, largest / 2, largest];
    let ticks = clock_ticks();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let bench_started = Instant::now();

    let (imports, baselines, throttled) = runtime.block_on(async {
        let mut imports: Vec<Vec<ImportRun>> = vec![Vec::new(); sizes.len()];
        let mut baselines: Vec<Vec<BaselineRun>> = vec![Vec::new(); sizes.len()];
        for repeat in 1..=repeats {
            for (i, &users) in sizes.iter().enumerate() {
                let base = baseline(users).await;
                println!(
                    "[{repeat}/{repeats}] baseline SDK listing {users:>7} users: {:>6.2} s, {:>6.0} users/s, SDK client {:.1} µs/user, fake {:.1} µs/user",
                    base.wall.as_secs_f64(),
                    base.users_per_s(),
                    base.client_us_per_user(),
                    base.fake_us_per_user(),
                );
                baselines[i].push(base);
                let run = import(users, UNTHROTTLED_RATE, ticks).await;
                println!(
                    "[{repeat}/{repeats}] import unthrottled   {users:>7} users: {:>6.2} s, {:>6.0} users/s, CPU {:.1} µs/user, peak RSS {:.1} MiB, doubles {:.1} µs/user | {}",
                    run.wall.as_secs_f64(),
                    run.users_per_s(),
                    run.cpu_us_per_user(),
                    run.peak_rss_mib(),
                    run.doubles_us_per_user(),
                    run.summary,
                );
                imports[i].push(run);
            }
        }
        let throttled = if with_throttled {
            let run = import(largest, &THROTTLED_RATE.to_string(), ticks).await;
            println!(
                "[1/1] import list_rate = 30   {largest:>7} users: {:>6.2} s, {:>6.0} users/s, CPU {:.1} µs/user, peak RSS {:.1} MiB, doubles {:.1} µs/user | {}",
                run.wall.as_secs_f64(),
                run.users_per_s(),
                run.cpu_us_per_user(),
                run.peak_rss_mib(),
                run.doubles_us_per_user(),
                run.summary,
            );
            Some(run)
        } else {
            None
        };
        (imports, baselines, throttled)
    });
    let total = bench_started.elapsed();
    report(&imports, &baselines, throttled.as_ref(), total);
}

/// The plain table, the goals, and the same figures as Markdown.
fn report(
    imports: &[Vec<ImportRun>],
    baselines: &[Vec<BaselineRun>],
    throttled: Option<&ImportRun>,
    total: Duration,
) {
    let rows: Vec<ImportRow> = imports.iter().map(|runs| import_row(runs)).collect();
    // Users/s, SDK client µs/user, fake µs/user: medians per size.
    let base_rows: Vec<(f64, f64, f64)> = baselines
        .iter()
        .map(|runs| {
            (
                median(runs.iter().map(BaselineRun::users_per_s).collect()),
                median(runs.iter().map(BaselineRun::client_us_per_user).collect()),
                median(runs.iter().map(BaselineRun::fake_us_per_user).collect()),
            )
        })
        .collect();
    let (small, middle, large) = (&rows[0], &rows[1], &rows[2]);
    // CPU of the users added between N/4 and N: start-up and other fixed costs cancel out.
    let cpu_s = |row: &ImportRow| row.cpu_us * row.users as f64 / 1e6;
    let marginal_cpu_us = (cpu_s(large) - cpu_s(small)) * 1e6 / (large.users - small.users) as f64;
    let worst_cpu = rows.iter().map(|r| r.cpu_us).fold(0.0, f64::max);
    let growth = |from: &ImportRow, to: &ImportRow| to.peak_rss_mib / from.peak_rss_mib - 1.0;
    let bytes_per_user = |from: &ImportRow, to: &ImportRow| {
        (to.peak_rss_mib - from.peak_rss_mib) * 1024.0 * 1024.0 / (to.users - from.users) as f64
    };
    let ideal = THROTTLED_RATE * PAGE;

    println!();
    println!(
        "machine: {}; bench took {:.0} s",
        machine(),
        total.as_secs_f64()
    );
    println!(
        "{:<30} {:>7} {:>4} {:>7} {:>8} {:>12} {:>9} {:>13}",
        "run", "users", "runs", "wall s", "users/s", "CPU µs/user", "peak MiB", "doubles µs/u"
    );
    for (row, base) in rows.iter().zip(&base_rows) {
        println!(
            "{:<30} {:>7} {:>4} {:>7.2} {:>8.0} {:>12} {:>9} {:>13}",
            "baseline: SDK ListUsers only",
            row.users,
            row.runs,
            row.users as f64 / base.0,
            base.0,
            format!("{:.1}+{:.1}", base.1, base.2),
            "-",
            "-",
        );
        println!(
            "{:<30} {:>7} {:>4} {:>7.2} {:>8.0} {:>12.1} {:>9.1} {:>13.1}",
            "import, unthrottled",
            row.users,
            row.runs,
            row.wall_s,
            row.users_per_s,
            row.cpu_us,
            row.peak_rss_mib,
            row.doubles_us,
        );
    }
    if let Some(run) = throttled {
        println!(
            "{:<30} {:>7} {:>4} {:>7.2} {:>8.0} {:>12.1} {:>9.1} {:>13.1}",
            "import, list_rate = 30",
            run.users,
            1,
            run.wall.as_secs_f64(),
            run.users_per_s(),
            run.cpu_us_per_user(),
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
            "list_rate = 30: at least 95 % of {} users/s — {} users/s = {:.1} % — {}",
            thousands(ideal),
            thousands(run.users_per_s()),
            share * 100.0,
            met(share >= THROTTLED_SHARE_GOAL)
        ));
    }
    goals.push(format!(
        "unthrottled: at most {CPU_PER_USER_GOAL_US:.0} µs CPU per user — {:.1} / {:.1} / {:.1} µs at {} / {} / {} users (marginal {marginal_cpu_us:.1} µs) — {}",
        small.cpu_us,
        middle.cpu_us,
        large.cpu_us,
        thousands(small.users as f64),
        thousands(middle.users as f64),
        thousands(large.users as f64),
        met(worst_cpu <= CPU_PER_USER_GOAL_US)
    ));
    goals.push(format!(
        "memory flat (peak RSS at N at most {:.0} % above N/2) — {:.1} / {:.1} / {:.1} MiB at {} / {} / {} users: {:+.1} % from N/4 to N/2 ({:.0} bytes per added user), {:+.1} % from N/2 to N ({:.0} bytes per added user) — {}",
        RSS_GROWTH_LIMIT * 100.0,
        small.peak_rss_mib,
        middle.peak_rss_mib,
        large.peak_rss_mib,
        thousands(small.users as f64),
        thousands(middle.users as f64),
        thousands(large.users as f64),
        growth(small, middle) * 100.0,
        bytes_per_user(small, middle),
        growth(middle, large) * 100.0,
        bytes_per_user(middle, large),
        met(growth(middle, large) <= RSS_GROWTH_LIMIT)
    ));
    for goal in &goals {
        println!("goal: {goal}");
    }

    // The same as Markdown, to paste into BENCHMARKS.md.
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| run | users | runs | wall | users/s | CPU per user | peak RSS | doubles' CPU per user |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (row, base) in rows.iter().zip(&base_rows) {
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
        let _ = writeln!(
            md,
            "| import, unthrottled | {} | {} | {:.2} s | {} ({:.0} % of the baseline) | {:.1} µs | {:.1} MiB | {:.1} µs |",
            thousands(row.users as f64),
            row.runs,
            row.wall_s,
            thousands(row.users_per_s),
            row.users_per_s / base.0 * 100.0,
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
