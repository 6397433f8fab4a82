"""The lab's template root filesystem: apt sources, package list, cache key, caching and the real build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from viocli.errors import OperationFailed
from viocli.lab import template
from viocli.lab.template import AptSource, apt_sources, cache_key, package_list, render_sources, template_info

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

ONE_LINE = f"""\
# the main archive
deb [arch=amd64 signed-by={KEYRING}] http://mirror.invalid/debian bookworm main contrib  # trailing comment
deb-src http://mirror.invalid/debian bookworm main
deb http://mirror.invalid/debian bookworm-updates main
#deb http://mirror.invalid/debian bookworm-backports main
deb http://mirror.invalid/debian-security bookworm-security main
deb http://other.invalid/repo trixie main
"""

DEB822 = f"""\
Types: deb deb-src
# a comment inside the stanza
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main non-free-firmware
Signed-By: {KEYRING}

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
Enabled: no

Types: deb-src
URIs: http://mirror.invalid/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://local.invalid/lab
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZabc
 -----END PGP PUBLIC KEY BLOCK-----
"""


def _etc_apt(root: Path, files: dict[str, str]) -> Path:
    """An /etc/apt-like directory with ``files`` (paths relative to it)."""
    for name, text in files.items():
        path = root / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "apt" / "sources.list.d").mkdir(parents=True, exist_ok=True)
    return root / "apt"


# --- apt sources -------------------------------------------------------------------------------


def test_one_line_sources_keep_deb_entries_of_the_release(tmp_path: Path):
    sources = apt_sources(_etc_apt(tmp_path, {"sources.list": ONE_LINE}))
    assert [(s.uri, s.suite, s.components) for s in sources] == [
        ("http://mirror.invalid/debian", "bookworm", ("main", "contrib")),
        ("http://mirror.invalid/debian", "bookworm-updates", ("main",)),
        ("http://mirror.invalid/debian-security", "bookworm-security", ("main",)),
    ]
    assert sources[0].signed_by == KEYRING
    assert sources[1].signed_by is None
    assert sources[0].origin.endswith("sources.list")


def test_deb822_sources_expand_suites_and_skip_disabled_and_source_stanzas(tmp_path: Path):
    sources = apt_sources(_etc_apt(tmp_path, {"sources.list.d/debian.sources": DEB822}))
    assert [(s.uri, s.suite, s.components) for s in sources] == [
        ("http://mirror.invalid/debian", "bookworm", ("main", "non-free-firmware")),
        ("http://mirror.invalid/debian", "bookworm-updates", ("main", "non-free-firmware")),
        ("http://local.invalid/lab", "bookworm", ("main",)),
    ]
    assert sources[0].signed_by == KEYRING
    inline = sources[2].signed_by
    assert inline is not None
    assert inline.splitlines() == [
        "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        "",
        "mDMEZabc",
        "-----END PGP PUBLIC KEY BLOCK-----",
    ]


def test_both_formats_together_in_apt_order_without_duplicates(tmp_path: Path):
    etc = _etc_apt(
        tmp_path,
        {
            "sources.list": "deb http://mirror.invalid/debian bookworm main\n",
            "sources.list.d/b.list": "deb http://mirror.invalid/debian bookworm main\n",
            "sources.list.d/a.sources": "Types: deb\nURIs: http://a.invalid/debian\nSuites: bookworm\n",
            "sources.list.d/c.list.disabled-by-farm": "deb http://disabled.invalid/debian bookworm main\n",
            "sources.list.d/d.sources.save": "Types: deb\nURIs: http://save.invalid/x\nSuites: bookworm\n",
        },
    )
    assert [s.uri for s in apt_sources(etc)] == ["http://mirror.invalid/debian", "http://a.invalid/debian"]


def test_codename_filter_and_all_sources(tmp_path: Path):
    etc = _etc_apt(tmp_path, {"sources.list": ONE_LINE})
    assert {s.suite for s in apt_sources(etc, codename=None)} == {
        "bookworm",
        "bookworm-updates",
        "bookworm-security",
        "trixie",
    }
    assert [s.suite for s in apt_sources(etc, codename="trixie")] == ["trixie"]
    assert apt_sources(tmp_path / "no-such-dir") == []


def test_rendered_sources_parse_back_to_the_same_sources(tmp_path: Path):
    original = apt_sources(_etc_apt(tmp_path / "a", {"sources.list.d/x.sources": DEB822, "sources.list": ONE_LINE}))
    rendered = render_sources(original)
    again = apt_sources(_etc_apt(tmp_path / "b", {"sources.list.d/x.sources": rendered}))
    assert again == original


# --- package list and cache key ----------------------------------------------------------------


def test_package_list_reads_names_skips_comments_and_duplicates(tmp_path: Path):
    listing = tmp_path / "packages.txt"
    listing.write_text("# header\n\nopenssh-server\npython3  # inline\nopenssh-server\ngalera-4\npython3-oslo.vmware\n")
    assert package_list(listing) == ["openssh-server", "python3", "galera-4", "python3-oslo.vmware"]
    listing.write_text("openssh-server\nNot A Package\n")
    with pytest.raises(OperationFailed, match=r"packages.txt:2"):
        package_list(listing)


def test_shipped_package_list_has_what_the_roles_need():
    packages = set(package_list())
    needed = {"openssh-server", "python3", "mariadb-server", "galera-4", "mariadb-backup", "rabbitmq-server",
              "haproxy", "keepalived", "memcached", "chrony", "rsync", "socat", "keystone", "glance-api",
              "placement-api", "nova-api", "nova-conductor", "nova-scheduler", "nova-consoleproxy", "neutron-server",
              "cinder-api", "cinder-scheduler", "cinder-volume", "openstack-dashboard", "heat-api", "heat-api-cfn",
              "heat-engine", "python3-openstackclient", "nova-compute", "python3-oslo.vmware", "python3-pymysql",
              "mariadb-client"}  # fmt: skip
    assert needed <= packages
    assert not packages & {"nova-compute-kvm", "nova-compute-qemu", "libvirt-daemon-system"}


SOURCES = [
    AptSource("http://mirror.invalid/debian", "bookworm", ("main",)),
    AptSource("http://mirror.invalid/debian", "bookworm-updates", ("main",)),
]


def test_cache_key_is_stable_for_the_same_input():
    key = cache_key(["python3", "openssh-server"], SOURCES, version="1")
    assert key == cache_key(["openssh-server", "python3", "python3"], list(reversed(SOURCES)), version="1")
    assert len(key) == 16
    assert int(key, 16) >= 0
    assert cache_key(["python3"], SOURCES) == cache_key(["python3"], SOURCES)  # default: the recipe's version


def test_cache_key_changes_with_packages_suites_and_version_not_with_the_mirror():
    base = cache_key(["python3", "openssh-server"], SOURCES, version="1")
    assert cache_key(["python3", "openssh-server", "haproxy"], SOURCES, version="1") != base
    assert cache_key(["python3"], SOURCES, version="1") != base
    assert cache_key(["python3", "openssh-server"], SOURCES[:1], version="1") != base
    assert cache_key(["python3", "openssh-server"], SOURCES, version="2") != base
    moved = [AptSource("http://elsewhere.invalid/debian", s.suite, s.components) for s in SOURCES]
    assert cache_key(["python3", "openssh-server"], moved, version="1") == base


def test_recipe_version_follows_the_customize_script(monkeypatch: pytest.MonkeyPatch):
    before = template.build_script_version()
    monkeypatch.setattr(template, "CUSTOMIZE_SCRIPT", template.CUSTOMIZE_SCRIPT + "true\n")
    assert template.build_script_version() != before


def test_preseed_keeps_openstack_packages_from_configuring_databases():
    preseed = template.debconf_preseed()
    assert "keystone keystone/configure_db boolean false" in preseed
    assert "nova-api novaapi/configure_db boolean false" in preseed
    assert "keystone keystone/dbconfig-install boolean false" in preseed
    assert all(len(line.split()) == 4 for line in preseed.splitlines())


def test_installed_packages_count_virtual_packages_by_their_provider(tmp_path: Path):
    status = tmp_path / "var" / "lib" / "dpkg" / "status"
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: nova-consoleproxy\nStatus: install ok installed\n"
        "Provides: nova-novncproxy, nova-spicehtml5proxy (= 2:26.2.2)\nDescription: x\n multi-line\n\n"
        "Package: removed-one\nStatus: deinstall ok config-files\n"
    )
    installed = template._installed_packages(tmp_path)
    assert installed == {"nova-consoleproxy", "nova-novncproxy", "nova-spicehtml5proxy"}
    assert template._installed_packages(tmp_path, provides=False) == {"nova-consoleproxy"}


# --- build and cache, with a stand-in for mmdebstrap -------------------------------------------

FAKE_MMDEBSTRAP = """\
import os, sys, time
if "--version" in sys.argv:
    print("fake-mmdebstrap 0")
    sys.exit(0)
