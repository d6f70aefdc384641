//! The few settings read before the config is loaded for real: the log format (logging starts
//! before the config's errors can be reported) and the admin address (`warden healthcheck`).
//! Read leniently: anything else in the file, valid or not, is the full load's business.

use std::path::Path;

use serde::Deserialize;

use crate::telemetry::logging::LogFormat;

#[derive(Debug, Default, Deserialize)]
pub struct Peek {
    #[serde(default)]
    admin: Option<PeekAdmin>,
    #[serde(default)]
    telemetry: Option<PeekTelemetry>,
}

#[derive(Debug, Default, Deserialize)]
struct PeekAdmin {
    #[serde(default)]
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct PeekTelemetry {
    #[serde(default)]
    log_format: Option<LogFormat>,
}

impl Peek {
    /// The file's settings; an unreadable file or one that does not parse gives defaults.
    pub fn read(path: &Path) -> Peek {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_saphyr::from_str(&text).ok())
            .unwrap_or_default()
    }

    pub fn log_format(&self) -> Option<LogFormat> {
        self.telemetry.as_ref().and_then(|t| t.log_format)
    }

    pub fn admin_listen(&self) -> Option<&str> {
        self.admin.as_ref().and_then(|a| a.listen.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_what_it_needs() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("w.yaml");
        std::fs::write(
            &path,
            "listen: 0.0.0.0:8443\nadmin:\n  listen: 0.0.0.0:9901\n  token_file: /x\ntelemetry:\n  log_format: json\n  audit_log: \"-\"\nunknown: [1, 2]\n",
        )
        .expect("write");
        let p = Peek::read(&path);
        assert_eq!(p.log_format(), Some(LogFormat::Json));
        assert_eq!(p.admin_listen(), Some("0.0.0.0:9901"));
        let missing = Peek::read(&dir.path().join("none.yaml"));
        assert_eq!((missing.log_format(), missing.admin_listen()), (None, None));
    }
}
