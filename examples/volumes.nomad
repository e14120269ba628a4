# Volumes: an absolute host path (needs the plugin's volumes_enabled, the default) read-only,
# and a path relative to the allocation directory (always allowed; ".." may not leave it).
job "volumes" {
  datacenters = ["dc1"]

  group "g" {
    task "reader" {
      driver = "rkt"

      config {
        image   = "docker://127.0.0.1:5000/demo/httpd:latest"
        command = "/bin/sh"
        args    = ["-c", "ls /host-etc > /shared/listing; cat /shared/listing; sleep 3600"]
        volumes = [
          "/etc:/host-etc:readOnly",
          "alloc/data:/shared",
        ]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
