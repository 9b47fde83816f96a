//! The tables and the plot of a `scaling.sh` run: leased FULL under rising
//! offered load with 1 and 2 shards (`sweep-sS-rRATE`, `sweep-sS-flat`), the
//! raw responder under the same loads (`sweep-resp-…`: the packet path's
//! own rate and latency, what leased's are read against), and leased with
//! N active leases in the store (`active-N`, with `active-N.recovered`
//! holding the RSS after recovery).

use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;

use crate::table::{figure, Run};

/// Where Debian's fonts-dejavu-core puts the font the plot is labelled with.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// One point of an offered-load sweep.
struct Point {
    /// Exchanges started per second: the target rate if the generator kept
    /// up with it, or what the window allowed.
    offered: f64,
    run: Run,
}

/// The sweeps: name, file prefix, plot colour.
const SWEEPS: [(&str, &str, RGBColor); 3] =
    [("1 shard", "sweep-s1-", BLUE), ("2 shards", "sweep-s2-", RED), ("raw responder", "sweep-resp-", BLACK)];

/// The runs whose names start with `prefix`, by target rate; flat out last.
fn sweep(dir: &Path, prefix: &str) -> Result<Vec<Point>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| Some(f.strip_suffix(".json")?.to_string()))
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    let mut points = Vec::new();
    for name in names {
        let Some(run) = Run::load(dir, &name)? else { continue };
        let offered = run.report.started as f64 / run.report.seconds.max(f64::MIN_POSITIVE);
        points.push(Point { offered, run });
    }
    // By target rate, flat out last (the plot goes by the load offered).
    points.sort_by_key(|p| p.run.report.target_rate.unwrap_or(u64::MAX));
    Ok(points)
}

/// The active-lease runs, smallest first, with their RSS after recovery (KiB).
fn active(dir: &Path) -> Result<Vec<(u64, Run, f64)>, String> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let file = entry.map_err(|e| e.to_string())?.file_name().into_string().unwrap_or_default();
        let Some(n) = file.strip_prefix("active-").and_then(|f| f.strip_suffix(".json")) else { continue };
        let Ok(count) = n.parse::<u64>() else { continue };
        let Some(run) = Run::load(dir, &format!("active-{n}"))? else { continue };
        let recovered = std::fs::read_to_string(dir.join(format!("active-{n}.recovered"))).unwrap_or_default();
        runs.push((count, run, figure(&recovered, "recovered_rss_kb")));
    }
    runs.sort_by_key(|(n, _, _)| *n);
    Ok(runs)
}

/// The tables (Markdown) of the runs in `dir`; writes `dir/scaling.png`.
pub fn render(dir: &Path) -> Result<String, String> {
    let [one, two, responder] = SWEEPS.map(|(_, prefix, _)| sweep(dir, prefix));
    let sweeps = [one?, two?, responder?];
    let active = active(dir)?;
    if sweeps.iter().all(Vec::is_empty) && active.is_empty() {
        return Err(format!("no scaling runs in {}", dir.display()));
    }
    let mut out = String::new();
    for (i, points) in sweeps.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
        let _ = writeln!(out, "\n{}:\n", SWEEPS[i].0);
        out.push_str("| target/s | offered/s | leases/s | drop % | p50 DORA ms | p99 DORA ms | CPU µs/lease |\n");
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in points {
            let r = &p.run.report;
            let target = r.target_rate.map_or("flat out".to_string(), |t| t.to_string());
            let _ = writeln!(
                out,
                "| {target} | {:.0} | {:.0} | {:.3} | {:.2} | {:.2} | {:.1} |",
                p.offered,
                r.leases_per_second,
                r.drop_percent,
                r.dora.p50_us / 1000.0,
                r.dora.p99_us / 1000.0,
                p.run.cpu_us_per_lease()
            );
        }
    }
    if let Some((smallest, _, base)) = active.first() {
        out.push_str("\nActive leases in the store (1 shard, flat out):\n\n");
        out.push_str("| active leases | leases/s | drop % | p99 DORA ms | CPU µs/lease | RSS after recovery MB | peak RSS MB | B per active lease |\n");
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (n, run, recovered) in &active {
            // What each further lease costs, against the smallest store.
            let per_lease = if n > smallest {
                format!("{:.0}", (recovered - base) * 1024.0 / (n - smallest) as f64)
            } else {
                "–".into()
            };
            let r = &run.report;
            let _ = writeln!(
                out,
                "| {n} | {:.0} | {:.3} | {:.2} | {:.1} | {:.0} | {:.0} | {per_lease} |",
                r.leases_per_second,
                r.drop_percent,
                r.dora.p99_us / 1000.0,
                run.cpu_us_per_lease(),
                recovered / 1024.0,
                run.peak_rss_kb / 1024.0
            );
        }
    }
    if sweeps.iter().any(|s| !s.is_empty()) {
        plot(&sweeps, &dir.join("scaling.png"))?;
        let _ = writeln!(out, "\nPlot: {}", dir.join("scaling.png").display());
    }
    Ok(out)
}

