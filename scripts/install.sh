#!/usr/bin/env bash
# Install everything vispd and its tests need on a Debian machine (run as root): the
# kernel tools it drives (iproute2, tc, nftables, util-linux's nsenter/setpriv), the lab's
# BGP providers (BIRD 2; FRR as the alternative), the access daemons (OpenVPN,
# wireguard-go, pptpd and the pptp client), Mininet's mnexec and the tools its links use
# (net-tools, ethtool), iptables (Debian's nft flavour: the delay line's NFQUEUE and
# statistic-loss rules, where the kernel has no netem), the measuring tools (iperf3, ping), the
# system python3 that slice programs run as an unprivileged user, and vispd itself with
# its Python dependencies (ExaBGP among them).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 nftables iperf3 iputils-ping util-linux procps kmod python3 tcpdump
          bird2 frr openvpn wireguard-go wireguard-tools pptpd pptp-linux
          mininet net-tools ethtool iptables gobgpd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip_flags=(-q)
if python3 -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
  pip_flags+=(--break-system-packages)  # Debian's python3: vispd is a system tool run as root
fi
python3 -m pip install "${pip_flags[@]}" --disable-pip-version-check -e '.[test]' 2>&1 \
  | { grep -v -e "Running pip as the 'root' user" -e "is ignored: it is neither" || true; }
