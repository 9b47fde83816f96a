//! Bytes as hex text and back: hardware addresses, client identifiers and
//! relay agent ids in the config, the logs, lease files and the API.

use std::fmt;

/// Displays bytes as lower-case hex pairs with `sep` between them:
/// `Hex(&[0, 0xab], ":")` shows `00:ab`.
pub struct Hex<'a>(pub &'a [u8], pub &'a str);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(self.1)?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Parses hex bytes: digit pairs separated by `:` or `-`
/// (`00:0c:29:ab:cd:ef`), or an unbroken run of them (`000c29abcdef`);
/// either case. The empty text is no bytes. Anything else is None: a
/// part of one digit (`…:44:5` is more likely a typo than `05`), an
/// empty part, a sign, an odd run, another character.
pub fn parse(s: &str) -> Option<Vec<u8>> {
    let byte = |part: &str| {
        // from_str_radix alone would take a leading `+`.
        let hex = part.len() == 2 && part.bytes().all(|c| c.is_ascii_hexdigit());
        hex.then(|| u8::from_str_radix(part, 16).ok()).flatten()
    };
    if s.contains([':', '-']) {
        s.split([':', '-']).map(byte).collect()
    } else if s.len() % 2 == 0 && s.is_ascii() {
        (0..s.len()).step_by(2).map(|i| byte(&s[i..i + 2])).collect()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn separated_parts_or_a_run_of_pairs() {
        assert_eq!(parse("01:AB:02"), Some(vec![1, 0xab, 2]));
        assert_eq!(parse("01-ab-02"), Some(vec![1, 0xab, 2]));
        assert_eq!(parse("01ab02"), Some(vec![1, 0xab, 2]));
        assert_eq!(parse(""), Some(vec![]));
    }

    #[test]
    fn anything_else_is_not_hex() {
        for bad in [
            "01ab0", "zz", "+1", "+1:02", "01::02", "01:", ":01", "001:02", "0:c:29", "01 02", " 0102", "0x12", "é1",
            "1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn shown_as_lower_case_pairs() {
        assert_eq!(Hex(&[1, 0xab, 2], ":").to_string(), "01:ab:02");
        assert_eq!(Hex(&[0, 0xf], "").to_string(), "000f");
        assert_eq!(Hex(&[], ":").to_string(), "");
    }

    proptest! {
        #[test]
        fn what_is_shown_parses_back(bytes in proptest::collection::vec(any::<u8>(), 0..64), sep in "[:-]?") {
            prop_assert_eq!(parse(&Hex(&bytes, &sep).to_string()), Some(bytes));
        }
    }
}
