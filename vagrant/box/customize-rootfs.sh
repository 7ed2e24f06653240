#!/bin/bash
# customize-rootfs.sh ROOT - configure the box's root filesystem; build.sh runs it
# as mmdebstrap's --customize-hook (all packages installed, /proc /sys /dev mounted
# in ROOT, services prevented from starting, apt lists and cache still present).
#
# Input from build.sh's environment: BOX_VAGRANT_PUB (Vagrant's insecure public
# key), BOX_RUNBOOK_PACKAGES (package list file), BOX_HOSTNAME.
#
# It sets up the vagrant user, sshd, networking, the dpkg/apt/initramfs settings
# that make installs in the emulated VM cheaper, and the offline apt repository
# /opt/proven-repo that becomes the image's only package source.
set -euo pipefail

ROOT=${1:?usage: customize-rootfs.sh ROOT}
: "${BOX_VAGRANT_PUB:?}" "${BOX_RUNBOOK_PACKAGES:?}" "${BOX_HOSTNAME:?}"
# Everything below writes and deletes under ROOT: refuse anything but a chroot.
if [[ $(readlink -f "$ROOT") == / || ! -d $ROOT/var/lib/dpkg ]]; then
    echo "customize-rootfs.sh: '$ROOT' is not a root filesystem under construction" >&2
    exit 1
fi
readonly REPO=/opt/proven-repo

