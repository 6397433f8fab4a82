"""viocli_package_keep rebuilds the .deb of an installed package from the dpkg database (as dpkg-repack
does), and bench/make-patch turns such packages into a viocli patch: real dpkg-deb, real files, as root."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.playbook_code import load

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "playbooks" / "library" / "viocli_package_keep.py"
MAKE_PATCH = REPO / "bench" / "make-patch"
REAL_PACKAGE = "netbase"  # Architecture: all, a dozen files, conffiles (/etc/services); Priority: important

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="repacking keeps the files' owners: needs root"),
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (a Debian machine)"),
]


@pytest.fixture(scope="module")
def keep():
    return load(MODULE)


def dpkg(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def members(deb: Path) -> dict[str, tarfile.TarInfo]:
    """The data members of ``deb`` by absolute path (``/`` for ``./``)."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            "/" + ("" if info.name in (".", "./") else info.name.removeprefix("./").rstrip("/")): info for info in tar
        }


def control_files(deb: Path, dest: Path) -> Path:
    dpkg("dpkg-deb", "-e", str(deb), str(dest))
    return dest


# --- a package installed on this machine ----------------------------------------------------------------
@pytest.fixture(scope="module")
def real_package() -> dict[str, str]:
    try:
        out = dpkg("dpkg-query", "-W", "-f", "${Package}\\n${Version}\\n${Architecture}\\n${db:Status-Status}",
                   REAL_PACKAGE)  # fmt: skip
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip(f"{REAL_PACKAGE} is not installed here")
    package, version, architecture, status = out.split("\n")
    if status != "installed":
        pytest.skip(f"{REAL_PACKAGE} is {status} here")
    return {"Package": package, "Version": version, "Architecture": architecture}


def test_an_installed_package_is_rebuilt_with_its_files_and_conffiles(keep, real_package, tmp_path: Path) -> None:
    dest = tmp_path / "kept"
    result = keep.repack_package(REAL_PACKAGE, str(dest))
    deb = Path(result["path"])
    assert deb.name == f"{REAL_PACKAGE}_{real_package['Version'].split(':')[-1]}_{real_package['Architecture']}.deb"
    assert result["built"] is True
    assert dpkg("dpkg-deb", "--field", str(deb), "Package").strip() == real_package["Package"]
    assert dpkg("dpkg-deb", "--field", str(deb), "Version").strip() == real_package["Version"]
    assert "Status" not in dpkg("dpkg-deb", "--field", str(deb))

    listed = {"/" if p == "/." else p for p in dpkg("dpkg", "-L", REAL_PACKAGE).splitlines() if p}
    assert set(members(deb)) == listed - set(result["skipped"])
    for path, info in members(deb).items():  # the owners and modes of the files on disk
        if path in listed and not info.issym() and os.path.lexists(path) and path != "/":
            disk = os.lstat(path)
            assert (info.mode, info.uid, info.gid) == (disk.st_mode & 0o7777, disk.st_uid, disk.st_gid), path

    control = control_files(deb, tmp_path / "control")
    assert "/etc/services" in (control / "conffiles").read_text().splitlines()
    assert (control / "postinst").read_bytes() == Path(f"/var/lib/dpkg/info/{REAL_PACKAGE}.postinst").read_bytes()
    assert list(dest.iterdir()) == [deb]  # the staging directory is gone


def test_a_second_repack_returns_the_same_file_untouched(keep, real_package, tmp_path: Path) -> None:
    first = keep.repack(REAL_PACKAGE, str(tmp_path))
    stamp = os.stat(first).st_mtime_ns
    again = keep.repack_package(REAL_PACKAGE, str(tmp_path))
    assert again["path"] == first and again["built"] is False
    assert os.stat(first).st_mtime_ns == stamp


def test_a_file_of_the_same_name_but_another_version_is_rebuilt(keep, real_package, tmp_path: Path) -> None:
    stale = tmp_path / Path(keep.repack(REAL_PACKAGE, str(tmp_path / "first"))).name
    stale.write_bytes(b"not a package")
    assert keep.repack_package(REAL_PACKAGE, str(tmp_path))["built"] is True
    assert dpkg("dpkg-deb", "--field", str(stale), "Version").strip() == real_package["Version"]


def test_a_package_that_is_not_installed_is_named(keep, tmp_path: Path) -> None:
    with pytest.raises(keep.NotInstalled, match="viocli-no-such-package is not installed"):
        keep.repack("viocli-no-such-package", str(tmp_path))


