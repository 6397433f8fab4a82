"""One service descriptor: a port moved in custom.yml moves the service, HAProxy and the catalog together.

The files are rendered by real ansible-playbook runs through viocli's run engine (custom.yml goes in as
extra vars, as in a real configure) from the shipped group_vars, roles and templates; viocli's own
health checks read the same descriptor.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from viocli.errors import BadInput
from viocli.runner.engine import run_playbook
from viocli.runner.plan import PlaybookRun
from viocli.runner.progress import RunProgress
from viocli.services import external_apis, load_services, port_variable
from viocli.settings import share_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "descriptor"


def _render(local_tiny, tmp_path: Path, custom: str) -> dict[str, str]:
    _, make = local_tiny(FIXTURES, custom)
    out = tmp_path / "rendered"
    out.mkdir(parents=True)
    run = PlaybookRun("render_ports.yml", extravars={"viocli_probe_dir": str(out)})
    progress = RunProgress("test", stream=io.StringIO(), live=False)
    assert run_playbook(make(), run, progress=progress).status == "successful"
    return {path.name: path.read_text() for path in out.iterdir()}


def _keystone_binds(haproxy_cfg: str) -> list[str]:
    """The bind and server lines of the keystone frontends."""
    sections = re.split(r"\n(?=listen )", haproxy_cfg)
    keystone = [s for s in sections if s.startswith(("listen keystone_internal", "listen keystone_external"))]
    return [line.strip() for s in keystone for line in s.splitlines() if line.strip().startswith(("bind", "server"))]


@pytest.mark.slow
def test_a_port_moved_in_custom_yml_moves_service_haproxy_and_catalog(local_tiny, tmp_path: Path) -> None:
    default = _render(local_tiny, tmp_path / "default", "")
    moved = _render(local_tiny, tmp_path / "moved", "keystone_port: 5001\n")

    assert all(":5000" in line for line in _keystone_binds(default["haproxy.cfg"]))
    binds = _keystone_binds(moved["haproxy.cfg"])
    assert len(binds) == 4  # internal and external frontend, one server each (tiny)
    assert all(line.endswith((":5001", ":5001 check")) or ":5001 ssl" in line for line in binds), binds
    assert re.search(r"^http-socket = \S+:5001$", moved["keystone-uwsgi.ini"], re.M)
    catalog = {entry["name"]: entry for entry in json.loads(moved["catalog.json"])}
    assert int(catalog["keystone"]["port"]) == 5001
    assert int(catalog["nova"]["port"]) == 8774  # the others stay
    # Nothing else moved: the two renderings differ only in Keystone's port.
    assert default["haproxy.cfg"].replace(":5000", ":5001") == moved["haproxy.cfg"]
    # viocli's health checks read the same descriptor with the same custom.yml.
    assert dict(external_apis({"keystone_port": 5001}))["keystone"] == 5001


def test_the_descriptor_defines_each_port_once() -> None:
    services = {service.name: service for service in load_services()}
    assert [f.port for f in services["keystone"].frontends] == [5000]
    assert services["keystone"].catalog[0]["port"] == 5000
    assert dict(external_apis())["horizon"] == 443
    assert port_variable("memcached_port") == 11211
    assert port_variable("memcached_port", {"memcached_port": 11311}) == 11311
    for path in (share_dir("playbooks") / "roles").glob("*/defaults/main.yml"):
        assert not re.search(r"^\w+_port: \d+$", path.read_text(), re.M) or path.parent.parent.name == "haproxy", path


def test_a_port_that_is_not_a_port_is_refused() -> None:
    with pytest.raises(BadInput, match=r"keystone_port \(for keystone frontend keystone\): 'x' is not a port"):
        load_services({"keystone_port": "x"})
    with pytest.raises(BadInput, match="is not a port"):
        load_services({"keystone_port": 70000})
