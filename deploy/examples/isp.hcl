# ISP-style config: 16 access networks behind relay agents, each a /14 of
# the RFC 6598 shared address space 100.64.0.0/10; the pools total a /10
# (minus network, broadcast and router addresses). A relay agent's giaddr
# selects the scope; option 82 is echoed back to it.
dhcp {
  server_id = "100.127.255.253"
  listen    = ["0.0.0.0:67"]
  authoritative = true
  workers   = 0

  database = { type = "sled"  path = "/var/lib/leased"  sync_mode = "FULL" }

  lease_policies = {
    default_lease_time = "4h"  max_lease_time = "12h"  min_lease_time = "30m"
    grace_period = "15m"  reuse_expired = true  reuse_after = "2h"
    offer_hold_time = "10s"  decline_probation = "1h"
  }

  scope "access-00" {
    relay_addresses = ["100.64.0.1"]
    subnet      = "100.64.0.0/14"
    range_start = "100.64.0.2"  range_end = "100.67.255.254"
    options = { routers = ["100.64.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access00.isp.test" }
  }
  scope "access-01" {
    relay_addresses = ["100.68.0.1"]
    subnet      = "100.68.0.0/14"
    range_start = "100.68.0.2"  range_end = "100.71.255.254"
    options = { routers = ["100.68.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access01.isp.test" }
  }
  scope "access-02" {
    relay_addresses = ["100.72.0.1"]
    subnet      = "100.72.0.0/14"
    range_start = "100.72.0.2"  range_end = "100.75.255.254"
    options = { routers = ["100.72.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access02.isp.test" }
  }
  scope "access-03" {
    relay_addresses = ["100.76.0.1"]
    subnet      = "100.76.0.0/14"
    range_start = "100.76.0.2"  range_end = "100.79.255.254"
    options = { routers = ["100.76.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access03.isp.test" }
  }
  scope "access-04" {
    relay_addresses = ["100.80.0.1"]
    subnet      = "100.80.0.0/14"
    range_start = "100.80.0.2"  range_end = "100.83.255.254"
    options = { routers = ["100.80.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access04.isp.test" }
  }
  scope "access-05" {
    relay_addresses = ["100.84.0.1"]
    subnet      = "100.84.0.0/14"
    range_start = "100.84.0.2"  range_end = "100.87.255.254"
    options = { routers = ["100.84.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access05.isp.test" }
  }
  scope "access-06" {
    relay_addresses = ["100.88.0.1"]
    subnet      = "100.88.0.0/14"
    range_start = "100.88.0.2"  range_end = "100.91.255.254"
    options = { routers = ["100.88.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access06.isp.test" }
  }
  scope "access-07" {
    relay_addresses = ["100.92.0.1"]
    subnet      = "100.92.0.0/14"
    range_start = "100.92.0.2"  range_end = "100.95.255.254"
    options = { routers = ["100.92.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access07.isp.test" }
  }
  scope "access-08" {
    relay_addresses = ["100.96.0.1"]
    subnet      = "100.96.0.0/14"
    range_start = "100.96.0.2"  range_end = "100.99.255.254"
    options = { routers = ["100.96.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access08.isp.test" }
  }
  scope "access-09" {
    relay_addresses = ["100.100.0.1"]
    subnet      = "100.100.0.0/14"
    range_start = "100.100.0.2"  range_end = "100.103.255.254"
    options = { routers = ["100.100.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access09.isp.test" }
  }
  scope "access-10" {
    relay_addresses = ["100.104.0.1"]
    subnet      = "100.104.0.0/14"
    range_start = "100.104.0.2"  range_end = "100.107.255.254"
    options = { routers = ["100.104.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access10.isp.test" }
  }
  scope "access-11" {
    relay_addresses = ["100.108.0.1"]
    subnet      = "100.108.0.0/14"
    range_start = "100.108.0.2"  range_end = "100.111.255.254"
    options = { routers = ["100.108.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access11.isp.test" }
  }
  scope "access-12" {
    relay_addresses = ["100.112.0.1"]
    subnet      = "100.112.0.0/14"
    range_start = "100.112.0.2"  range_end = "100.115.255.254"
    options = { routers = ["100.112.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access12.isp.test" }
  }
  scope "access-13" {
    relay_addresses = ["100.116.0.1"]
    subnet      = "100.116.0.0/14"
    range_start = "100.116.0.2"  range_end = "100.119.255.254"
    options = { routers = ["100.116.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access13.isp.test" }
  }
  scope "access-14" {
    relay_addresses = ["100.120.0.1"]
    subnet      = "100.120.0.0/14"
    range_start = "100.120.0.2"  range_end = "100.123.255.254"
    options = { routers = ["100.120.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access14.isp.test" }
  }
  scope "access-15" {
    relay_addresses = ["100.124.0.1"]
    subnet      = "100.124.0.0/14"
    range_start = "100.124.0.2"  range_end = "100.127.255.254"
    options = { routers = ["100.124.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "access15.isp.test" }
  }
}
