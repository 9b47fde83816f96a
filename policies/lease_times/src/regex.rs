//! The regular-expression subset people write for host names: literals,
//! `.`, `*`, `+`, `?`, classes (`[a-z0-9]`, `[^-]`, `\d`, `\w`, `\s`),
//! anchors `^` `$`, groups and alternation `a|(b|c)d`. ASCII letters match
//! either case. Patterns compile once to a small program (classes as bit
//! tables) run by a backtracking VM with a fixed stack: no allocation; a
//! step limit (and the host's fuel) bounds pathological patterns, which
//! then do not match.

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

/// Instructions of a compiled pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inst {
    /// This byte, either case.
    Byte(u8),
    Any,
    /// Member of class table entry n.
    Class(u8),
    /// Try the first target, then the second.
    Split(u8, u8),
    Jmp(u8),
    Start,
    End,
    Match,
}

/// Instructions a pattern may compile to.
pub const MAX_INSTS: usize = 128;
/// Character classes a pattern may hold.
pub const MAX_CLASSES: usize = 8;
/// Backtracking steps per match attempt before giving up (no match).
const MAX_STEPS: usize = 20_000;

/// A pattern compiled once (at init) to instructions for a backtracking VM.
#[derive(Clone, Copy)]
pub struct Program {
    insts: [Inst; MAX_INSTS],
    len: usize,
    classes: [[u32; 8]; MAX_CLASSES],
    class_count: usize,
    anchored: bool,
    /// Bytes a match can begin with (either case); every byte when the
    /// pattern can match without consuming one. Start positions whose byte
    /// is not in it are skipped without running the VM.
    first: [u32; 8],
    /// Literal bytes right after a leading `^` (`^host-`): compared
    /// directly; the VM runs what follows them.
    literal: u8,
}

impl Program {
    /// Compiles `pat`; None when it is not in the subset or too large.
    pub fn compile(pat: &[u8]) -> Option<Program> {
        if !valid(pat) {
            return None;
        }
        let mut p = Program {
            insts: [Inst::Match; MAX_INSTS],
            len: 0,
            classes: [[0; 8]; MAX_CLASSES],
            class_count: 0,
            anchored: anchored(pat),
            first: [0; 8],
            literal: 0,
        };
        p.alternatives(pat)?;
        p.emit(Inst::Match)?;
        p.first = p.first_bytes();
        if p.insts[0] == Inst::Start {
            p.literal = p.insts[1..p.len].iter().take_while(|i| matches!(i, Inst::Byte(_))).count() as u8;
        }
        Some(p)
    }

    /// The union of what the instructions reachable without consuming a
    /// byte accept.
    fn first_bytes(&self) -> [u32; 8] {
        let mut set = [0u32; 8];
        let mut seen = [false; MAX_INSTS];
        let mut todo = [0u8; MAX_INSTS];
        let (mut n, mut push) = (1, [0u8; 2]);
        seen[0] = true;
        while n > 0 {
            n -= 1;
            let pc = todo[n] as usize;
            let next = match self.insts[pc] {
                Inst::Byte(b) => {
                    for c in [b, b.to_ascii_uppercase()] {
                        set[(c >> 5) as usize] |= 1 << (c & 31);
                    }
                    0
                }
                Inst::Class(k) => {
                    for (s, c) in set.iter_mut().zip(&self.classes[k as usize]) {
                        *s |= c;
                    }
                    0
                }
                Inst::Any | Inst::End | Inst::Match => return [u32::MAX; 8],
                // `^` holds at a start position where anything can follow.
                Inst::Start => {
                    push[0] = pc as u8 + 1;
                    1
                }
                Inst::Jmp(t) => {
                    push[0] = t;
                    1
                }
                Inst::Split(a, b) => {
                    push = [a, b];
                    2
                }
            };
            for &t in &push[..next] {
                if !seen[t as usize] {
                    seen[t as usize] = true;
                    todo[n] = t;
                    n += 1;
                }
            }
        }
        set
    }

