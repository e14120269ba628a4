# A Nomad client that loads nomad-driver-rkt. Start it with
#   nomad agent -dev -config=examples/agent.hcl
# after copying target/release/nomad-driver-rkt into the plugin_dir below and putting rkt
# and rkt-stage1 (side by side) on the agent's PATH.
data_dir   = "/var/lib/nomad"
plugin_dir = "/opt/nomad/plugins"

# The block's name is the plugin's file name in plugin_dir. Nomad 1.10 and later load only
# plugins named in a plugin block.
plugin "nomad-driver-rkt" {
  # Optional flags of the plugin binary: where rkt is (default: rkt on PATH) and its data
  # directory (default: rkt's own, /var/lib/rkt).
  # args = ["--rkt=/usr/local/bin/rkt", "--rkt-dir=/var/lib/rkt"]
  # rkt's configuration directories (net.d, auth.d, registries.d), if not rkt's defaults:
  # args = ["--rkt-local-config=/etc/rkt", "--rkt-system-config=/usr/lib/rkt"]
  config {
    # Allow jobs to bind absolute host paths (config { volumes = [...] }). Relative paths,
    # resolved inside the allocation directory, are always allowed.
    volumes_enabled = true

    # Remove the images no task uses any more, once unused this long (the defaults, as
    # Nomad's Docker driver has them; image = false keeps every image).
    gc {
      image       = true
      image_delay = "3m"
    }
  }
}
