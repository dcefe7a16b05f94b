//! `cognito-bridge serve` as a child process, configured only by `COGNITO_BRIDGE__…`
//! environment keys, with what load runs read from `/proc`: resident memory and CPU time.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::raw_http::{self, RawClient};
use crate::process;

/// How often readiness is polled while the server starts.
const READY_POLL: Duration = Duration::from_millis(2);

/// When the server answered after its spawn.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// First HTTP answer of any status to `GET /health/ready` (the socket is served).
    pub first_answer: Duration,
    /// First `200` from `GET /health/ready` (database and Cognito checked).
    pub ready: Duration,
}

pub struct BridgeProcess {
    child: Child,
    pub pid: u32,
    pub address: SocketAddr,
    spawned: Instant,
    log: PathBuf,
}

/// A free loopback port: bound, then released for the child to bind.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

impl BridgeProcess {
    /// Spawn `binary serve` in `dir` (its log goes to `dir/<log_name>`) with a clean
    /// environment: `PATH`, dummy AWS credentials, `server.listen` on a free port, and
    /// `env` (`COGNITO_BRIDGE__…` keys). Killed when dropped.
    pub fn spawn(binary: &Path, dir: &Path, log_name: &str, env: &[(String, String)]) -> Self {
        let port = free_port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join(log_name);
        let log_file = std::fs::File::create(&log).expect("create the server's log file");
        // Absolute: the child runs in `dir`, where a relative path would not resolve.
        let binary = std::path::absolute(binary).expect("an absolute path to the binary");
        let listen = address.to_string();
        let environment: Vec<(&str, &str)> = [
            ("AWS_ACCESS_KEY_ID", "load-test"),
            ("AWS_SECRET_ACCESS_KEY", "load-test"),
            ("COGNITO_BRIDGE__SERVER__LISTEN", listen.as_str()),
        ]
        .into_iter()
        .chain(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
        let mut command = Command::from(process::command(binary, dir, &["serve"], &environment));
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file handle"))
            .stderr(log_file)
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = command.spawn().expect("start cognito-bridge serve");
        let pid = child.id().expect("a running child has a pid");
        Self {
            child,
            pid,
            address,
            spawned,
            log,
        }
    }

    /// Poll `GET /health/ready` every 2 ms until it answers 200; times are from the spawn.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Startup, String> {
        let request = raw_http::get(self.address, "/health/ready");
        let mut first_answer = None;
        loop {
            // A fresh connection each time: the listener may not exist yet.
            let client = RawClient::new(self.address);
            if let Ok(response) = client.send(&request).await {
                let at = self.spawned.elapsed();
                let first = *first_answer.get_or_insert(at);
                if response.status == 200 {
                    return Ok(Startup {
                        first_answer: first,
                        ready: at,
                    });
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "cognito-bridge serve exited with {status} before it was ready:\n{}",
                    self.log_tail(40)
                ));
            }
            if self.spawned.elapsed() > timeout {
                return Err(format!(
                    "cognito-bridge serve was not ready within {timeout:?}:\n{}",
                    self.log_tail(40)
                ));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `VmRSS` in KiB (`None` once the process is gone).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib_of(self.pid)
    }

    /// `VmHWM` (peak resident memory) in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_field(self.pid, "VmHWM:")
    }

    /// User + system CPU time so far.
    pub fn cpu(&self) -> Duration {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map(|stat| cpu_of_stat(&stat))
            .unwrap_or_default()
    }

    /// Kill (SIGKILL) and reap.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `VmRSS` of process `pid` in KiB (`None` once the process is gone).
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Threads of process `pid` (a SQLite connection is one thread in sqlx).
pub fn threads_of(pid: u32) -> Option<u64> {
    status_field(pid, "Threads:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Clock ticks per second, for the times in `/proc/*/stat` (100 on every Linux we meet).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `utime + stime` of a `/proc/<pid>/stat` line.
fn cpu_of_stat(stat: &str) -> Duration {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    // After `(comm)`: state(3) ppid … utime(14) stime(15): indices 11 and 12 here.
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks_cached())
}

fn clock_ticks_cached() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(clock_ticks)
}

/// This process's own user + system CPU time so far (the generator and the fake).
pub fn own_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .map(|stat| cpu_of_stat(&stat))
        .unwrap_or_default()
}

/// CPU time of this process's threads whose name starts with `prefix` (from `schedstat`,
/// in ns): e.g. the fake's thread.
pub fn threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim().starts_with(prefix))
        })
        .filter_map(|task| {
            std::fs::read_to_string(task.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

/// CPU time the whole machine has spent idle (`idle` + `iowait` of `/proc/stat`'s `cpu`
/// line), summed over cores. Busy time is `cores × wall − idle`: on this project's VMs the
/// busy columns (`user`, `system`, …) lose most of their ticks, while idle time is measured
/// exactly (a 500/s run: the server alone used 0.45 cores by its `schedstat`, `user + system`
/// showed 0.04).
pub fn machine_idle() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Duration::ZERO;
    };
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return Duration::ZERO;
    };
    let ticks: u64 = line
        .split_whitespace()
        .skip(4)
        .take(2)
        .filter_map(|value| value.parse::<u64>().ok())
        .sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_cached())
}

/// User + system CPU time of every running process whose name (`comm`) is `name`, e.g. the
/// `postgres` server processes.
pub fn processes_cpu(name: &str) -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            stat.split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .is_some_and(|(comm, _)| comm == name)
        })
        .map(|stat| cpu_of_stat(&stat))
        .sum()
}