    fn emit(&mut self, inst: Inst) -> Option<usize> {
        if self.len == MAX_INSTS {
            return None;
        }
        self.insts[self.len] = inst;
        self.len += 1;
        Some(self.len - 1)
    }

    fn here(&self) -> u8 {
        self.len as u8
    }

    fn alternatives(&mut self, pat: &[u8]) -> Option<()> {
        let mut ends = [0usize; 16];
        let mut n_ends = 0;
        let mut start = 0;
        let mut i = 0;
        loop {
            let at_end = i == pat.len();
            if at_end || pat[i] == b'|' {
                if at_end && start == 0 {
                    return self.sequence(pat);
                }
                if at_end {
                    self.sequence(&pat[start..])?;
                    break;
                }
                let split = self.emit(Inst::Split(0, 0))?;
                self.sequence(&pat[start..i])?;
                if n_ends == ends.len() {
                    return None;
                }
                ends[n_ends] = self.emit(Inst::Jmp(0))?;
                n_ends += 1;
                self.insts[split] = Inst::Split(split as u8 + 1, self.here());
                start = i + 1;
                i += 1;
                continue;
            }
            i = step(pat, i);
        }
        let end = self.here();
        for &j in &ends[..n_ends] {
            self.insts[j] = Inst::Jmp(end);
        }
        Some(())
    }

    fn sequence(&mut self, seq: &[u8]) -> Option<()> {
        let mut i = 0;
        while i < seq.len() {
            let end = step(seq, i);
            let atom = &seq[i..end];
            let quant = seq.get(end).copied().filter(|q| matches!(q, b'*' | b'+' | b'?'));
            i = end + usize::from(quant.is_some());
            match quant {
                Some(b'?') => {
                    let split = self.emit(Inst::Split(0, 0))?;
                    self.atom(atom)?;
                    self.insts[split] = Inst::Split(split as u8 + 1, self.here());
                }
                Some(b'*') => {
                    let split = self.emit(Inst::Split(0, 0))?;
                    self.atom(atom)?;
                    self.emit(Inst::Jmp(split as u8))?;
                    self.insts[split] = Inst::Split(split as u8 + 1, self.here());
                }
                Some(_) => {
                    let top = self.here();
                    self.atom(atom)?;
                    let next = self.here() + 1;
                    self.emit(Inst::Split(top, next))?;
                }
                None => self.atom(atom)?,
            }
        }
        Some(())
    }

    fn atom(&mut self, a: &[u8]) -> Option<()> {
        let inst = match a[0] {
            b'(' => return self.alternatives(&a[1..a.len() - 1]),
            b'^' => Inst::Start,
            b'$' => Inst::End,
            b'.' => Inst::Any,
            b'[' => self.class(a)?,
            b'\\' => match a[1] {
                b'd' | b'w' | b's' => self.class(a)?,
                e => Inst::Byte(e.to_ascii_lowercase()),
            },
            c => Inst::Byte(c.to_ascii_lowercase()),
        };
        self.emit(inst).map(drop)
    }

    /// A class (`[...]`, `\d`, `\w`, `\s`) as a 256-bit table, both cases.
    fn class(&mut self, a: &[u8]) -> Option<Inst> {
        if self.class_count == MAX_CLASSES {
            return None;
        }
        let mut bits = [0u32; 8];
        for c in 0..=255u8 {
            if accepts(a, c) {
                bits[(c >> 5) as usize] |= 1 << (c & 31);
            }
        }
        self.classes[self.class_count] = bits;
        self.class_count += 1;
        Some(Inst::Class(self.class_count as u8 - 1))
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &[u8]) -> bool {
        if self.literal > 0 {
            let n = self.literal as usize;
            let same = |(c, i): (&u8, &Inst)| *i == Inst::Byte(c.to_ascii_lowercase());
            return text.len() >= n && text.iter().zip(&self.insts[1..=n]).all(same) && self.run(text, n + 1, n);
        }
        let last = if self.anchored { 0 } else { text.len() };
        let may_start = |at: usize| match text.get(at) {
            Some(&c) => self.first[(c >> 5) as usize] & (1 << (c & 31)) != 0,
            None => self.first == [u32::MAX; 8],
        };
        (0..=last).any(|start| may_start(start) && self.run(text, 0, start))
    }

