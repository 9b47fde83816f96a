//! `leased lease ...`, `leased pool status`, `leased reservation ...` and
//! `leased monitor --leases`: the REST API from a terminal (see
//! [`super::target`] for where the answers come from). `--json` prints the
//! API's data as it is; otherwise tables and lines for people.

use std::process::ExitCode;

use serde_json::{json, Value};

use super::database::fail;
use super::show::{duration, ends, table, utc};
use super::target::{Source, Target, TargetArgs};

/// `leased lease ...`.
#[derive(Debug, clap::Subcommand)]
pub enum LeaseCommand {
    /// Leases in address order, with filters.
    List(ListArgs),
    /// One lease by address, or the leases of a MAC.
    Show(ShowArgs),
    /// Leases by state, the average lease time, changes of the last hour and day.
    Status(TargetArgs),
    /// Release the bound lease at an address (the address is free at once).
    Release {
        #[command(flatten)]
        target: TargetArgs,
        /// The leased address.
        ip: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only these states (comma-separated): ALLOCATED, RESERVED, EXPIRED, RELEASED, ABANDONED, OFFERED.
    #[arg(long)]
    pub state: Option<String>,
    /// Only this scope.
    #[arg(long)]
    pub scope: Option<String>,
    /// Only leases whose IP, MAC or host name contains this (any case).
    #[arg(long)]
    pub search: Option<String>,
    /// At most this many (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The lease at this address.
    #[arg(long, required_unless_present = "mac", conflicts_with = "mac")]
    pub ip: Option<String>,
    /// The leases of this MAC.
    #[arg(long)]
    pub mac: Option<String>,
}

/// `leased reservation ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ReservationCommand {
    /// Every reservation, with its lease.
    List(TargetArgs),
    /// Reserve an address for a MAC (written into the config, applied live).
    Add {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        mac: String,
        /// The address (default: the lowest free one of the scope's reserved range).
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// The scope, where there are several and no --ip says which.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Remove the reservation of a MAC or an address.
    Remove {
        #[command(flatten)]
        target: TargetArgs,
        /// A MAC or an IP.
        key: String,
    },
}

/// `leased pool ...`.
#[derive(Debug, clap::Subcommand)]
pub enum PoolCommand {
    /// Size, addresses taken and active leases of every pool.
    Status(TargetArgs),
}

/// Connects, runs `body`, prints its error; the exit code.
fn with_target(
    args: &TargetArgs,
    server_only: bool,
    body: impl FnOnce(&Target, bool) -> Result<(), String>,
) -> ExitCode {
    let result = Target::connect(args, server_only).and_then(|t| body(&t, args.db.config.json));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON values serialize"));
}

/// Where the answers came from, for the last line of a table.
fn from(t: &Target) -> String {
    match &t.source {
        Source::Server(url) => format!("from the server at {url}"),
        Source::DataDir(dir) => format!("from the data directory {} (no server running)", dir.display()),
    }
}

/// A path segment or query value as it may go in a URL.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now() -> u64 {
    u64::from(crate::lease::unix_now())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn lease_row(l: &Value) -> Vec<String> {
    let end = l["end"].as_u64().unwrap_or(0);
    vec![
        text(&l["ip"]),
        text(&l["mac"]),
        text(&l["state"]),
        text(&l["hostname"]),
        format!("{}/{}", text(&l["scope"]), text(&l["pool"])),
        ends(end, now()),
    ]
}

const LEASE_HEADER: [&str; 6] = ["IP", "MAC", "STATE", "HOSTNAME", "SCOPE/POOL", "ENDS"];

pub fn lease(command: &LeaseCommand) -> ExitCode {
    match command {
        LeaseCommand::List(a) => with_target(&a.target, false, |t, json| list(t, a, json)),
        LeaseCommand::Show(a) => with_target(&a.target, false, |t, json| show(t, a, json)),
        LeaseCommand::Status(a) => with_target(a, false, status),
        LeaseCommand::Release { target, ip } => with_target(target, false, |t, json| {
            let answer = t.call("DELETE", &format!("/leases/{}", escape(ip)), None)?;
            if json {
                print_json(&answer["lease"]);
            } else {
                println!("released {} of {}", ip, text(&answer["lease"]["mac"]));
            }
            Ok(())
        }),
    }
}

/// Every matching lease, a page of up to 10,000 at a time.
fn list(t: &Target, a: &ListArgs, json: bool) -> Result<(), String> {
    let mut query = vec![];
    for (key, value) in [("state", &a.state), ("scope", &a.scope), ("q", &a.search)] {
        if let Some(v) = value {
            query.push(format!("{key}={}", escape(v)));
        }
    }
    let wanted = a.limit.unwrap_or(usize::MAX);
    if wanted == 0 {
        return Err("--limit must be at least 1".into());
    }
    let mut leases: Vec<Value> = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let mut q = query.clone();
        q.push(format!("limit={}", (wanted - leases.len()).min(10_000)));
        if let Some(c) = &cursor {
            q.push(format!("cursor={c}"));
        }
        let mut page = t.get(&format!("/leases?{}", q.join("&")))?;
        if let Some(Value::Array(list)) = page.get_mut("leases").map(Value::take) {
            leases.extend(list);
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() || leases.len() >= wanted {
            break;
        }
    }
    if json {
        print_json(&Value::Array(leases));
    } else {
        println!("{}", table(&LEASE_HEADER, leases.iter().map(lease_row)));
        println!("{} leases {}", leases.len(), from(t));
    }
    Ok(())
}

fn show(t: &Target, a: &ShowArgs, json: bool) -> Result<(), String> {
    let leases = match (&a.ip, &a.mac) {
        (Some(ip), _) => vec![t.get(&format!("/leases/{}", escape(ip)))?["lease"].take()],
        (None, Some(mac)) => match t.get(&format!("/leases/mac/{}", escape(mac)))?["leases"].take() {
            Value::Array(list) => list,
            _ => vec![],
        },
        (None, None) => return Err("give --ip or --mac".into()),
    };
    if json {
        print_json(&Value::Array(leases));
        return Ok(());
    }
    for (i, l) in leases.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let when = |key: &str| l[key].as_u64().map_or("-".into(), utc);
        let end = l["end"].as_u64().unwrap_or(0);
        let fields = [
            ("ip", text(&l["ip"])),
            ("mac", text(&l["mac"])),
            ("state", text(&l["state"])),
            ("scope", text(&l["scope"])),
            ("pool", text(&l["pool"])),
            ("hostname", text(&l["hostname"])),
            ("vendor class", text(&l["vendor_class"])),
            ("client id", text(&l["client_id"])),
            ("circuit id", text(&l["circuit_id"])),
            ("remote id", text(&l["remote_id"])),
            ("start", when("start")),
            (
                "end",
                if end == u64::from(u32::MAX) {
                    "never".into()
                } else {
                    format!("{} ({})", utc(end), ends(end, now()))
                },
            ),
            ("last seen", when("last_seen")),
            ("created", when("created")),
            ("updated", when("updated")),
        ];
        for (name, value) in fields {
            println!("{name:<13}{value}");
        }
    }
    Ok(())
}

