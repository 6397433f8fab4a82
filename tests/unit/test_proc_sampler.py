"""The lab's secret sampler sees a secret on a command line or in an environment, and names it."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.lab.sampler import ProcSampler, flatten

pytestmark = pytest.mark.slow


def test_sampler_sees_a_secret_on_argv_and_in_the_environment_but_not_elsewhere() -> None:
    secrets = {"db": "Sampler-Argv-Secret-0123", "mq": "Sampler-Env-Secret-4567", "quiet": "Sampler-Stdin-8901"}
    with ProcSampler(secrets) as sampler:
        time.sleep(0.3)
        argv = subprocess.Popen(["sh", "-c", "sleep 1", secrets["db"]])
        env = subprocess.Popen(["sleep", "1"], env={**os.environ, "X": secrets["mq"]})
        stdin = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        stdin.communicate(secrets["quiet"].encode())
        argv.wait()
        env.wait()
    found = {(hit["secret"], hit["where"], hit["process"]) for hit in sampler.hits}
    assert ("db", "cmdline", "sh") in found
    assert ("mq", "environ", "sleep") in found
    assert not any(hit["secret"] == "quiet" for hit in sampler.hits)
    assert sampler.passes > 10


def test_flatten_names_every_string() -> None:
    assert flatten({"a": "x", "keys": ["k0", "k1"], "none": None}) == {"a": "x", "keys[0]": "k0", "keys[1]": "k1"}


def test_sampler_learns_values_written_to_the_store_while_it_runs(tmp_path) -> None:
    store = tmp_path / "secrets.yml"
    store.write_text("old_password: Sampler-Old-Value-0000\n")
    with ProcSampler({"seed": "Sampler-Seed-Value-1111"}, store=store) as sampler:
        time.sleep(0.3)
        store.write_text("new_password: Sampler-New-Value-2222\nkeys: [Sampler-Key-Value-3333]\n")
        time.sleep(0.3)
        shown = subprocess.Popen(["sh", "-c", "sleep 1", "Sampler-New-Value-2222", "Sampler-Key-Value-3333"])
        shown.wait()
    assert {hit["secret"] for hit in sampler.hits} == {"new_password", "keys[0]"}
