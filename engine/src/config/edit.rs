//! Changes the API makes to the config file, done as text edits on the
//! operator's own file: comments, order and layout stay as they were, and
//! only the lines of the change differ. Each edit finds its place through
//! the parsed file's key spans and checks that the result still parses.

use std::ops::Range;

use super::source::{normalize, KeySpans};

/// The file's text with its key spans (in original offsets).
struct Located {
    text: String,
    spans: KeySpans,
    source: super::source::Source,
}

impl Located {
    fn new(text: &str) -> Result<Self, String> {
        let source = normalize(text);
        let body = hcl_edit::parser::parse_body(&source.text).map_err(|e| format!("the config does not parse: {e}"))?;
        Ok(Located { text: text.to_string(), spans: KeySpans::collect(&body), source })
    }

    /// The original-text range of exactly `path`.
    fn span(&self, path: &str) -> Option<Range<usize>> {
        let s = self.spans.get(path)?;
        Some(self.source.original_offset(s.start)..self.source.original_offset(s.end))
    }

    fn replace(mut self, range: Range<usize>, with: &str) -> Result<String, String> {
        self.text.replace_range(range, with);
        // The result must still be a config file (the caller validates its meaning).
        hcl_edit::parser::parse_body(&normalize(&self.text).text).map_err(|e| format!("edit broke the config: {e}"))?;
        Ok(self.text)
    }
}

/// The start of the line holding `at` when only blanks precede it there.
fn line_start(text: &str, at: usize) -> usize {
    let start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    if text[start..at].trim().is_empty() {
        start
    } else {
        at
    }
}

