"""Internal TLS (the inventory's ``internal_tls``): the certificates viocli signs and the files the roles render.

The templates are rendered here as the template action renders them (Jinja2 with trim_blocks, a
template's trailing newlines kept), from the shipped role defaults, group_vars and the generated inventory's
variables, in-process: no ansible-playbook run. Variables are templated when used, as Ansible does, and
the inventory's values and the secrets are data, never templated.

With ``internal_tls`` false every touched template, variable and file list renders byte for byte what
the playbooks rendered just before this feature (the parent of its first ``internal_tls:`` commit).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from cryptography import x509
from jinja2.nativetypes import NativeEnvironment, native_concat

from tests.playbook_code import load
from viocli.inventory.load import load_inventory
from viocli.inventory.model import Inventory
from viocli.inventory.render import ansible_inventory, inventory_vars, locked_variables
from viocli.inventory.topology import Node, allocate, resolve_nodes
from viocli.ops.internal_tls import internal_directory, internal_tls_vars
from viocli.secrets.store import SecretStore

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
FEATURE_PREFIX = "internal_tls:"  # the subject of every commit of this feature
CA_FILE = "/etc/viocli/tls/ca.pem"

# (label, role, template, host in ha, host in tiny): every template the feature touches.
TEMPLATES = [
    ("haproxy.cfg", "haproxy", "haproxy.cfg.j2", "loadbalancer01"),
    ("my.cnf", "mariadb_galera", "my.cnf.j2", "database01"),
    ("databases.sql", "mariadb_galera", "databases.sql.j2", "database01"),
    ("rabbitmq.conf", "rabbitmq", "rabbitmq.conf.j2", "database01"),
    ("keystone.conf", "keystone", "keystone.conf.j2", "controller01"),
    ("glance-api.conf", "glance", "glance-api.conf.j2", "controller01"),
    ("placement.conf", "placement", "placement.conf.j2", "controller01"),
    ("nova.conf", "nova", "nova.conf.j2", "controller01"),
    ("nova.conf (compute)", "nova", "nova.conf.j2", "compute01"),
    ("neutron.conf", "neutron", "neutron.conf.j2", "controller01"),
    ("cinder.conf", "cinder", "cinder.conf.j2", "controller01"),
    ("heat.conf", "heat", "heat.conf.j2", "controller01"),
    ("local_settings.py", "horizon", "local_settings.py.j2", "controller01"),
]
# Templates the feature adds (nothing to compare them with before it).
NEW_TEMPLATES = [("require_ssl.sql", "mariadb_galera", "require_ssl.sql.j2", "database01")]
# Variables the feature touches that reach a node or a command.
VARIABLES = [
    "nova_cell0_database_template",
    "nova_cell1_database_template",
    "nova_cell1_transport_template",
    "heat_cfn_url",
]
# (label, role, task file, task name, argument, host): task arguments the feature touches.
TASK_ARGS = [
    ("common files", "common", "config.yml", "Keep the node's hostname, hosts, kernel, chrony and vCenter CA files",
     "files", "database01"),
    ("haproxy files", "haproxy", "config.yml", "Keep the external VIP's certificate and key, and haproxy.cfg", "files",
     "loadbalancer01"),
    ("mariadb files", "mariadb_galera", "config.yml", "Keep MariaDB's log directory and its Galera configuration",
     "files", "database01"),
    ("rabbitmq files", "rabbitmq", "config.yml", "Keep the Erlang cookie, rabbitmq-env.conf and rabbitmq.conf", "files",
     "database01"),
    ("keystone catalog auth_url", "keystone", "config.yml",
     "Register the service catalog, projects, roles and service users", "auth_url", "controller01"),
    ("keystone bootstrap", "keystone", "config.yml",
     "Create the admin user, project and roles and the identity endpoints, or reset the admin password", "argv",
     "controller01"),
]  # fmt: skip


# --- an in-process renderer with Ansible's semantics, enough for these templates ---------------------------


class Data(str):
    """A value from the inventory or the secrets: Ansible gets it marked unsafe and never templates it."""


def _data(value: Any) -> Any:
    if isinstance(value, str):
        return Data(value)
    if isinstance(value, list):
        return [_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _data(v) for k, v in value.items()}
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return bool(value)


def _comment(text: str) -> str:
    return "#\n" + "\n".join(f"# {line}" if line else "#" for line in str(text).splitlines()) + "\n#"


def _flatten(value: Any) -> list:
    out: list = []
    for item in value:
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return out


def _filters() -> dict[str, Any]:
    secrets = load(PLAYBOOKS / "filter_plugins" / "viocli_secrets.py").FilterModule().filters()
    return {
        **secrets,
        "bool": _bool,
        "comment": _comment,
        "to_json": lambda value: json.dumps(value),
        "quote": lambda value: shlex.quote(str(value)),
        "b64encode": lambda value: base64.b64encode(str(value).encode()).decode(),
        "hash": lambda value, kind="sha1": hashlib.new(kind, str(value).encode()).hexdigest(),
        "regex_replace": lambda value, pattern, replacement="": re.sub(pattern, replacement, str(value)),
        "dirname": os.path.dirname,
        "split": lambda value, separator=None: str(value).split(separator),
        "flatten": _flatten,
        "unique": lambda value: list(dict.fromkeys(value)),
        "difference": lambda value, other: [v for v in value if v not in other],
        "extract": lambda item, container, key=None: container[item] if key is None else container[item][key],
    }


class Renderer:
    """The variables of every host of a deployment, templated when read, and templates rendered with them."""

    def __init__(self, playbooks: Path, model: Inventory, nodes: list[Node], secrets: Mapping[str, Any]):
        self.playbooks = playbooks
        inventory = ansible_inventory(model, nodes, mask_secrets=False)["all"]
        defaults: dict[str, Any] = {}
        for path in sorted(playbooks.glob("roles/*/defaults/main.yml")):
            defaults.update(yaml.safe_load(path.read_text()) or {})
        playbook_group: dict[str, Any] = {}
        for path in sorted(playbooks.glob("group_vars/all/*.yml")):
            playbook_group.update(yaml.safe_load(path.read_text()) or {})
        # lowest first: role defaults < the inventory's group vars and its secrets file < playbook group_vars
        self.layers = [defaults, _data({**inventory["vars"], **secrets}), playbook_group]
        self.hosts = {name: _data(values) for name, values in inventory["hosts"].items()}
        self.groups = {"all": list(inventory["hosts"])}
        self.groups.update({name: list(group["hosts"]) for name, group in inventory["children"].items()})
        self.filters = _filters()
        self.native = NativeEnvironment(undefined=jinja2.StrictUndefined)
        self.native.filters.update(self.filters)
        self.native.tests["match"] = lambda value, pattern: re.match(pattern, str(value)) is not None
        self.native.globals["lookup"] = jinja2.pass_context(lambda ctx, _kind, name: ctx.resolve(name))
        self.hostvars = {name: HostVars(self, name) for name in self.hosts}

    def environment(self, role: str) -> jinja2.Environment:
        """A text environment like the template action's: templates of ``role``, trim_blocks."""
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.playbooks / "roles" / role / "templates")),
            trim_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters.update(self.filters)
        env.tests.update(self.native.tests)
        env.globals.update(self.native.globals)
        return env

    def template(self, role: str, name: str, host: str) -> str:
        """``roles/ROLE/templates/NAME`` rendered for ``host``."""
        env = self.environment(role)
        template = env.get_template(name)
        text = "".join(template.root_render_func(template.new_context(self.hostvars[host], shared=True)))
        return _trailing_newlines(env.loader.get_source(env, name)[0], text)

    def variable(self, name: str, host: str) -> Any:
        return self.hostvars[host][name]

    def task_argument(self, role: str, tasks: str, task_name: str, argument: str, host: str) -> Any:
        """An argument of the task named ``task_name`` in ``roles/ROLE/tasks/TASKS``, templated for ``host``."""
        for task in yaml.safe_load((self.playbooks / "roles" / role / "tasks" / tasks).read_text()):
            if task.get("name") == task_name:
                module = next(v for k, v in task.items() if isinstance(v, dict) and argument in v)
                return self.resolve(module[argument], self.hostvars[host])
        raise AssertionError(f"no task {task_name!r} in roles/{role}/tasks/{tasks}")

    def resolve(self, value: Any, context: HostVars) -> Any:
        """Template ``value`` (nested strings too) as Ansible templates a variable's value; data stays data."""
        if isinstance(value, Data):
            return value
        if isinstance(value, str):
            if "{{" not in value and "{%" not in value:
                return value
            template = self.native.from_string(value)
            result = native_concat(template.root_render_func(template.new_context(context, shared=True)))
            if isinstance(result, str):
                return _trailing_newlines(value, result)
            return self.resolve(result, context) if isinstance(result, (list, dict)) else result
        if isinstance(value, list):
            return [self.resolve(v, context) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v, context) for k, v in value.items()}
        return value


