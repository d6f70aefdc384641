//! Process logs on stderr: human text, or one JSON object a line for log pipelines. The level
//! comes from `WARDEN_LOG`, else `RUST_LOG` (the usual `EnvFilter` syntax, e.g.
//! `warden=info,warden::request=debug`), else the command's default.
//!
//! Request events use the target `warden::request` at debug level and carry `request_id`,
//! `agent`, `decision` and `reason` as fields; in JSON they are top-level keys. Tokens, keys and
//! `Authorization` values are never logged anywhere.

use std::str::FromStr;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// The target of the one-line-per-request event.
pub const REQUEST_TARGET: &str = "warden::request";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("`{other}` is not a log format (text or json)")),
        }
    }
}

/// Where the filter came from, to say so when it cannot be read.
#[derive(Debug, PartialEq, Eq)]
enum FilterSource {
    Warden(String),
    Rust(String),
    Default,
}

fn filter_source(warden_log: Option<String>, rust_log: Option<String>) -> FilterSource {
    let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    match (set(warden_log), set(rust_log)) {
        (Some(w), _) => FilterSource::Warden(w),
        (None, Some(r)) => FilterSource::Rust(r),
        (None, None) => FilterSource::Default,
    }
}

/// The filter, and a complaint when the variable could not be parsed (then `default` applies).
fn build_filter(source: &FilterSource, default: &str) -> (EnvFilter, Option<String>) {
    let (name, spec) = match source {
        FilterSource::Warden(s) => ("WARDEN_LOG", s),
        FilterSource::Rust(s) => ("RUST_LOG", s),
        FilterSource::Default => return (EnvFilter::new(default), None),
    };
    match EnvFilter::builder().parse(spec) {
        Ok(f) => (f, None),
        Err(e) => (
            EnvFilter::new(default),
            Some(format!(
                "{name}=`{spec}` is not a log filter ({e}); using `{default}`"
            )),
        ),
    }
}

/// Installs the process-wide subscriber; a second call does nothing.
pub fn init(format: LogFormat, default_filter: &str) {
    let source = filter_source(
        std::env::var("WARDEN_LOG").ok(),
        std::env::var("RUST_LOG").ok(),
    );
    let (filter, complaint) = build_filter(&source, default_filter);
    let installed = match format {
        LogFormat::Text => {
            // Colours only for a person at a terminal; logs collected by a program stay plain.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
                .try_init()
        }
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init(),
    };
    if let (Ok(()), Some(complaint)) = (installed, complaint) {
        tracing::warn!("{complaint}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warden_log_wins_over_rust_log() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            filter_source(s("warden=debug"), s("info")),
            FilterSource::Warden("warden=debug".into())
        );
        assert_eq!(
            filter_source(None, s("warden=trace")),
            FilterSource::Rust("warden=trace".into())
        );
        assert_eq!(
            filter_source(s("  "), s("info")),
            FilterSource::Rust("info".into())
        );
        assert_eq!(filter_source(None, None), FilterSource::Default);
    }

    #[test]
    fn an_unreadable_filter_falls_back_to_the_default() {
        let (_, complaint) = build_filter(&FilterSource::Rust("warden=[".into()), "warden=info");
        let complaint = complaint.expect("complaint");
        assert!(complaint.starts_with("RUST_LOG=`warden=[`"), "{complaint}");
        let (_, none) = build_filter(&FilterSource::Warden("warden=debug".into()), "info");
        assert!(none.is_none());
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
