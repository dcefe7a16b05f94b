//! Logging: `tracing` with JSON or pretty output to stderr, `RUST_LOG` overriding `log.level`.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt};

use crate::config::{LogFormat, LogSettings};

/// Targets whose TRACE output could carry a request body, capped whatever the filter says:
/// the AWS SDK's orchestrator logs each outgoing request (today with the body boxed, but a
/// buffered body would print, and `AdminInitiateAuth` bodies hold the password).
const CAPPED_TARGETS: [&str; 1] = ["aws_smithy_runtime::client::orchestrator=debug"];

/// `filter` (a `tracing` directive list such as `info,sqlx=warn`) with the caps added.
pub fn filter(directives: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut filter = EnvFilter::try_new(directives)?;
    for cap in CAPPED_TARGETS {
        filter = filter.add_directive(cap.parse().expect("the caps are valid directives"));
    }
    Ok(filter)
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
    let registry = tracing_subscriber::registry().with(filter(directives)?);
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

/// Install the process-wide subscriber, logging to stderr (stdout is for command output).
/// `RUST_LOG`, when set and valid, wins over `log.level` (checked at load).
pub fn init(settings: &LogSettings) {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| filter(value).is_ok())
        .unwrap_or_else(|| settings.level.clone());
    if let Ok(subscriber) = subscriber(settings.format, &directives, std::io::stderr) {
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_request_log_stays_capped_even_at_trace() {
        let filter = filter("trace").unwrap().to_string();
        assert!(
            filter.contains("aws_smithy_runtime::client::orchestrator=debug"),
            "{filter}"
        );
        assert!(super::filter("info,,=nonsense[").is_err());
    }
}
