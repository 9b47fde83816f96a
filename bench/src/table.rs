//! The comparison table of a `compare.sh` run: for each server, its
//! [`Run`], with ratios to Kea and to the raw responder measured in the
//! same run.

use std::fmt::Write;
use std::path::Path;

use crate::report::Report;

/// Rows in the order compare.sh runs them.
const ORDER: [&str; 5] = ["responder", "leased-full", "leased-normal", "leased-off", "kea"];

/// One server run of a harness: the generator's report (`NAME.json`) and
/// the server's CPU and peak RSS (`NAME.server`, `key=value` lines).
pub struct Run {
    pub name: String,
    pub report: Report,
    pub cpu_seconds: f64,
    pub peak_rss_kb: f64,
}

impl Run {
    /// The run `name` in `dir`; None when it did not run.
    pub fn load(dir: &Path, name: &str) -> Result<Option<Run>, String> {
        let Ok(json) = std::fs::read(dir.join(format!("{name}.json"))) else { return Ok(None) };
        let report: Report = serde_json::from_slice(&json).map_err(|e| format!("{name}.json: {e}"))?;
        let server = std::fs::read_to_string(dir.join(format!("{name}.server"))).unwrap_or_default();
        let (cpu_seconds, peak_rss_kb) = (figure(&server, "cpu_seconds"), figure(&server, "peak_rss_kb"));
        Ok(Some(Run { name: name.to_string(), report, cpu_seconds, peak_rss_kb }))
    }

    /// Server CPU (user + system) per lease, µs.
    pub fn cpu_us_per_lease(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.report.leases.max(1) as f64
    }
}

/// The value of `key=value` in `text`; NaN when missing.
pub fn figure(text: &str, key: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok()).unwrap_or(f64::NAN)
}

/// The table (Markdown) of the runs in `dir`.
pub fn render(dir: &Path) -> Result<String, String> {
    let mut rows = Vec::new();
    for name in ORDER {
        rows.extend(Run::load(dir, name)?);
    }
    if rows.is_empty() {
        return Err(format!("no run reports in {}", dir.display()));
    }
    let rate = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.report.leases_per_second);
    let (kea, responder) = (rate("kea"), rate("responder"));
    let ratio =
        |v: f64, base: Option<f64>| base.filter(|b| *b > 0.0).map_or("–".to_string(), |b| format!("{:.2}", v / b));
    let mut out = String::new();
    out.push_str("| server | leases/s | drop % | p99 DORA ms | CPU µs/lease | CPU s per 1,000 leases | peak RSS MB | × Kea | × responder |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let per_lease_us = r.cpu_us_per_lease();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.3} | {:.2} | {:.1} | {:.4} | {:.0} | {} | {} |",
            r.name,
            r.report.leases_per_second,
            r.report.drop_percent,
            r.report.dora.p99_us / 1000.0,
            per_lease_us,
            per_lease_us / 1000.0,
            r.peak_rss_kb / 1024.0,
            ratio(r.report.leases_per_second, kea),
            ratio(r.report.leases_per_second, responder),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_with_ratios_to_kea_and_the_responder() {
        let dir = std::env::temp_dir().join(format!("leased-bench-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, rate, leases, cpu) in [
            ("responder", 200_000.0, 2_000_000, 4.0),
            ("leased-full", 100_000.0, 1_000_000, 4.5),
            ("kea", 10_000.0, 100_000, 5.0),
        ] {
            let report = Report { leases, leases_per_second: rate, ..Default::default() };
            std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec(&report).unwrap()).unwrap();
            std::fs::write(dir.join(format!("{name}.server")), format!("cpu_seconds={cpu}\npeak_rss_kb=20480\n"))
                .unwrap();
        }
        let table = render(&dir).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[2].starts_with("| responder | 200000 |"), "{table}");
        // leased: 4.5 s of CPU for 1M leases = 4.5 µs each; 10× Kea, half the responder.
        assert_eq!(lines[3], "| leased-full | 100000 | 0.000 | 0.00 | 4.5 | 0.0045 | 20 | 10.00 | 0.50 |", "{table}");
        assert!(lines[4].contains("| 50.0 |") && lines[4].ends_with("| 1.00 | 0.05 |"), "{table}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(render(&dir).is_err());
    }
}
