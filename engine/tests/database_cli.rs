//! `leased validate-database`, `backup` and `restore` against real
//! databases, through the binary, success and failure paths.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use leased::store::{LeaseStore, Names, SledStore};

struct Fixture {
    dir: common::Scratch,
    config: PathBuf,
    data: PathBuf,
}

impl Fixture {
    /// A config file whose database.path is a fresh directory with 6 leases.
    fn new(name: &str) -> Self {
        let dir = scratch_dir(&format!("dbcli-{name}"));
        let data = dir.join("data");
        let config = dir.join("leased.hcl");
        let hcl = LAB
            .replace("AUTHORITATIVE", "true")
            .replace("  scope \"lan\"", &format!("  database = {{ path = \"{}\" }}\n  scope \"lan\"", data.display()));
        std::fs::write(&config, hcl).unwrap();
        let lab = Lab::with(server(&std::fs::read_to_string(&config).unwrap()));
        let store = SledStore::open(&data, Names::of(&lab.server), 1 << 20).unwrap();
        let changes: Vec<_> = (1..=6u16)
            .map(|i| {
                let c = TestClient::new(i);
                let offer = lab.answer(&c.discover());
                lab.answer(&c.select(offer.yiaddr(), SERVER_ID)).outcome.change.unwrap()
            })
            .collect();
        store.write(&changes).unwrap();
        store.flush().unwrap();
        Fixture { dir, config, data }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out =
            Command::new(env!("CARGO_BIN_EXE_leased")).args(args).arg("--config").arg(&self.config).output().unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    }

    fn store(&self, path: &Path) -> SledStore {
        let config = leased::config::load(&self.config).unwrap();
        SledStore::open(path, Names::from_config(&config), 1 << 20).unwrap()
    }
}

#[test]
fn a_consistent_database_validates() {
    let f = Fixture::new("ok");
    let (code, out, err) = f.run(&["validate-database"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("6 leases (6 bound)") && out.contains("database is consistent"), "{out}");
    let (code, out, _) = f.run(&["validate-database", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["leases"].as_u64(), v["errors"].as_array().unwrap().len()), (Some(6), 0));
}

#[test]
fn damaged_records_and_double_leases_fail_validation() {
    let f = Fixture::new("bad");
    {
        let store = f.store(&f.data);
        // Damage the stored record (the lease journal folded into it first).
        store.fold_all_journal().unwrap();
        store.raw_tree().insert([b'i', 198, 18, 0, 102], &[1u8, 2, 3][..]).unwrap();
        // Client 1 also bound at .150 (a copy of its record under another address).
        let mut r = store.get(ip("198.18.0.100")).unwrap().unwrap();
        r.ip = ip("198.18.0.160");
        store.write(&[leased::server::LeaseChange { kind: leased::server::ChangeKind::Allocated, record: r }]).unwrap();
        store.flush().unwrap();
    }
    let (code, out, err) = f.run(&["validate-database"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("error: lease 198.18.0.102: record is truncated"), "{err}");
    assert!(err.contains("holds 2 bound leases"), "{err}");
    assert!(out.contains("database has problems"), "{out}");
}

#[test]
fn a_missing_database_is_a_clear_error() {
    let f = Fixture::new("missing");
    let (code, _, err) = f.run(&["validate-database", "--data-dir", f.dir.join("nowhere").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no database at") && err.contains("--data-dir"), "{err}");
}

#[test]
fn backup_then_restore_brings_the_leases_back() {
    let f = Fixture::new("backup");
    let backup = f.dir.join("backup-1");
    let (code, out, err) = f.run(&["backup", "--output", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("backed up"), "{out}");
    let (code, out, _) = f.run(&["validate-database", "--data-dir", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // Never over an existing directory.
    let (code, _, err) = f.run(&["backup", "--output", backup.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("exists already"), "{err}");

    // Lose the database, restore it.
    std::fs::remove_dir_all(&f.data).unwrap();
    std::fs::create_dir_all(&f.data).unwrap();
    {
        let empty = f.store(&f.data);
        assert!(empty.is_empty());
    }
    let (code, out, err) = f.run(&["restore", "--from", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restored 6 leases"), "{out}");
    assert_eq!(f.store(&f.data).len(), 6);
    assert!(f.data.with_extension("before-restore").exists(), "the replaced database is kept aside");
}

#[test]
fn restore_refuses_while_the_database_is_in_use_and_refuses_missing_backups() {
    let f = Fixture::new("busy");
    let backup = f.dir.join("b");
    assert_eq!(f.run(&["backup", "--output", backup.to_str().unwrap()]).0, 0);
    let held = f.store(&f.data);
    let (code, _, err) = f.run(&["restore", "--from", backup.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("could not acquire lock") && err.contains("stop it first"), "{err}");
    assert_eq!(held.len(), 6, "the database in use is untouched");
    drop(held);
    let (code, _, err) = f.run(&["restore", "--from", f.dir.join("nope").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no backup at"), "{err}");
}
