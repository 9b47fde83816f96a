//! The regular-expression subset people write for host names: literals,
//! `.`, `*`, `+`, `?`, classes (`[a-z0-9]`, `[^-]`, `\d`, `\w`, `\s`),
//! anchors `^` `$`, groups and alternation `a|(b|c)d`. ASCII letters match
//! either case. A backtracking matcher over the pattern text: no
//! allocation, no compilation step; the host's fuel bounds the worst case.

/// Whether `pat` is well formed in this subset.
pub fn valid(pat: &[u8]) -> bool {
    let mut depth = 0i32;
    let mut i = 0;
    let mut atom_before = false;
    while i < pat.len() {
        match pat[i] {
            b'\\' => {
                if i + 1 >= pat.len() {
                    return false;
                }
                i += 2;
                atom_before = true;
                continue;
            }
            b'[' => match class_end(pat, i) {
                Some(end) => {
                    i = end;
                    atom_before = true;
                    continue;
                }
                None => return false,
            },
            b'(' => {
                depth += 1;
                atom_before = false;
            }
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
                atom_before = true;
            }
            b'*' | b'+' | b'?' => {
                if !atom_before {
                    return false;
                }
                atom_before = false;
            }
            b'|' | b'^' => atom_before = false,
            b']' => return false,
            _ => atom_before = true,
        }
        i += 1;
    }
    depth == 0
}

/// Whether `pat` matches anywhere in `text` (`^`/`$` anchor it).
pub fn is_match(pat: &[u8], text: &[u8]) -> bool {
    // A pattern whose every alternative starts with `^` can only match at 0.
    let last = if anchored(pat) { 0 } else { text.len() };
    (0..=last).any(|start| alternatives(pat, text, start, &|_| true))
}

/// Whether every top-level alternative of `pat` starts with `^`.
fn anchored(pat: &[u8]) -> bool {
    let mut at_start = true;
    let mut i = 0;
    while i < pat.len() {
        if at_start && pat[i] != b'^' {
            return false;
        }
        at_start = false;
        i = match pat[i] {
            b'\\' => i + 2,
            b'[' => class_end(pat, i).unwrap_or(pat.len()),
            b'(' => group_end(pat, i).unwrap_or(pat.len()),
            b'|' => {
                at_start = true;
                i + 1
            }
            _ => i + 1,
        };
    }
    !at_start
}