/// Leases/s and p99 DORA latency against offered load, one series per
/// sweep, side by side.
fn plot(sweeps: &[Vec<Point>; 3], file: &Path) -> Result<(), String> {
    let font = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e} (Debian package fonts-dejavu-core)"))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| format!("{FONT} is not a usable font"))?;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(file, (1400, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(700);
        let max_x = sweeps.iter().flatten().map(|p| p.offered).fold(1.0, f64::max) * 1.05;
        let max_rate = sweeps.iter().flatten().map(|p| p.run.report.leases_per_second).fold(1.0, f64::max) * 1.1;
        let p99s = || sweeps.iter().flatten().map(|p| (p.run.report.dora.p99_us / 1000.0).max(0.01));
        let (min_p99, max_p99) = (p99s().fold(f64::MAX, f64::min) / 2.0, p99s().fold(0.1, f64::max) * 2.0);
        let mut rate = ChartBuilder::on(&left)
            .caption("leases/s against offered load (leased FULL)", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..max_x, 0.0..max_rate)?;
        let whole = |v: &f64| format!("{v:.0}");
        rate.configure_mesh()
            .x_desc("offered exchanges/s")
            .y_desc("leases/s")
            .x_label_formatter(&whole)
            .y_label_formatter(&whole)
            .draw()?;
        let mut latency = ChartBuilder::on(&right)
            .caption("p99 DORA latency against offered load", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..max_x, (min_p99..max_p99).log_scale())?;
        latency
            .configure_mesh()
            .x_desc("offered exchanges/s")
            .y_desc("p99 DORA ms (log)")
            .x_label_formatter(&whole)
            .draw()?;
        for (i, points) in sweeps.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let (label, _, color) = SWEEPS[i];
            let mut by_offered: Vec<&Point> = points.iter().collect();
            by_offered.sort_by(|a, b| a.offered.total_cmp(&b.offered));
            let rates: Vec<(f64, f64)> =
                by_offered.iter().map(|p| (p.offered, p.run.report.leases_per_second)).collect();
            let p99s: Vec<(f64, f64)> =
                by_offered.iter().map(|p| (p.offered, (p.run.report.dora.p99_us / 1000.0).max(0.01))).collect();
            rate.draw_series(LineSeries::new(rates.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            rate.draw_series(rates.iter().map(|&xy| Circle::new(xy, 4, color.filled())))?;
            latency
                .draw_series(LineSeries::new(p99s.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            latency.draw_series(p99s.iter().map(|&xy| Circle::new(xy, 4, color.filled())))?;
        }
        rate.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
        latency.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    fn write_run(dir: &Path, name: &str, report: Report, cpu: f64, rss_kb: u64) {
        std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec(&report).unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}.server")), format!("cpu_seconds={cpu}\npeak_rss_kb={rss_kb}\n"))
            .unwrap();
    }

    #[test]
    fn tables_by_offered_load_and_active_leases_and_a_png_plot() {
        let dir = std::env::temp_dir().join(format!("leased-bench-scaling-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (sweep, rate, started, leases, p99_us) in [
            ("s1", Some(10_000), 30_000, 30_000, 1500.0),
            ("s1", None, 150_000, 149_000, 1500.0),
            ("s1", Some(20_000), 60_000, 60_000, 1500.0),
            ("resp", Some(10_000), 30_000, 30_000, 400.0),
        ] {
            let name = rate.map_or(format!("sweep-{sweep}-flat"), |r| format!("sweep-{sweep}-r{r}"));
            let mut report = Report { started, leases, seconds: 3.0, target_rate: rate, ..Default::default() };
            report.leases_per_second = leases as f64 / 3.0;
            report.dora.p99_us = p99_us;
            write_run(&dir, &name, report, leases as f64 * 20e-6, 150_000);
        }
        for (n, recovered_kb) in [(10_000u64, 100_000u64), (1_010_000, 300_000)] {
            let report = Report { leases: 100_000, leases_per_second: 33_000.0, seconds: 3.0, ..Default::default() };
            write_run(&dir, &format!("active-{n}"), report, 2.0, recovered_kb + 50_000);
            std::fs::write(dir.join(format!("active-{n}.recovered")), format!("recovered_rss_kb={recovered_kb}\n"))
                .unwrap();
        }
        let text = render(&dir).unwrap();
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| target")).collect();
        // By offered load, flat out last; 20 µs of CPU per lease.
        assert!(
            rows[0].starts_with("| 10000 | 10000 | 10000 | 0.000 |") && rows[0].ends_with("| 1.50 | 20.0 |"),
            "{text}"
        );
        assert!(rows[1].starts_with("| 20000 | 20000 | 20000 |"), "{text}");
        assert!(rows[2].starts_with("| flat out | 50000 | 49667 |"), "{text}");
        // The responder's sweep has its own table, after leased's.
        assert!(text.contains("\nraw responder:\n"), "{text}");
        assert!(rows[3].starts_with("| 10000 | 10000 | 10000 |") && rows[3].ends_with("| 0.40 | 20.0 |"), "{text}");
        // 200 MB more for 1M more leases: 205 B each.
        assert!(rows[5].starts_with("| 10000 | 33000 |") && rows[5].ends_with("| – |"), "{text}");
        assert!(rows[6].starts_with("| 1010000 |") && rows[6].ends_with("| 293 | 342 | 205 |"), "{text}");
        let png = std::fs::read(dir.join("scaling.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 10_000, "a plot, not an empty image: {} bytes", png.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
