# One broadcast LAN served on interface eth1 (198.18.0.0/16), with a
# servers pool selected by hostname, a guest pool with short leases, and
# reservations by MAC and by hostname.
dhcp {
  server_id = "198.18.0.1"
  listen    = ["eth1"]
  authoritative = true

  database = { type = "sled"  path = "/var/lib/leased"  sync_mode = "FULL" }

  lease_policies = {
    default_lease_time = "24h"  max_lease_time = "7d"  min_lease_time = "1h"
    grace_period = "2h"  renewal_time = "12h"  rebinding_time = "21h"
    reuse_expired = true  reuse_after = "1h"
    conflict_resolution = "deny"
    validate_client = true  require_client_identifier = false
  }

  reservations = [
    { mac = "00:11:22:33:44:55"  ip = "198.18.0.10"  hostname = "server01"
      options = { lease_time = "infinite"  boot_file = "server01.cfg" } },
    { hostname = "voip01"  ip = "198.18.0.30"  allow_any_mac = true },
  ]

  scope "lan" {
    interface   = "eth1"
    subnet      = "198.18.0.0/16"
    range_start = "198.18.1.0"  range_end = "198.18.255.254"
    lease_time  = "24h"  max_lease_time = "7d"  min_lease_time = "1h"
    options = { routers = ["198.18.0.1"]  dns_servers = ["198.18.0.1"]  domain_name = "lan" }

    pools = [
      { name = "servers"  range = "198.18.0.10-198.18.0.50"  lease_time = "7d"  allow = ["server-*"] },
      { name = "guests"   range = "198.18.2.1-198.18.2.250"  lease_time = "2h"  max_lease_time = "4h" },
    ]
    cleanup_abandoned = true  cleanup_interval = "15m"
  }
}
