//! Logging: `tracing` with JSON or pretty output to stderr, `RUST_LOG` overriding `log.level`.

use serde::Deserialize;
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt};

/// How log lines are written (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    #[default]
    Pretty,
}

/// The `[log]` section of the settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `cognito_bridge=debug`; `RUST_LOG` wins when
    /// set, not blank and valid.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".to_owned(),
        }
    }
}

/// Targets whose TRACE output carries a request body or what is computed from it, held to
/// DEBUG whatever `RUST_LOG` or `log.level` say, a more specific directive included
/// (`aws_sigv4::http_request=trace`): the AWS SDK's orchestrator logs each outgoing request
/// (today with the body boxed, but a buffered body would print), and `aws_sigv4` logs the
/// canonical request, which holds a hash of the body (and the body itself with
/// `LOG_SIGNABLE_BODY=true`). `AdminInitiateAuth` bodies hold the password.
pub const CAPPED_TARGETS: [&str; 2] = ["aws_smithy_runtime::client::orchestrator", "aws_sigv4"];

/// `directives`, a `tracing` directive list such as `info,sqlx=warn`.
pub fn filter(directives: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    EnvFilter::try_new(directives)
}

/// A second, separate filter: an event passes only if both this and the directives let it,
/// so no directive can lift the caps.
fn caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED_TARGETS.map(|target| (target, LevelFilter::DEBUG)))
}

/// A subscriber with `format` and `directives`, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(
    format: LogFormat,
    directives: &str,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, tracing_subscriber::filter::ParseError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry()
        .with(filter(directives)?)
        .with(caps());
    Ok(match format {
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
        ),
        LogFormat::Pretty => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(writer),
            ),
        ),
    })
}

/// The directives in force: `RUST_LOG` when set, not blank and valid; else `log.level`.
/// A blank `RUST_LOG` counts as unset: as a filter it would be an empty one, which only lets
/// errors through.
fn directives(rust_log: Option<&str>, level: &str) -> String {
    rust_log
        .map(str::trim)
        .filter(|value| !value.is_empty() && filter(value).is_ok())
        .map_or_else(|| level.to_owned(), str::to_owned)
}

/// Install the process-wide subscriber, logging to stderr (stdout is for command output).
/// `RUST_LOG`, when set, not blank and valid, wins over `log.level` (checked at load).
pub fn init(settings: &LogSettings) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let directives = directives(rust_log.as_deref(), &settings.level);
    if let Ok(subscriber) = subscriber(settings.format, &directives, std::io::stderr) {
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
    if rust_log.is_some_and(|value| !value.trim().is_empty() && filter(&value).is_err()) {
        tracing::warn!("RUST_LOG is not a tracing filter; using log.level");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `directives` let through of a few events, as the JSON subscriber writes them.
    fn logged(directives: &str) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber(LogFormat::Json, directives, move || writer.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_sigv4::http_request::sign", "sigv4 canonical request");
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "sdk request");
            tracing::debug!(target: "aws_sigv4::http_request::sign", "sigv4 debug line");
            tracing::trace!(target: "cognito_bridge::hook", "our own trace line");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_sdk_request_and_signing_logs_stay_capped_even_at_trace() {
        for directives in [
            "trace",
            "info,aws_sigv4=trace,aws_smithy_runtime=trace",
            "info,aws_sigv4::http_request::sign=trace,aws_smithy_runtime::client::orchestrator=trace",
        ] {
            let text = logged(directives);
            assert!(
                !text.contains("sigv4 canonical request"),
                "{directives}: {text}"
            );
            assert!(!text.contains("sdk request"), "{directives}: {text}");
            assert!(text.contains("sigv4 debug line"), "{directives}: {text}");
        }
        assert!(logged("trace").contains("our own trace line"));
        assert!(!logged("info").contains("sigv4 debug line"));
        assert!(super::filter("info,,=nonsense[").is_err());
    }

    #[test]
    fn a_blank_or_invalid_rust_log_leaves_log_level_in_force() {
        assert_eq!(directives(None, "info"), "info");
        assert_eq!(directives(Some(""), "info"), "info");
        assert_eq!(directives(Some("  \t"), "warn"), "warn");
        assert_eq!(directives(Some("info,,=nonsense["), "info"), "info");
        assert_eq!(directives(Some(" debug "), "info"), "debug");
        assert_eq!(
            directives(Some("cognito_bridge=trace"), "info"),
            "cognito_bridge=trace"
        );
    }
}
