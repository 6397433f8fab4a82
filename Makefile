# viocli: developer and operator entry points. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install lab-deps test test-fast lint demo bench clean

help:
	@echo "make install    create $(VENV) and install viocli with its test tools"
	@echo "make test       lint, then every test (unit, slow, simulator, lab)"
	@echo "make test-fast  unit tests only (no real Ansible runs)"
	@echo "make demo       bring the lab up (simulated vCenter, VM nodes, NFS) and show the HA plan"
	@echo "make bench      start-up benchmark against kolla-ansible"

$(BIN)/viocli: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/viocli

# Debian packages of the lab (simulator build, NFS server and client, template build).
lab-deps:
	@missing=$$(grep -v '^#' lab-packages.txt | while read -r p; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint --nocolor playbooks tests/fixtures

test: lint lab-deps
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

demo: install lab-deps
	$(BIN)/viocli lab up
	@for f in inventory/tiny.yml inventory/compact.yml inventory/ha.yml; do $(BIN)/viocli inventory validate -i $$f || exit 1; done
	$(BIN)/viocli show -i inventory/lab-ha.yml
	$(BIN)/viocli lab status
	@echo
	@echo "The lab is up. 'deployment create' has not landed yet; once it has, this target deploys"
	@echo "inventory/lab-ha.yml on it. Remove the lab with: sudo $(BIN)/viocli lab down"

bench: install
	$(BIN)/python bench/startup

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
