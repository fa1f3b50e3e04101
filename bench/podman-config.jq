# podman's generated config (tests/data/config/podman-run.json) made runnable here: the rootfs
# given as $rootfs, /bin/true, no terminal, an rlimit the machine allows, no resources, cgroup or
# netns path, and each bind's source swapped for the file of the same name under $files.
.root.path = $rootfs | .process.args = ["/bin/true"] | .process.terminal = false
| .process.rlimits = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]
| del(.linux.resources) | del(.linux.cgroupsPath)
| .linux.namespaces |= map(del(.path))
| .mounts |= map(select(.type != "cgroup")
    | if .type == "bind" then .source = ($files + "/" + (.source | split("/") | last)) else . end)