target = sys.argv[-2]
with open(os.environ["FAKE_COUNTER"], "a") as counter:
    counter.write("build\\n")
print("I: pretending to build", target, flush=True)
os.makedirs(os.path.join(target, "usr", "bin"))
os.makedirs(os.path.join(target, "etc", "ssh"))
open(os.path.join(target, "etc", "ssh", "ssh_host_rsa_key"), "w").close()
os.symlink("python3.11", os.path.join(target, "usr", "bin", "python3"))
open(os.path.join(target, "usr", "bin", "python3.11"), "w").close()
os.makedirs(os.path.join(target, "var", "lib", "dpkg"))
with open(os.path.join(target, "var", "lib", "dpkg", "status"), "w") as status:
    status.write("Package: python3\\nStatus: install ok installed\\n")
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
if os.environ.get("FAKE_FAIL"):
    print("E: pretend failure", flush=True)
    sys.exit(100)
"""


@pytest.fixture
def fake_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """build_template() with a fake mmdebstrap, a temp cache root and a temp apt configuration."""
    script = tmp_path / "fake-mmdebstrap"
    script.write_text(f"#!{sys.executable}\n{FAKE_MMDEBSTRAP}")
    script.chmod(0o755)
    counter = tmp_path / "builds.txt"
    monkeypatch.setattr(template, "MMDEBSTRAP", str(script))
    monkeypatch.setattr(template, "_check_rootfs", lambda rootfs, packages: None)
    monkeypatch.setattr(template, "_host_apt_options", lambda: [])
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("FAKE_COUNTER", str(counter))
    etc = _etc_apt(tmp_path, {"sources.list": "deb http://mirror.invalid/debian bookworm main\n"})
    cache = tmp_path / "cache"
    key = cache_key(package_list(), apt_sources(etc))
    return {"etc": etc, "cache": cache, "key": key, "builds": lambda: len(counter.read_text().splitlines())}


def test_build_publishes_rootfs_and_record_then_reuses_it(fake_build: dict):
    messages: list[str] = []
    rootfs = template.build_template(fake_build["cache"], etc_apt=fake_build["etc"], log=messages.append)
    assert rootfs == fake_build["cache"] / fake_build["key"] / "rootfs"
    assert not list((rootfs / "etc" / "ssh").glob("ssh_host_*"))
    info = template_info(rootfs)
    assert info == template_info(rootfs.parent)
    assert info["key"] == fake_build["key"]
    assert info["packages"] == package_list()
    assert info["size_bytes"] > 0
    assert info["seconds"] >= 0
    assert "built_at" in info
    assert any("pretending to build" in m for m in messages)
    assert sorted(p.name for p in fake_build["cache"].iterdir()) == sorted(
        [fake_build["key"], f"{fake_build['key']}.lock", f"{fake_build['key']}.log"]
    )
    assert sorted(p.name for p in rootfs.parent.iterdir()) == ["build.json", "rootfs"]

    again = template.build_template(fake_build["cache"], etc_apt=fake_build["etc"], log=messages.append)
    assert again == rootfs
    assert fake_build["builds"]() == 1


def test_failed_build_leaves_nothing_and_names_step_and_log(fake_build: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(OperationFailed) as failure:
        template.build_template(fake_build["cache"], etc_apt=fake_build["etc"], log=lambda _m: None)
    log_file = fake_build["cache"] / f"{fake_build['key']}.log"
    assert "'mmdebstrap'" in failure.value.message
    assert "E: pretend failure" in failure.value.message
    assert str(log_file) in (failure.value.hint or "")
    assert not (fake_build["cache"] / f"{fake_build['key']}.tmp").exists()
    assert not (fake_build["cache"] / fake_build["key"]).exists()
    assert "pretending to build" in log_file.read_text()


def test_concurrent_builds_of_one_template_build_it_once(fake_build: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_SLEEP", "1")
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(template.build_template(fake_build["cache"], etc_apt=fake_build["etc"], log=lambda _m: None))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert fake_build["builds"]() == 1


def test_no_release_source_is_an_error(tmp_path: Path):
    etc = _etc_apt(tmp_path, {"sources.list": "deb http://mirror.invalid/debian trixie main\n"})
    with pytest.raises(OperationFailed, match="no apt source"):
        template.build_template(tmp_path / "cache", etc_apt=etc)


def test_template_info_without_record(tmp_path: Path):
    with pytest.raises(OperationFailed, match="build record"):
        template_info(tmp_path)
    (tmp_path / "build.json").write_text(json.dumps({"key": "k"}))
    assert template_info(tmp_path / "rootfs") == {"key": "k"}


# --- the real template -------------------------------------------------------------------------


def _chroot(root: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chroot", str(root), *command], capture_output=True, text=True, timeout=300)


@pytest.mark.lab
@pytest.mark.slow
def test_real_template_works_as_a_node_root(tmp_path: Path):
    """Build (or reuse) the real template; boot-check it through a throwaway overlay like a node's."""
    if os.geteuid() != 0 or shutil.which("mmdebstrap") is None:
        pytest.skip("needs root and mmdebstrap")
    rootfs = template.build_template()
    info = template_info(rootfs)
    assert set(package_list()) <= set(info["packages"])
    assert info["size_bytes"] > 100 * 2**20
    assert info["installed_packages"] > len(info["packages"])
    assert not list((rootfs / "etc" / "ssh").glob("ssh_host_*"))
    assert (rootfs / "etc" / "machine-id").read_text() == ""
    assert not (rootfs / "usr" / "sbin" / "policy-rc.d").exists()
    assert "UsePAM no" in (rootfs / "etc" / "ssh" / "sshd_config.d" / "00-viocli-lab.conf").read_text()
    assert (rootfs / "usr" / "sbin" / "rabbitmqctl").exists()

    upper, work, merged = (tmp_path / name for name in ("upper", "work", "merged"))
    for directory in (upper, work, merged):
        directory.mkdir()
    options = f"lowerdir={rootfs},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        assert _chroot(merged, "ssh-keygen", "-A").returncode == 0
        sshd = _chroot(merged, "/usr/sbin/sshd", "-t")
        assert sshd.returncode == 0, sshd.stderr
        effective = _chroot(merged, "/usr/sbin/sshd", "-T").stdout
        assert "permitrootlogin without-password" in effective
        assert "usepam no" in effective
        mariadb = _chroot(merged, "mariadbd", "--version")
        assert mariadb.returncode == 0, mariadb.stderr
        assert "MariaDB" in mariadb.stdout
        for module in ("keystone", "nova.virt.vmwareapi", "oslo_vmware", "glance", "neutron", "cinder", "heat"):
            imported = _chroot(merged, "python3", "-c", f"import {module}")
            assert imported.returncode == 0, f"{module}: {imported.stderr}"
        keystone = _chroot(merged, "keystone-manage", "--help")
        assert keystone.returncode == 0, keystone.stderr
        compute = (merged / "etc" / "nova" / "nova-compute.conf").read_text()
        assert "vmwareapi.VMwareVCDriver" in compute
        assert list((upper / "etc" / "ssh").glob("ssh_host_*"))  # written to the node's layer only
        assert not list((rootfs / "etc" / "ssh").glob("ssh_host_*"))
    finally:
        subprocess.run(["umount", str(merged)], check=True)
