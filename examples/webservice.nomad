# The documentation page's first example: a task run as an rkt pod. The image comes from the
# local registry that examples/serve-images.sh starts (without a trust_prefix the driver runs
# rkt with --insecure-options=all, which also allows plain HTTP to that registry).
job "webservice" {
  datacenters = ["dc1"]

  group "web" {
    task "webservice" {
      driver = "rkt"

      config {
        image   = "docker://127.0.0.1:5000/demo/httpd:latest"
        command = "/bin/httpd"
        args    = ["-f", "-p", "8080", "-h", "/www"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
