//! Source handling for HCL configs: separator normalisation and the map from
//! key paths to lines that lets every error name its line.
//!
//! Configs in the shape of ARCHITECTURE §5 put several items on one line
//! separated by spaces only (`{ type = "sled"  path = "/x" }`), which strict
//! HCL rejects. [`normalize`] inserts a newline before each such item; the
//! offsets of the insertions are kept so positions map back to the file.

use std::collections::HashMap;
use std::ops::Range;

use hcl_edit::expr::Expression;
use hcl_edit::structure::Body;
use hcl_edit::Span;

/// A config source ready for the parser, with the way back to the file.
pub struct Source {
    /// Normalised text.
    pub text: String,
    /// Offsets in `text` where a newline was inserted, ascending.
    inserted: Vec<usize>,
    /// Byte offset of each line start in the original text.
    line_starts: Vec<usize>,
}

impl Source {
    /// 1-based line in the original file of a byte offset in `text`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= self.original_offset(offset))
    }

    /// The byte offset in the original file of a byte offset in `text`.
    pub fn original_offset(&self, offset: usize) -> usize {
        offset - self.inserted.partition_point(|&i| i < offset)
    }
}

/// Inserts a newline wherever an attribute starts on the same line as the
/// end of the previous value with only blanks between them.
pub fn normalize(original: &str) -> Source {
    let b = original.as_bytes();
    let mut text = String::with_capacity(original.len() + 64);
    let mut inserted = Vec::new();
    let mut value_ended = false;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' => {
                i = skip_string(b, i);
                value_ended = true;
                continue;
            }
            b'#' => {
                i = skip_line(b, i);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = skip_line(b, i);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = original[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
                continue;
            }
            b'\n' | b',' | b'{' | b'[' | b'(' | b'=' | b':' | b'?' => value_ended = false,
            b']' | b'}' | b')' => value_ended = true,
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_-.".contains(&b[i])) {
                    i += 1;
                }
                if value_ended && c.is_ascii_alphabetic() && starts_attribute(b, i) {
                    text.push_str(&original[copied..start]);
                    inserted.push(text.len());
                    text.push('\n');
                    copied = start;
                }
                value_ended = true;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    text.push_str(&original[copied..]);
    let line_starts = std::iter::once(0).chain(original.match_indices('\n').map(|(p, _)| p + 1)).collect();
    Source { text, inserted, line_starts }
}

/// Whether blanks then a lone `=` follow position `i`.
fn starts_attribute(b: &[u8], mut i: usize) -> bool {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    b.get(i) == Some(&b'=') && !matches!(b.get(i + 1), Some(b'=') | Some(b'>'))
}

fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' => return i,
            _ => i += 1,
        }
    }
    i
}

fn skip_line(b: &[u8], i: usize) -> usize {
    b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p)
}

/// Spans of every key path in a parsed body: `dhcp.scope.lan.pools[0].range`.
#[derive(Default)]
pub struct KeySpans(HashMap<String, Range<usize>>);

impl KeySpans {
    /// Walks blocks (labels join the path), attributes, objects and arrays.
    pub fn collect(body: &Body) -> Self {
        let mut spans = KeySpans::default();
        spans.body("", body);
        spans
    }

    fn body(&mut self, prefix: &str, body: &Body) {
        for structure in body.iter() {
            if let Some(attr) = structure.as_attribute() {
                let path = join(prefix, attr.key.as_str());
                if let Some(span) = attr.span() {
                    self.0.insert(path.clone(), span);
                }
                self.expr(&path, &attr.value);
            } else if let Some(block) = structure.as_block() {
                let mut path = join(prefix, block.ident.as_str());
                for label in &block.labels {
                    path = join(&path, label.as_str());
                }
                if let Some(span) = block.span() {
                    self.0.insert(path.clone(), span);
                }
                self.body(&path, &block.body);
            }
        }
    }

    fn expr(&mut self, path: &str, expr: &Expression) {
        match expr {
            Expression::Object(object) => {
                for (key, value) in object.iter() {
                    let name = match key {
                        hcl_edit::expr::ObjectKey::Ident(id) => id.as_str().to_owned(),
                        hcl_edit::expr::ObjectKey::Expression(Expression::String(s)) => s.as_str().to_owned(),
                        _ => continue,
                    };
                    let child = join(path, &name);
                    if let Some(span) = key.span() {
                        self.0.insert(child.clone(), span);
                    }
                    self.expr(&child, value.expr());
                }
            }
            Expression::Array(array) => {
                for (index, item) in array.iter().enumerate() {
                    let child = format!("{path}[{index}]");
                    if let Some(span) = item.span() {
                        self.0.insert(child.clone(), span);
                    }
                    self.expr(&child, item);
                }
            }
            _ => {}
        }
    }

    /// The span of exactly `path`.
    pub fn get(&self, path: &str) -> Option<Range<usize>> {
        self.0.get(path).cloned()
    }

    /// The span of `path` or, failing that, of its nearest ancestor.
    pub fn find(&self, mut path: &str) -> Option<Range<usize>> {
        loop {
            if let Some(span) = self.0.get(path) {
                return Some(span.clone());
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_newlines_between_same_line_items_only() {
        let src = "a = { x = \"1\"  y = 2 }\nb = [ { p = \"q=r\"  s = true } ]\nc = x == y\n";
        let s = normalize(src);
        assert_eq!(s.text, "a = { x = \"1\"  \ny = 2 }\nb = [ { p = \"q=r\"  \ns = true } ]\nc = x == y\n");
        // Line numbers refer to the original text.
        assert_eq!(s.line_of(s.text.find("y = 2").unwrap()), 1);
        assert_eq!(s.line_of(s.text.find("s = true").unwrap()), 2);
        assert_eq!(s.line_of(s.text.find("c =").unwrap()), 3);
    }

    #[test]
    fn leaves_comments_and_strings_alone() {
        let src = "# a = 1 b = 2\nx = \"k = v  w = z\" // y = 3 z = 4\n";
        assert_eq!(normalize(src).text, src);
    }

    #[test]
    fn key_spans_name_nested_paths() {
        let s = normalize("dhcp {\n  scope \"lan\" {\n    pools = [\n      { name = \"a\" },\n    ]\n  }\n}\n");
        let body = hcl_edit::parser::parse_body(&s.text).unwrap();
        let spans = KeySpans::collect(&body);
        let at = spans.find("dhcp.scope.lan.pools[0].name").unwrap();
        assert_eq!(s.line_of(at.start), 4);
        // Unknown leaves fall back to the closest known ancestor.
        let at = spans.find("dhcp.scope.lan.pools[0].bogus").unwrap();
        assert_eq!(s.line_of(at.start), 4);
    }
}
