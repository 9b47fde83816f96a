//! Which hardware address the built-in client speaks for: one given, one
//! made up, or the host's own (read from sysfs).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::values::Mac;

/// A locally administered unicast MAC that differs from run to run (clock
/// and process id), for tests that must not collide with real devices.
pub fn synthetic() -> [u8; 6] {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let b = (t ^ ((std::process::id() as u64) << 24)).to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// The hardware address of interface `name`.
pub fn of_interface(name: &str) -> Result<[u8; 6], String> {
    let path = format!("/sys/class/net/{name}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read the address of {name}: {e}"))?;
    text.trim().parse::<Mac>().map(|m| m.0).map_err(|e| format!("{path}: {e}"))
}

/// This host's MAC: the first of `preferred` that has a real one, else the
/// first interface by name that has one (loopback and all-zero addresses
/// skipped). Returns the interface's name with it.
pub fn detect(preferred: &[String]) -> Result<(String, [u8; 6]), String> {
    let mut others: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map_err(|e| format!("cannot list interfaces: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    others.sort();
    preferred
        .iter()
        .chain(others.iter())
        .filter(|name| name.as_str() != "lo")
        .find_map(|name| of_interface(name).ok().filter(|m| *m != [0; 6]).map(|m| (name.clone(), m)))
        .ok_or_else(|| "no interface of this host has a hardware address".to_string())
}
