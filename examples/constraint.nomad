# The documentation page's constraint: only on nodes whose rkt is newer than 1.2.
#
# The page writes the attribute as "${driver.rkt.version}", but Nomad's scheduler interpolates
# only ${attr.…}, ${meta.…} and ${node.…} in constraints: the page's form resolves to nothing
# on every node, every node is filtered out, and the job is never placed. Node attributes set
# by drivers are under attr., hence "${attr.driver.rkt.version}" (as in args below).
job "docs" {
  datacenters = ["dc1"]

  constraint {
    attribute = "${attr.driver.rkt.version}"
    operator  = ">"
    value     = "1.2"
  }

  group "g" {
    task "hello" {
      driver = "rkt"

      config {
        image   = "docker://127.0.0.1:5000/demo/httpd:latest"
        command = "/bin/sh"
        args    = ["-c", "echo hello from ${NOMAD_TASK_NAME} on rkt ${attr.driver.rkt.version}; sleep 3600"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
