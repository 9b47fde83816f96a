# leased quickstart: relay mode on loopback. Needs no root and touches no
# real network: the server listens on an unprivileged loopback port and
# answers a relay agent (e.g. `leased client --relay 127.0.0.1:6768`) that
# relays for the lab network 198.18.0.0/24.
dhcp {
  listen     = ["127.0.0.1:6767"]   # relayed/unicast traffic, unprivileged port
  relay_port = 6768                 # replies to relay agents go to giaddr:6768
  authoritative = true              # NAK clients asking for addresses we do not know

  database = { type = "sled"  path = "./data"  sync_mode = "FULL" }

  lease_policies = {
    default_lease_time = "1h"  max_lease_time = "4h"  min_lease_time = "5m"
    offer_hold_time = "30s"          # how long an offered address waits for its REQUEST
  }

  reservations = [
    { mac = "02:00:00:00:00:10"  ip = "198.18.0.10"  hostname = "printer01" },
  ]

  scope "loopback-lab" {
    relay_addresses = ["127.0.0.1"]  # the relay agent's giaddr selects this scope
    subnet      = "198.18.0.0/24"
    range_start = "198.18.0.100"  range_end = "198.18.0.199"
    options = { routers = ["198.18.0.1"]  dns_servers = ["198.18.0.1"]  domain_name = "lab.test" }
  }
}
