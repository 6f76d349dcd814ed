# Fresh machine: `make dev` runs a local chain, `make test` runs the tests. Both bootstrap .venv.
VENV := .venv
PY := $(VENV)/bin/python
MAXWELL := $(VENV)/bin/maxwell
STAMP := $(VENV)/.installed
NODE_STAMP := tests/cosmjs/node_modules/.installed
# the dashboard test: Playwright (npm) drives Debian's Chromium
DASHBOARD_STAMP := tests/dashboard/node_modules/.installed
CHROMIUM := /usr/bin/chromium
APT_GET := $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get
DEV_HOME ?= .dev-home
DEV_CHAIN_ID ?= maxwell-dev-1
# Real peers, built from their Go modules and cached per version (a new pin builds anew)
TOOLS := .tools
COMETBFT_VERSION := v0.38.26
COMETBFT := $(TOOLS)/cometbft-$(COMETBFT_VERSION)/cometbft
# The Cosmos SDK's own .proto files and their imports, for the gRPC test's client (never committed)
COSMOS_SDK_VERSION := v0.50.15
GOGOPROTO_VERSION := v1.7.0
COSMOS_PROTO_VERSION := v1.0.0-beta.5
GRPC_GATEWAY_VERSION := v1.16.0
UPSTREAM_PROTOS := $(TOOLS)/cosmos-sdk-protos-$(COSMOS_SDK_VERSION)
# IBC peers: Hermes 1.11.0 is the newest release whose dependencies all build from crates.io (from 1.12
# its ibc-relayer pulls Penumbra crates whose build script downloads proving keys from GitHub); ibc-go's
# simd, built from its module source (its go.mod's replace directive keeps `go install` from building it)
HERMES_VERSION := 1.11.0
HERMES := $(TOOLS)/hermes-$(HERMES_VERSION)/bin/hermes
IBC_GO_VERSION := v8.8.0
SIMD := $(TOOLS)/simd-$(IBC_GO_VERSION)/simd
# Osmosis: v26.0.2 is the newest osmosisd the Go module proxy serves here (v27 and later, v31 included, are
# refused with 403); built from its module source like simd (its go.work names modules the archive lacks)
OSMOSIS_VERSION := v26.0.2
OSMOSISD := $(TOOLS)/osmosisd-$(OSMOSIS_VERSION)/osmosisd
# grpcurl, the gRPC command line that explorers' and relayers' operators use (the gRPC test lists our services)
GRPCURL_VERSION := v1.9.3
GRPCURL := $(TOOLS)/grpcurl-$(GRPCURL_VERSION)/grpcurl
# the source directory of a Go module version, through the Go module proxy
go_module_dir = $$(go mod download -json $(1) | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')

.PHONY: dev dev-init test test-network test-ibc bench proto tools tools-ibc localnet upstream-protos

$(STAMP): pyproject.toml setup.py chain/_smt.c chain/_events.c
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]' --config-settings editable_mode=compat  # a path in a .pth: no import hook to pay for at every CLI start
	touch $(STAMP)

$(NODE_STAMP): tests/cosmjs/package.json tests/cosmjs/package-lock.json
	cd tests/cosmjs && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

$(DASHBOARD_STAMP): tests/dashboard/package.json tests/dashboard/package-lock.json
	cd tests/dashboard && npm ci --no-audit --no-fund --loglevel=error
	touch $(DASHBOARD_STAMP)

$(CHROMIUM):
	$(APT_GET) install -y --no-install-recommends chromium || \
		($(APT_GET) update && $(APT_GET) install -y --no-install-recommends chromium)

# the dev chain and one local worker (its own key, so its txs never race alice's sequence)
dev: $(STAMP)
	@test -f $(DEV_HOME)/config/genesis.json || $(MAKE) --no-print-directory dev-init
	$(MAXWELL) worker dev --key worker --home $(DEV_HOME) --faucet alice

dev-init: $(STAMP)
	$(MAXWELL) init --chain-id $(DEV_CHAIN_ID) --home $(DEV_HOME)
	$(MAXWELL) config set keyring-backend test --home $(DEV_HOME)
	$(MAXWELL) keys add alice --keyring-backend test --home $(DEV_HOME)
	$(MAXWELL) genesis add-account alice 1000000000000ujoule --keyring-backend test --home $(DEV_HOME)
	$(MAXWELL) keys add worker --keyring-backend test --home $(DEV_HOME) > /dev/null
	$(MAXWELL) genesis add-account worker 1000000000000ujoule --keyring-backend test --home $(DEV_HOME)