/// End (exclusive) of the class starting at `[` at `i`.
fn class_end(pat: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if pat.get(j) == Some(&b'^') {
        j += 1;
    }
    if pat.get(j) == Some(&b']') {
        j += 1;
    }
    while j < pat.len() {
        match pat[j] {
            b'\\' => j += 2,
            b']' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// End (exclusive, past `)`) of the group starting at `(` at `i`.
fn group_end(pat: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0;
    let mut j = i;
    while j < pat.len() {
        match pat[j] {
            b'\\' => j += 1,
            b'[' => {
                j = class_end(pat, j)?;
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

fn alternatives(pat: &[u8], text: &[u8], pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
    let mut start = 0;
    let mut i = 0;
    loop {
        if i == pat.len() || pat[i] == b'|' {
            if sequence(&pat[start..i], text, pos, k) {
                return true;
            }
            if i == pat.len() {
                return false;
            }
            start = i + 1;
            i += 1;
            continue;
        }
        i = match pat[i] {
            b'\\' => i + 2,
            b'[' => class_end(pat, i).unwrap_or(pat.len()),
            b'(' => group_end(pat, i).unwrap_or(pat.len()),
            _ => i + 1,
        }
        .min(pat.len());
    }
}

fn lower(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

/// Whether one-character atom `atom` accepts `c`.
fn accepts(atom: &[u8], c: u8) -> bool {
    match atom[0] {
        b'.' => true,
        b'\\' => match atom.get(1).copied().unwrap_or(b'\\') {
            b'd' => c.is_ascii_digit(),
            b'w' => c.is_ascii_alphanumeric() || c == b'_',
            b's' => c.is_ascii_whitespace(),
            e => lower(e) == lower(c),
        },
        b'[' => {
            let body = &atom[1..atom.len() - 1];
            let (negated, body) = match body.first() {
                Some(b'^') => (true, &body[1..]),
                _ => (false, body),
            };
            let mut hit = false;
            let mut j = 0;
            while j < body.len() {
                let (lo, step) = if body[j] == b'\\' && j + 1 < body.len() { (body[j + 1], 2) } else { (body[j], 1) };
                if body.get(j + step) == Some(&b'-') && j + step + 1 < body.len() {
                    let hi = body[j + step + 1];
                    let l = lower(c);
                    hit |= (lo..=hi).contains(&c) || (lower(lo)..=lower(hi)).contains(&l);
                    j += step + 2;
                } else {
                    hit |= lower(lo) == lower(c);
                    j += step;
                }
            }
            hit != negated
        }
        a => lower(a) == lower(c),
    }
}

/// Matches one atom (a character atom or a group) at `pos`, then `k`.
fn atom(a: &[u8], text: &[u8], pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
    if a[0] == b'(' {
        return alternatives(&a[1..a.len() - 1], text, pos, k);
    }
    pos < text.len() && accepts(a, text[pos]) && k(pos + 1)
}

/// Zero or more of `a` (greedy), then `k`.
fn star(a: &[u8], text: &[u8], pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
    atom(a, text, pos, &|p| p > pos && star(a, text, p, k)) || k(pos)
}

fn sequence(seq: &[u8], text: &[u8], pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
    let first = match seq.first() {
        Some(&f) => f,
        None => return k(pos),
    };
    match first {
        b'^' => return pos == 0 && sequence(&seq[1..], text, pos, k),
        b'$' => return pos == text.len() && sequence(&seq[1..], text, pos, k),
        _ => {}
    }
    let end = match first {
        b'\\' => 2,
        b'[' => class_end(seq, 0).unwrap_or(seq.len()),
        b'(' => group_end(seq, 0).unwrap_or(seq.len()),
        _ => 1,
    }
    .min(seq.len());
    let (a, rest) = seq.split_at(end);
    let (quant, rest) = match rest.first() {
        Some(q @ (b'*' | b'+' | b'?')) => (*q, &rest[1..]),
        _ => (0, rest),
    };
    let then = |p: usize| sequence(rest, text, p, k);
    match quant {
        b'?' => atom(a, text, pos, &then) || then(pos),
        b'*' => star(a, text, pos, &then),
        b'+' => atom(a, text, pos, &|p| star(a, text, p, &then)),
        _ => atom(a, text, pos, &then),
    }
}

#[cfg(test)]
mod tests {
    use super::{is_match, valid};

    #[test]
    fn the_subset_people_use() {
        let cases: &[(&str, &str, bool)] = &[
            ("server.*", "server01", true),
            ("server.*", "webserver", true),
            ("^server.*", "webserver", false),
            ("^server\\d+$", "Server12", true),
            ("^server\\d+$", "server12a", false),
            ("^(ap|sw)-[0-9]+$", "sw-42", true),
            ("^(ap|sw)-[0-9]+$", "rt-42", false),
            ("printer|scanner", "hp-scanner-2", true),
            ("^a?b+c*$", "bbb", true),
            ("^a?b+c*$", "abcc", true),
            ("^a?b+c*$", "ac", false),
            ("^[^-]+$", "nodash", true),
            ("^[^-]+$", "has-dash", false),
            ("^x\\.y$", "x.y", true),
            ("^x\\.y$", "xzy", false),
            ("", "anything", true),
            ("^a|b", "cb", true),
            ("^a|^b", "cb", false),
        ];
        for (pat, text, want) in cases {
            assert!(valid(pat.as_bytes()), "{pat}");
            assert_eq!(is_match(pat.as_bytes(), text.as_bytes()), *want, "{pat} ~ {text}");
        }
        for bad in ["(", "a)", "[abc", "*a", "a**", "\\"] {
            assert!(!valid(bad.as_bytes()), "{bad}");
        }
    }
}