/// The indentation of the line holding `at`.
fn indent_of(text: &str, at: usize) -> &str {
    let start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    let line = &text[start..];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

/// Adds `entry` (an HCL object, `{ mac = "..."  ip = "..." }`) at the end
/// of `dhcp.reservations`, creating the list when there is none.
pub fn add_reservation(text: &str, entry: &str) -> Result<String, String> {
    let doc = Located::new(text)?;
    match doc.span("dhcp.reservations") {
        Some(attr) => {
            let list = &doc.text[attr.clone()];
            let close = attr.start + list.rfind(']').ok_or("dhcp.reservations is not a list")?;
            let open = attr.start + list.find('[').ok_or("dhcp.reservations is not a list")?;
            let items = doc.text[open + 1..close].trim();
            let indent = indent_of(&doc.text, attr.start).to_string();
            if items.is_empty() {
                return doc.replace(open..close + 1, &format!("[\n{indent}  {entry},\n{indent}]"));
            }
            // After the last item (and its comma, if it has one), on a line of its own.
            let last_end = open + 1 + doc.text[open + 1..close].trim_end().len();
            let comma = if doc.text[..last_end].ends_with(',') { "" } else { "," };
            doc.replace(last_end..last_end, &format!("{comma}\n{indent}  {entry},"))
        }
        None => {
            let block = doc.span("dhcp").ok_or("no dhcp block")?;
            let brace = block.start + doc.text[block.clone()].find('{').ok_or("no dhcp block")?;
            let indent = "  ";
            doc.replace(brace + 1..brace + 1, &format!("\n{indent}reservations = [\n{indent}  {entry},\n{indent}]"))
        }
    }
}

/// Removes item `index` of `dhcp.reservations`, with its comma; when the
/// item had its line to itself, the whole line (a comment after it was
/// about it) goes too.
pub fn remove_reservation(text: &str, index: usize) -> Result<String, String> {
    let doc = Located::new(text)?;
    let item = doc.span(&format!("dhcp.reservations[{index}]")).ok_or(format!("no reservation {index} in the file"))?;
    let start = line_start(&doc.text, item.start);
    let rest = &doc.text[item.end..];
    let mut end = item.end + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
    if doc.text[end..].starts_with(',') {
        end += 1;
    }
    let line_end = doc.text[end..].find('\n').map_or(doc.text.len(), |p| end + p + 1);
    let tail = doc.text[end..line_end].trim();
    if start < item.start && (tail.is_empty() || tail.starts_with('#') || tail.starts_with("//")) {
        end = line_end;
    } else {
        let rest = &doc.text[end..];
        end += rest.len() - rest.trim_start_matches([' ', '\t']).len();
    }
    doc.replace(start..end, "")
}

/// Index in `dhcp.reservations` of the entry whose `mac` or `ip` is the
/// given one (MACs compared as addresses, any spelling). Reservations
/// written inside a scope block are not in that list.
pub fn find_reservation(text: &str, mac: Option<[u8; 6]>, ip: Option<std::net::Ipv4Addr>) -> Option<usize> {
    let source = normalize(text);
    let body = hcl_edit::parser::parse_body(&source.text).ok()?;
    let dhcp = body.get_blocks("dhcp").next()?;
    let list = dhcp.body.get_attribute("reservations")?.value.as_array()?;
    let found = list.iter().position(|item| {
        let Some(object) = item.as_object() else { return false };
        let member = |name: &str| {
            object.iter().find_map(|(k, v)| {
                let key = match k {
                    hcl_edit::expr::ObjectKey::Ident(id) => id.as_str(),
                    _ => return None,
                };
                (key == name).then(|| v.expr().as_str()).flatten()
            })
        };
        let same_mac =
            mac.is_some_and(|m| member("mac").and_then(|s| s.parse::<super::Mac>().ok()).is_some_and(|x| x.0 == m));
        let same_ip = ip.is_some_and(|a| member("ip").and_then(|s| s.parse().ok()) == Some(a));
        same_mac || same_ip
    });
    found
}

/// Sets `key = value` (value as HCL text) in `scope "NAME"`, replacing
/// the key's value where it is set, else adding a line after the `{`.
pub fn set_scope_key(text: &str, scope: &str, key: &str, value: &str) -> Result<String, String> {
    let doc = Located::new(text)?;
    let path = format!("dhcp.scope.{scope}.{key}");
    if let Some(attr) = doc.span(&path) {
        let eq = attr.start + doc.text[attr.clone()].find('=').ok_or(format!("{path} has no value"))?;
        return doc.replace(eq + 1..attr.end, &format!(" {value}"));
    }
    let block = doc.span(&format!("dhcp.scope.{scope}")).ok_or(format!("no scope {scope:?}"))?;
    let brace = block.start + doc.text[block.clone()].find('{').ok_or(format!("no scope {scope:?}"))?;
    let indent = format!("{}  ", indent_of(&doc.text, block.start));
    doc.replace(brace + 1..brace + 1, &format!("\n{indent}{key} = {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# the lab
dhcp {
  listen = ["127.0.0.1:6767"]
  reservations = [
    { mac = "02:00:00:00:00:10"  ip = "198.18.0.10"  hostname = "printer01" },  # by the door
    { hostname = "voip01"  ip = "198.18.0.30"  allow_any_mac = true },
  ]
  scope "lab" {
    subnet = "198.18.0.0/24"   # the lab
    range_start = "198.18.0.100"  range_end = "198.18.0.199"
  }
}
"#;

    #[test]
    fn adds_a_reservation_on_a_line_of_its_own_keeping_the_rest() {
        let out = add_reservation(FILE, r#"{ mac = "02:00:00:00:00:20"  ip = "198.18.0.20" }"#).unwrap();
        assert_eq!(
            out,
            FILE.replace(
                "allow_any_mac = true },\n",
                "allow_any_mac = true },\n    { mac = \"02:00:00:00:00:20\"  ip = \"198.18.0.20\" },\n"
            )
        );
        // A file without the list gets one; an empty list gets its first item.
        let none = FILE.replace(&FILE[FILE.find("  reservations").unwrap()..FILE.find("  scope").unwrap()], "");
        let out = add_reservation(&none, "{ ip = \"198.18.0.20\" }").unwrap();
        assert!(out.contains("dhcp {\n  reservations = [\n    { ip = \"198.18.0.20\" },\n  ]\n  listen"), "{out}");
        let empty =
            add_reservation(&none.replace("dhcp {\n", "dhcp {\n  reservations = []\n"), "{ ip = \"198.18.0.21\" }");
        assert!(empty.unwrap().contains("  reservations = [\n    { ip = \"198.18.0.21\" },\n  ]\n"));
    }

    #[test]
    fn removes_a_reservation_with_its_line() {
        let out = remove_reservation(FILE, 1).unwrap();
        assert_eq!(
            out,
            FILE.replace("    { hostname = \"voip01\"  ip = \"198.18.0.30\"  allow_any_mac = true },\n", "")
        );
        let out = remove_reservation(FILE, 0).unwrap();
        assert_eq!(out, FILE.replace(&FILE[FILE.find("    { mac").unwrap()..FILE.find("    { hostname").unwrap()], ""));
        // Items sharing a line: only the item and its comma go.
        let one_line = "dhcp {\n  reservations = [ { ip = \"198.18.0.1\" }, { ip = \"198.18.0.2\" } ]\n}\n";
        assert_eq!(
            remove_reservation(one_line, 0).unwrap(),
            "dhcp {\n  reservations = [ { ip = \"198.18.0.2\" } ]\n}\n"
        );
        assert!(remove_reservation(FILE, 2).unwrap_err().contains("no reservation 2"));
    }

    #[test]
    fn finds_reservations_by_mac_in_any_spelling_or_by_ip() {
        assert_eq!(find_reservation(FILE, Some([2, 0, 0, 0, 0, 0x10]), None), Some(0));
        assert_eq!(find_reservation(FILE, None, Some("198.18.0.30".parse().unwrap())), Some(1));
        assert_eq!(find_reservation(FILE, Some([2, 0, 0, 0, 0, 0x11]), Some("198.18.0.31".parse().unwrap())), None);
    }

    #[test]
    fn sets_a_scope_key_in_place_or_adds_it() {
        let out = set_scope_key(FILE, "lab", "range_end", "\"198.18.0.150\"").unwrap();
        assert_eq!(out, FILE.replace("range_end = \"198.18.0.199\"", "range_end = \"198.18.0.150\""));
        let out = set_scope_key(FILE, "lab", "max_reservations", "20").unwrap();
        assert_eq!(out, FILE.replace("scope \"lab\" {\n", "scope \"lab\" {\n    max_reservations = 20\n"));
        assert!(set_scope_key(FILE, "nope", "max_reservations", "1").unwrap_err().contains("no scope"));
    }
}
