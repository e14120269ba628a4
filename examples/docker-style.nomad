# A job written the way Nomad's Docker driver spells its options, run by the rkt driver: the
# same option names and meanings (README's table of options says which rkt flag each one
# is). The "admin" task needs a plugin configured with allow_privileged = true, as the
# Docker driver needs for privileged containers and the host's PID and IPC namespaces.
job "docker-style" {
  datacenters = ["dc1"]

  group "web" {
    network {
      port "http" {
        to = 8080
      }
    }

    task "web" {
      driver = "rkt"
      # The image's user is 1000; capabilities apply to root.
      user = "root"

      config {
        image              = "docker://127.0.0.1:5000/demo/httpd:latest"
        force_pull         = true
        image_pull_timeout = "2m"
        # A registry that asks for no credentials never sees them; one that refuses them
        # is asked again without (auth_soft_fail).
        auth {
          username = "demo"
          password = "not-a-secret"
        }
        auth_soft_fail = true

        entrypoint = ["/bin/sh", "-c"]
        args       = ["/local/start.sh"]
        work_dir   = "/www"
        hostname   = "web-1"
        extra_hosts = ["db:10.0.0.5", "db6:fd00::5"]
        labels {
          team = "web"
        }

        cap_drop        = ["all"]
        cap_add         = ["chown", "setuid", "setgid", "net_bind_service"]
        readonly_rootfs = true
        security_opt    = ["no-new-privileges"]
        oom_score_adj   = 500
        group_add       = ["staff"]
        pids_limit      = 256

        sysctl = {
          "net.core.somaxconn" = "1024"
        }
        ulimit = {
          nofile = "4096:8192"
          nproc  = "512"
        }
        shm_size = 134217728

        mount {
          type   = "tmpfs"
          target = "/tmp"
          tmpfs_options {
            size = 16777216
          }
        }
        mount {
          type     = "bind"
          source   = "local/conf"
          target   = "/etc/web"
          readonly = true
        }

        ports = ["http"]

        # This node beyond the standard ones, for reading and writing.
        devices = [
          {
            host_path          = "/dev/fuse"
            container_path     = "/dev/fuse"
            cgroup_permissions = "rw"
          }
        ]

        # memory = 64 (below) is what the task keeps when the node runs short; 128 MiB is
        # its limit. Half a core's share of CFS time, in 50 ms periods.
        memory_hard_limit = 128
        cpu_hard_limit    = true
        cpu_cfs_period    = 50000
      }

      template {
        destination = "local/conf/web.conf"
        data        = "served by rkt\n"
      }

      template {
        destination = "local/start.sh"
        perms       = "755"
        data        = <<EOF
#!/bin/sh
B=/bin/busybox
echo "hostname=$($B hostname)"
$B cat /etc/hosts
$B grep -E '^(CapEff|Groups|NoNewPrivs|Seccomp):' /proc/self/status
echo "oom_score_adj=$($B cat /proc/self/oom_score_adj)"
echo "nofile=$(ulimit -Sn):$(ulimit -Hn) nproc=$(ulimit -u)"
echo "somaxconn=$($B cat /proc/sys/net/core/somaxconn)"
echo "pwd=$(pwd)"
$B cat /etc/web/web.conf
$B touch /rootfs-write 2>/dev/null || echo "root is read-only"
$B touch /tmp/ok && echo "tmp is writable"
(exec 3<>/dev/fuse) && echo "fuse opens"
$B grep -E ' (/tmp|/dev/shm|/etc/web) ' /proc/self/mounts
echo "ready"
exec $B httpd -f -p 8080 -h /www
EOF
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }

    task "admin" {
      driver = "rkt"

      config {
        image      = "docker://127.0.0.1:5000/demo/httpd:latest"
        privileged = true
        ipc_mode   = "host"
        pid_mode   = "host"
        command    = "/bin/sh"
        args       = ["-c", "echo admin sees $(ls /proc | grep -c '^[0-9]') processes; sleep 3600"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
