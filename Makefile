# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go

.PHONY: run test build generate fmt vet

# The server on the embedded default: SQLite and generated secrets under ./data.
run:
	$(GO) run ./cmd/idp serve

# The whole suite. Storage tests also run on MySQL when IDP_TEST_MYSQL_DSN
# is set (mysql://root@127.0.0.1:3306/idp_test); .ci/run sets it.
test: vet
	$(GO) test -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^ent/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^ent/'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

# A static binary, built as the container image builds it.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/idp ./cmd/idp

# Regenerate the ent code after editing ent/schema.
generate:
	$(GO) generate ./...

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '^ent/')
