# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go

.PHONY: run test build generate fmt vet

# The server on the embedded default: SQLite and generated secrets under ./data.
run:
	$(GO) run ./cmd/idp serve

# The whole suite. Storage tests also run on MySQL when IDP_TEST_MYSQL_DSN
# is set (mysql://root@127.0.0.1:3306/idp_test) and on PostgreSQL when
# IDP_TEST_POSTGRES_DSN is (postgres://postgres@127.0.0.1:5432/idp_test);
# .ci/run sets both.
test: vet
	$(GO) test -count=1 -timeout 25m ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^ent/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^ent/'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

# A static binary, built as the container image builds it, with the VCS
# revision for `idp version`: the toolchain's stamp where it can
# (-buildvcs=auto; some machines turn it off in GOFLAGS), and the revision
# from git in any case.
REVISION ?= $(shell git describe --always --dirty --abbrev=40 --match=NONE 2>/dev/null)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags='-s -w -X main.vcsRevision=$(REVISION)' -o bin/idp ./cmd/idp

# Regenerate the ent code after editing ent/schema.
generate:
	$(GO) generate ./...

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '^ent/')

# Load figures and this machine's limits (RS256, argon2id) from one run,
# with the performance targets of docs/performance.md as ratios: every
# scenario of idp-load (the browser sign-in's authorize and loginpage among
# them) and both login floods (flood, loginflood), on the embedded default,
# then on a fresh MySQL database when IDP_TEST_MYSQL_DSN is set. Takes a few
# minutes; see docs/performance.md. BENCH_DURATION is each scenario's time,
# BENCH_FLAGS more idp-load bench flags, BENCH_STATS_1M=1 adds the
# million-user stats benchmark, BENCH_SCALE=1 scale mode (idp-load bench
# -scale: the scenarios again after loading 1M users and 5M token rows).
BENCH_DURATION ?= 6s
BENCH_FLAGS ?=
BENCH_SCALE ?=
.PHONY: bench
bench:
	$(GO) build -o bin/bench/idp ./cmd/idp
	$(GO) build -o bin/bench/idp-load ./cmd/idp-load
	bin/bench/idp-load bench -idp bin/bench/idp -duration $(BENCH_DURATION) -json bin/bench/bench.json $(if $(filter 1,$(BENCH_SCALE)),-scale) $(BENCH_FLAGS)
	@if [ "$(BENCH_STATS_1M)" = 1 ]; then echo '$(GO) test -run xxx -bench Stats1M -benchtime 1x ./profile/'; $(GO) test -run xxx -bench Stats1M -benchtime 1x ./profile/; fi

# Every Go fuzz target for FUZZTIME each, one after another (go test -fuzz
# takes one target at a time). Not part of `make test`, which runs the seed
# corpora (f.Add and testdata/fuzz) as ordinary tests. A failing input is
# written to the package's testdata/fuzz/<Target>/: commit it with the fix.
# FUZZMINIMIZETIME bounds the minimization of each new input, which
# otherwise eats most of a short run on the targets that answer over HTTP.
FUZZTIME ?= 30s
FUZZMINIMIZETIME ?= 5s
FUZZ_TARGETS = \
	./oauth/token/:FuzzBearerToken \
	./cmd/idp/:FuzzTokenEndpoint \
	./cmd/idp/:FuzzRevokeEndpoint \
	./cmd/idp/:FuzzIntrospectEndpoint \
	./profile/:FuzzSignupJSON \
	./profile/:FuzzSignupMultipart \
	./picture/:FuzzProcess \
	./password/:FuzzVerify
.PHONY: fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg; \
	done