# build.sh prefixes everything the hook prints with "box:".
log() { printf 'customize: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
in_root() { chroot "$ROOT" "$@"; }

# Write stdin to ROOT/PATH with the given mode.
put() {
    local mode=$1 path=$ROOT$2
    mkdir -p "$(dirname "$path")"
    cat >"$path"
    chmod "$mode" "$path"
}

# --- identity --------------------------------------------------------------------
log "hostname, hosts, fstab"
echo "$BOX_HOSTNAME" | put 0644 /etc/hostname
put 0644 /etc/hosts <<EOF
127.0.0.1	localhost
127.0.1.1	$BOX_HOSTNAME
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
put 0644 /etc/fstab <<'EOF'
# <file system>	<mount point>	<type>	<options>	<dump>	<pass>
LABEL=rootfs	/	ext4	errors=remount-ro	0	1
EOF

# --- network: systemd-networkd, DHCP -----------------------------------------------
log "systemd-networkd: DHCP on eth0 (waited for), other NICs optional"
put 0644 /etc/systemd/network/10-eth0.network <<'EOF'
# The first NIC (net.ifnames=0 on the kernel command line keeps it eth0) is
# Vagrant's management interface: boot waits for it (network-online.target).
[Match]
Name=eth0

[Network]
DHCP=ipv4
EOF
put 0644 /etc/systemd/network/20-other.network <<'EOF'
# Any further NIC gets DHCP too, but boot never waits for it: a second NIC may
# sit on a network without a DHCP server.
[Match]
Name=eth* en*

[Network]
DHCP=ipv4

[Link]
RequiredForOnline=no
EOF
in_root systemctl enable systemd-networkd.service >&2

# --- vagrant user, sudo, ssh --------------------------------------------------------
log "vagrant user with the insecure key, password-less sudo"
in_root useradd --create-home --shell /bin/bash --user-group vagrant
# '*': no password can match, yet the account is not "locked" for key logins.
in_root usermod --password '*' vagrant
put 0440 /etc/sudoers.d/vagrant <<'EOF'
vagrant ALL=(ALL) NOPASSWD: ALL
EOF
in_root visudo --check --quiet --file=/etc/sudoers.d/vagrant || die "sudoers.d/vagrant does not parse"
install -d -m 0700 "$ROOT/home/vagrant/.ssh"
install -m 0600 "$BOX_VAGRANT_PUB" "$ROOT/home/vagrant/.ssh/authorized_keys"
in_root chown -R vagrant:vagrant /home/vagrant/.ssh

log "sshd: UseDNS no; host keys generated at first boot"
put 0644 /etc/ssh/sshd_config.d/10-proven-box.conf <<'EOF'
# The lab VM has no DNS: never wait for reverse lookups of clients.
UseDNS no
EOF
# openssh-server's postinst made host keys; every VM must get its own instead.
rm -f "$ROOT"/etc/ssh/ssh_host_*
# Ed25519 and ECDSA keys take well under a second to make even under emulation,
# so sshd waits for them. The RSA key took 5-18 s of the first boot under TCG:
# it is made after sshd has started, at idle priority, and sshd is then reloaded
# to offer it too. Clients (Vagrant included) meanwhile use the other two.
put 0644 /etc/systemd/system/ssh-host-keys.service <<'EOF'
[Unit]
Description=Generate this VM's SSH host keys (Ed25519, ECDSA; the box ships none)
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -ec 'for t in ed25519 ecdsa; do f=/etc/ssh/ssh_host_$${t}_key; [ -e $$f ] || ssh-keygen -q -t $$t -N "" -C root@$$(hostname) -f $$f; done'

[Install]
WantedBy=ssh.service multi-user.target
EOF
put 0644 /etc/systemd/system/ssh-host-key-rsa.service <<'EOF'
[Unit]
Description=Generate this VM's SSH RSA host key once sshd is up, then reload sshd
After=ssh.service ssh-host-keys.service
ConditionPathExists=!/etc/ssh/ssh_host_rsa_key

[Service]
Type=oneshot
Nice=19
CPUSchedulingPolicy=idle
IOSchedulingClass=idle
ExecStart=/usr/bin/ssh-keygen -A
ExecStartPost=-/bin/systemctl try-reload-or-restart ssh.service

[Install]
WantedBy=multi-user.target
EOF
in_root systemctl enable ssh-host-keys.service ssh-host-key-rsa.service >&2

# --- dpkg, apt, debconf -------------------------------------------------------------
log "dpkg/apt speed settings"
put 0644 /etc/dpkg/dpkg.cfg.d/10-proven-box <<'EOF'
# Lab VM box: no fsync per file (the VM is disposable), and no manuals,
# documentation (copyright kept) or translations.
force-unsafe-io
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
EOF
put 0644 /etc/apt/apt.conf.d/10-proven-box <<'EOF'
// Lab VM box: no translated package descriptions.
Acquire::Languages "none";
EOF
rm -f "$ROOT/etc/dpkg/dpkg.cfg.d/99mmdebstrap" "$ROOT/etc/apt/apt.conf.d/99mmdebstrap"
# Nobody answers questions inside the lab VM; packages take their defaults
# (runbooks may still preseed with debconf-set-selections).
echo 'debconf debconf/frontend select Noninteractive' | in_root debconf-set-selections
# shellcheck disable=SC2016  # ${Status} is dpkg-query's format, not ours
if in_root dpkg-query -W -f='${Status}' man-db 2>/dev/null | grep -q installed; then
    die "man-db got installed; the box must not carry it (its triggers are slow)"
fi

# --- kernel and initramfs ---------------------------------------------------------------
kver=$(basename "$(readlink -f "$ROOT/vmlinuz")")
kver=${kver#vmlinuz-}
log "kernel $kver: checking modules and the initial initramfs"
for mod in raid1 raid10 dm-mod; do
    [[ -n $(find "$ROOT/lib/modules/$kver" -name "${mod}.ko*" -print -quit) ]] \
        || die "kernel $kver has no $mod module (the storage runbook needs it)"
done
# The initial initramfs was built in the chroot with MODULES=most (MODULES=dep
# cannot see the VM's disk from here). It must be able to mount the root disk.
initrd_list=$(in_root lsinitramfs "/boot/initrd.img-$kver")
for mod in virtio_blk virtio_pci ext4; do
    builtin=$(grep -c "/${mod}.ko\$" "$ROOT/lib/modules/$kver/modules.builtin" || true)
    if [[ $builtin -eq 0 ]] && ! grep -q "/${mod}\.ko" <<<"$initrd_list"; then
        die "initial initramfs lacks $mod: the box would not find its root disk"
    fi
done
# Rebuilds inside the VM (mdadm, lvm2 install) then take only the modules the VM
# uses, compressed with zstd: much faster under emulation. The modules file keeps
# the root disk's drivers in even if detection misses them.
# zstd level 1 instead of initramfs-tools' default 9: measured in the VM on the
# 25 MB image after mdadm+lvm2, 1.3 s instead of 12.4 s (11.1 MB instead of 9.1).
conf=$ROOT/etc/initramfs-tools/initramfs.conf
sed -i -e 's/^MODULES=.*/MODULES=dep/' -e 's/^#\?COMPRESS=.*/COMPRESS=zstd/' \
    -e 's/^# *COMPRESSLEVEL=.*/COMPRESSLEVEL=1/' "$conf"
grep -q '^COMPRESSLEVEL=' "$conf" || echo 'COMPRESSLEVEL=1' >>"$conf"
for setting in MODULES=dep COMPRESS=zstd COMPRESSLEVEL=1; do
    grep -qx "$setting" "$conf" || die "could not set $setting in /etc/initramfs-tools/initramfs.conf"
done
cat >>"$ROOT/etc/initramfs-tools/modules" <<'EOF'
# Root disk of the lab VM (added by the box build)
virtio_pci
virtio_blk
ext4
EOF

# --- offline apt repository ---------------------------------------------------------------
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]\+/\n/g' "$BOX_RUNBOOK_PACKAGES" | grep -v '^$')
[[ ${#packages[@]} -gt 0 ]] || die "no packages listed in $BOX_RUNBOOK_PACKAGES"
log "downloading ${#packages[@]} runbook packages and their dependencies"
# Same apt lists as the base system, so versions match what is installed.
in_root apt-get clean
in_root apt-get install --download-only --yes --no-install-recommends \
    -o Dpkg::Use-Pty=0 "${packages[@]}" 2>&1 \
    | sed -e '/^\(Get\|Reading\|Building\)/d' -e 's/^/  /' >&2
mkdir -p "$ROOT$REPO"
shopt -s nullglob
debs=("$ROOT"/var/cache/apt/archives/*.deb)
[[ ${#debs[@]} -gt 0 ]] || die "apt downloaded no .deb files"
mv "${debs[@]}" "$ROOT$REPO/"

log "indexing $REPO (${#debs[@]} .deb files)"
# The index is what dpkg-scanpackages would write: each package's control fields
# plus where the file is, its size and hash. Done here so neither the host nor the
# image needs dpkg-dev or apt-utils.
(
    cd "$ROOT$REPO"
    for deb in *.deb; do
        dpkg-deb --field "$deb"
        printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' \
            "$deb" "$(stat -c %s "$deb")" "$(sha256sum "$deb" | cut -d' ' -f1)"
    done >Packages
    {
        printf 'Origin: proven\nLabel: proven lab box\nSuite: proven\nArchitectures: amd64 all\n'
        printf 'Date: %s\n' "$(LC_ALL=C date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" '+%a, %d %b %Y %H:%M:%S UTC')"
        printf 'Description: packages the runbooks install, for use with no network\n'
        printf 'SHA256:\n %s %s Packages\n' "$(sha256sum Packages | cut -d' ' -f1)" "$(stat -c %s Packages)"
    } >Release
)

log "making $REPO the only apt source"
rm -f "$ROOT"/etc/apt/sources.list.d/*
put 0644 /etc/apt/sources.list <<EOF
# The box's offline repository: the runbooks' packages, downloaded when the box was
# built, from the same mirror state as the installed system (vagrant/box/build.sh).
deb [trusted=yes] file:$REPO ./
EOF
# Prove now that the VM will be able to install everything with no network.
rm -rf "$ROOT"/var/lib/apt/lists/*
in_root apt-get update -o Dpkg::Use-Pty=0 >&2
if ! in_root apt-get install --simulate --no-install-recommends "${packages[@]}" >/dev/null; then
    die "the offline repository cannot satisfy: ${packages[*]}"
fi
# No mirror lists and no cached .debs in the image (mmdebstrap's cleanup removes
# these as well; done here so the image is right whatever mmdebstrap does).
rm -rf "$ROOT"/var/lib/apt/lists/*
mkdir -p "$ROOT/var/lib/apt/lists/partial"
rm -f "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin

# mmdebstrap copied the build host's resolv.conf (apt above needed it); the VM
# has no DNS server to ask.
rm -f "$ROOT/etc/resolv.conf"
: | put 0644 /etc/resolv.conf

log "done in ${SECONDS}s"
