#!/usr/bin/env bash
# Installs the Debian packages the local run and the tests need, when they are missing:
# redis-server and rabbitmq-server (the brokers the harness starts on free ports) and a
# Java runtime and Maven for Kafka (whose jars tools/kafka/fetch.sh takes from Maven Central),
# etcd for the kube-apiserver the chart tests run against, Debian's python3 with venv
# for the moto AWS emulator (tools/moto/install.sh installs it from PyPI into a venv), and
# what the single-node cluster runs beside the binaries built from source.
# As root it installs them; otherwise it prints the exact command and fails.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# make bench: wrk generates the closed-loop HTTP load.
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# Debian's wrapper; the real scripts live in /usr/lib/rabbitmq/bin.
[ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
# The single-node cluster (make test-cluster): runc under containerd, the reference CNI
# plugins, iptables and conntrack for kube-proxy, busybox for the helm test image.
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
# nft removes the empty tables iptables-nft leaves when the cluster is torn down.
command -v nft >/dev/null 2>&1 || missing+=(nftables)
[ -x /bin/busybox ] || missing+=(busybox-static)
# gcc and a static libc: the pause image is compiled from Kubernetes' pause.c, as upstream's.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: ${missing[*]}. Install with: sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "installing ${missing[*]}..." >&2
sh -c "$cmd" >&2
# Debian starts a system-wide redis-server on 6379, a rabbit@<host> node on 5672 (with
# epmd on 4369) and etcd on 2379 after install; the project starts its own instances on free ports, so the
# packaged services are stopped and disabled.
for svc in redis-server rabbitmq-server etcd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null 2>&1 && update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done
pkill -x redis-server 2>/dev/null || true
[[ " ${missing[*]} " == *" etcd-server "* ]] && { pkill -x etcd 2>/dev/null || true; }
# The packaged node runs as the rabbitmq user; stop only that one (ours run under other
# node names), then the epmd it left on the default port.
if [[ " ${missing[*]} " == *" rabbitmq-server "* ]]; then
  rabbitmqctl -q stop >/dev/null 2>&1 || true
  epmd -kill >/dev/null 2>&1 || true
fi
