//! How the management commands print for people: tables sized to the
//! terminal, durations and UTC times.

use comfy_table::{presets, ContentArrangement, Table};

/// Columns of `rows` under `header`, wrapped to the terminal's width when
/// standard output is one (`COLUMNS` otherwise, else not wrapped).
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    if let Some(width) = terminal_width() {
        t.set_width(width);
        t.set_content_arrangement(ContentArrangement::Dynamic);
    }
    for row in rows {
        t.add_row(row);
    }
    t.trim_fmt()
}

fn terminal_width() -> Option<u16> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills a winsize we own; it fails when stdout is no terminal.
    if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0 && size.ws_col > 0 {
        return Some(size.ws_col);
    }
    std::env::var("COLUMNS").ok()?.parse().ok()
}

/// `secs` as people read a lease time: `2d3h`, `45m`, `30s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// When a lease with end `end` ends, seen at `now`.
pub fn ends(end: u64, now: u64) -> String {
    if end == u64::from(u32::MAX) {
        "never".into()
    } else if end > now {
        format!("in {}", duration(end - now))
    } else {
        format!("{} ago", duration(now - end))
    }
}

/// Unix seconds as `2026-11-23 10:00:00Z` (civil from days, H. Hinnant).
pub fn utc(secs: u64) -> String {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_for_people() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06:40Z");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3599), "59m");
        assert_eq!(duration(86_399), "23h59m");
        assert_eq!(duration(2 * 86_400 + 3 * 3600), "2d3h");
        assert_eq!(ends(u64::from(u32::MAX), 5), "never");
        assert_eq!(ends(100, 40), "in 1m");
        assert_eq!(ends(40, 100), "1m ago");
    }

    #[test]
    fn tables_keep_every_cell() {
        let t = table(&["IP", "MAC"], [vec!["198.18.1.20".into(), "02:00:00:00:00:01".into()]]);
        assert!(t.contains("IP") && t.contains("198.18.1.20") && t.contains("02:00:00:00:00:01"), "{t}");
    }
}
