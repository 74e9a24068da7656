#!/usr/bin/env bash
# Installs the Debian packages the local run and the tests need, when they are missing:
# redis-server and rabbitmq-server (the brokers the harness starts on free ports) and a
# Java runtime and Maven for Kafka (whose jars tools/kafka/fetch.sh takes from Maven Central),
# etcd for the kube-apiserver the chart tests run against, Debian's python3 with venv
# for the moto AWS emulator (tools/moto/install.sh installs it from PyPI into a venv), and
# what the single-node cluster runs beside the binaries built from source.
# As root it installs them (without starting their services); otherwise it prints the exact
# command and fails.
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
# Debian starts a packaged redis-server, rabbitmq-server (with epmd) and etcd as soon as
# they are installed. The project runs its own instances on free ports and never stops or
# disables a service it did not start, so it keeps the packaged ones from starting at all:
# policy-rc.d answering 101 ("action forbidden") is Debian's switch for exactly that
# (invoke-rc.d and deb-systemd-invoke both honour it). An existing policy is the
# machine owner's and is left alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# taskevents tools/prereqs.sh: installing packages without starting their services\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
sh -c "$cmd" >&2
