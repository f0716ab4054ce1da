# ringway — the commands a developer and CI use. Every target works on a fresh
# clone with Go installed; targets that need extra tools install them.

GO        ?= go
BIN       := bin/ringway
FUZZTIME  ?= 10s
SEEDS     ?= 2000
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test unit lint demo fuzz clean install

all: build

# build: without cgo, so that `ringway run` can drop its capabilities on every
# thread (internal/caps; Go's AllThreadsSyscall refuses in cgo binaries).
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/ringway

# test: unit tests with the race detector (and the allocation tests that
# sync.Pool's behaviour under it defeats, without), the ring simulator's random seeds, then
# the end-to-end tests of ./integration on their own, so that real clusters with
# millisecond timers do not share the two cores with the race-detector runs.
# The integration run includes a short chaos suite (TestChaos, 60 s of faults;
# `make soak` runs it for 10 minutes).
# Tests that need root (network namespaces, raw sockets) skip with a message when
# not root; CI runs as root.
test: build
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /integration)
	$(GO) test -count=1 -run DoesNotAllocate ./forward/tunnelnet
	$(MAKE) sim
	$(GO) test -count=1 -timeout 10m ./integration

# unit: the quick loop while editing (no race detector, no root tests forced).
unit:
	$(GO) test -count=1 ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# demo: build, validate the shipped example config, then bring up the reference
# lab (3 nodes in network namespaces), show a live cluster and a fail-over, and
# clean up. Needs root.
demo: build
	./$(BIN) config check examples/lab/ringway.yaml
	./$(BIN) lab demo

# fuzz: every Fuzz target in the module for FUZZTIME each.
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

clean:
	rm -rf bin bench/out

# install: the binary, the systemd unit, the sysusers and tmpfiles snippets
# (docs/install.md); creates the ringway user and /etc/ringway. Needs root.
PREFIX ?= /usr/local
install:
	@test -x $(BIN) || { echo "$(BIN) is missing: run make build first (as yourself: root may have no go)"; exit 1; }
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/ringway
	install -D -m 0644 packaging/ringway.service $(DESTDIR)/etc/systemd/system/ringway.service
	install -D -m 0644 packaging/ringway.sysusers $(DESTDIR)/etc/sysusers.d/ringway.conf
	install -D -m 0644 packaging/ringway.tmpfiles $(DESTDIR)/etc/tmpfiles.d/ringway.conf
	install -D -m 0644 docs/install.md $(DESTDIR)$(PREFIX)/share/doc/ringway/install.md
	if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null; then \
	  systemd-sysusers ringway.conf && systemd-tmpfiles --create ringway.conf && systemctl daemon-reload; fi

# bench-failover-keepalived: the keepalived (VRRP) comparison for bench-failover:
# longest outage of the 1 kHz stream when the VIP owner is cut off, TRIALS times,
# with keepalived's defaults and with VRRPv3 100 ms adverts (installs keepalived
# with apt-get if missing). Needs root. Rows merge into bench/out/failover.json.
TRIALS ?= 20
.PHONY: bench-failover-keepalived
bench-failover-keepalived:
	$(GO) run ./lab/cmd/failover-bench -systems keepalived-default,keepalived-v3 -trials $(TRIALS) -out bench/out/failover.json

# bench-failover: issue 5's fail-over measurement in one run on one lab
# design: TRIALS cut-offs of the VIP owner each for ringway (default config,
# nodes at info log level), keepalived with its defaults and keepalived
# VRRPv3 100 ms adverts (installed with apt-get if missing). Needs root.
# Prints p50/p99/max per system and the ratio to ringway; rows merge into
# bench/out/failover.json, the ringway nodes' logs land in
# bench/out/failover-logs/.
.PHONY: bench-failover
bench-failover:
	$(GO) run ./lab/cmd/failover-bench -systems ringway,keepalived-default,keepalived-v3 -trials $(TRIALS) -out bench/out/failover.json -logs bench/out/failover-logs

# bench-failover-scale: issue 13's fail-over rows at scale: TRIALS cut-offs of
# the gateway VIP's owner, ringway default config, on a lab of each size in
# FAILOVER_NODES (every node a full daemon on this host; 64 daemons load two
# cores heavily, see docs/ring.md "Fail-over at 32 and 64 nodes"). Prints
# where each outage went (detection, the membership's pass to the new owner,
# ARP and path) from the node logs. Needs root. Rows, keyed by lab size,
# merge into bench/out/failover.json; logs in bench/out/failover-logs/n<N>/.
FAILOVER_NODES ?= 32,64
.PHONY: bench-failover-scale
bench-failover-scale: build
	$(GO) run ./lab/cmd/failover-bench -systems ringway -ringway $(BIN) -nodes $(FAILOVER_NODES) -trials $(TRIALS) -out bench/out/failover.json -logs bench/out/failover-logs

