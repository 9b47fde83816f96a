//! HCL configuration (ARCHITECTURE §5): parse, validate, explain.
//!
//! [`load`] reads a file into a checked [`Config`] or returns every problem
//! found, each naming the file, the line and the key.

pub mod defaults;
pub mod edit;
mod model;
mod raw;
mod source;
mod validate;
pub mod values;

use std::fmt;
use std::path::Path;

pub use model::*;
pub use values::{AddrRange, ClientId, Mac, MacPrefix, Secs};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, where the key could be located.
    pub line: Option<usize>,
    /// Dotted key path, `dhcp.scope.lan.pools[0].range`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file, line)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and checks the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            line: None,
            key: String::new(),
            message: format!("cannot read the config: {e}"),
        }])
    })?;
    parse(&text, &name)
}

/// Checks config text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let source = source::normalize(text);
    let error = |line, key: String, message: String| ConfigError { file: file.to_owned(), line, key, message };
    let body = hcl_edit::parser::parse_body(&source.text).map_err(|e| {
        let loc = e.location();
        let line = source.line_of(loc.offset());
        ConfigErrors(vec![error(
            Some(line),
            String::new(),
            format!("syntax error at column {}: {}", loc.column(), e.message()),
        )])
    })?;
    let spans = source::KeySpans::collect(&body);
    let locate = |key: String, message: String| {
        let line = spans.find(&key).map(|span| source.line_of(span.start));
        error(line, key, message)
    };
    // hcl's value model, then serde with the key path of the first mismatch.
    let value: hcl::Value = hcl::from_body(hcl::Body::from(body))
        .map_err(|e| ConfigErrors(vec![error(None, String::new(), e.to_string())]))?;
    let json =
        serde_json::to_value(&value).map_err(|e| ConfigErrors(vec![error(None, String::new(), e.to_string())]))?;
    let raw: raw::File = serde_path_to_error::deserialize(json).map_err(|e| {
        let key = path_string(e.path());
        let message = e.into_inner().to_string();
        ConfigErrors(vec![locate(key, message)])
    })?;
    validate::validate(&raw).map_err(|problems| ConfigErrors(problems.into_iter().map(|(k, m)| locate(k, m)).collect()))
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}
