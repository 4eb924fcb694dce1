# make test: everything CI runs. make proto: regenerate gRPC code (see proto/).
GO ?= go

.PHONY: test vet fuzz deps

# The browser tests fail rather than skip under make test: TETHER_REQUIRE_BROWSER.
test: vet deps
	TETHER_REQUIRE_BROWSER=1 $(GO) test -race -count=1 -timeout 12m ./...
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 5m ./...

deps:
	./scripts/test-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeCommand -fuzztime 60s ./protocol
