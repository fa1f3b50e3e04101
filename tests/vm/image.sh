#!/usr/bin/env bash
# Builds the VM test bed's guest disk: Debian 12 with systemd as PID 1 on pure cgroup v2, from
# Debian's packages only. Prints the image's path. The image is cached under $FERRUN_VM_CACHE
# (default /var/cache/ferrun-vm), keyed by this file's hash: editing the recipe rebuilds it.
#
# The guest knows nothing of ferrun. At boot its one unit mounts the 9p share `ctl` and runs the
# script the host put there (tests/vm/boot.sh writes it), then powers the guest off, whatever
# that script did.
set -euo pipefail

cache=${FERRUN_VM_CACHE:-/var/cache/ferrun-vm}
key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
image="$cache/guest-$key.img"
if [ -s "$image" ] && [ -s "$cache/guest-$key.vmlinuz" ] && [ -s "$cache/guest-$key.initrd" ]; then
  echo "$image"
  exit 0
fi
mkdir -p "$cache"
# One image at a time: an older recipe's files go.
find "$cache" -maxdepth 1 -name 'guest-*' ! -name "guest-$key*" -exec rm -rf {} +
tree=$(mktemp -d "$cache/tree-XXXXXX")
trap 'rm -rf "$tree"' EXIT

# What the guest's tests use: the engines and runtimes (podman with its Debian defaults, crun,
# runc, containerd for the CRI), busybox for the test rootfs, the tools the tests read with, and what later issues need
# (uidmap for rootless, criu, apparmor). SELinux's policy is there for the boot that enables it
# instead of AppArmor (boot.sh's LSM argument).
packages=(
  systemd systemd-sysv dbus dbus-user-session udev kmod linux-image-amd64 e2fsprogs
  busybox-static procps iproute2 util-linux strace
  podman conmon crun runc catatonit containernetworking-plugins iptables containerd
  uidmap slirp4netns fuse-overlayfs
  criu apparmor
  selinux-policy-default selinux-utils policycoreutils
)
mmdebstrap --variant=apt --aptopt='APT::Install-Recommends "false"' \
  --include="$(IFS=,; echo "${packages[*]}")" \
  --customize-hook='echo ferrun-vm > "$1/etc/hostname"' \
  --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
  --customize-hook='chroot "$1" passwd -d root' \
  --customize-hook='printf "SELINUX=permissive\nSELINUXTYPE=default\n" > "$1/etc/selinux/config"' \
  --customize-hook='cat > "$1/usr/local/sbin/ferrun-vm-boot" <<"EOS"
#!/bin/sh
# Mounts the host'"'"'s control share and runs its script; the unit powers off afterwards.
mkdir -p /run/ferrun-vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ctl /run/ferrun-vm || exit 1
exec /bin/sh /run/ferrun-vm/run
EOS
chmod 755 "$1/usr/local/sbin/ferrun-vm-boot"' \
  --customize-hook='cat > "$1/etc/systemd/system/ferrun-vm.service" <<"EOS"
[Unit]
Description=ferrun VM tests: run the host'"'"'s script, then power off
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/ferrun-vm-boot
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOS
chroot "$1" systemctl enable ferrun-vm.service
chroot "$1" systemctl mask serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer' \
  bookworm "$tree" http://deb.debian.org/debian >&2

cp "$tree"/boot/vmlinuz-* "$cache/guest-$key.vmlinuz.tmp"
cp "$tree"/boot/initrd.img-* "$cache/guest-$key.initrd.tmp"
# Room for images and containers the tests make; the file is sparse.
rm -f "$image.tmp"
mkfs.ext4 -q -F -L ferrun-vm -d "$tree" "$image.tmp" 6G >&2
mv "$cache/guest-$key.vmlinuz.tmp" "$cache/guest-$key.vmlinuz"
mv "$cache/guest-$key.initrd.tmp" "$cache/guest-$key.initrd"
mv "$image.tmp" "$image"
echo "$image"
