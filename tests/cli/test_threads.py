"""The CLI chooses thread counts and the OpenMP wait policy unless the user did."""

from __future__ import annotations

import os
import subprocess
import sys

from defectscope.cli.threads import THREAD_VARIABLES, thread_environment, usable_cpus


def test_defaults_are_passive_waits_and_the_usable_cores():
    settings = thread_environment({}, None, cpus=3)
    assert settings["OMP_WAIT_POLICY"] == "PASSIVE"
    assert all(settings[name] == "3" for name in THREAD_VARIABLES)


def test_what_the_user_set_is_kept_unless_threads_is_given():
    user = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}
    kept = thread_environment(user, None, cpus=8)
    assert "OMP_WAIT_POLICY" not in kept and "OMP_NUM_THREADS" not in kept
    assert kept["MKL_NUM_THREADS"] == "8"
    overridden = thread_environment(user, 2, cpus=8)
    assert overridden["OMP_NUM_THREADS"] == "2" and "OMP_WAIT_POLICY" not in overridden


def test_usable_cpus_is_the_affinity_set():
    assert usable_cpus() == len(os.sched_getaffinity(0))


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    code = ("import os, sys\nfrom defectscope.cli import main\n"
            f"main({argv!r})\nimport torch\n"
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'], "
            "torch.get_num_threads(), file=sys.stderr)")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_main_sets_them_before_torch_is_imported():
    env = {k: v for k, v in os.environ.items()
           if k not in THREAD_VARIABLES and k != "OMP_WAIT_POLICY"}
    done = _run(["--threads", "1", "models"], env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "PASSIVE 1 1"


def test_bad_thread_count_is_one_clear_error():
    from defectscope.cli import main

    assert main(["--threads", "0", "models"]) == 2
