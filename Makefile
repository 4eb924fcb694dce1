# make test: everything CI runs. make proto: regenerate gRPC code (see proto/).
GO ?= go

.PHONY: test vet fuzz

test: vet
	$(GO) test -race -count=1 -timeout 12m ./...
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 5m ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeCommand -fuzztime 60s ./protocol
