# DNS settings for the pod: servers and search domains (or ["host"] / ["none"]), on rkt's
# default network.
job "dns" {
  datacenters = ["dc1"]

  group "g" {
    task "resolver" {
      driver = "rkt"

      config {
        image              = "docker://127.0.0.1:5000/demo/httpd:latest"
        command            = "/bin/sh"
        args               = ["-c", "cat /etc/resolv.conf; sleep 3600"]
        net                = ["default"]
        dns_servers        = ["10.0.0.53", "10.0.0.54"]
        dns_search_domains = ["service.internal"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
