//! Where the management commands (`lease`, `pool`, `reservation`,
//! `monitor`) get their answers: the REST API of the running server, or,
//! when none answers, the same API served in this process over the data
//! directory. Either way a command makes the same requests and sees the
//! same answers, checks and errors.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde_json::Value;

use super::database::{self, DatabaseArgs};
use super::live::{self, Live, PolicyHost};
use crate::api::{Api, ApiState, ConfigRequest};
use crate::config::Config;
use crate::policy::LivePolicies;
use crate::server::SharedServer;
use crate::store::{self, Committer, CommitterOptions};

/// Options of every management command.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The API of a running server, e.g. http://127.0.0.1:8080 (default:
    /// the config's api.listen; when nothing answers there, the data directory).
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// File holding the API token (default: the config's api.token_file).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// What answered: a server's API, or the data directory (read in this process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Server(String),
    DataDir(PathBuf),
}

/// A connection to the API, remote or served here over the data directory.
pub struct Target {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
    pub source: Source,
    /// Declared last: dropped after the agent.
    _local: Option<Local>,
}

/// How long a request to a server may take (a reload included).
const TIMEOUT: Duration = Duration::from_secs(90);

impl Target {
    /// The server named by `--api`, else the config's API when a server
    /// answers there, else (unless `server_only`) the data directory.
    pub fn connect(args: &TargetArgs, server_only: bool) -> Result<Target, String> {
        if let Some(t) = Target::running(args)? {
            return Ok(t);
        }
        if server_only {
            return Err(
                "no leased API answers (is the server running? its address: the config's api.listen or --api URL)"
                    .into(),
            );
        }
        let (config, dir) = args.db.open_config()?;
        Local::start(config, dir, args.db.config.path())
    }

    /// The running server's API: the one `--api` names, else the config's
    /// when something answers there (None: nothing does, or `--data-dir`
    /// asks for the data directory).
    pub fn running(args: &TargetArgs) -> Result<Option<Target>, String> {
        if let Some(url) = &args.api {
            let token = read_token(args.token_file.as_deref())?;
            return Ok(Some(Target::remote(url.trim_end_matches('/').to_string(), token)));
        }
        if args.db.data_dir.is_some() {
            return Ok(None);
        }
        let (config, _) = args.db.open_config()?;
        let Some(api) = &config.api else { return Ok(None) };
        let addr = reachable(api.listen);
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            return Ok(None);
        }
        let token = read_token(args.token_file.as_deref().or(api.token_file.as_deref()))?;
        Ok(Some(Target::remote(format!("http://{addr}"), token)))
    }

    fn remote(base: String, token: Option<String>) -> Target {
        Target { agent: agent(), source: Source::Server(base.clone()), base, token, _local: None }
    }

    /// `GET path` (under /api/dhcp): the answer's JSON or what went wrong.
    pub fn get(&self, path: &str) -> Result<Value, String> {
        self.call("GET", path, None)
    }

    /// `METHOD path` with `body` as JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let url = format!("{}/api/dhcp{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let sent = match body {
            Some(b) => {
                let request = request.header("Content-Type", "application/json").body(b.to_string());
                self.agent.run(request.map_err(|e| e.to_string())?)
            }
            None => self.agent.run(request.body(()).map_err(|e| e.to_string())?),
        };
        let mut response = sent.map_err(|e| format!("cannot reach the leased API at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} answered {status} with something that is not JSON ({e})", self.base))?;
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        Err(refused(status, answer["error"].as_str().unwrap_or("no reason given")))
    }

    /// The body of `GET path` as it arrives (no time limit: streams and
    /// exports take as long as they take).
    pub fn stream(&self, path: &str) -> Result<Box<dyn BufRead + Send>, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let url = format!("{}/api/dhcp{path}", self.base);
        let mut request = agent.get(&url);
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let mut response = request.call().map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let answer: Value = serde_json::from_str(&text).unwrap_or_default();
            return Err(refused(status, answer["error"].as_str().unwrap_or("no reason given")));
        }
        Ok(Box::new(BufReader::with_capacity(1 << 20, response.into_body().into_reader())))
    }

    /// Reads the server-sent events at `path`, handing each event's name
    /// and data to `each` until it says stop or the server ends the stream.
    pub fn events(&self, path: &str, mut each: impl FnMut(&str, &str) -> bool) -> Result<(), String> {
        let reader = self.stream(path)?;
        let (mut name, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let line = line.map_err(|e| format!("the event stream broke: {e}"))?;
            if line.is_empty() {
                if !data.is_empty() && !each(&name, &data) {
                    return Ok(());
                }
                (name, data) = (String::new(), String::new());
            } else if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        Ok(())
    }
}

