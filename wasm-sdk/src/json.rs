//! A tiny JSON reader for the init config: no allocation, values are
//! views into the input. Strings are returned raw (escapes not decoded),
//! which is what config keys, MACs, globs and names need.

/// A JSON value (any kind), as the bytes that spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a>(&'a [u8]);

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// End (exclusive) of the value starting at `i`, or None if malformed.
fn value_end(s: &[u8], i: usize) -> Option<usize> {
    match *s.get(i)? {
        b'"' => {
            let mut j = i + 1;
            while j < s.len() {
                match s[j] {
                    b'\\' => j += 2,
                    b'"' => return Some(j + 1),
                    _ => j += 1,
                }
            }
            None
        }
        open @ (b'{' | b'[') => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut j = skip_ws(s, i + 1);
            if *s.get(j)? == close {
                return Some(j + 1);
            }
            loop {
                if open == b'{' {
                    j = skip_ws(s, value_end(s, j)?);
                    if *s.get(j)? != b':' {
                        return None;
                    }
                    j = skip_ws(s, j + 1);
                }
                j = skip_ws(s, value_end(s, j)?);
                match *s.get(j)? {
                    b',' => j = skip_ws(s, j + 1),
                    c if c == close => return Some(j + 1),
                    _ => return None,
                }
            }
        }
        _ => {
            let mut j = i;
            while j < s.len() && !matches!(s[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b':') {
                j += 1;
            }
            if j > i {
                Some(j)
            } else {
                None
            }
        }
    }
}

impl<'a> Value<'a> {
    /// The value spelled by `text` (surrounding whitespace ignored).
    pub fn new(text: &'a [u8]) -> Value<'a> {
        let start = skip_ws(text, 0);
        let end = value_end(text, start).unwrap_or(start);
        Value(&text[start..end])
    }

    /// Whether the input was a well-formed value.
    pub fn is_valid(&self) -> bool {
        !self.0.is_empty()
    }

    pub fn raw(&self) -> &'a [u8] {
        self.0
    }

    /// The members of an object, as (raw key, value).
    pub fn members(&self) -> Members<'a> {
        let inner = if self.0.first() == Some(&b'{') { &self.0[1..] } else { &[][..] };
        Members { s: inner, i: 0 }
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.members().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| v)
    }

    /// The elements of an array.
    pub fn elements(&self) -> Elements<'a> {
        let inner = if self.0.first() == Some(&b'[') { &self.0[1..] } else { &[][..] };
        Elements { s: inner, i: 0 }
    }

    /// A string's raw contents.
    pub fn as_str(&self) -> Option<&'a [u8]> {
        if self.0.len() >= 2 && self.0[0] == b'"' && self.0[self.0.len() - 1] == b'"' {
            Some(&self.0[1..self.0.len() - 1])
        } else {
            None
        }
    }

    /// A non-negative integer (a fraction is cut).
    pub fn as_u64(&self) -> Option<u64> {
        let digits = self.0.split(|&b| b == b'.').next()?;
        if digits.is_empty() {
            return None;
        }
        let mut n: u64 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add((d - b'0') as u64)?;
        }
        Some(n)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.0 {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.0 == b"null"
    }
}

/// Iterator over an object's members.
pub struct Members<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let k = skip_ws(s, self.i);
        if *s.get(k)? != b'"' {
            return None;
        }
        let kend = value_end(s, k)?;
        let colon = skip_ws(s, kend);
        if *s.get(colon)? != b':' {
            return None;
        }
        let v = skip_ws(s, colon + 1);
        let vend = value_end(s, v)?;
        let after = skip_ws(s, vend);
        self.i = if s.get(after) == Some(&b',') { after + 1 } else { s.len() };
        Some((&s[k + 1..kend - 1], Value(&s[v..vend])))
    }
}

/// Iterator over an array's elements.
pub struct Elements<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let v = skip_ws(s, self.i);
        if s.get(v) == Some(&b']') {
            return None;
        }
        let vend = value_end(s, v)?;
        let after = skip_ws(s, vend);
        self.i = if s.get(after) == Some(&b',') { after + 1 } else { s.len() };
        Some(Value(&s[v..vend]))
    }
}

#[cfg(test)]
mod tests {
    use super::Value;

    #[test]
    fn reads_nested_objects_arrays_and_scalars() {
        let v = Value::new(br#" { "rules": [ {"mac_prefix": ["00:11:22"], "lease_time": 43200}, {"x": "a\"b"} ], "on": true, "n": null } "#);
        assert!(v.is_valid());
        let rules = v.get("rules").unwrap();
        let first = rules.elements().next().unwrap();
        assert_eq!(first.get("lease_time").unwrap().as_u64(), Some(43200));
        assert_eq!(first.get("mac_prefix").unwrap().elements().next().unwrap().as_str(), Some(&b"00:11:22"[..]));
        assert_eq!(rules.elements().nth(1).unwrap().get("x").unwrap().as_str(), Some(&br#"a\"b"#[..]));
        assert_eq!(v.get("on").unwrap().as_bool(), Some(true));
        assert!(v.get("n").unwrap().is_null());
        assert_eq!(v.get("missing"), None);
        assert!(!Value::new(b"{\"a\": ").is_valid());
    }
}
