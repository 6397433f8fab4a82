"""viocli_files: a role's files rendered on the OMS and kept on a node in one call.

The module's rules run for real in a temp dir (bytes equal: untouched, mtime kept; owner or mode off:
fixed in place; different: replaced atomically), and the action plugin runs for real in a local
ansible-playbook against a temp role (templates rendered as the template action would, check mode,
--diff, per-entry vars, the uwsgi filter's entries).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.playbook_code import load

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "playbooks" / "library" / "viocli_files.py"
FILTER = REPO / "playbooks" / "filter_plugins" / "viocli_uwsgi.py"


@pytest.fixture(scope="module")
def files():
    return load(MODULE)


def entry(path: Path, **extra: str) -> dict:
    return {"dest": str(path), "owner": "root", "group": "root", "mode": "0640", **extra}


@pytest.mark.skipif(os.geteuid() != 0, reason="sets owners (root)")
def test_equal_bytes_leave_the_file_and_its_mtime_alone(files, tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_text("same\n")
    path.chmod(0o640)
    os.utime(path, (1000, 1000))
    assert files.ensure_file(entry(path), b"same\n", check=False) == (False, None)
    assert path.stat().st_mtime == 1000


@pytest.mark.skipif(os.geteuid() != 0, reason="sets owners (root)")
def test_a_wrong_mode_is_fixed_in_place_without_rewriting(files, tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_text("same\n")
    path.chmod(0o666)
    os.utime(path, (1000, 1000))
    inode = path.stat().st_ino
    assert files.ensure_file(entry(path), b"same\n", check=False) == (True, None)
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert path.stat().st_mtime == 1000 and path.stat().st_ino == inode


@pytest.mark.skipif(os.geteuid() != 0, reason="sets owners (root)")
def test_different_bytes_replace_the_file_atomically(files, tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_text("old\n")
    inode = path.stat().st_ino
    changed, old = files.ensure_file(entry(path), b"new\n", check=False)
    assert changed and old == b"old\n"
    assert path.read_text() == "new\n" and path.stat().st_ino != inode  # renamed over, not written in place
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in tmp_path.iterdir()] == ["a.conf"]  # no temporary left


@pytest.mark.skipif(os.geteuid() != 0, reason="sets owners (root)")
def test_check_mode_reports_without_writing(files, tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_text("old\n")
    assert files.ensure_file(entry(path), b"new\n", check=True)[0] is True
    assert path.read_text() == "old\n"
    assert files.ensure_directory(entry(tmp_path / "d", state="directory"), check=True) is True
    assert not (tmp_path / "d").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="sets owners (root)")
def test_directories_are_created_then_left_alone(files, tmp_path: Path) -> None:
    directory = entry(tmp_path / "d", state="directory", mode="0700")
    assert files.ensure_directory(directory, check=False) is True
    assert oct((tmp_path / "d").stat().st_mode & 0o777) == "0o700"
    assert files.ensure_directory(directory, check=False) is False


def test_every_refusal_names_the_path_and_what_to_do(files, tmp_path: Path) -> None:
    with pytest.raises(files.FileError, match=r"a.conf: user no-such-user does not exist.*package installed"):
        files.ensure_file(entry(tmp_path / "a.conf", owner="no-such-user"), b"x", check=False)
    with pytest.raises(files.FileError, match=r"its directory .*/missing does not exist"):
        files.ensure_file(entry(tmp_path / "missing" / "a.conf"), b"x", check=False)
    (tmp_path / "dir.conf").mkdir()
    with pytest.raises(files.FileError, match=r"dir.conf exists and is not a regular file; move it away"):
        files.ensure_file(entry(tmp_path / "dir.conf"), b"x", check=False)
    (tmp_path / "plain").write_text("")
    with pytest.raises(files.FileError, match=r"plain exists and is not a directory"):
        files.ensure_directory(entry(tmp_path / "plain", state="directory"), check=False)


def test_the_uwsgi_filter_gives_both_files_of_an_api() -> None:
    uwsgi = load(FILTER)
    ini, default = uwsgi.viocli_uwsgi_files(
        {"name": "neutron-api", "service": "neutron-server", "project": "neutron", "port": 9696,
         "wsgi_file": "/usr/bin/neutron-api", "processes": 2}
    )  # fmt: skip
    assert ini["dest"] == "/etc/neutron/neutron-api-uwsgi.ini" and ini["group"] == "neutron" and ini["mode"] == "0640"
    assert default["dest"] == "/etc/default/neutron-server" and default["mode"] == "0644"
    assert Path(ini["src"]).is_file() and Path(default["src"]).is_file()
    assert ini["vars"]["uwsgi_port"] == 9696 and ini["vars"]["uwsgi_service"] == "neutron-server"
    with pytest.raises(ValueError, match=r"missing .*'port'"):
        uwsgi.viocli_uwsgi_files({"name": "x", "project": "x", "wsgi_file": "/x", "processes": 1})


PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    greeting: hello
  tasks:
    - name: Keep the files
      viocli_files:
        files:
          - {dest: "{{ out }}/d", state: directory, mode: "0750"}
          - {dest: "{{ out }}/d/a.conf", src: a.conf.j2, mode: "0640"}
          - {dest: "{{ out }}/d/b.conf", src: a.conf.j2, vars: {greeting: bonjour}, mode: "0644"}
          - {dest: "{{ out }}/d/c.conf", content: "literal {{ greeting }}\\n", mode: "0600", diff: false}
      register: result
    - name: Show the result
      check_mode: false
      ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: "{{ out }}/result.json"
        mode: "0600"
"""


