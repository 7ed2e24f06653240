#!/bin/bash
# build.sh OUTDIR - build the project's local Vagrant box OUTDIR/proven-debian12.box.
#
# What: a Debian 12 (bookworm) box for the vagrant-libvirt provider: one qcow2 disk
# (8 GiB virtual, one MBR partition, ext4 labelled "rootfs", extlinux), a "vagrant"
# user with Vagrant's insecure key and password-less sudo, systemd-networkd DHCP on
# eth0, SSH host keys made at first boot, and an offline apt repository holding
# every .deb the runbooks install (see runbook-packages.txt).
#
# Why: the lab host has no internet except Debian's mirror, so no box can be
# downloaded, and the VM itself gets no network at all. Everything is therefore
# built here from Debian packages, and the VM installs the runbooks' packages from
# the repository inside the box. The VM runs under software emulation (TCG), where
# package configuration dominates; the image carries settings that make dpkg and
# initramfs rebuilds cheaper without changing what the runbooks' commands do.
#
# How: mmdebstrap builds the root filesystem into a directory (customize-rootfs.sh
# configures it), mkfs.ext4 -d writes it straight into the partition of a sparse
# raw disk image, one short loop mount lets extlinux install itself, the syslinux
# MBR and a hand-written partition table go into sector 0, and qemu-img converts
# the disk to compressed qcow2. Needs root (mmdebstrap --mode=root, loop mount).
set -euo pipefail

readonly BOX_NAME=proven-debian12
readonly SUITE=bookworm
readonly MIRROR=http://deb.debian.org/debian
readonly SECURITY_MIRROR=http://deb.debian.org/debian-security
readonly DISK_GIB=8
# The partition starts at 1 MiB (sector 2048), the usual alignment.
readonly PART_START_SECTOR=2048
readonly PART_OFFSET=$((PART_START_SECTOR * 512))
readonly DISK_BYTES=$((DISK_GIB * 1024 * 1024 * 1024))
readonly PART_BYTES=$((DISK_BYTES - PART_OFFSET))
readonly KERNEL_CMDLINE="root=LABEL=rootfs ro console=ttyS0 net.ifnames=0 quiet"
# Packages on top of minbase. The brief's list plus: e2fsprogs (fsck of the root
# filesystem at boot), procps and netbase (ps/free and /etc/services, present on
# any real server the runbooks target).
readonly INCLUDE_PACKAGES="systemd-sysv,udev,kmod,dbus,linux-image-cloud-amd64,initramfs-tools,\
openssh-server,sudo,iproute2,fdisk,ca-certificates,zstd,e2fsprogs,procps,netbase"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE

