//! Reading the YAML file: parse into [`ConfigFile`] and remember where each key path stands, so
//! every later error can say `FILE:LINE:COL: key.path: message`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::schema::ConfigFile;

/// One problem in a config file, located by position and key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// Dotted key path, list items as `[N]`: `roles.inventory-agent.allow[1].upstream`.
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            if self.key_path.is_empty() {
                "(root)"
            } else {
                &self.key_path
            },
            self.message
        )
    }
}

/// Where each key path of the file stands (1-based line and column).
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    entries: std::collections::HashMap<String, (usize, usize)>,
}

impl SourceMap {
    /// The position of `key_path`, or of its nearest ancestor that has one, or 1:1.
    pub fn position(&self, key_path: &str) -> (usize, usize) {
        let mut p = key_path;
        loop {
            if let Some(pos) = self.entries.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return (1, 1),
            }
        }
    }
}

/// A parsed config file and what is needed to report on it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub file: ConfigFile,
    pub path: PathBuf,
    pub positions: SourceMap,
}

impl LoadedConfig {
    /// An error located at `key_path`.
    pub fn error_at(&self, key_path: &str, message: impl Into<String>) -> ConfigError {
        let (line, col) = self.positions.position(key_path);
        ConfigError {
            file: self.path.clone(),
            line,
            col,
            key_path: key_path.to_string(),
            message: message.into(),
        }
    }
}

/// Reads and parses the file; syntax and shape errors come back located.
pub fn load(path: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    let err = |m: String| {
        vec![ConfigError {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            key_path: String::new(),
            message: m,
        }]
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let file: ConfigFile = serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?;
    Ok(LoadedConfig {
        file,
        path: path.to_path_buf(),
        positions: SourceMap::default(),
    })
}

impl LoadedConfig {
    /// Relative paths in the config are read against the working directory of the process.
    pub fn base_dir(&self) -> PathBuf {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    }
}
