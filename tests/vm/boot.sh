#!/usr/bin/env bash
# Boots the VM test bed once: the cached guest disk (tests/vm/image.sh) as a throwaway snapshot,
# the control directory CTL shared as `ctl` (its `run` script is what the guest runs; results
# come back there), and the directory SRC shared read-only as `src`. KVM when a guest really
# runs under it, else TCG: a KVM boot that prints no kernel line within the probe time is
# killed and the boot is made again under TCG. The guest powers itself off; a hard timeout
# kills it whatever happens. Prints one `phase <name> <seconds>` line per phase.
#
# usage: boot.sh CTL SRC [TIMEOUT_SECONDS [LSM]]
# LSM is apparmor (Debian's default) or selinux (permissive, with Debian's default policy).
set -euo pipefail
ctl=$1 src=$2 timeout=${3:-1200} lsm=${4:-apparmor}
case "$lsm" in
  apparmor) lsm_args="" ;;
  selinux) lsm_args="security=selinux selinux=1 enforcing=0" ;;
  *) echo "boot.sh: unknown LSM $lsm" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
t0=$(date +%s.%N)
image=$("$here/image.sh")
t1=$(date +%s.%N)
echo "phase image $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")"
base=${image%.img}
serial="$ctl/serial.log"

# qemu runs in a session of its own (under `timeout`), so that the whole group can be killed.
boot() { # accel cpu seconds
  : > "$serial"
  setsid timeout --kill-after=5 "$3" qemu-system-x86_64 \
    -accel "$1" -cpu "$2" -smp 2 -m 2048 \
    -nographic -no-reboot -monitor none -serial "file:$serial" -nic none \
    -kernel "$base.vmlinuz" -initrd "$base.initrd" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0 loglevel=4 $lsm_args" \
    -drive "file=$image,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$ctl,mount_tag=ctl,security_model=none,id=ctl" \
    -virtfs "local,path=$src,mount_tag=src,security_model=none,readonly=on,id=src" &
  qemu=$!
}

# Whatever happens to this script, no guest outlives it.
trap '[ -n "${qemu:-}" ] && kill -9 -- "-$qemu" 2>/dev/null || true' EXIT
accel=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  boot kvm host "$timeout"
  for _ in $(seq 25); do
    grep -q "Linux version" "$serial" 2>/dev/null && { accel=kvm; break; }
    kill -0 "$qemu" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$accel" != kvm ]; then
    kill -9 -- "-$qemu" 2>/dev/null || true
    wait "$qemu" 2>/dev/null || true
    echo "accel: /dev/kvm opens but the guest printed nothing in 5 s: TCG" >&2
  fi
fi
if [ "$accel" = tcg ]; then
  boot tcg max "$timeout"
fi
echo "accel $accel"
set +e
wait "$qemu"
status=$?
set -e
t2=$(date +%s.%N)
echo "phase vm-$lsm $(awk "BEGIN{printf \"%.1f\", $t2 - $t1}")"
if [ "$status" -ne 0 ]; then
  echo "qemu ended with status $status (124: the $timeout s timeout)" >&2
  tail -n 40 "$serial" >&2
  exit 1
fi
