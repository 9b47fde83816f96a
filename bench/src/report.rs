//! What a run measured: counts, rates and latency percentiles (HDR
//! histograms), written as JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::generate::Load;

/// Latency histograms, in nanoseconds (1 µs to 60 s, 3 significant digits).
pub struct Latencies {
    pub discover_offer: Histogram<u64>,
    pub request_ack: Histogram<u64>,
    /// DISCOVER sent to ACK received.
    pub dora: Histogram<u64>,
    pub renew_ack: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid bounds");
        Latencies { discover_offer: h(), request_ack: h(), dora: h(), renew_ack: h() }
    }
}

/// Recording clamps to the histogram's range: nothing measured is lost.
pub trait Record {
    fn sample(&mut self, ns: u64);
}

impl Record for Histogram<u64> {
    fn sample(&mut self, ns: u64) {
        self.saturating_record(ns.max(1_000));
    }
}

/// Percentiles of one latency, in microseconds.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let us = |v: u64| v as f64 / 1_000.0;
        Percentiles {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            max_us: us(h.max()),
        }
    }
}

/// The figures of one run.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    /// Exchanges started (DISCOVERs sent).
    pub started: u64,
    /// Exchanges that ended with an ACK.
    pub leases: u64,
    pub renewals: u64,
    pub releases: u64,
    pub naks: u64,
    pub offer_timeouts: u64,
    pub ack_timeouts: u64,
    pub renew_timeouts: u64,
    /// Datagrams sent and received.
    pub sent: u64,
    pub send_failed: u64,
    /// System calls that sent several datagrams segmented (`--segment`).
    pub segmented_sends: u64,
    pub received: u64,
    /// Replies that were not DHCP, or to no exchange in flight (late).
    pub malformed: u64,
    pub unexpected: u64,
    pub seconds: f64,
    pub leases_per_second: f64,
    /// Exchanges that timed out, per started exchange, in percent.
    pub drop_percent: f64,
    pub target_rate: Option<u64>,
    pub discover_offer: Percentiles,
    pub request_ack: Percentiles,
    pub dora: Percentiles,
    pub renew_ack: Percentiles,
}

impl Report {
    /// Derives the rates and percentiles once the run is over.
    pub fn finish(&mut self, latency: &Latencies, ran: Duration, load: &Load) {
        self.seconds = ran.as_secs_f64();
        self.leases_per_second = self.leases as f64 / self.seconds;
        let lost = self.offer_timeouts + self.ack_timeouts;
        self.drop_percent = if self.started == 0 { 0.0 } else { 100.0 * lost as f64 / self.started as f64 };
        self.target_rate = load.rate;
        self.discover_offer = Percentiles::of(&latency.discover_offer);
        self.request_ack = Percentiles::of(&latency.request_ack);
        self.dora = Percentiles::of(&latency.dora);
        self.renew_ack = Percentiles::of(&latency.renew_ack);
    }
}

impl Report {
    /// The figures for people, a few lines.
    pub fn summary(&self) -> String {
        let p = |name: &str, l: &Percentiles| {
            format!(
                "{name:<16} p50 {:>8.0} µs  p90 {:>8.0} µs  p99 {:>8.0} µs  max {:>8.0} µs  ({} samples)",
                l.p50_us, l.p90_us, l.p99_us, l.max_us, l.count
            )
        };
        let mut lines = vec![
            format!(
                "{} leases in {:.2} s: {:.0} leases/s; {} started, {:.3} % dropped (offer {} ack {} renew {} timeouts), {} NAKs",
                self.leases,
                self.seconds,
                self.leases_per_second,
                self.started,
                self.drop_percent,
                self.offer_timeouts,
                self.ack_timeouts,
                self.renew_timeouts,
                self.naks
            ),
            format!(
                "datagrams: {} sent, {} failed, {} received ({} malformed, {} late or unexpected)",
                self.sent, self.send_failed, self.received, self.malformed, self.unexpected
            ),
            p("DISCOVER→OFFER", &self.discover_offer),
            p("REQUEST→ACK", &self.request_ack),
            p("DORA", &self.dora),
        ];
        if self.renew_ack.count > 0 {
            lines.push(p("RENEW→ACK", &self.renew_ack));
        }
        lines.join("\n")
    }
}
