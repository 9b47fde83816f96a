//! The comparison table of a `compare.sh` run: for each server, its
//! [`Run`], with ratios to Kea and to the raw responder measured in the
//! same run.

use std::fmt::Write;
use std::path::Path;

use crate::report::Report;

/// Rows in the order compare.sh runs them.
const ORDER: [&str; 6] = ["responder", "responder-durable", "leased-full", "leased-normal", "leased-off", "kea"];
/// The runs at half of leased FULL's maximum rate (`NAME-half`).
/// `responder-durable-work` is the durable responder spending leased's own
/// CPU per request ([`own_work_ns`]) on each: the floor of leased's work.
/// `leased-normal` is leased whose ACKs wait for no sync.
const HALF: [&str; 5] = ["responder", "responder-durable", "responder-durable-work", "leased-normal", "leased-full"];

/// One server run of a harness: the generator's report (`NAME.json`) and
/// the server's CPU and peak RSS (`NAME.server`, `key=value` lines).
pub struct Run {
    pub report: Report,
    pub cpu_seconds: f64,
    pub peak_rss_kb: f64,
    /// The CPU a responder spent on each request (`--work-ns`); NaN if none.
    pub work_ns: f64,
}

impl Run {
    /// The run `name` in `dir`; None when it did not run.
    pub fn load(dir: &Path, name: &str) -> Result<Option<Run>, String> {
        let Ok(json) = std::fs::read(dir.join(format!("{name}.json"))) else { return Ok(None) };
        let report: Report = serde_json::from_slice(&json).map_err(|e| format!("{name}.json: {e}"))?;
        let server = std::fs::read_to_string(dir.join(format!("{name}.server"))).unwrap_or_default();
        let (cpu_seconds, peak_rss_kb) = (figure(&server, "cpu_seconds"), figure(&server, "peak_rss_kb"));
        Ok(Some(Run { report, cpu_seconds, peak_rss_kb, work_ns: figure(&server, "work_ns") }))
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

/// The rounds of server `name` in `dir`, in order: `NAME` alone (one
/// round), or `NAME.r1`, `NAME.r2`, ... (`compare.sh --rounds`).
pub fn rounds(dir: &Path, name: &str) -> Result<Vec<Run>, String> {
    if let Some(run) = Run::load(dir, name)? {
        return Ok(vec![run]);
    }
    let mut runs = Vec::new();
    while let Some(run) = Run::load(dir, &format!("{name}.r{}", runs.len() + 1))? {
        runs.push(run);
    }
    Ok(runs)
}

/// The middle value (the lower of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len().saturating_sub(1) / 2).copied()
}

/// The median rate (leases/s) of server `name`'s rounds in `dir`.
pub fn median_rate(dir: &Path, name: &str) -> Result<f64, String> {
    median(rounds(dir, name)?.iter().map(|r| r.report.leases_per_second).collect())
        .ok_or_else(|| format!("no run of {name} in {}", dir.display()))
}

/// leased's own CPU per request, ns: the median over the flat-out rounds
/// of leased NORMAL's CPU per lease above the responder's in the same
/// round, halved (a lease is two requests). NORMAL is leased without the
/// sync before each ACK: the protocol core, the cache and the store's
/// writes, on top of the same packet path.
pub fn own_work_ns(dir: &Path) -> Result<f64, String> {
    let (normal, responder) = (rounds(dir, "leased-normal")?, rounds(dir, "responder")?);
    // A round without its CPU figure (NaN) counts for nothing, not as zero.
    let each = normal.iter().zip(&responder).map(|(n, r)| (n.cpu_us_per_lease() - r.cpu_us_per_lease()) * 500.0);
    median(each.filter(|w| w.is_finite()).map(|w| w.max(0.0)).collect())
        .ok_or_else(|| format!("no rounds of both leased-normal and the responder in {}", dir.display()))
}

/// The table of the runs at a fixed rate, half of leased FULL's maximum
/// (`NAME-half` rounds): each server's round with the median p99 DORA.
/// None when there are none.
fn render_half(dir: &Path) -> Result<Option<String>, String> {
    let mut out = String::new();
    for name in HALF {
        let runs = rounds(dir, &format!("{name}-half"))?;
        let Some(p99) = median(runs.iter().map(|r| r.report.dora.p99_us).collect()) else { continue };
        let Some(r) = runs.iter().find(|r| r.report.dora.p99_us == p99) else { continue };
        if out.is_empty() {
            let rate = r.report.target_rate.unwrap_or_default();
            let _ =
                writeln!(out, "\nAt half of leased FULL's maximum, {rate} leases/s offered (median round by p99):\n");
            out.push_str("| server | leases/s | drop % | p50 DORA ms | p99 DORA ms | p99 DISCOVER→OFFER ms | p99 REQUEST→ACK ms | CPU µs/lease | rounds' p99 DORA ms |\n");
            out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
        }
        let each: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.report.dora.p99_us / 1000.0)).collect();
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            r.report.leases_per_second,
            r.report.drop_percent,
            r.report.dora.p50_us / 1000.0,
            r.report.dora.p99_us / 1000.0,
            r.report.discover_offer.p99_us / 1000.0,
            r.report.request_ack.p99_us / 1000.0,
            r.cpu_us_per_lease(),
            each.join(", "),
        );
    }
    if let Some(work) = rounds(dir, "responder-durable-work-half")?.first().map(|r| r.work_ns) {
        let _ = writeln!(
            out,
            "\nresponder-durable-work: the durable responder spending {work:.0} ns of CPU on each request, \
             leased NORMAL's own CPU per request (flat out, above the responder's): leased's work on a perfect commit path."
        );
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The table (Markdown) of the runs in `dir`. With several rounds, a
/// server's row is its median round (by leases/s), and its ratios are the
/// medians of each round's ratio to Kea's and the responder's rate in the
/// same round: figures measured seconds apart, so that the machine's
/// drifts (this VM's speed changes within minutes) do not skew them. A
/// line per server lists every round.
pub fn render(dir: &Path) -> Result<String, String> {
    let mut servers = Vec::new();
    for name in ORDER {
        let runs = rounds(dir, name)?;
        if !runs.is_empty() {
            servers.push((name, runs));
        }
    }
    if servers.is_empty() {
        return Err(format!("no run reports in {}", dir.display()));
    }
    let rates = |name: &str| -> Vec<f64> {
        servers
            .iter()
            .find(|s| s.0 == name)
            .map_or(Vec::new(), |s| s.1.iter().map(|r| r.report.leases_per_second).collect())
    };
    let (kea, responder) = (rates("kea"), rates("responder"));
    // Round k's rate over the base's in round k, for the rounds both ran.
    let ratios = |runs: &[Run], base: &[f64]| -> Vec<f64> {
        runs.iter().zip(base).filter(|(_, b)| **b > 0.0).map(|(r, b)| r.report.leases_per_second / b).collect()
    };
    let shown = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    let mut out = String::new();
    out.push_str("| server | leases/s | drop % | p99 DORA ms | CPU µs/lease | CPU s per 1,000 leases | peak RSS MB | × Kea | × responder |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (name, runs) in &servers {
        let middle = median(runs.iter().map(|r| r.report.leases_per_second).collect()).unwrap_or_default();
        let r = runs.iter().find(|r| r.report.leases_per_second == middle).unwrap_or(&runs[0]);
        let per_lease_us = r.cpu_us_per_lease();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.3} | {:.2} | {:.1} | {:.4} | {:.0} | {} | {} |",
            name,
            r.report.leases_per_second,
            r.report.drop_percent,
            r.report.dora.p99_us / 1000.0,
            per_lease_us,
            per_lease_us / 1000.0,
            r.peak_rss_kb / 1024.0,
            shown(median(ratios(runs, &kea))),
            shown(median(ratios(runs, &responder))),
        );
    }
    if servers.iter().any(|(_, runs)| runs.len() > 1) {
        out.push_str("\nEach round (leases/s, CPU µs per lease, × responder in that round):\n\n");
        for (name, runs) in &servers {
            let each: Vec<String> = runs
                .iter()
                .enumerate()
                .map(|(k, r)| {
                    let x = responder
                        .get(k)
                        .filter(|b| **b > 0.0)
                        .map_or(String::new(), |b| format!(", {:.2}×", r.report.leases_per_second / b));
                    format!("{:.0} ({:.1} µs{x})", r.report.leases_per_second, r.cpu_us_per_lease())
                })
                .collect();
            let _ = writeln!(out, "- {name}: {}", each.join("; "));
        }
    }
    if let Some(half) = render_half(dir)? {
        out.push_str(&half);
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
            ("responder-durable", 150_000.0, 1_500_000, 6.0),
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
        assert_eq!(lines.len(), 6, "{table}");
        assert!(lines[2].starts_with("| responder | 200000 |"), "{table}");
        // The durable responder next to the plain one: its rate over the packet path's.
        assert!(lines[3].starts_with("| responder-durable | 150000 |") && lines[3].ends_with("| 0.75 |"), "{table}");
        // leased: 4.5 s of CPU for 1M leases = 4.5 µs each; 10× Kea, half the responder.
        assert_eq!(lines[4], "| leased-full | 100000 | 0.000 | 0.00 | 4.5 | 0.0045 | 20 | 10.00 | 0.50 |", "{table}");
        assert!(lines[5].contains("| 50.0 |") && lines[5].ends_with("| 1.00 | 0.05 |"), "{table}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(render(&dir).is_err());
    }

    #[test]
    fn rounds_show_the_median_round_and_the_median_of_each_rounds_ratio() {
        let dir = std::env::temp_dir().join(format!("leased-bench-rounds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The machine slows in round 2: every server's rate falls.
        for (name, rates) in [
            ("responder", [200_000.0, 100_000.0, 210_000.0]),
            ("leased-full", [150_000.0, 90_000.0, 100_000.0]),
            ("kea", [10_000.0, 10_000.0, 10_000.0]),
        ] {
            for (k, rate) in rates.into_iter().enumerate() {
                let report = Report { leases: rate as u64, leases_per_second: rate, ..Default::default() };
                let file = format!("{name}.r{}", k + 1);
                std::fs::write(dir.join(format!("{file}.json")), serde_json::to_vec(&report).unwrap()).unwrap();
                std::fs::write(dir.join(format!("{file}.server")), format!("cpu_seconds={}\n", k + 1)).unwrap();
            }
        }
        let table = render(&dir).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[2].starts_with("| responder | 200000 |"), "{table}");
        // Median round 100k (round 3, 3 s of CPU: 30 µs a lease); × responder
        // the median of 0.75, 0.90 and 0.48 (not 100k / 200k); × Kea of 15, 9 and 10.
        assert!(lines[3].starts_with("| leased-full | 100000 | 0.000 | 0.00 | 30.0 |"), "{table}");
        assert!(lines[3].ends_with("| 10.00 | 0.75 |"), "{table}");
        assert!(
            table.contains("- leased-full: 150000 (6.7 µs, 0.75×); 90000 (22.2 µs, 0.90×); 100000 (30.0 µs, 0.48×)\n"),
            "{table}"
        );
        assert_eq!(rounds(&dir, "leased-full").unwrap().len(), 3);
        assert!(rounds(&dir, "leased-off").unwrap().is_empty());
        assert_eq!(median_rate(&dir, "leased-full").unwrap(), 100_000.0);
        assert!(median_rate(&dir, "leased-off").is_err());
        assert!(!table.contains("At half"), "{table}");
        // Then the runs at half of FULL's maximum: the round with the median p99.
        for (name, p99s) in [
            ("responder-half", [400.0, 4_500.0, 2_200.0]),
            ("responder-durable-half", [2_600.0, 3_000.0, 2_900.0]),
            ("leased-full-half", [3_800.0, 7_000.0, 3_300.0]),
        ] {
            for (k, p99_us) in p99s.into_iter().enumerate() {
                let dora = crate::report::Percentiles { p50_us: 900.0, p99_us, ..Default::default() };
                // The halves' tails: a third and two thirds of the whole.
                let half = |part: f64| crate::report::Percentiles { p99_us: p99_us * part, ..Default::default() };
                let report = Report {
                    leases: 150_000,
                    leases_per_second: 50_000.0,
                    target_rate: Some(50_000),
                    dora,
                    discover_offer: half(1.0 / 3.0),
                    request_ack: half(2.0 / 3.0),
                    ..Default::default()
                };
                let file = format!("{name}.r{}", k + 1);
                std::fs::write(dir.join(format!("{file}.json")), serde_json::to_vec(&report).unwrap()).unwrap();
                std::fs::write(dir.join(format!("{file}.server")), "cpu_seconds=1.5\n").unwrap();
            }
        }
        let table = render(&dir).unwrap();
        assert!(table.contains("At half of leased FULL's maximum, 50000 leases/s offered"), "{table}");
        assert!(
            table.contains("\n| responder | 50000 | 0.000 | 0.90 | 2.20 | 0.73 | 1.47 | 10.0 | 0.40, 4.50, 2.20 |\n"),
            "{table}"
        );
        assert!(
            table.contains(concat!(
                "\n| responder-durable | 50000 | 0.000 | 0.90 | 2.90 | 0.97 | 1.93 | 10.0 | 2.60, 3.00, 2.90 |\n",
                "| leased-full | 50000 | 0.000 | 0.90 | 3.80 | 1.27 | 2.53 | 10.0 | 3.80, 7.00, 3.30 |\n"
            )),
            "{table}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn own_work_is_normal_above_the_responder_per_request_and_shown_with_its_floor() {
        let dir = std::env::temp_dir().join(format!("leased-bench-work-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |file: &str, report: &Report, server: &str| {
            std::fs::write(dir.join(format!("{file}.json")), serde_json::to_vec(report).unwrap()).unwrap();
            std::fs::write(dir.join(format!("{file}.server")), server).unwrap();
        };
        assert!(own_work_ns(&dir).is_err(), "no rounds");
        // 1M leases a round: CPU seconds are µs per lease. Round 2's NORMAL
        // is below the responder (noise): no work, not negative work.
        for (k, (responder, normal)) in [(4.0, 6.0), (5.0, 4.5), (4.0, 7.0)].into_iter().enumerate() {
            let report = Report { leases: 1_000_000, leases_per_second: 100_000.0, ..Default::default() };
            write(&format!("responder.r{}", k + 1), &report, &format!("cpu_seconds={responder}\n"));
            write(&format!("leased-normal.r{}", k + 1), &report, &format!("cpu_seconds={normal}\n"));
        }
        // Per request: 1000, 0, 1500 ns; the median.
        assert_eq!(own_work_ns(&dir).unwrap(), 1000.0);
        // A fourth round whose NORMAL lost its CPU figure is left out (the
        // median of four, 0 / 1000 / 1500 / NaN as zero, would be 0).
        let report = Report { leases: 1_000_000, leases_per_second: 100_000.0, ..Default::default() };
        write("responder.r4", &report, "cpu_seconds=4.0\n");
        write("leased-normal.r4", &report, "");
        assert_eq!(own_work_ns(&dir).unwrap(), 1000.0);

        let dora = crate::report::Percentiles { p50_us: 700.0, p99_us: 1_900.0, ..Default::default() };
        let half = Report {
            leases: 150_000,
            leases_per_second: 50_000.0,
            target_rate: Some(50_000),
            dora,
            ..Default::default()
        };
        write("responder-durable-half", &half, "cpu_seconds=1.5\n");
        write("responder-durable-work-half", &half, "cpu_seconds=1.8\nwork_ns=1000\n");
        write("leased-full-half", &half, "cpu_seconds=2.1\n");
        write("leased-normal-half", &half, "cpu_seconds=1.65\n");
        let table = render(&dir).unwrap();
        // The floor with leased's work between the floor and leased, leased
        // without the sync wait above leased with it.
        let rows: Vec<&str> = table.lines().filter(|l| l.contains("| 50000 |")).collect();
        assert_eq!(rows.len(), 4, "{table}");
        assert!(rows[0].starts_with("| responder-durable | "), "{table}");
        assert!(rows[1].starts_with("| responder-durable-work | ") && rows[1].contains("| 12.0 |"), "{table}");
        assert!(rows[2].starts_with("| leased-normal | ") && rows[2].contains("| 11.0 |"), "{table}");
        assert!(rows[3].starts_with("| leased-full | "), "{table}");
        assert!(table.contains("spending 1000 ns of CPU on each request"), "{table}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
