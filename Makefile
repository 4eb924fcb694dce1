# make test: everything CI runs. make proto: regenerate gRPC code (see proto/).
GO ?= go
# Tools are installed here, at pinned versions, by the targets that need them.
BIN := $(CURDIR)/.bin
GRPCURL_VERSION := v1.9.3
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: test vet fuzz deps proto tools

# The browser, Node.js and grpcurl tests fail rather than skip under make test.
test: vet deps $(BIN)/grpcurl
	TETHER_REQUIRE_BROWSER=1 TETHER_REQUIRE_NODE=1 TETHER_GRPCURL=$(BIN)/grpcurl TETHER_REQUIRE_GRPCURL=1 $(GO) test -race -count=1 -timeout 12m ./...
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 5m ./...

deps:
	./scripts/test-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeCommand -fuzztime 60s ./protocol
	$(GO) test -run '^$$' -fuzz FuzzAuthenticate -fuzztime 60s ./auth/jwt
	$(GO) test -run '^$$' -fuzz FuzzConnect -fuzztime 60s ./internal/session
	$(GO) test -run '^$$' -fuzz FuzzToken -fuzztime 20s ./backend/nats
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime 60s ./internal/wsconn
	$(GO) test -run '^$$' -fuzz FuzzInflate -fuzztime 60s ./internal/wire
	$(GO) test -run '^$$' -fuzz FuzzPublishDecodeQuick -fuzztime 60s ./internal/serverapi
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime 60s ./internal/rawhttp
	$(GO) test -run '^$$' -fuzz FuzzString -fuzztime 20s ./internal/jsontext
	$(GO) test -run '^$$' -fuzz FuzzAppendString -fuzztime 20s ./internal/jsontext
	$(GO) test -run '^$$' -fuzz FuzzDecodeFlat -fuzztime 30s ./protocol
	$(GO) test -run '^$$' -fuzz FuzzAppendPublication -fuzztime 60s ./protocol
	$(GO) test -run '^$$' -fuzz FuzzAppendPublishReply -fuzztime 20s ./protocol

# grpcurl, for TestGrpcurl (which runs it against the server's reflection).
$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# proto regenerates proto/tether/v1's Go code. It needs protoc on PATH
# (Debian: apt-get install -y protobuf-compiler); the plugins are installed
# here at pinned versions. The generated code is committed: building and
# testing need no protoc.
proto:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH="$(BIN):$$PATH" protoc -I proto \
		--go_out=. --go_opt=module=github.com/tetherhq/tether \
		--go-grpc_out=. --go-grpc_opt=module=github.com/tetherhq/tether \
		proto/tether/v1/tether.proto