/// A refusal for people: an error status and the server's reason.
fn refused(status: u16, message: &str) -> String {
    match status {
        401 | 403 => {
            format!("the server refused the request ({status}): {message} (check --token-file or api.token_file)")
        }
        _ => format!("{message} ({status})"),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(TIMEOUT)).build().into()
}

/// Where a client reaches a server listening on `listen` (an unspecified
/// address is reached on loopback).
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())),
        other => other,
    }
}

/// The token in `file` (None: no file, reads only where the server allows).
fn read_token(file: Option<&Path>) -> Result<Option<String>, String> {
    let Some(file) = file else { return Ok(None) };
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!("cannot read the API token {}: {e} (run as a user who may, or give --token-file)", file.display())
    })?;
    Ok(text.lines().next().map(|l| l.trim().to_string()).filter(|t| !t.is_empty()))
}

/// The API served in this process over the data directory: the store
/// recovered into a core built from the config, a committer for lease
/// changes, and config changes (reservations) checked, written over the
/// config file and applied as a server would.
struct Local {
    api: Option<Api>,
    config_thread: Option<std::thread::JoinHandle<()>>,
    committer: Option<Arc<Committer>>,
}

impl Local {
    fn start(config: Config, dir: PathBuf, config_path: PathBuf) -> Result<Target, String> {
        let server: SharedServer = Arc::new(RwLock::new(live::build_offline(&config)?));
        let db = Arc::new(database::open(&config, &dir).map_err(|e| {
            if config.api.is_some() {
                format!("{e}; its API does not answer either")
            } else {
                e
            }
        })?);
        store::recover(db.as_ref(), &server.read(), crate::lease::unix_now());
        let committer = Arc::new(Committer::start(db.clone(), CommitterOptions::from_config(&config, 1)));
        let (reconfigure, requests) = crossbeam::channel::bounded::<ConfigRequest>(1);
        let config_text = Arc::new(RwLock::new(std::fs::read_to_string(&config_path).unwrap_or_default()));
        let config_thread = {
            let (server, db, committer, text, path) =
                (server.clone(), db.clone(), committer.clone(), config_text.clone(), config_path.clone());
            std::thread::spawn(move || {
                let policies = LivePolicies::new(None);
                let mut running = config;
                for request in requests {
                    let live = Live {
                        host: PolicyHost { server: &server, db: &db, shards: 1 },
                        policies: &policies,
                        committer: &committer,
                        build: live::build_offline,
                    };
                    let answer = live::replace_config(&path, &request.text, &running, &live).map(|(c, summary)| {
                        running = c;
                        *text.write() = request.text;
                        summary
                    });
                    let _ = request.reply.send(answer);
                }
            })
        };
        let token = random_token()?;
        let state = ApiState {
            server,
            store: db,
            metrics: None,
            token: Some(token.clone()),
            backend: "none (data directory)",
            shards: 0,
            started: std::time::Instant::now(),
            config_path,
            config_text,
            clock: crate::lease::unix_now,
            writer: parking_lot::Mutex::new(committer.writer(0)),
            events: committer.events(),
            listen: vec![],
            diagnostics: None,
            diagnostics_lock: Default::default(),
            edit_lock: Default::default(),
            reconfigure,
            stopping: tokio::sync::watch::Sender::new(false),
        };
        let api = Api::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), state)?;
        let base = format!("http://{}", api.addr());
        let local = Local { api: Some(api), config_thread: Some(config_thread), committer: Some(committer) };
        Ok(Target { agent: agent(), base, token: Some(token), source: Source::DataDir(dir), _local: Some(local) })
    }
}

impl Drop for Local {
    /// The API first (its state holds the config channel), then the config
    /// thread, then the committer, which flushes what the API changed.
    fn drop(&mut self) {
        drop(self.api.take());
        if let Some(t) = self.config_thread.take() {
            let _ = t.join();
        }
        if let Some(c) = self.committer.take().and_then(|c| Arc::try_unwrap(c).ok()) {
            c.shutdown();
        }
    }
}

/// A token only this process knows, for its own in-process API.
fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(crate::hex::Hex(&bytes, "").to_string())
}
