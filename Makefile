export PATH := $(PATH):/usr/local/go/bin

.PHONY: build test unit lint bench fuzz demo deps

build:
	./scripts/build.sh

deps:
	./scripts/install-deps.sh

# The whole suite, as CI runs it.
test:
	./scripts/test.sh

# Unit tests only: no root, no packages to install.
unit:
	go test ./...

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	go vet ./...

bench: build
	go test -run '^$$' -bench . -benchmem ./...
	@for s in bench/*.sh; do [ -x "$$s" ] && "$$s" || true; done

fuzz:
	./scripts/fuzz.sh 60s

demo:
	./scripts/demo.sh
