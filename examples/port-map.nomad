# Port mapping and a service, as on the documentation page: the image exposes 8080/tcp, so
# rkt names that port "8080-tcp"; Nomad's port "app" is forwarded to it from a host port,
# and the service can advertise either the host port or (address_mode = "driver") the pod's
# own address and the container port.
job "redis-like" {
  datacenters = ["dc1"]

  group "cache" {
    task "web" {
      driver = "rkt"

      config {
        image   = "docker://127.0.0.1:5000/demo/httpd:latest"
        command = "/bin/httpd"
        args    = ["-f", "-p", "8080", "-h", "/www"]
        port_map {
          app = "8080-tcp"
        }
      }

      service {
        name = "web"
        port = "app"
      }

      resources {
        cpu    = 100
        memory = 64
        network {
          mbits = 10
          port "app" {
            static = 12345
          }
        }
      }
    }
  }
}
