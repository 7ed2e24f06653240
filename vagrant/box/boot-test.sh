#!/bin/bash
# boot-test.sh BOXFILE - boot a box made by build.sh in plain QEMU and measure it.
#
# Why: to prove the box works (boots, SSH with Vagrant's insecure key, offline apt
# repository, initramfs rebuilds, RAID) without libvirt or Vagrant, and to measure
# what the runbooks will pay under software emulation (TCG: hardware KVM does not
# run stock kernels on the lab host).
#
# The VM: 2 vCPU, 1 GiB, the box's disk through a qcow2 overlay (the box stays
# untouched), two blank 1 GiB virtio disks (vdb, vdc), user-mode networking that
# only forwards 127.0.0.1:$SSH_PORT to the guest's port 22 and lets the guest reach
# nothing (restrict=on), and a second NIC on a network with no DHCP server, which
# must not delay boot. Serial console goes to a log file.
#
# Environment: SSH_PORT (default 2222), BOOT_TIMEOUT (seconds, default 300),
# KEEP_WORKDIR=1 keeps the temp dir (serial log, command logs).

# Commands for the VM are single-quoted on purpose: they expand in the VM.
# shellcheck disable=SC2016
set -euo pipefail

SSH_PORT=${SSH_PORT:-2222}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}

