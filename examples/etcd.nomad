# The documentation page's first example: an ACI found by name through appc discovery,
# its signature checked against the key that `rkt trust --prefix=coreos.com/etcd` fetches
# (trust_prefix), then run. coreos.com no longer serves ACIs; the end-to-end test serves a
# signed stand-in for this name from a local discovery server (see
# crates/nomad-driver/tests/nomad_agent.rs), and an operator would point trust_prefix and
# image at an appc name of their own the same way.
job "etcd" {
  datacenters = ["dc1"]

  group "etcd" {
    task "etcd" {
      driver = "rkt"

      config {
        trust_prefix = "coreos.com/etcd"
        image        = "coreos.com/etcd:v2.0.4"
        command      = "/etcd"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
