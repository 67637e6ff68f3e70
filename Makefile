# The two commands of the Quick start: `make demo` and `make test`. Each installs what it needs.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup peers demo test lint typecheck unit bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup peers lint typecheck unit

# The peers the differential tests compare with (Docker's legacy builder, Podman, a registry),
# from ../shared/tools/anchors.sh; the tests find them at its fixed socket.
ANCHORS := ../shared/tools/anchors.sh
peers:
	@if [ -f $(ANCHORS) ]; then bash $(ANCHORS) up >/dev/null; \
	else echo "peers: $(ANCHORS) not found; tests that compare with Docker will skip"; fi

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck:
	$(BIN)/mypy

unit:
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