fn status(t: &Target, json: bool) -> Result<(), String> {
    let s = t.get("/leases/stats")?;
    if json {
        print_json(&s);
        return Ok(());
    }
    println!("{} leases {}", text(&s["total"]), from(t));
    if let Some(states) = s["by_state"].as_object() {
        println!("{}", table(&["STATE", "LEASES"], states.iter().map(|(k, v)| vec![k.clone(), text(v)])));
    }
    println!("average lease time of bound leases: {}", duration(s["average_lease_secs"].as_u64().unwrap_or(0)));
    if matches!(t.source, Source::Server(_)) {
        let row = |w: &str| {
            let x = &s[w];
            vec![
                w.replace('_', " "),
                text(&x["new_leases"]),
                text(&x["renewals"]),
                text(&x["releases"]),
                text(&x["expirations"]),
                text(&x["declined"]),
            ]
        };
        let header = ["SINCE START", "NEW", "RENEWED", "RELEASED", "EXPIRED", "DECLINED"];
        println!("{}", table(&header, [row("last_hour"), row("last_day")]));
    }
    Ok(())
}

pub fn pool(command: &PoolCommand) -> ExitCode {
    let PoolCommand::Status(args) = command;
    with_target(args, false, |t, json| {
        let mut answer = t.get("/pools/utilization")?;
        let pools = answer["pools"].take();
        if json {
            print_json(&pools);
            return Ok(());
        }
        let rows = pools.as_array().into_iter().flatten().map(|p| {
            vec![
                text(&p["scope"]),
                text(&p["pool"]),
                text(&p["range"]),
                text(&p["size"]),
                text(&p["taken"]),
                text(&p["active_leases"]),
                format!("{:.1} %", p["utilization"].as_f64().unwrap_or(0.0) * 100.0),
            ]
        });
        println!("{}", table(&["SCOPE", "POOL", "RANGE", "SIZE", "TAKEN", "ACTIVE", "USED"], rows));
        Ok(())
    })
}