def _play(tmp_path: Path, out: Path, *args: str) -> dict:
    role_dir = tmp_path / "play"
    (role_dir / "templates").mkdir(parents=True, exist_ok=True)
    (role_dir / "templates" / "a.conf.j2").write_text(
        "{{ ansible_managed | comment }}\n{% if true %}\n{{ greeting }} from {{ inventory_hostname }}\n{% endif %}\n"
    )
    (role_dir / "site.yml").write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_LIBRARY": str(REPO / "playbooks" / "library"),
        "ANSIBLE_ACTION_PLUGINS": str(REPO / "playbooks" / "action_plugins"),
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    binary = Path(sys.executable).with_name("ansible-playbook")
    result = subprocess.run(
        [str(binary), "-i", "localhost,", "-e", f"out={out}", *args, str(role_dir / "site.yml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {"stdout": result.stdout, **json.loads((out / "result.json").read_text())}


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="sets owners (root)")
def test_the_action_renders_like_the_template_action_and_writes_only_what_differs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first = _play(tmp_path, out)
    assert first["changed"] is True
    assert sorted(first["changed_paths"]) == sorted(str(out / n) for n in ("d", "d/a.conf", "d/b.conf", "d/c.conf"))
    # trim_blocks as the template action: no blank line where the {% if %} was; ansible_managed commented
    assert (out / "d" / "a.conf").read_text().splitlines() == ["#", "# Ansible managed", "#", "hello from localhost"]
    assert (out / "d" / "b.conf").read_text().endswith("bonjour from localhost\n")
    assert (out / "d" / "c.conf").read_text() == "literal hello\n"
    assert oct((out / "d" / "c.conf").stat().st_mode & 0o777) == "0o600"

    os.utime(out / "d" / "a.conf", (1000, 1000))
    second = _play(tmp_path, out)
    assert second["changed"] is False and second["changed_paths"] == []
    assert (out / "d" / "a.conf").stat().st_mtime == 1000

    # --check reports without writing; --diff shows the old and new lines, never a diff: false file
    (out / "d" / "a.conf").write_text("by hand\n")
    (out / "d" / "c.conf").write_text("by hand\n")
    checked = _play(tmp_path, out, "--check", "--diff")
    assert sorted(checked["changed_paths"]) == [str(out / "d" / "a.conf"), str(out / "d" / "c.conf")]
    assert (out / "d" / "a.conf").read_text() == "by hand\n"
    assert "-by hand" in checked["stdout"] and "+hello from localhost" in checked["stdout"]
    assert [d["after_header"] for d in checked["diff"]] == [str(out / "d" / "a.conf")]
    assert "literal hello" not in json.dumps(checked["diff"])

    # an old file holding the whole new one (a line appended by hand): Ansible masks no_log values (the
    # contents) inside any output, so the old content travels in base64 and the diff shows it whole
    rendered = _play(tmp_path, out)
    assert rendered["changed"] is True
    kept = (out / "d" / "a.conf").read_text()
    (out / "d" / "a.conf").write_text(kept + "# junk\n")
    appended = _play(tmp_path, out, "--diff")
    assert "-# junk" in appended["stdout"] and "*# junk" not in appended["stdout"]
    assert appended["diff"][0]["before"] == kept + "# junk\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="sets owners (root)")
def test_a_new_file_that_fails_validate_never_replaces_the_old_one(files, tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text("good\n")
    checked = entry(path, validate="grep -q good %s")
    with pytest.raises(
        files.FileError, match=r"haproxy.cfg: the new file fails `grep -q good %s` \(exit 1\).*old file is kept"
    ):
        files.ensure_file(checked, b"bad\n", check=False)
    assert path.read_text() == "good\n" and [p.name for p in tmp_path.iterdir()] == ["haproxy.cfg"]
    assert files.ensure_file(checked, b"good too\n", check=False)[0] is True
    assert path.read_text() == "good too\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="sets owners (root)")
def test_a_packaged_symlink_is_replaced_by_the_file_never_its_target(files, tmp_path: Path) -> None:
    target = tmp_path / "alternative.cnf"
    target.write_text("packaged\n")
    link = tmp_path / "my.cnf"
    link.symlink_to(target)
    assert files.ensure_file(entry(link), b"ours\n", check=False)[0] is True
    assert not link.is_symlink() and link.read_text() == "ours\n"
    assert target.read_text() == "packaged\n"
    assert files.ensure_file(entry(link), b"ours\n", check=False) == (False, None)
