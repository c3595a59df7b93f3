# `make build` compiles the TypeScript into dist/; ./bin/hypercore and ./bin/hypercored run it.
.PHONY: build test setup clean
build: node_modules
	npm run --silent build
node_modules: package-lock.json
	npm ci --no-audit --no-fund
	touch node_modules
setup:
	scripts/setup.sh
test:
	scripts/test.sh
clean:
	rm -rf dist
