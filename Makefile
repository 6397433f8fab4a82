# viocli: developer and operator entry points. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install lab-deps test test-fast lint demo bench bench-deploy bench-operate bench-recover bench-backup bench-getlogs bench-patch clean

help:
	@echo "make install    create $(VENV) and install viocli with its test tools"
	@echo "make test       lint, then every test (unit, slow, simulator, lab)"
	@echo "make test-fast  unit tests only (no real Ansible runs)"
	@echo "make demo       bring the lab up (simulated vCenter, VM nodes, NFS) and deploy inventory/lab-ha.yml"
	@echo "make bench      start-up benchmark against kolla-ansible"
	@echo "make bench-deploy  HA lab deployment and no-op configure (tuned vs stock Ansible settings)"
	@echo "make bench-operate OMS=DIR  status time, LB failover, crash and clean restarts of an existing vio-lab-ha"
	@echo "make bench-recover OMS=DIR  recover of a destroyed DB node, controller and active LB under clients vs power-off + start"
	@echo "make bench-backup OMS=DIR   backup openstack_db vs mariadb-dump | gzip to the same export, and the restore"
	@echo "make bench-getlogs OMS=DIR  getlogs from all nodes at once vs node by node vs each node alone"
	@echo "make bench-patch OMS=DIR    patch install/uninstall (rolling) and an automatic rollback vs all controllers at once"

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
	$(BIN)/pytest -q --durations=30

test-fast: install
	$(BIN)/pytest -q -m "not slow"

demo: install lab-deps
	$(BIN)/viocli lab up
	@for f in inventory/tiny.yml inventory/compact.yml inventory/ha.yml; do $(BIN)/viocli inventory validate -i $$f || exit 1; done
	$(BIN)/viocli deployment create -i inventory/lab-ha.yml --yes
	$(BIN)/viocli show -d vio-lab-ha
	@echo
	@echo "The HA control plane runs on the lab. Use it with any OpenStack client:"
	@echo "  export OS_AUTH_URL=https://10.203.1.90:5000/v3 OS_USERNAME=admin OS_PROJECT_NAME=admin"
	@echo "  export OS_USER_DOMAIN_ID=default OS_PROJECT_DOMAIN_ID=default OS_REGION_NAME=RegionOne"
	@echo "  export OS_CACERT=/var/lib/viocli/deployments/vio-lab-ha/tls/external-ca.pem"
	@echo "  export OS_PASSWORD=\$$(sudo $(BIN)/viocli secrets show keystone_admin_password -d vio-lab-ha)"
	@echo "Remove the lab with: sudo $(BIN)/viocli lab down"

bench: install
	$(BIN)/python bench/startup

# HA lab deployment from nothing, no-op configure tuned vs stock (needs root; uses the lab's bridges).
bench-deploy: install lab-deps
	$(BIN)/python bench/deploy

# Day-2 operations on the existing vio-lab-ha of the OMS in OMS=DIR (default $VIOCLI_TEST_OMS; needs root).
bench-operate: install
	$(BIN)/python bench/operate $(if $(OMS),--oms $(OMS))

# viocli recover of a destroyed node vs the same node powered off and started, on the existing vio-lab-ha (needs root).
bench-recover: install
	$(BIN)/python bench/recover $(if $(OMS),--oms $(OMS))

bench-backup: install
	$(BIN)/python bench/backup $(if $(OMS),--oms $(OMS))

# getlogs from every node at once vs node by node vs each node alone, on the existing vio-lab-ha (needs root).
bench-getlogs: install
	$(BIN)/python bench/getlogs $(if $(OMS),--oms $(OMS))

# viocli patch install/uninstall and a bad patch's automatic rollback vs both controllers patched at once (needs root).
bench-patch: install
	$(BIN)/python bench/patch $(if $(OMS),--oms $(OMS))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
