# SPDX-License-Identifier: MIT
"""scripts/check-cycles, the cycle check scripts/check runs on the built
objects: two tiny .c files compiled with cc that call each other make it
fail and name the cycle; the same pair with one call removed (the control)
passes, and so does a chain of three; a group with no objects is an error,
not a pass."""

import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
CHECKER = os.path.join(TOP_SRCDIR, "scripts", "check-cycles")
CC = os.environ.get("CC") or shutil.which("cc") or "cc"


def build(tmp_path, group, sources):
    """Write group/NAME.c for each entry and compile it to group/NAME.o."""
    d = tmp_path / group
    d.mkdir()
    for name, text in sources.items():
        (d / (name + ".c")).write_text(text)
        subprocess.run([CC, "-c", "-o", str(d / (name + ".o")), str(d / (name + ".c"))], check=True)
    return d


def check(tmp_path, *groups):
    return subprocess.run(["/usr/bin/python3", CHECKER, "--srcdir", str(tmp_path), *groups],
                          capture_output=True, text=True)


def test_cycle_between_two_files_fails(tmp_path):
    build(tmp_path, "g", {
        "alpha": "int beta(int);\nint alpha(int x) { return x > 0 ? beta(x - 1) : 0; }\n",
        "beta": "int alpha(int);\nint beta(int x) { return alpha(x); }\n",
    })
    r = check(tmp_path, "g")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CYCLE" in r.stdout
    assert "g/alpha.c" in r.stdout and "g/beta.c" in r.stdout
    # A pattern keeps a group to some files (scripts/check: daemon/tokend-*).
    r = check(tmp_path, "g/alpha*")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "g/alpha*: 1 .c files, no cycle" in r.stdout


def test_no_cycle_passes(tmp_path):
    """Control: the same two files, beta no longer calls back."""
    build(tmp_path, "g", {
        "alpha": "int beta(int);\nint alpha(int x) { return x > 0 ? beta(x - 1) : 0; }\n",
        "beta": "int beta(int x) { return x * 2; }\n",
    })
    r = check(tmp_path, "g")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "g: 2 .c files, no cycle" in r.stdout


def test_longer_cycle_and_chain(tmp_path):
    """a -> b -> c -> a is found; in another group a -> b -> c passes; the
    exit status is that of the worst group, and each group is reported."""
    build(tmp_path, "cyc", {
        "a": "int b(void);\nint a(void) { return b(); }\n",
        "b": "int c(void);\nint b(void) { return c(); }\n",
        "c": "int a(void);\nint c(void) { return a() + 1; }\n",
    })
    build(tmp_path, "chain", {
        "a": "int b(void);\nint a(void) { return b(); }\n",
        "b": "int c(void);\nint b(void) { return c(); }\n",
        "c": "int c(void) { return 1; }\n",
    })
    r = check(tmp_path, "chain")
    assert r.returncode == 0, r.stdout + r.stderr
    r = check(tmp_path, "chain", "cyc")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "chain: 3 .c files, no cycle" in r.stdout
    assert "cyc: CYCLE" in r.stdout


def test_prefixed_objects_map_to_one_source(tmp_path):
    """automake's per-target names (prog-alpha.o, lib_la-alpha.o) are the
    same .c file: no self-cycle from the copies."""
    d = build(tmp_path, "g", {
        "alpha": "int beta(int);\nint alpha(int x) { return beta(x); }\n",
        "beta": "int beta(int x) { return x; }\n",
    })
    shutil.copy(d / "alpha.o", d / "prog-alpha.o")
    shutil.copy(d / "beta.o", d / "lib_la-beta.o")
    r = check(tmp_path, "g")
    assert r.returncode == 0, r.stdout + r.stderr


def test_group_without_objects_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    r = check(tmp_path, "empty")
    assert r.returncode == 2
    assert "no object files" in r.stderr


@pytest.mark.parametrize("group", ["common", "pam"])
def test_tree_groups_have_no_cycle(group):
    """The groups scripts/check checks, on this build."""
    builddir = os.environ.get("TOP_BUILDDIR")
    if not builddir:
        pytest.skip("needs TOP_BUILDDIR (run through make check)")
    r = subprocess.run(["/usr/bin/python3", CHECKER, "--srcdir", TOP_SRCDIR, "--builddir", builddir, group],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
