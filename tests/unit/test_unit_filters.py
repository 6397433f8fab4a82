"""The filters that turn service descriptors into what a node runs and what HAProxy names."""

from __future__ import annotations

from pathlib import Path

from tests.playbook_code import load

PLUGINS = Path(__file__).resolve().parents[2] / "playbooks" / "filter_plugins"


def _load(name: str):
    return load(PLUGINS / f"{name}.py")


def test_an_active_passive_unit_is_kept_stopped_on_the_other_nodes() -> None:
    units = _load("viocli_units")
    descriptor = [
        {"name": "cinder-scheduler", "files": ["/etc/cinder/cinder.conf"]},
        {"name": "cinder-volume", "files": ["/etc/cinder/cinder.conf"], "node": "controller01", "enabled": False},
    ]
    on_active = units.viocli_units_on(descriptor, "controller01")
    on_standby = units.viocli_units_on(descriptor, "controller02")
    assert [u.get("active", True) for u in on_active] == [True, True]
    assert [u.get("active", True) for u in on_standby] == [True, False]
    assert descriptor[1].get("active") is None  # the descriptor itself is left as it was


def test_a_per_item_unit_fills_its_name_into_its_files() -> None:
    units = _load("viocli_units")
    template = {"files": ["/etc/nova/nova.conf", "/etc/nova/NAME.conf"], "packages": ["nova-compute"]}
    unit = units.viocli_unit("nova-compute-vio-compute-a", template)
    assert unit == {
        "name": "nova-compute-vio-compute-a",
        "files": ["/etc/nova/nova.conf", "/etc/nova/nova-compute-vio-compute-a.conf"],
        "packages": ["nova-compute"],
    }


def test_haproxy_backends_are_named_as_haproxy_cfg_renders_them() -> None:
    haproxy = _load("viocli_haproxy")
    frontends = [{"name": "keystone", "port": 5000}, {"name": "internal_only", "port": 1, "external": False}]
    assert haproxy.haproxy_backends(frontends) == ["keystone_internal", "keystone_external", "internal_only_internal"]