def _trailing_newlines(source: str, rendered: str) -> str:
    """Ansible keeps a template's trailing newlines (Jinja drops one; an included template's stays dropped)."""
    missing = (len(source) - len(source.rstrip("\n"))) - (len(rendered) - len(rendered.rstrip("\n")))
    return rendered + "\n" * max(missing, 0)


class HostVars(Mapping):
    """One host's variables (Ansible's precedence), each templated the first time it is read."""

    def __init__(self, renderer: Renderer, host: str):
        self.renderer = renderer
        self.host = host
        self.cache: dict[str, Any] = {}

    def _magic(self) -> dict[str, Any]:
        r = self.renderer
        return {
            **r.native.globals,  # range, dict, lookup...: a shared context has no globals of its own
            "inventory_hostname": self.host,
            "groups": r.groups,
            "group_names": [g for g, members in r.groups.items() if g != "all" and self.host in members],
            "hostvars": r.hostvars,
        }

    def _raw(self, key: str) -> Any:
        magic = self._magic()
        if key in magic:
            return magic[key]
        if key in self.renderer.hosts[self.host]:
            return self.renderer.hosts[self.host][key]
        for layer in reversed(self.renderer.layers):
            if key in layer:
                return layer[key]
        raise KeyError(key)

    def __getitem__(self, key: str) -> Any:
        if key not in self.cache:
            raw = self._raw(key)
            try:
                self.cache[key] = raw if key in ("groups", "hostvars") else self.renderer.resolve(raw, self)
            except (jinja2.TemplateError, LookupError, TypeError) as error:
                # as Ansible: a variable that cannot be templated fails where it is used, not where it is
                # looked up (Jinja looks up every name a template mentions before it starts, and an
                # include copies them all)
                return jinja2.StrictUndefined(hint=f"{key}: {error}", name=key)
        return self.cache[key]

    def __contains__(self, key: object) -> bool:
        try:
            self._raw(str(key))
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        keys = set(self._magic()) | set(self.renderer.hosts[self.host])
        for layer in self.renderer.layers:
            keys |= set(layer)
        return iter(sorted(keys))

    def __len__(self) -> int:
        return len(list(iter(self)))