# --- a root file system made here -------------------------------------------------------------------------
LIB_STATUS = """\
Package: viocli-test-lib
Status: install ok installed
Priority: optional
Section: python
Installed-Size: 12
Maintainer: viocli tests <root@localhost>
Architecture: all
Version: 1:1.0-1
Config-Version: 1:1.0-1
Depends: python3:any
Conffiles:
 /etc/viocli-test/lib.conf 0123456789abcdef0123456789abcdef
 /etc/viocli-test/old.conf 0123456789abcdef0123456789abcdef obsolete
Description: viocli test library
 A package made by the tests.
 .
 Its second paragraph.
"""
APP_STATUS = """\
Package: viocli-test-app
Status: install ok installed
Maintainer: viocli tests <root@localhost>
Architecture: all
Version: 2.0-1
Depends: viocli-test-lib (= 1:1.0-1), python3:any
Description: viocli test application
"""
GONE_STATUS = """\
Package: viocli-test-gone
Status: deinstall ok config-files
Architecture: all
Version: 0.1
Description: removed, its configuration kept
"""
LIB_FILES = {  # path: (content, mode, uid, gid); None content: a directory
    "/etc/viocli-test": (None, 0o755, 0, 0),
    "/etc/viocli-test/lib.conf": (b"[DEFAULT]\ndebug = false\n", 0o640, 0, 65534),
    "/usr/bin/viocli-test": (b"#!/bin/sh\necho test\n", 0o4755, 0, 0),
    "/usr/lib/python3/dist-packages/viocli_test/__init__.py": (b'"""viocli test."""\nVALUE = 1\n', 0o644, 0, 0),
    "/usr/lib/viocli-test/helper": (b"helper\n", 0o755, 0, 0),  # listed as /lib/viocli-test/helper
    "/usr/share/doc/viocli-test-lib/copyright": (b"public domain\n", 0o644, 0, 0),
    "/usr/share/doc/viocli-test-lib/README.distrib": (b"the package's README\n", 0o644, 0, 0),
    "/usr/share/doc/viocli-test-lib/README": (b"another package's README\n", 0o644, 0, 0),
    "/var/lib/viocli-test": (None, 0o750, 65534, 65534),
}
LIB_LIST = [
    "/.", "/etc", "/etc/viocli-test", "/etc/viocli-test/lib.conf", "/lib", "/lib/viocli-test",
    "/lib/viocli-test/helper", "/usr", "/usr/bin", "/usr/bin/viocli-test", "/usr/bin/viocli-test-link",
    "/usr/lib", "/usr/lib/python3", "/usr/lib/python3/dist-packages", "/usr/lib/python3/dist-packages/viocli_test",
    "/usr/lib/python3/dist-packages/viocli_test/__init__.py", "/usr/share", "/usr/share/doc",
    "/usr/share/doc/viocli-test-lib", "/usr/share/doc/viocli-test-lib/copyright",
    "/usr/share/doc/viocli-test-lib/README", "/usr/share/doc/viocli-test-lib/deleted", "/var", "/var/lib",
    "/var/lib/viocli-test",
]  # fmt: skip
LIB_POSTINST = '#!/bin/sh\nset -e\necho "viocli-test-lib configured ($1)"\n'


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A root file system whose dpkg database holds viocli-test-lib (files, a setuid file, a symlink, a
    directory of another owner, a conffile, a file diverted by another package, a file an admin deleted,
    merged /usr's /lib as an absolute symlink) and viocli-test-app, which depends on its exact version."""
    root = tmp_path / "rootfs"
    for path, (content, mode, uid, gid) in LIB_FILES.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(content)
        os.chown(target, uid, gid)
        os.chmod(target, mode)
    (root / "lib").symlink_to("/usr/lib")  # absolute: it points into the root, not into this machine's /usr
    (root / "usr/bin/viocli-test-link").symlink_to("viocli-test")
    (root / "usr/bin/viocli-test-app").write_text("#!/bin/sh\n")
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("\n".join([LIB_STATUS, APP_STATUS, GONE_STATUS]))
    (root / "var/lib/dpkg/diversions").write_text(
        "/usr/share/doc/viocli-test-lib/README\n/usr/share/doc/viocli-test-lib/README.distrib\nother-package\n"
    )
    (info / "viocli-test-lib.list").write_text("".join(f"{p}\n" for p in LIB_LIST))
    (info / "viocli-test-lib.postinst").write_text(LIB_POSTINST)
    (info / "viocli-test-lib.postinst").chmod(0o755)
    sums = {p: LIB_FILES[p][0] for p in LIB_FILES if LIB_FILES[p][0] is not None and not p.startswith("/etc")}
    sums["/usr/share/doc/viocli-test-lib/deleted"] = b"gone"
    (info / "viocli-test-lib.md5sums").write_text("".join(f"{md5(d)}  {p[1:]}\n" for p, d in sums.items()))
    (info / "viocli-test-app.list").write_text("/.\n/usr\n/usr/bin\n/usr/bin/viocli-test-app\n")
    return root


def test_a_package_of_another_root_is_rebuilt_as_it_is_on_disk(keep, fake_root: Path, tmp_path: Path) -> None:
    result = keep.repack_package("viocli-test-lib", str(tmp_path / "kept"), root=str(fake_root))
    deb = Path(result["path"])
    assert deb.name == "viocli-test-lib_1.0-1_all.deb"  # the version without its epoch
    assert result["skipped"] == ["/usr/share/doc/viocli-test-lib/deleted"]
    assert stat_mode(deb) == 0o600

    fields = dpkg("dpkg-deb", "--field", str(deb))
    assert "Version: 1:1.0-1\n" in fields and "Depends: python3:any\n" in fields
    assert " Its second paragraph.\n" in fields
    for dropped in ("Status:", "Config-Version:", "Conffiles:"):
        assert dropped not in fields
    control = control_files(deb, tmp_path / "control")
    assert (control / "conffiles").read_text() == "/etc/viocli-test/lib.conf\n"  # the obsolete one left out
    assert (control / "postinst").read_text() == LIB_POSTINST
    assert "deleted" not in (control / "md5sums").read_text()

    tree = tmp_path / "x"
    dpkg("dpkg-deb", "-x", str(deb), str(tree))
    for path, (content, _, _, _) in LIB_FILES.items():
        if content is not None and not path.endswith(".distrib") and path != "/usr/share/doc/viocli-test-lib/README":
            listed = path.replace("/usr/lib/viocli-test", "/lib/viocli-test")
            assert (tree / listed.lstrip("/")).read_bytes() == content, path
    # the diverted file is the package's own, from where the diversion put it
    assert (tree / "usr/share/doc/viocli-test-lib/README").read_bytes() == b"the package's README\n"
    assert os.readlink(tree / "usr/bin/viocli-test-link") == "viocli-test"

    data = members(deb)
    assert data["/lib"].isdir()  # merged /usr's symlink: the package has files under it
    assert data["/lib/viocli-test/helper"].isfile()
    assert data["/usr/bin/viocli-test-link"].issym()
    assert (data["/usr/bin/viocli-test"].mode, data["/usr/bin/viocli-test"].uid) == (0o4755, 0)
    assert (data["/var/lib/viocli-test"].mode, data["/var/lib/viocli-test"].uid) == (0o750, 65534)
    assert (data["/etc/viocli-test/lib.conf"].mode, data["/etc/viocli-test/lib.conf"].gid) == (0o640, 65534)
    assert "/usr/share/doc/viocli-test-lib/deleted" not in data
    assert "/usr/share/doc/viocli-test-lib/README.distrib" not in data


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_only_an_installed_package_is_rebuilt(keep, fake_root: Path, tmp_path: Path) -> None:
    with pytest.raises(keep.NotInstalled):
        keep.repack("viocli-test-gone", str(tmp_path), root=str(fake_root))  # config-files: nothing on disk
    with pytest.raises(keep.NotInstalled):
        keep.repack("viocli-test-lib:arm64", str(tmp_path), root=str(fake_root))
    assert keep.repack("viocli-test-lib:all", str(tmp_path), root=str(fake_root)).endswith("_all.deb")


def test_check_mode_builds_nothing(keep, fake_root: Path, tmp_path: Path) -> None:
    would = keep.repack_package("viocli-test-app", str(tmp_path / "kept"), root=str(fake_root), check=True)
    assert would["built"] is True and would["path"].endswith("viocli-test-app_2.0-1_all.deb")
    assert not (tmp_path / "kept").exists()


def run_module(tmp_path: Path, args: dict) -> dict:
    """The module as Ansible runs it: its arguments in a JSON file, its result as JSON on stdout."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True)
    return json.loads(done.stdout)


def test_the_module_keeps_packages_and_reports_them(real_package, tmp_path: Path) -> None:
    dest = tmp_path / "previous"
    would = run_module(tmp_path, {"packages": [REAL_PACKAGE], "dest": str(dest), "_ansible_check_mode": True})
    assert would["changed"] is True and would["kept"][0]["sha256"] is None
    assert not dest.exists()

    result = run_module(tmp_path, {"packages": [REAL_PACKAGE, "viocli-no-such-package"], "dest": str(dest)})
    assert result["changed"] is True, result
    (entry,) = result["kept"]
    assert (entry["package"], entry["version"]) == (REAL_PACKAGE, real_package["Version"])
    assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
    assert result["not_installed"] == ["viocli-no-such-package"]
    assert stat_mode(dest) == 0o700

    again = run_module(tmp_path, {"packages": [REAL_PACKAGE], "dest": str(dest)})
    assert again["changed"] is False and again["kept"][0]["sha256"] == entry["sha256"]


# --- bench/make-patch ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_make_patch_builds_a_bad_patch_from_a_root_file_system(fake_root: Path, tmp_path: Path) -> None:
    package = pytest.importorskip("viocli.patch.package")
    out = tmp_path / "out"
    python_file = "usr/lib/python3/dist-packages/viocli_test/__init__.py"
    done = subprocess.run(
        [sys.executable, str(MAKE_PATCH), "--name", "test-bad", "--version", "1.0", "--role", "controller",
         "--package", "viocli-test-lib", "viocli-test-app", "--root", str(fake_root),
         "--fail-postinst-on", "controller02", "--break-python", python_file, "-o", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    patch_path = Path(done.stdout.strip())
    assert patch_path == out / "test-bad_1.0_all.deb"
    assert [p.name for p in out.iterdir()] == [patch_path.name]  # its work directory is gone

    patch = package.read_patch(patch_path, allow_unsigned=True)
    assert [(p.package, p.version) for p in patch.manifest.packages] == [
        ("viocli-test-lib", "1:1.0-1+viocli1"),
        ("viocli-test-app", "2.0-1+viocli1"),
    ]
    payload = package.extract_payload(patch, tmp_path / "payload")
    lib = payload / "packages" / patch.manifest.packages[0].file
    app = payload / "packages" / patch.manifest.packages[1].file
    assert lib.name == "viocli-test-lib_1.0-1+viocli1_all.deb"
    assert "viocli-test-lib (= 1:1.0-1+viocli1)" in dpkg("dpkg-deb", "--field", str(app), "Depends")

    tree = tmp_path / "lib"
    dpkg("dpkg-deb", "-R", str(lib), str(tree))
    marker = "usr/share/viocli-patch/test-bad/viocli-test-lib"
    assert (tree / marker).read_text() == "viocli patch test-bad 1.0\n"
    sums = dict(reversed(line.split("  ", 1)) for line in (tree / "DEBIAN/md5sums").read_text().splitlines())
    assert sums[marker] == md5((tree / marker).read_bytes())
    assert (tree / python_file).read_text().endswith('raise ImportError("broken by viocli test patch")\n')
    assert sums[python_file] == md5((tree / python_file).read_bytes())
    assert members(lib)["/usr/bin/viocli-test"].mode == 0o4755  # the owners and modes kept

    # the postinst fails on controller02 only; elsewhere it goes on to the package's own
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for host in ("controller01", "controller02"):
        (fake_bin / "hostname").write_text(f"#!/bin/sh\necho {host}\n")
        (fake_bin / "hostname").chmod(0o755)
        env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
        ran = subprocess.run([str(tree / "DEBIAN/postinst"), "configure", "1:1.0-1"], capture_output=True,
                             text=True, env=env)  # fmt: skip
        if host == "controller02":
            assert ran.returncode == 1
            assert "postinst fails on purpose on controller02" in ran.stderr
        else:
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout == "viocli-test-lib configured (configure)\n"
    app_control = tmp_path / "app"
    control_files(app, app_control)
    assert not (app_control / "postinst").exists()  # the first package's postinst only


@pytest.mark.slow
def test_make_patch_creates_a_postinst_and_warns_of_an_exact_dependency(fake_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("viocli.patch.package")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(MAKE_PATCH), "--name", "test-app", "--version", "2", "--role", "controller",
         "--package", "viocli-test-lib", "--root", str(fake_root), "-o", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "viocli-test-app (Depends viocli-test-lib (= 1:1.0-1))" in done.stderr  # apt would refuse it

    # an app without a postinst gets one that does the check only
    done = subprocess.run(
        [sys.executable, str(MAKE_PATCH), "--name", "test-app", "--version", "3", "--role", "controller",
         "--package", "viocli-test-app", "--root", str(fake_root), "--fail-postinst-on", "controller02",
         "--bump", "viocli2", "-o", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    patch = tmp_path / "patch"
    dpkg("dpkg-deb", "-x", done.stdout.strip(), str(patch))
    (app,) = patch.glob("usr/share/viocli/patches/test-app/3/packages/*.deb")
    assert app.name == "viocli-test-app_2.0-1+viocli2_all.deb"
    postinst = (control_files(app, tmp_path / "control") / "postinst").read_text()
    assert postinst.startswith("#!/bin/sh\nset -e\n") and "controller02" in postinst


def test_make_patch_refuses_a_file_no_package_holds(fake_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("viocli.patch.package")
    done = subprocess.run(
        [sys.executable, str(MAKE_PATCH), "--name", "test-x", "--version", "1", "--role", "controller",
         "--package", "viocli-test-app", "--root", str(fake_root), "--break-python", "usr/lib/nothing.py",
         "-o", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert "no package of the patch holds that file" in done.stderr
    assert list((tmp_path / "out").iterdir()) == []