log() { printf 'boot-test: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $# -eq 1 && -f $1 ]] || die "usage: $0 BOXFILE (the .box written by build.sh)"
BOX=$(readlink -f "$1")

missing=()
for pair in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils ssh:openssh-client tar:tar; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
keys=(/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant)
[[ -f ${keys[-1]} ]] || missing+=(vagrant)
[[ ${#missing[@]} -eq 0 ]] || die "missing host packages; install them with: apt-get install ${missing[*]}"
if (exec 3<>"/dev/tcp/127.0.0.1/$SSH_PORT") 2>/dev/null; then
    die "127.0.0.1:$SSH_PORT is already in use; set SSH_PORT to a free port"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/boot-test.XXXXXX")
QEMU_PID=""
cleanup() {
    local rc=$?
    set +e
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        log "stopping the QEMU we started (pid $QEMU_PID)"
        kill "$QEMU_PID"
        wait "$QEMU_PID" 2>/dev/null
    fi
    if [[ ${KEEP_WORKDIR:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- disks and key -----------------------------------------------------------------
tar -C "$WORK" -xf "$BOX" box.img metadata.json
log "box: $(cat "$WORK/metadata.json")"
qemu-img create -q -f qcow2 -F qcow2 -b "$WORK/box.img" "$WORK/root.qcow2"
qemu-img create -q -f qcow2 "$WORK/vdb.qcow2" 1G
qemu-img create -q -f qcow2 "$WORK/vdc.qcow2" 1G
install -m 0600 "${keys[-1]}" "$WORK/key"

SSH=(ssh -q -p "$SSH_PORT" -i "$WORK/key" -o IdentitiesOnly=yes -o BatchMode=yes
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5
    vagrant@127.0.0.1)
vm() { "${SSH[@]}" "$@"; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
RESULTS=()
result() {
    RESULTS+=("$(printf '%-58s %s' "$1" "$2")")
    log "$1: $2"
}

# Run a command in the VM, its output to a log file; record its duration.
timed() {
    local name=$1 t0 logf
    shift
    logf="$WORK/step$((${#RESULTS[@]} + 1)).log"
    LAST_LOG=$logf
    log "$name ..."
    t0=$(now)
    if vm "$@" >"$logf" 2>&1; then
        result "$name" "$(since "$t0") s"
    else
        result "$name" "FAILED after $(since "$t0") s (see $logf)"
        tail -20 "$logf" >&2
        return 1
    fi
}

# --- boot ----------------------------------------------------------------------------
log "starting QEMU (TCG, 2 vCPU, 1 GiB); serial console in $WORK/serial.log"
T0=$(now)
qemu-system-x86_64 \
    -accel tcg -smp 2 -m 1024 \
    -display none -monitor none -serial "file:$WORK/serial.log" -no-reboot \
    -drive "file=$WORK/root.qcow2,if=virtio,format=qcow2" \
    -drive "file=$WORK/vdb.qcow2,if=virtio,format=qcow2" \
    -drive "file=$WORK/vdc.qcow2,if=virtio,format=qcow2" \
    -netdev "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22" \
    -device virtio-net-pci,netdev=mgmt \
    -netdev hubport,id=nodhcp,hubid=7 \
    -device virtio-net-pci,netdev=nodhcp \
    2>"$WORK/qemu.err" &
QEMU_PID=$!

until vm true 2>/dev/null; do
    kill -0 "$QEMU_PID" 2>/dev/null || { tail -30 "$WORK/serial.log" >&2; die "QEMU exited during boot"; }
    if [[ $(since "$T0" | cut -d. -f1) -ge $BOOT_TIMEOUT ]]; then
        tail -30 "$WORK/serial.log" >&2
        die "no SSH after ${BOOT_TIMEOUT}s"
    fi
    sleep 1
done
result "QEMU start to SSH answering" "$(since "$T0") s"

# --- the VM as booted ---------------------------------------------------------------------
vm 'set -e; echo "kernel $(uname -r), hostname $(hostname)"; ip -br addr;
    systemctl is-system-running --wait || true; systemctl --failed --no-legend;
    systemd-analyze time; echo "root: $(findmnt -no SOURCE,FSTYPE,OPTIONS /)";
    echo "apt sources:"; grep -rh "^deb" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null;
    echo "ssh host keys made at boot:"; systemctl is-active ssh-host-keys.service;
    ls /etc/ssh/ssh_host_*_key.pub; echo "initramfs: $(grep -E "^(MODULES|COMPRESS|COMPRESSLEVEL)=" /etc/initramfs-tools/initramfs.conf | tr "\n" " ")"' \
    | sed 's/^/  vm: /' >&2

# --- installs from the offline repository ----------------------------------------------
timed "apt-get update && install mdadm lvm2 (with initramfs rebuild)" \
    'sudo apt-get update && sudo apt-get install -y --no-install-recommends mdadm lvm2'
vm 'lsinitramfs /boot/initrd.img-$(uname -r) | grep -E "mdadm|mdadm.conf|raid1" | sed "s/^/  initramfs: /"' >&2
if vm 'lsinitramfs /boot/initrd.img-$(uname -r) | grep -q "etc/mdadm/mdadm.conf"'; then
    result "initramfs after mdadm install contains etc/mdadm/mdadm.conf" "yes"
else
    result "initramfs after mdadm install contains etc/mdadm/mdadm.conf" "NO"
fi
timed "sudo update-initramfs -u" 'sudo update-initramfs -u'
timed "apt-get install apache2 libapache2-mod-fcgid php-cgi" \
    'sudo apt-get install -y --no-install-recommends apache2 libapache2-mod-fcgid php-cgi'
vm 'systemctl is-active apache2; sudo a2query -m fcgid || true' | sed 's/^/  vm: /' >&2
if vm 'test -s /etc/ssh/ssh_host_rsa_key.pub && systemctl show -p Result --value ssh-host-key-rsa.service | grep -qx success'; then
    result "RSA host key made after boot, sshd reloaded" "yes"
else
    result "RSA host key made after boot, sshd reloaded" "NO"
fi

# --- RAID1 on the blank disks ---------------------------------------------------------------
timed "mdadm --create /dev/md0 raid1 on vdb+vdc" \
    'sudo mdadm --create /dev/md0 --level=1 --raid-devices=2 /dev/vdb /dev/vdc --run && cat /proc/mdstat && sudo modprobe raid10 && lsmod | grep -E "^raid(1|10) "'
sed 's/^/  vm: /' "$LAST_LOG" >&2

# --- clean shutdown ----------------------------------------------------------------------------
log "sudo systemctl poweroff"
t0=$(now)
vm 'sudo systemctl poweroff' || true
for _ in $(seq 1 120); do
    kill -0 "$QEMU_PID" 2>/dev/null || break
    sleep 1
done
if kill -0 "$QEMU_PID" 2>/dev/null; then
    result "shutdown with systemctl poweroff" "QEMU still running after 120 s"
else
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=""
    if grep -q 'reboot: Power down' "$WORK/serial.log"; then
        result "shutdown with systemctl poweroff" "clean, QEMU exited after $(since "$t0") s"
    else
        result "shutdown with systemctl poweroff" "QEMU exited after $(since "$t0") s, no 'Power down' on console"
    fi
fi

printf '\nboot-test results (%s)\n' "$(basename "$BOX")"
printf '  %s\n' "${RESULTS[@]}"