# test_worker runs its in-process worker threads in a process of its own: after the rest of the suite in
# the same process they have timed out (see the session notes)
test: $(STAMP) $(NODE_STAMP) $(DASHBOARD_STAMP) $(CHROMIUM) upstream-protos $(GRPCURL)
	$(PY) -m pytest -q --ignore=tests/network --ignore=tests/ibc --ignore=tests/test_worker.py
	$(PY) -m pytest -q tests/test_worker.py

# the CometBFT localnet: crashes, halts, state sync (a few minutes)
test-network: $(STAMP) $(NODE_STAMP) tools
	$(PY) -m pytest -q tests/network

# IBC through Hermes: two maxwell chains, and maxwell with ibc-go's simd (a few minutes; the first build of
# Hermes and simd takes half an hour on two cores)
test-ibc: $(STAMP) tools-ibc
	$(PY) -m pytest -q tests/ibc

bench: $(STAMP) $(NODE_STAMP) tools tools-ibc
	$(PY) -m tests.bench

$(COMETBFT):
	GOBIN=$(abspath $(dir $@)) go install github.com/cometbft/cometbft/cmd/cometbft@$(COMETBFT_VERSION)

tools: $(COMETBFT) $(GRPCURL)

$(GRPCURL):
	GOBIN=$(abspath $(dir $@)) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# the builds run at the lowest priority: on a small machine they would otherwise starve running tests
tools-ibc: tools $(HERMES) $(SIMD) $(OSMOSISD)

# Hermes's build compiles .proto files with protoc: grpcio-tools' own protoc (a PyPI wheel) stands in
PROTOC := $(TOOLS)/protoc/protoc
$(PROTOC): $(STAMP)
	mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec %s -m grpc_tools.protoc -I%s "$$@"\n' $(abspath $(PY)) \
		"$$($(PY) -c 'import grpc_tools, os; print(os.path.dirname(grpc_tools.__file__))')/_proto" > $@
	chmod +x $@

$(HERMES): $(PROTOC)
	PROTOC=$(abspath $(PROTOC)) nice -n 19 cargo install ibc-relayer-cli --version $(HERMES_VERSION) --bin hermes \
		--locked --root $(abspath $(TOOLS)/hermes-$(HERMES_VERSION)) --target-dir $(abspath $(TOOLS)/hermes-build)

$(SIMD):
	rm -rf $(dir $@).partial && mkdir -p $(dir $@).partial
	cp -R $(call go_module_dir,github.com/cosmos/ibc-go/v8@$(IBC_GO_VERSION))/. $(dir $@).partial/src
	chmod -R u+w $(dir $@).partial
	cd $(dir $@).partial/src && nice -n 19 go build -o ../simd ./testing/simapp/simd
	mv $(dir $@).partial/simd $@.built && rm -rf $(dir $@).partial && mv $@.built $@

$(OSMOSISD):
	rm -rf $(dir $@).partial && mkdir -p $(dir $@).partial
	cp -R $(call go_module_dir,github.com/osmosis-labs/osmosis/v26@$(OSMOSIS_VERSION))/. $(dir $@).partial/src
	chmod -R u+w $(dir $@).partial
	cd $(dir $@).partial/src && GOWORK=off nice -n 19 go build -o ../osmosisd ./cmd/osmosisd
	mv $(dir $@).partial/osmosisd $@.built && rm -rf $(dir $@).partial && mv $@.built $@

# 4 validators under CometBFT on loopback until Ctrl-C (localnet/README.md)
localnet: $(STAMP) tools
	localnet/run

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. $$(find chain/proto -name '*.proto' | sort)
	find chain/proto -type d -exec touch {}/__init__.py \;

# prints the include directory: the SDK's proto/ with gogoproto, cosmos_proto and google/api beside it
upstream-protos: $(UPSTREAM_PROTOS)
	@echo $(abspath $(UPSTREAM_PROTOS))

$(UPSTREAM_PROTOS):
	rm -rf $@.partial && mkdir -p $@.partial/gogoproto $@.partial/google/api
	cp -R $(call go_module_dir,github.com/cosmos/cosmos-sdk@$(COSMOS_SDK_VERSION))/proto/. $@.partial/
	cp $(call go_module_dir,github.com/cosmos/gogoproto@$(GOGOPROTO_VERSION))/gogoproto/gogo.proto $@.partial/gogoproto/
	cp -R $(call go_module_dir,github.com/cosmos/cosmos-proto@$(COSMOS_PROTO_VERSION))/proto/cosmos_proto $@.partial/
	cp $(call go_module_dir,github.com/grpc-ecosystem/grpc-gateway@$(GRPC_GATEWAY_VERSION))/third_party/googleapis/google/api/*.proto $@.partial/google/api/
	chmod -R u+w $@.partial
	mv $@.partial $@
