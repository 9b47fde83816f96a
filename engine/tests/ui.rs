//! The web UI in headless Chromium against a real `leased serve` with real
//! leases (obtained by `leased client` over the loopback relay): token
//! entry, statistics, the device view, moving the pool boundary, live
//! updates, Pin / Edit IP / Remove, the add-reservation form, lease detail,
//! search, and the Diagnostics panel. Each change is checked both on the
//! page and through the API. Screenshots go to `target/ui-screenshots/`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::serve_lab::{stop, ApiClient, Lab};
use common::webdriver::Browser;
use serde_json::Value;

const TOKEN: &str = "ui-token";
const WAIT: Duration = Duration::from_secs(15);

/// `leased client request` for `mac` with a host name; the address leased.
fn lease(lab: &Lab, mac: &str, hostname: &str) -> String {
    let (code, out, err) = lab.run_client("request", &["--timeout", "5", "--mac", mac, "--hostname", hostname]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out.lines().find(|l| l.contains("is now leased.")).unwrap_or_else(|| panic!("{out}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

/// The cells of the device row of `mac` (empty when it is not shown).
fn row(b: &Browser, mac: &str) -> Vec<String> {
    b.texts(&format!("#devices tr[data-mac='{mac}'] td"))
}

/// The reservation of `mac` according to the API.
fn reservation(api: &ApiClient, mac: &str) -> Option<Value> {
    let list = api.get("/api/dhcp/reservations", Some(TOKEN)).json();
    list["reservations"].as_array().unwrap().iter().find(|r| r["mac"] == mac).cloned()
}

/// Waits for the status line to say `text` (success when `ok`).
fn message(b: &Browser, text: &str, ok: bool) {
    b.wait_until(&format!("the message {text:?}"), WAIT, |b| b.text_of("#message").contains(text));
    let class = b.script("return document.querySelector('#message').className", &[]);
    assert_eq!(class, if ok { "ok" } else { "error" }, "{text}");
}

#[test]
fn an_operator_manages_devices_and_the_pool_from_the_web_ui() {
    let lab = Lab::new("ui");
    let api = lab.enable_api(Some(TOKEN));
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    let Some(b) = Browser::start(&lab.dir, &shots) else { return };
    let (server, _) = lab.serve();
    let t = Some(TOKEN);
    let laptops = ["02:00:00:00:07:01", "02:00:00:00:07:02", "02:00:00:00:07:03"];
    for (i, mac) in laptops.iter().enumerate() {
        assert_eq!(lease(&lab, mac, &format!("laptop{}", i + 1)), format!("198.18.0.{}", 100 + i));
    }
    assert_eq!(lease(&lab, "02:00:00:00:00:10", "printer01"), "198.18.0.10");

    // The page asks for the token; with it, the banner and the device view fill in.
    b.open(&format!("{}/", api.base));
    b.wait_until("the token entry", WAIT, |b| b.displayed(&b.find("#token-entry")));
    b.type_into(&b.find("#token"), TOKEN);
    b.click_on("#token-form button", "");
    b.wait_until("the device rows", WAIT, |b| b.all("#devices tr[data-mac]").len() == 4);
    assert!(!b.displayed(&b.find("#token-entry")));
    assert_eq!(b.text_of("#stat-reservations b"), "1");
    assert_eq!(b.text_of("#stat-leases b"), "3", "devices without a reservation");
    assert_eq!(b.text_of("#stat-hosts b"), "4");
    assert_eq!(b.text_of("#stat-server b"), format!("127.0.0.1:{}", lab.server_port));
    assert_eq!(row(&b, "02:00:00:00:00:10")[..4], ["Pinned", "198.18.0.10", "02:00:00:00:00:10", "printer01"]);
    assert_eq!(row(&b, laptops[0])[..5], ["Lease", "198.18.0.100", laptops[0], "laptop1", "ALLOCATED"]);
    assert!(b.text_of("#pools").contains("loopback-lab / default"), "{}", b.text_of("#pools"));
    assert_eq!(b.text_of("#anomalies"), "None recorded");
    b.screenshot("01-devices");

    // The pool boundary: the slider previews both ranges; Apply and Apply recommended change it live.
    b.click_on("#boundary-panel summary", "");
    let slide = "const s = document.querySelector('#boundary-slider'); s.value = arguments[0]; \
                 s.dispatchEvent(new Event('input')); return document.querySelector('#boundary-preview').innerText";
    let preview = b.script(slide, &["10"]);
    let preview = preview.as_str().unwrap();
    assert!(preview.contains("Reserved: 198.18.0.100-198.18.0.109"), "{preview}");
    assert!(preview.contains("Dynamic: 198.18.0.110-198.18.0.199"), "{preview}");
    assert!(preview.contains("Allowed 0 (reservations in the range) to 97"), "{preview}");
    b.click_on("#boundary-apply", "");
    message(&b, "Pool boundary set: 10 reserved", true);
    assert_eq!(api.get("/api/dhcp/pool-boundary", t).json()["max_reservations"], 10);
    b.click_on("#boundary-recommended", "");
    message(&b, "Pool boundary set: 20 reserved", true);
    assert_eq!(api.get("/api/dhcp/pool-boundary", t).json()["max_reservations"], 20);
    b.wait_until("the new boundary", WAIT, |b| {
        b.text_of("#boundary-preview").contains("Reserved: 198.18.0.100-198.18.0.119")
    });
    b.wait_until("the reserved range's bar", WAIT, |b| {
        b.text_of("#pools").contains("loopback-lab / reserved range 198.18.0.100-198.18.0.119 0 of 20 reserved")
    });
    b.screenshot("02-boundary");

    // Live: a new device shows up without reloading the page, past the boundary.
    let phone = "02:00:00:00:07:04";
    assert_eq!(lease(&lab, phone, "phone4"), "198.18.0.120");
    b.wait_until("the new device's row", WAIT, |b| row(b, phone).get(1).is_some_and(|ip| ip == "198.18.0.120"));

    // Pin: the lease becomes a reservation (host name kept) in the reserved range.
    b.click_on(&format!("#devices tr[data-mac='{phone}'] button"), "Pin");
    message(&b, "Pinned 198.18.0.120", true);
    b.wait_until("the pinned row", WAIT, |b| row(b, phone).first().is_some_and(|k| k == "Pinned"));
    assert_eq!(row(&b, phone)[1..4], ["198.18.0.103", phone, "phone4"]);
    let r = reservation(&api, phone).expect("a reservation");
    assert_eq!((r["ip"].as_str(), r["hostname"].as_str()), (Some("198.18.0.103"), Some("phone4")));
    assert_eq!(lease(&lab, phone, "phone4"), "198.18.0.103", "the device gets its reserved address");
    // The open boundary panel follows: a reservation in the range is its new
    // minimum; the phone's lease, on it, takes no room from the dynamic range.
    b.wait_until("the boundary's new minimum", WAIT, |b| {
        b.text_of("#boundary-preview").contains("Allowed 1 (reservations in the range) to 97")
    });
    assert!(b.text_of("#pools").contains("1 of 20 reserved"), "{}", b.text_of("#pools"));
    b.screenshot("03-pinned");

    // Edit IP: refused outside the reserved range (nothing changes), then moved inside it.
    b.script("window.prompt = () => '198.18.0.150'", &[]);
    b.click_on(&format!("#devices tr[data-mac='{phone}'] button"), "Edit IP");
    message(&b, "outside the reserved range", false);
    assert_eq!(reservation(&api, phone).unwrap()["ip"], "198.18.0.103");
    b.screenshot("04-edit-refused");
    b.script("window.prompt = () => '198.18.0.115'", &[]);
    b.click_on(&format!("#devices tr[data-mac='{phone}'] button"), "Edit IP");
    message(&b, "now reserved at 198.18.0.115", true);
    b.wait_until("the edited row", WAIT, |b| row(b, phone).get(1).is_some_and(|ip| ip == "198.18.0.115"));
    assert_eq!(reservation(&api, phone).unwrap()["ip"], "198.18.0.115");

    // Remove: asked first; declined changes nothing, confirmed leaves a plain lease.
    b.script("window.confirm = () => false", &[]);
    b.click_on(&format!("#devices tr[data-mac='{phone}'] button"), "Remove");
    std::thread::sleep(Duration::from_millis(500));
    assert!(reservation(&api, phone).is_some(), "removed without confirmation");
    b.script("window.confirm = () => true", &[]);
    b.click_on(&format!("#devices tr[data-mac='{phone}'] button"), "Remove");
    message(&b, &format!("Removed {phone}"), true);
    assert!(reservation(&api, phone).is_none());
    b.wait_until("the row back to a lease", WAIT, |b| row(b, phone).first().is_some_and(|k| k == "Lease"));
    assert_eq!(row(&b, phone)[1..5], ["198.18.0.103", phone, "phone4", "ALLOCATED"], "its lease stays until it ends");
    b.screenshot("05-removed");

    // The add-reservation form: bad input is refused with the API's message;
    // without an IP the lowest free reserved address is taken.
    let form = |mac: &str, hostname: &str| {
        b.type_into(&b.find("#add-reservation input[name=mac]"), mac);
        b.type_into(&b.find("#add-reservation input[name=hostname]"), hostname);
        b.click_on("#add-reservation button", "Add");
    };
    form("02:00:00:zz:08:01", "cam1");
    message(&b, "not a MAC address", false);
    b.script("document.querySelector('#add-reservation').reset()", &[]);
    form("02:00:00:00:08:01", "cam1");
    message(&b, "Reserved for 02:00:00:00:08:01", true);
    b.wait_until("the new reservation's row", WAIT, |b| !row(b, "02:00:00:00:08:01").is_empty());
    assert_eq!(row(&b, "02:00:00:00:08:01")[..5], ["Pinned", "198.18.0.104", "02:00:00:00:08:01", "cam1", "RESERVED"]);
    let mac_field = b.script("return document.querySelector('#add-reservation input[name=mac]').value", &[]);
    assert_eq!(mac_field, "", "the form is cleared after success");

    // Search and sort.
    b.type_into(&b.find("#search"), "laptop");
    b.wait_until("the search", WAIT, |b| b.all("#devices tr[data-mac]").len() == 3);
    b.script("const s = document.querySelector('#search'); s.value = ''; s.dispatchEvent(new Event('input'))", &[]);
    b.script(
        "const s = document.querySelector('#sort'); s.value = 'hostname'; s.dispatchEvent(new Event('change'))",
        &[],
    );
    let names: Vec<String> = b.texts("#devices tr[data-mac] td:nth-child(4)");
    assert_eq!(names, ["cam1", "laptop1", "laptop2", "laptop3", "phone4", "printer01"]);

    // Lease detail with history.
    b.click_on(&format!("#devices tr[data-mac='{}'] td:nth-child(3)", laptops[1]), "");
    b.wait_until("the lease detail", WAIT, |b| b.displayed(&b.find("#detail-panel")));
    assert_eq!(b.text_of("#detail-ip"), "198.18.0.101");
    assert!(b.text_of("#detail").contains("laptop2"), "{}", b.text_of("#detail"));
    b.wait_until("the history", WAIT, |b| b.text_of("#history").contains("198.18.0.101"));
    b.screenshot("06-detail");

    // Diagnostics: the built-in client's steps in the CLI's format, for a
    // synthetic MAC, then a release of the same MAC given by hand.
    b.click_on("#diagnostics button", "Request IP");
    b.wait_until("the client's lease", WAIT, |b| b.text_of("#diagnostics-output").contains("is now leased."));
    let out = b.text_of("#diagnostics-output");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("Client 02:") && lines[0].contains(" via relay 127.0.0.1:"), "{out}");
    assert!(lines[1].starts_with("[D] Sending DHCPDISCOVER"), "{out}");
    assert!(out.contains("[O] Received DHCPOFFER") && out.contains("[A] Received DHCPACK"), "{out}");
    let mac = lines[0].split_whitespace().nth(1).unwrap().to_string();
    let leased = out.lines().find(|l| l.contains("is now leased.")).unwrap();
    let ip = leased.split_whitespace().nth(2).unwrap().to_string();
    b.wait_until("the diagnostics client's row", WAIT, |b| row(b, &mac).get(1).is_some_and(|i| *i == ip));
    b.screenshot("07-diagnostics");
    b.click_on("#diagnostics input[value=given]", "");
    b.type_into(&b.find("#diagnostics input[name=mac]"), &mac);
    b.click_on("#diagnostics button", "Release IP");
    b.wait_until("the release", WAIT, |b| b.text_of("#diagnostics-output").contains(&format!("{ip} is released.")));
    b.wait_until("the released row to go", WAIT, |b| row(b, &mac).is_empty());
    // This host's own MAC.
    b.click_on("#diagnostics input[value=detected]", "");
    b.click_on("#diagnostics button", "Request IP");
    b.wait_until("the detected client's lease", WAIT, |b| b.text_of("#diagnostics-output").contains("is now leased."));
    assert!(b.text_of("#diagnostics-output").contains("(detected on "), "{}", b.text_of("#diagnostics-output"));
    b.screenshot("08-diagnostics-detected");

    drop(b);
    assert_eq!(stop(server), 0);
}