# --- fixtures --------------------------------------------------------------------------------------------


def _model(example, mode: str, internal_tls: bool) -> Inventory:
    path = example(mode)
    data = yaml.safe_load(path.read_text())
    data["internal_tls"] = internal_tls
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_inventory(path).model


def _nodes(model: Inventory) -> list[Node]:
    return resolve_nodes(model, allocate(model))


def _host(mode: str, host: str) -> str:
    return host if mode == "ha" else "controller01"  # tiny: one node is everything


def _secrets(directory: Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    values = SecretStore(directory).ensure_generated()
    return {**values, "vcenter_password": "VcPass-Real-0123", "haproxy_external_pem": "EXTERNAL PEM\n", **extra}


def _git(*args: str) -> bytes:
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


@pytest.fixture(scope="module")
def before_feature(tmp_path_factory) -> Path:
    """The playbooks as they were just before this feature: the parent of its first ``internal_tls:`` commit.

    A fixed point: a later change to a template shows up here as a difference to look at, never as a
    test that quietly stops comparing.
    """
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git history of the playbooks")
    root = tmp_path_factory.mktemp("before-internal-tls")
    commits = _git("log", "--reverse", "--format=%H %s", "HEAD", "--", "playbooks").decode().splitlines()
    first = next(line.split(" ", 1)[0] for line in commits if line.partition(" ")[2].startswith(FEATURE_PREFIX))
    try:
        archive = _git("archive", "--format=tar", f"{first}^", "playbooks")
    except RuntimeError as error:  # a shallow clone: the history stops after the feature began
        pytest.skip(f"needs the playbooks from before the feature: {error}")
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root / "playbooks"


def _render_all(renderer: Renderer, mode: str) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    for label, role, name, host in TEMPLATES:
        rendered[label] = renderer.template(role, name, _host(mode, host))
    for name in VARIABLES:
        rendered[name] = renderer.variable(name, _host(mode, "controller01"))
    for label, role, tasks, task, argument, host in TASK_ARGS:
        rendered[label] = renderer.task_argument(role, tasks, task, argument, _host(mode, host))
    return rendered


# --- the inventory key and the certificates -------------------------------------------------------------


def test_the_inventory_key_is_off_unless_set_and_only_the_inventory_sets_it(example) -> None:
    model = load_inventory(example("tiny")).model  # the HA example turns it on; tiny leaves it unset
    assert model.internal_tls is False
    assert inventory_vars(model)["internal_tls"] is False
    assert load_inventory(example("ha")).model.internal_tls is True
    assert "internal_tls" in locked_variables(model)  # not from custom.yml or -e
    assert _model(example, "ha", True).internal_tls is True
    assert inventory_vars(_model(example, "ha", True))["internal_tls"] is True


def test_off_gives_no_certificate(example, tmp_path: Path) -> None:
    model = _model(example, "ha", False)
    assert internal_tls_vars(model, _nodes(model), tmp_path) == {}
    assert not (tmp_path / "tls").exists()


def _san(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} | set(names.get_values_for_type(x509.DNSName))


def test_on_signs_each_database_node_and_the_internal_vip_and_keeps_them(example, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    model = _model(example, "ha", True)
    nodes = _nodes(model)
    values = internal_tls_vars(model, nodes, tmp_path)
    ca = x509.load_pem_x509_certificate(values["viocli_tls_ca_pem"].encode())
    assert values["viocli_tls_ca_pem"] == (tmp_path / "tls" / "ca.pem").read_text()  # the deployment's CA

    database = {n.name: n for n in nodes if "database" in n.groups}
    assert set(values["viocli_tls_node_certs"]) == set(values["viocli_tls_node_keys"]) == set(database) == {
        "database01", "database02", "database03"
    }  # fmt: skip
    internal = {str(model.vips.internal), "vio-prod-internal"}
    for name, node in database.items():
        cert = x509.load_pem_x509_certificate(values["viocli_tls_node_certs"][name].encode())
        cert.verify_directly_issued_by(ca)
        assert _san(cert) == {str(node.mgmt_ip), name} | internal
        key = serialization.load_pem_private_key(values["viocli_tls_node_keys"][name].encode(), password=None)
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()

    bundle = values["haproxy_internal_pem"]
    vip, bundled_ca = x509.load_pem_x509_certificates(bundle.encode())
    assert bundled_ca == ca and "PRIVATE KEY" in bundle
    vip.verify_directly_issued_by(ca)
    assert _san(vip) == internal
    assert all(ipaddress.ip_address(ip) for ip in internal - {"vio-prod-internal"})

    directory = internal_directory(tmp_path)
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    keys = sorted(directory.glob("*.key"))
    assert [p.name for p in keys] == ["database01.key", "database02.key", "database03.key", "vio-prod-internal.key"]
    assert {p.stat().st_mode & 0o777 for p in directory.iterdir()} == {0o600}
    # kept while valid: a second run hands the nodes the same bytes, so nothing is rewritten or restarted
    assert internal_tls_vars(model, nodes, tmp_path) == values


# --- with internal_tls false: byte for byte what the playbooks rendered before ------------------------------


@pytest.mark.parametrize("mode", ["ha", "tiny"])
def test_off_renders_byte_for_byte_what_the_playbooks_rendered_before(
    example, tmp_path: Path, before_feature: Path, mode: str
) -> None:
    model = _model(example, mode, False)
    nodes = _nodes(model)
    secrets = _secrets(tmp_path, internal_tls_vars(model, nodes, tmp_path))
    now = _render_all(Renderer(PLAYBOOKS, model, nodes, secrets), mode)
    before = _render_all(Renderer(before_feature, model, nodes, secrets), mode)
    for label in now:
        if label == "databases.sql":  # SQL sent to MariaDB, not a file: off gives TLS-only accounts back
            assert now[label].count("REQUIRE NONE;") == before[label].count("GRANT ALL PRIVILEGES")
            continue
        assert now[label] == before[label], label


# --- with internal_tls true --------------------------------------------------------------------------------


@pytest.fixture(params=["ha", "tiny"])
def rendered_on(request, example, tmp_path: Path) -> tuple[Inventory, dict[str, Any], Renderer]:
    mode = request.param
    model = _model(example, mode, True)
    nodes = _nodes(model)
    renderer = Renderer(PLAYBOOKS, model, nodes, _secrets(tmp_path, internal_tls_vars(model, nodes, tmp_path)))
    return model, _render_all(renderer, mode), renderer


def _sections(text: str, header: str) -> list[str]:
    return [s for s in re.split(r"\n(?=listen )", text) if s.startswith(header)]


def test_on_haproxy_serves_tls_on_the_internal_vip_and_keeps_the_backends_and_mariadb_plain(rendered_on) -> None:
    model, files, renderer = rendered_on
    vip = str(model.vips.internal)
    internal = _sections(files["haproxy.cfg"], "listen ")
    frontends = [s for s in internal if s.split()[1].endswith("_internal")]
    assert len(frontends) == len(renderer.variable("viocli_frontends", "controller01")) == 10
    for section in frontends:
        bind = next(line.strip() for line in section.splitlines() if line.strip().startswith("bind"))
        assert bind.startswith(f"bind {vip}:") and bind.endswith(" ssl crt /etc/haproxy/internal.pem"), bind
        assert "http-request set-header X-Forwarded-Proto https" in section
        servers = [line.split() for line in section.splitlines() if line.strip().startswith("server ")]
        assert servers and all(s[-1] == "check" and "ssl" not in s for s in servers)  # plain HTTP backends
    mariadb = _sections(files["haproxy.cfg"], "listen mariadb")[0]
    assert f"bind {vip}:3306\n" in mariadb and "mode tcp" in mariadb and "ssl" not in mariadb.split("listen mariadb")[1]
    assert "option mysql-check user haproxy post-41" in mariadb
    entries = files["haproxy files"]
    assert [e["dest"] for e in entries] == [
        "/etc/haproxy/external.pem",
        "/etc/haproxy/internal.pem",
        "/etc/haproxy/haproxy.cfg",
    ]
    assert entries[1]["mode"] == "0640" and entries[1]["diff"] is False and "PRIVATE KEY" in entries[1]["content"]


SERVICE_CONFIGS = ["keystone.conf", "glance-api.conf", "placement.conf", "nova.conf", "nova.conf (compute)",
                   "neutron.conf", "cinder.conf", "heat.conf", "local_settings.py"]  # fmt: skip


def test_on_every_service_reaches_the_internal_vip_over_https_and_verifies_it(rendered_on) -> None:
    model, files, _ = rendered_on
    vip = str(model.vips.internal)
    for label in SERVICE_CONFIGS:
        assert f"http://{vip}" not in files[label], label
        assert "http://%s" not in files[label], label
    keystone = f"https://{vip}:5000"
    for label in ["glance-api.conf", "placement.conf", "neutron.conf", "cinder.conf", "heat.conf", "nova.conf"]:
        text = files[label]
        authtoken = _ini_section(text, "keystone_authtoken")
        assert f"www_authenticate_uri = {keystone}\n" in authtoken and f"cafile = {CA_FILE}\n" in authtoken, label
    nova = files["nova.conf"]
    for section in ["cinder", "glance", "keystone", "neutron", "placement", "service_user"]:
        assert f"cafile = {CA_FILE}\n" in _ini_section(nova, section), section
    for section in ["cinder", "glance", "neutron", "placement", "service_user"]:
        assert f"cafile = {CA_FILE}\n" in _ini_section(files["nova.conf (compute)"], section), section
    assert f"cafile = {CA_FILE}\n" in _ini_section(files["neutron.conf"], "nova")
    assert f"cafile = {CA_FILE}\n" in _ini_section(files["cinder.conf"], "nova")
    assert f"glance_ca_certificates_file = {CA_FILE}\n" in _ini_section(files["cinder.conf"], "DEFAULT")
    heat = files["heat.conf"]
    assert f"ca_file = {CA_FILE}\n" in _ini_section(heat, "clients")
    assert f"ca_file = {CA_FILE}\n" in _ini_section(heat, "ec2authtoken")
    assert f"auth_uri = {keystone}\n" in _ini_section(heat, "clients_keystone")
    assert f"heat_metadata_server_url = https://{vip}:8000\n" in heat
    assert files["heat_cfn_url"] == f"https://{vip}:8000"
    horizon = files["local_settings.py"]
    assert 'OPENSTACK_KEYSTONE_URL = "https://%s:5000/v3" % OPENSTACK_HOST\n' in horizon
    assert f'OPENSTACK_SSL_CACERT = "{CA_FILE}"\n' in horizon
    compile(horizon, "local_settings.py", "exec")
    # the Keystone catalog: internal endpoints in https, and the module's own calls verify against the CA
    assert files["keystone catalog auth_url"] == f"https://{vip}:5000/v3"
    bootstrap = files["keystone bootstrap"]
    for option in ("--bootstrap-admin-url", "--bootstrap-internal-url"):
        assert bootstrap[bootstrap.index(option) + 1] == f"https://{vip}:5000/v3"


def test_on_the_catalog_module_gets_the_scheme_and_the_ca(rendered_on) -> None:
    _, _, renderer = rendered_on
    host = "controller01"
    assert renderer.task_argument("keystone", "config.yml", TASK_ARGS[4][3], "internal_scheme", host) == "https"
    assert renderer.task_argument("keystone", "config.yml", TASK_ARGS[4][3], "ca_file", host) == CA_FILE


def _ini_section(text: str, name: str) -> str:
    match = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert match, f"no [{name}]"
    return match.group(1)


def test_on_amqp_goes_to_the_tls_port_verified(rendered_on) -> None:
    model, files, renderer = rendered_on
    for label in ["nova.conf", "nova.conf (compute)", "neutron.conf", "cinder.conf", "heat.conf"]:
        text = files[label]
        url = re.search(r"^transport_url = (\S+)$", text, re.M).group(1)
        ports = re.findall(r"@[\d.]+:(\d+)", url)
        assert ports and set(ports) == {"5671"}, (label, url)
        rabbit = _ini_section(text, "oslo_messaging_rabbit")
        assert "ssl = true\n" in rabbit and f"ssl_ca_file = {CA_FILE}\n" in rabbit, label
    conf = files["rabbitmq.conf"]
    host = "database01" if model.mode == "ha" else "controller01"
    mgmt = renderer.variable("mgmt_ip", host)
    assert "listeners.tcp = none\n" in conf and f"listeners.ssl.default = {mgmt}:5671\n" in conf
    assert "listeners.tcp.default" not in conf
    for line in [f"ssl_options.cacertfile = {CA_FILE}", "ssl_options.certfile = /etc/rabbitmq/tls/server.crt",
                 "ssl_options.keyfile = /etc/rabbitmq/tls/server.key", "ssl_options.verify = verify_none",
                 "ssl_options.fail_if_no_peer_cert = false"]:  # fmt: skip
        assert line + "\n" in conf
    # nova's cell mapping takes its port from nova.conf's transport_url
    assert "5672" not in files["nova_cell1_transport_template"]
    entries = {e["dest"]: e for e in files["rabbitmq files"]}
    key = entries["/etc/rabbitmq/tls/server.key"]
    assert key["owner"] == "rabbitmq" and key["mode"] == "0600" and key["diff"] is False
    assert key["content"] == renderer.variable("viocli_tls_node_keys", host)[host]
    assert entries["/etc/rabbitmq/tls/server.crt"]["content"].startswith("-----BEGIN CERTIFICATE-----")


def test_on_every_database_url_verifies_the_node_and_the_service_accounts_require_tls(rendered_on) -> None:
    model, files, renderer = rendered_on
    vip = str(model.vips.internal)
    configs = [
        "keystone.conf",
        "glance-api.conf",
        "placement.conf",
        "nova.conf",
        "neutron.conf",
        "cinder.conf",
        "heat.conf",
    ]
    urls = [url for label in configs for url in re.findall(r"^connection = (\S+)$", files[label], re.M)]
    assert len(urls) == 8  # nova: api_database and database
    for url in urls:
        assert url.startswith("mysql+pymysql://") and f"@{vip}/" in url and url.endswith(f"?ssl_ca={CA_FILE}"), url
    assert files["nova_cell0_database_template"] == "{scheme}://{username}:{password}@{hostname}/nova_cell0?{query}"
    assert files["nova_cell1_database_template"] == "{scheme}://{username}:{password}@{hostname}/{path}?{query}"

    # a new account requires TLS from its creation; every existing one at the end of the run (site.yml's
    # last play, after the rolling restart moved the services to TLS): never the load balancers' check user
    sql = files["databases.sql"]
    users = {"keystone", "glance", "placement", "nova", "neutron", "cinder", "heat"}
    for user in users:
        assert f"CREATE USER IF NOT EXISTS '{user}'@'%' REQUIRE SSL;" in sql, user
    assert "haproxy" not in sql and "REQUIRE NONE" not in sql
    host = "database01" if model.mode == "ha" else "controller01"
    require = renderer.template("mariadb_galera", "require_ssl.sql.j2", host)
    assert sorted(re.findall(r"ALTER USER '(\w+)'@'%' REQUIRE SSL;", require)) == sorted(users)
    assert "haproxy" not in require and require.rstrip().endswith("DELIMITER ;")
    health = renderer.template("mariadb_galera", "health_check_user.sql.j2", host)
    assert "CREATE USER 'haproxy'@" in health and "REQUIRE" not in health
    plays = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
    assert plays[-2]["name"] == "Rolling restart of the controllers"
    assert plays[-1]["tasks"][0]["ansible.builtin.include_role"]["tasks_from"] == "require_ssl.yml"

    mycnf = files["my.cnf"]
    server = _ini_section(mycnf, "mysqld")
    for line in ["ssl_cert = /etc/mysql/tls/server.crt", "ssl_key = /etc/mysql/tls/server.key", f"ssl_ca = {CA_FILE}"]:
        assert line + "\n" in server
    assert "ssl" not in _ini_section(mycnf, "client-server")  # local clients: the socket, no TLS
    assert _ini_section(mycnf, "sst").strip().endswith("ssl-mode = DISABLED")  # rsync needs no stunnel
    entries = {e["dest"]: e for e in files["mariadb files"]}
    assert list(entries)[-1] == "/etc/mysql/my.cnf"
    assert (
        entries["/etc/mysql/tls/server.key"]["mode"] == "0600" and entries["/etc/mysql/tls/server.key"]["diff"] is False
    )
    assert entries["/etc/mysql/tls/server.crt"]["owner"] == "mysql"


def test_on_every_node_gets_the_ca(rendered_on) -> None:
    _, files, _ = rendered_on
    entries = {e["dest"]: e for e in files["common files"]}
    ca = entries[CA_FILE]
    assert ca["mode"] == "0644" and ca["content"].startswith("-----BEGIN CERTIFICATE-----")
    assert entries["/etc/viocli/tls"]["state"] == "directory"


def test_the_descriptors_name_the_files_tls_yml_defines(rendered_on) -> None:
    """The restart rule: each unit lists the TLS files it reads (the descriptors spell the paths out)."""
    _, _, renderer = rendered_on
    host = "controller01"
    services = renderer.variable("viocli_services", host)
    units = {unit["name"]: unit for service in services.values() for unit in service["units"]}
    ca = renderer.variable("viocli_ca_file", host)
    assert ca == CA_FILE
    assert {renderer.variable(v, host) for v in ("mariadb_tls_cert", "mariadb_tls_key")} < set(
        units["mariadb"]["files"]
    )
    assert ca in units["mariadb"]["files"]
    rabbit = {renderer.variable(v, host) for v in ("rabbitmq_tls_cert", "rabbitmq_tls_key")} | {ca}
    assert rabbit < set(units["rabbitmq-server"]["files"])
    assert renderer.variable("haproxy_internal_pem_file", host) in units["haproxy"]["files"]
    assert units["haproxy"]["reload"] is True
    clients = [
        u for s in services.values() if s["group"] == "controller" for u in s["units"] if u["name"] != "memcached"
    ]
    assert clients and all(ca in unit["files"] for unit in clients), [
        u["name"] for u in clients if ca not in u["files"]
    ]
    assert ca in renderer.variable("nova_compute_unit", host)["files"]


# --- the in-process renderer renders as Ansible does ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("internal_tls", [False, True])
def test_ansible_renders_these_templates_as_this_renderer_does(local_tiny, tmp_path: Path, internal_tls: bool) -> None:
    """A real ansible-playbook run (tiny, this machine as its node) renders every template and variable above
    byte for byte as the in-process renderer does, with the run's own variables and secrets."""
    import dataclasses
    import io
    import sys

    from viocli.ops.ansible import run_target
    from viocli.runner.engine import run_playbook
    from viocli.runner.plan import PlaybookRun
    from viocli.runner.progress import RunProgress
    from viocli.settings import load_settings

    deployment, _ = local_tiny(REPO / "tests" / "fixtures" / "internal_tls", "")
    model = deployment.loaded.model.model_copy(update={"internal_tls": internal_tls})
    deployment = dataclasses.replace(deployment, loaded=dataclasses.replace(deployment.loaded, model=model))
    target = run_target(load_settings(), deployment)
    target.inventory["all"]["hosts"]["controller01"].update(
        ansible_connection="local", ansible_python_interpreter=sys.executable
    )
    out = tmp_path / "rendered"
    out.mkdir()
    templates = [{"label": label, "role": role, "template": name} for label, role, name, _ in TEMPLATES + NEW_TEMPLATES]
    tasks = []
    for index, (_, role, tasks_file, task_name, argument, _) in enumerate(TASK_ARGS):
        task = next(t for t in yaml.safe_load((PLAYBOOKS / "roles" / role / "tasks" / tasks_file).read_text())
                    if t.get("name") == task_name)  # fmt: skip
        value = next(v for v in task.values() if isinstance(v, dict) and argument in v)[argument]
        write = {
            "content": "{{ viocli_probe_argument | to_json }}",
            "dest": f"{out}/argument-{index}.json",
            "mode": "0600",
        }
        tasks += [
            {"name": f"Set argument {index}", "ansible.builtin.set_fact": {"viocli_probe_argument": value}},
            {"name": f"Write argument {index}", "ansible.builtin.copy": write},
        ]
    (tmp_path / "arguments.yml").write_text(yaml.safe_dump(tasks, sort_keys=False))
    run = PlaybookRun(
        "render_internal_tls.yml",
        extravars={
            "viocli_probe_dir": str(out),
            "viocli_probe_templates": templates,
            "viocli_probe_variables": VARIABLES,
            "viocli_probe_tasks": str(tmp_path / "arguments.yml"),
        },
    )
    progress = RunProgress("test", stream=io.StringIO(), live=False)
    assert run_playbook(target, run, progress=progress).status == "successful"

    renderer = Renderer(PLAYBOOKS, model, deployment.nodes, target.secrets)
    for label, role, name, _ in TEMPLATES + NEW_TEMPLATES:
        assert (out / label).read_text() == renderer.template(role, name, "controller01"), label
    variables = json.loads((out / "variables.json").read_text())
    assert variables == {name: renderer.variable(name, "controller01") for name in VARIABLES}
    for index, (label, role, tasks_file, task_name, argument, _) in enumerate(TASK_ARGS):
        rendered = json.loads((out / f"argument-{index}.json").read_text())
        assert rendered == renderer.task_argument(role, tasks_file, task_name, argument, "controller01"), label
    if internal_tls:
        assert "ssl crt /etc/haproxy/internal.pem" in (out / "haproxy.cfg").read_text()