    /// Runs the VM from instruction `pc` at text position `start`.
    fn run(&self, text: &[u8], pc: usize, start: usize) -> bool {
        // Room for one choice per character of the longest host name; left
        // uninitialised (only pushed entries are read): no 1 KiB fill per run.
        let mut stack = [core::mem::MaybeUninit::<(u8, u16)>::uninit(); 256];
        let mut depth = 0;
        let (mut pc, mut pos) = (pc, start);
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > MAX_STEPS {
                return false;
            }
            let ok = match self.insts[pc] {
                Inst::Match => return true,
                Inst::Byte(b) => pos < text.len() && text[pos].to_ascii_lowercase() == b,
                Inst::Any => pos < text.len(),
                Inst::Class(n) => {
                    pos < text.len()
                        && self.classes[n as usize][(text[pos] >> 5) as usize] & (1 << (text[pos] & 31)) != 0
                }
                Inst::Start => {
                    if pos == 0 {
                        pc += 1;
                        continue;
                    }
                    false
                }
                Inst::End => {
                    if pos == text.len() {
                        pc += 1;
                        continue;
                    }
                    false
                }
                Inst::Jmp(t) => {
                    pc = t as usize;
                    continue;
                }
                Inst::Split(a, b) => {
                    if depth < stack.len() {
                        stack[depth] = core::mem::MaybeUninit::new((b, pos as u16));
                        depth += 1;
                    }
                    pc = a as usize;
                    continue;
                }
            };
            if ok {
                pc += 1;
                pos += 1;
            } else if depth == 0 {
                return false;
            } else {
                depth -= 1;
                // SAFETY: entries below `depth` were written by the pushes above.
                let (p, q) = unsafe { stack[depth].assume_init() };
                pc = p as usize;
                pos = q as usize;
            }
        }
    }
}

/// Whether `pat` matches anywhere in `text` (`^`/`$` anchor it); compiles
/// it each time: keep a [`Program`] where a pattern is used more than once.
pub fn is_match(pat: &[u8], text: &[u8]) -> bool {
    Program::compile(pat).map_or(false, |p| p.is_match(text))
}

/// Index past the atom starting at `i`.
fn step(pat: &[u8], i: usize) -> usize {
    match pat[i] {
        b'\\' => i + 2,
        b'[' => class_end(pat, i).unwrap_or(pat.len()),
        b'(' => group_end(pat, i).unwrap_or(pat.len()),
        _ => i + 1,
    }
    .min(pat.len())
}

/// Whether every top-level alternative of `pat` starts with `^`.
fn anchored(pat: &[u8]) -> bool {
    let mut at_start = true;
    let mut i = 0;
    while i < pat.len() {
        if at_start && pat[i] != b'^' {
            return false;
        }
        at_start = pat[i] == b'|';
        i = step(pat, i);
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
            // Start positions are skipped by their first byte, either case.
            ("^web-", "WEB-1", true),
            ("[0-9]+$", "host-12", true),
            ("a*b", "xxb", true),
            ("(ab)*c", "zzc", true),
            ("end$", "the end", true),
            ("end$", "the ends", false),
            ("x*", "", true),
            ("$", "abc", true),
            ("b", "", false),
            ("\\d", "abc", false),
            // A leading literal is compared directly; the rest still runs.
            ("^host-", "HOST-1", true),
            ("^host-", "hos", false),
            ("^ab+c$", "abbbc", true),
            ("^ab+c$", "ac", false),
            ("^ab*$", "a", true),
            ("^server\\d", "server", false),
            ("^server\\d", "server7", true),
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