# sim: SEEDS random seeds of mixed faults (crash, restart, pause, partition,
# one-way cut, loss, duplication, reordering, leave) through the deterministic
# ring simulator, every invariant checked after every event. No race detector:
# the simulator is single-threaded. A failing seed prints its replay command.
.PHONY: sim bench-ring
sim:
	RING_SIM_SEEDS=$(SEEDS) $(GO) test -count=1 -timeout 30m -run 'TestSim$$' ./ring/ringtest

# bench-ring: the ring measurements (docs/ring.md): the real-UDP rows from
# ringnetbench (bench/out/ring-udp.json), then the simulator rows; prints a
# table and writes both into bench/out/ring.json.
bench-ring:
	$(GO) run ./ring/ringnet/cmd/ringnetbench -out bench/out/ring-udp.json
	$(GO) run ./ring/ringtest/cmd/benchring -udp bench/out/ring-udp.json -out bench/out/ring.json

# bench-node-cpu: CPU of idle whole nodes (ring, router, management API) in a
# 3-node lab at the default config (root). RING="hop_interval=4ms ..." sets
# ring: keys for comparison runs.
.PHONY: bench-node-cpu
bench-node-cpu: build
	scripts/node-cpu.sh 20 $(RING)

# bench-router: 64-byte UDP pps and TCP (iperf3) through one node, ringway vs Linux
# kernel forwarding, stateless and stateful (ringway's filter vs an nftables
# conntrack rule set of the same meaning), interleaved in one run on the
# reference lab (root; installs iperf3 if missing). MODES picks some of
# ringway,kernel,ringway-stateful,kernel-nft (default all four); TXRING=0
# sends with sendmmsg only (the router's transmit ring off). Prints a
# table, writes bench/out/router.json.
.PHONY: bench-router
bench-router:
	@command -v iperf3 >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3; }
	$(GO) run ./router/cmd/benchrouter -rounds $(or $(ROUNDS),3) -duration $(or $(DURATION),3s) $(if $(MODES),-modes $(MODES)) $(if $(TXRING),-txring $(TXRING)) -out bench/out/router.json

# bench-flows: the stateful filter's connection table on one core (memory
# per flow at the default cap of 1 M flows, new flows/s, random lookups/s).
# Prints a table; figures go to docs/forward.md.
.PHONY: bench-flows
bench-flows:
	$(GO) run ./forward/cmd/benchflows

# bench-stateful: stateful fail-over (issue 12, docs/forward.md): long-lived
# TCP echo connections through 3 nodes with the filter on; the handler
# killed, cut, stopped, the authoritative node killed, a rolling restart, a
# join; the stateless cluster's stalls on the same faults in the same run;
# replication bytes share, lag, new flows/s with replication on and off.
# Needs root. Prints a table, writes bench/out/stateful.json.
.PHONY: bench-stateful
bench-stateful:
	$(GO) run ./lab/cmd/stateful-bench -conns $(or $(CONNS),1000) -out bench/out/stateful.json

# soak: the chaos suite (docs/chaos.md) for SOAK (default 10m) of faults,
# half with quorum availability, half with majority. Needs root. CHAOS_SEED
# replays a run; node logs are kept in bench/out/chaos-logs/.
SOAK ?= 10m
.PHONY: soak
soak: build
	RINGWAY_CHAOS_DURATION=$(SOAK) $(if $(CHAOS_SEED),RINGWAY_CHAOS_SEED=$(CHAOS_SEED)) RINGWAY_CHAOS_LOGS=$(CURDIR)/bench/out/chaos-logs \
	  $(GO) test -count=1 -timeout 30m -run 'TestChaos$$' -v ./integration

.PHONY: test-balance
# test-balance: integration TestBalancing with 5 minutes of steady traffic
# after balancing (make test watches 10 s). Needs root.
test-balance:
	RINGWAY_BALANCE_STEADY=5m $(GO) test -count=1 -timeout 10m -run TestBalancing -v ./integration

# bench-forward: symmetric routing's tunnel on a 2-node lab (root; installs
# iperf3 if missing): added round-trip latency of the tunnel hop (split
# owners vs same owner, 64-byte UDP request/response), tunnelled TCP
# throughput vs direct (iperf3 -R), modes interleaved over ROUNDS rounds;
# and the directory rows a membership change moves vs the theoretical
# minimum. Prints a table, writes bench/out/forward.json.
.PHONY: bench-forward
bench-forward: build
	@command -v iperf3 >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3; }
	$(GO) run ./forward/cmd/benchforward -bin $(BIN) -rounds $(or $(ROUNDS),3) -out bench/out/forward.json

# bench-ring-lab: full daemons in the reference lab, all started at once
# (docs/ring.md "The ring at scale"): time to one ring, membership changes
# in IDLE of idle, CPU per node. NODES picks the sizes (up to 64). Needs
# root. Rows merge into bench/out/ring-lab.json.
NODES ?= 8,32
IDLE ?= 60s
.PHONY: bench-ring-lab
bench-ring-lab: build
	$(GO) run ./lab/cmd/ringscale -nodes $(NODES) -idle $(IDLE)
