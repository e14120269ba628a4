# The documentation page's constraint: only on nodes whose rkt is newer than 1.2.
job "docs" {
  datacenters = ["dc1"]

  constraint {
    attribute = "${driver.rkt.version}"
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