log() { printf 'box: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# --- phase timing -----------------------------------------------------------
PHASE_NAMES=()
PHASE_SECONDS=()
PHASE_NAME=""
PHASE_T0=0
BUILD_T0=$(date +%s.%N)

phase() {
    phase_end
    PHASE_NAME=$1
    PHASE_T0=$(date +%s.%N)
    log "$1 ..."
}

phase_end() {
    if [[ -n $PHASE_NAME ]]; then
        PHASE_NAMES+=("$PHASE_NAME")
        PHASE_SECONDS+=("$(elapsed "$PHASE_T0")")
        PHASE_NAME=""
    fi
}

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# --- arguments and host checks ----------------------------------------------
usage() {
    cat >&2 <<EOF
usage: $0 OUTDIR
Builds OUTDIR/$BOX_NAME.box (Vagrant box, libvirt provider, Debian 12). Run as root.
EOF
    exit 2
}

[[ $# -eq 1 ]] || usage
[[ $1 != -* ]] || usage
[[ $EUID -eq 0 ]] || die "must run as root (mmdebstrap --mode=root and a loop mount need it)"

# Each tool with the Debian package that ships it; every missing one is reported
# before we stop, so one apt-get line fixes them all.
check_host() {
    local missing=() pair tool pkg
    for pair in mmdebstrap:mmdebstrap qemu-img:qemu-utils extlinux:extlinux \
        mkfs.ext4:e2fsprogs losetup:mount mount:mount umount:mount mountpoint:util-linux \
        dpkg-deb:dpkg sha256sum:coreutils tar:tar awk:mawk; do
        tool=${pair%%:*}
        pkg=${pair#*:}
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "missing tool '$tool' (Debian package $pkg)"
            missing+=("$pkg")
        fi
    done

    SYSLINUX_MBR=""
    for f in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/EXTLINUX/mbr.bin; do
        [[ -f $f ]] && SYSLINUX_MBR=$f && break
    done
    if [[ -z $SYSLINUX_MBR ]]; then
        log "missing the syslinux MBR mbr.bin (Debian package syslinux-common)"
        missing+=(syslinux-common)
    fi

    # Vagrant's well-known insecure key, whatever Vagrant version is installed.
    VAGRANT_PUB=""
    local keys=(/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub)
    if [[ -f ${keys[-1]} ]]; then
        VAGRANT_PUB=${keys[-1]}
    else
        log "missing Vagrant's insecure public key keys/vagrant.pub (Debian package vagrant)"
        missing+=(vagrant)
    fi

    if [[ ${#missing[@]} -gt 0 ]]; then
        die "host packages missing; install them with: apt-get install $(printf '%s\n' "${missing[@]}" | sort -u | paste -sd ' ')"
    fi
    [[ -x $HERE/customize-rootfs.sh ]] || die "$HERE/customize-rootfs.sh is missing or not executable"
    [[ -f $HERE/runbook-packages.txt ]] || die "$HERE/runbook-packages.txt is missing"
}

# --- temp dir, cleaned up on every exit ---------------------------------------
WORK=""
LOOPDEV=""

# PIDs of processes whose root or working directory lies inside WORK. WORK is a
# fresh mktemp directory, so only this build's own processes can be there.
chrooted_pids() {
    local p link
    for p in /proc/[0-9]*; do
        for link in root cwd; do
            link=$(readlink "$p/$link" 2>/dev/null) || continue
            if [[ $link == "$WORK"/* ]]; then
                echo "${p#/proc/}"
                break
            fi
        done
    done
}

stop_chrooted_processes() {
    local pids i
    mapfile -t pids < <(chrooted_pids)
    [[ ${#pids[@]} -gt 0 ]] || return 0
    log "stopping leftover build processes: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null
    for i in 1 2 3 4 5 6 7 8 9 10; do
        mapfile -t pids < <(chrooted_pids)
        [[ ${#pids[@]} -gt 0 ]] || return 0
        sleep 0.5
    done
    kill -KILL "${pids[@]}" 2>/dev/null
    sleep 0.5
}

cleanup() {
    local rc=$?
    set +e
    if [[ -n $WORK && -d $WORK ]]; then
        # If mmdebstrap died abruptly, its apt/dpkg children may still run chrooted
        # in WORK (orphaned, so not findable as our children): stop them by PID.
        stop_chrooted_processes
        # Anything still mounted below WORK (our extlinux mount, or mmdebstrap's
        # /proc, /sys, /dev if it was killed) goes first, deepest first, so that
        # rm can never reach into the host's /dev.
        local mnt
        while read -r mnt; do
            umount -l "$mnt" 2>/dev/null || log "warning: could not unmount $mnt"
        done < <(awk -v w="$WORK" 'index($2, w "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
    fi
    if [[ -n $LOOPDEV ]]; then
        losetup -d "$LOOPDEV" 2>/dev/null || log "warning: could not detach $LOOPDEV"
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if awk -v w="$WORK" 'index($2, w "/") == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
            log "warning: mounts left below $WORK; not deleting it"
        else
            rm -rf --one-file-system "$WORK"
        fi
    fi
    if [[ $rc -ne 0 ]]; then
        log "FAILED (exit $rc) during: ${PHASE_NAME:-setup}"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "checking host tools ..."
check_host

OUTDIR=$1
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d "$OUTDIR/.box-build.XXXXXX")
# apt in the chroot downloads as user _apt, which must be able to reach the tree.
chmod 0755 "$WORK"
ROOT=$WORK/root
DISK=$WORK/disk.raw
log "building $OUTDIR/$BOX_NAME.box in $WORK"

# --- 1. root filesystem -----------------------------------------------------
phase "building root filesystem (mmdebstrap $SUITE, runbook packages into /opt/proven-repo)"
# Sources are given explicitly and stdin is closed: mmdebstrap reads sources from
# stdin when it is not a terminal and no mirror is given, which would hang or
# misbehave in CI. The dpkg/apt options apply while building; customize-rootfs.sh
# writes the same settings as named files for the VM's later installs.
export BOX_VAGRANT_PUB=$VAGRANT_PUB
export BOX_RUNBOOK_PACKAGES=$HERE/runbook-packages.txt
export BOX_HOSTNAME=lab
export BOX_CUSTOMIZE=$HERE/customize-rootfs.sh
# shellcheck disable=SC2016  # the hook's $1 and $BOX_CUSTOMIZE are for its own shell
mmdebstrap \
    --mode=root \
    --variant=minbase \
    --format=directory \
    --include="$INCLUDE_PACKAGES" \
    --dpkgopt=force-unsafe-io \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='Acquire::Languages "none"' \
    --customize-hook='"$BOX_CUSTOMIZE" "$1"' \
    "$SUITE" "$ROOT" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main" \
    </dev/null 2> >(sed -u 's/^/box:   /' >&2) \
    || die "mmdebstrap failed (see its output above)"
phase_end

# --- 2. boot loader configuration and filesystem ---------------------------------
phase "writing ext4 filesystem 'rootfs' into the disk image (mkfs.ext4 -d, no mount)"
[[ -e $ROOT/vmlinuz && -e $ROOT/initrd.img ]] \
    || die "kernel symlinks /vmlinuz and /initrd.img missing in the root filesystem"
# The kernel and initramfs also go beside the box: `proven` boots them once under KVM to
# learn whether hardware virtualisation runs a stock kernel on this host (see vm.py).
cp -L "$ROOT/vmlinuz" "$OUTDIR/vmlinuz"
cp -L "$ROOT/initrd.img" "$OUTDIR/initrd.img"
mkdir -p "$ROOT/boot/extlinux"
# TIMEOUT 0 and PROMPT 0: boot the only entry at once. The kernel symlinks in /
# follow kernel upgrades inside the VM, so this file never needs rewriting.
cat >"$ROOT/boot/extlinux/extlinux.conf" <<EOF
# Written by vagrant/box/build.sh. One entry, no menu, no delay.
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
    LINUX /vmlinuz
    INITRD /initrd.img
    APPEND $KERNEL_CMDLINE
EOF
truncate -s "$DISK_BYTES" "$DISK"
# ^64bit: syslinux's ext4 reader is happiest without it, and 8 GiB never needs it.
# -E offset writes the filesystem at the partition's place inside the disk image,
# so no partition device (and no udev) is needed to create or fill it.
mkfs.ext4 -q -F -L rootfs -O ^64bit -E "offset=$PART_OFFSET" -d "$ROOT" \
    "$DISK" "$((PART_BYTES / 1024))k"
phase_end

# --- 3. boot loader ---------------------------------------------------------------
phase "installing extlinux and the syslinux MBR"
# extlinux only installs into a mounted filesystem (it maps its own file's
# blocks). One loop device over the partition's byte range, detached right away.
mkdir -p "$WORK/mnt"
LOOPDEV=$(losetup --find --show --offset "$PART_OFFSET" --sizelimit "$PART_BYTES" "$DISK")
mount -t ext4 "$LOOPDEV" "$WORK/mnt"
extlinux --install --heads 255 --sectors 63 "$WORK/mnt/boot/extlinux" 2>&1 | sed 's/^/box:   /' >&2
umount "$WORK/mnt"
losetup -d "$LOOPDEV"
LOOPDEV=""

# Sector 0: syslinux MBR boot code (440 bytes), a disk signature, and one primary
# partition entry (bootable, type 0x83 Linux) from sector 2048 to the disk's end.
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
part_sectors=$((PART_BYTES / 512))
{
    head -c 440 "$SYSLINUX_MBR"
    head -c 4 /dev/urandom # disk signature
    printf '\x00\x00'
    # status, CHS start (0/32/33 = LBA 2048), type, CHS end (past 1024 cylinders), LBA start, count
    printf '\x80\x20\x21\x00\x83\xfe\xff\xff'
    # shellcheck disable=SC2059
    printf "$(le32 "$PART_START_SECTOR")$(le32 "$part_sectors")"
    head -c 48 /dev/zero
    printf '\x55\xaa'
} >"$WORK/mbr.img"
[[ $(stat -c %s "$WORK/mbr.img") -eq 512 ]] || die "internal error: MBR is not 512 bytes"
dd if="$WORK/mbr.img" of="$DISK" bs=512 count=1 conv=notrunc status=none
phase_end

# --- 4. qcow2 -------------------------------------------------------------------
phase "converting to compressed qcow2 (qemu-img convert -c)"
mkdir -p "$WORK/box"
# -W and -m let the compression run on all cores.
qemu-img convert -c -W -m 8 -f raw -O qcow2 "$DISK" "$WORK/box/box.img"
rm -f "$DISK"
phase_end

# --- 5. box archive -------------------------------------------------------------
phase "packing $BOX_NAME.box"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$DISK_GIB" \
    >"$WORK/box/metadata.json"
cat >"$WORK/box/Vagrantfile" <<'EOF'
# Defaults of the proven-debian12 box (built by vagrant/box/build.sh).
Vagrant.configure("2") do |config|
  # The box has no rsync or NFS client and the lab VM no network: no synced folder.
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
EOF
tar -C "$WORK/box" -cf "$WORK/$BOX_NAME.box" metadata.json Vagrantfile box.img
mv -f "$WORK/$BOX_NAME.box" "$OUTDIR/$BOX_NAME.box"
phase_end

# --- summary ---------------------------------------------------------------------
total=$(elapsed "$BUILD_T0")
log "done: $OUTDIR/$BOX_NAME.box"
for i in "${!PHASE_NAMES[@]}"; do
    printf 'box:   %6ss  %s\n' "${PHASE_SECONDS[$i]}" "${PHASE_NAMES[$i]%% (*}" >&2
done
log "box size: $(du -m "$OUTDIR/$BOX_NAME.box" | cut -f1) MiB ($(stat -c %s "$OUTDIR/$BOX_NAME.box") bytes)"
log "total time: ${total}s"
