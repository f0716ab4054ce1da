#!/usr/bin/env bash
# node-cpu.sh: CPU of whole ringway nodes (ring, router, management API) in
# the reference lab, idle: no client traffic, the cluster just running.
#
#   scripts/node-cpu.sh [SECONDS] [RING_KEY=VALUE ...]
#
# e.g. scripts/node-cpu.sh 10 hop_interval=4ms min_rotation=0
# Brings up a lab of 3 nodes under its own prefix, optionally rewrites
# keys of the ring: section of every node's config and restarts the nodes,
# lets the ring settle, then prints each node's CPU over SECONDS (utime +
# stime from /proc, % of one core) and the mean. Always takes the lab down.
# `make bench-node-cpu` runs it with the defaults. Needs root and bin/ringway.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
prefix=rwcpu$$
state=/run/ringway-lab
rw=./bin/ringway
[ -x "$rw" ] || { echo "node-cpu: $rw missing; run make build" >&2; exit 2; }
trap '$rw lab down --prefix $prefix >/dev/null 2>&1 || true' EXIT

$rw lab up --prefix "$prefix" >/dev/null
if [ $# -gt 0 ]; then
	for i in 1 2 3; do $rw lab fail --prefix "$prefix" --mode kill "n$i" >/dev/null; done
	for i in 1 2 3; do
		f=$state/$prefix/n$i.yaml
		grep -q '^ring:' "$f" || printf 'ring:\n' >>"$f"
		for kv in "$@"; do
			k=${kv%%=*} v=${kv#*=}
			if grep -q "^  $k:" "$f"; then
				sed -i "s|^  $k:.*|  $k: $v|" "$f"
			else
				sed -i "s|^ring:.*|&\n  $k: $v|" "$f"
			fi
		done
	done
	for i in 1 2 3; do $rw lab heal --prefix "$prefix" "n$i" >/dev/null; done
fi
sleep 3

hz=$(getconf CLK_TCK)
pids=()
for i in 1 2 3; do
	p=$(pgrep -f "ringway run -c $state/$prefix/n$i.yaml" | head -1)
	[ -n "$p" ] || { echo "node-cpu: node n$i is not running" >&2; exit 1; }
	pids+=("$p")
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -a t0
for k in 0 1 2; do t0[$k]=$(ticks "${pids[$k]}"); done
sleep "$secs"
total=0
echo "node  cpu (% of a core, ${secs} s, idle cluster${*:+, ring: $*})"
for k in 0 1 2; do
	d=$(($(ticks "${pids[$k]}") - ${t0[$k]}))
	total=$((total + d))
	awk -v d="$d" -v hz="$hz" -v s="$secs" -v n="n$((k + 1))" 'BEGIN { printf "%-5s %.2f\n", n, 100 * d / hz / s }'
done
awk -v d="$total" -v hz="$hz" -v s="$secs" 'BEGIN { printf "mean  %.2f\n", 100 * d / hz / s / 3 }'
$rw lab status --prefix "$prefix" | grep '^ring:' || true