pub fn reservation(command: &ReservationCommand) -> ExitCode {
    match command {
        ReservationCommand::List(args) => with_target(args, false, |t, json| {
            let mut answer = t.get("/reservations")?;
            let list = answer["reservations"].take();
            if json {
                print_json(&list);
                return Ok(());
            }
            let rows = list.as_array().into_iter().flatten().map(|r| {
                let lease = &r["lease"];
                let held = match lease["state"].as_str() {
                    Some(state) => format!("{state}, ends {}", ends(lease["end"].as_u64().unwrap_or(0), now())),
                    None => "-".into(),
                };
                vec![text(&r["scope"]), text(&r["ip"]), text(&r["mac"]), text(&r["hostname"]), held]
            });
            println!("{}", table(&["SCOPE", "IP", "MAC", "HOSTNAME", "LEASE"], rows));
            println!("{} reservations {}", list.as_array().map_or(0, Vec::len), from(t));
            Ok(())
        }),
        ReservationCommand::Add { target, mac, ip, hostname, scope } => with_target(target, false, |t, json| {
            let body = json!({ "mac": mac, "ip": ip, "hostname": hostname, "scope": scope });
            let answer = t.call("POST", "/reservations", Some(&body))?;
            let r = &answer["reservation"];
            if json {
                print_json(r);
            } else {
                println!("reserved {} for {} (config written, {})", text(&r["ip"]), text(&r["mac"]), applied(t));
            }
            Ok(())
        }),
        ReservationCommand::Remove { target, key } => with_target(target, false, |t, json| {
            let answer = t.call("DELETE", &format!("/reservations/{}", escape(key)), None)?;
            if json {
                print_json(&answer);
            } else {
                println!("removed the reservation of {key} (config written, {})", applied(t));
            }
            Ok(())
        }),
    }
}

fn applied(t: &Target) -> &'static str {
    match t.source {
        Source::Server(_) => "the server runs with it",
        Source::DataDir(_) => "the server uses it when it starts",
    }
}

/// `leased monitor --leases`: one line (or JSON object) per lease change
/// until interrupted, or until `count` changes.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Lease events (the only stream there is so far; the default).
    #[arg(long, default_value_t = true)]
    pub leases: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

pub fn monitor(args: &MonitorArgs) -> ExitCode {
    with_target(&args.target, true, |t, json| {
        let mut seen = 0u64;
        if !json {
            eprintln!("watching lease changes {} (Ctrl-C ends)", from(t));
        }
        t.events("/leases/events", |name, data| {
            let event: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            match (name, json) {
                (_, true) => println!("{data}"),
                ("lagged", false) => println!("(missed {} changes: this terminal fell behind)", text(&event["missed"])),
                (_, false) => println!(
                    "{}  {:<9}  {:<15}  {}  {}  {}/{}  ends {}",
                    utc(event["updated"].as_u64().unwrap_or(0)),
                    text(&event["event"]),
                    text(&event["ip"]),
                    text(&event["mac"]),
                    text(&event["hostname"]),
                    text(&event["scope"]),
                    text(&event["pool"]),
                    ends(event["end"].as_u64().unwrap_or(0), now()),
                ),
            }
            seen += 1;
            args.count.is_none_or(|c| seen < c)
        })?;
        Ok(())
    })
}
