# SPDX-License-Identifier: MIT
"""The licence is stated where tools and people look: LICENSE (MIT),
debian/copyright (machine-readable, MIT with its text), and a one-line
SPDX-License-Identifier at the top of every source file (C, Python, shell,
make fragments, man pages, the interop driver)."""

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
TAG = "SPDX-License-Identifier: MIT"
SOURCE_DIRS = ["common", "daemon", "pam", "tests", "scripts", "man"]
SOURCE_EXT = (".c", ".h", ".py", ".sh", ".inc", ".mjs", ".sym", ".1", ".5", ".8")
SKIP_DIRS = {"node_modules", "corpus", "regressions", "data", "dict", "__pycache__", ".libs", ".deps"}


def read(*parts):
    with open(os.path.join(TOP_SRCDIR, *parts), encoding="utf-8") as f:
        return f.read()


def source_files():
    for top in SOURCE_DIRS:
        for d, dirs, names in os.walk(os.path.join(TOP_SRCDIR, top)):
            dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith(("build", "."))]
            for n in names:
                p = os.path.join(d, n)
                rel = os.path.relpath(p, TOP_SRCDIR)
                if n.endswith(SOURCE_EXT):
                    yield rel
                elif "." not in n and top in ("scripts", "tests"):
                    with open(p, "rb") as f:
                        if f.read(2) == b"#!":
                            yield rel
    for rel in ("Makefile.am", "configure.ac", "autogen.sh", "debian/rules", "etc/Makefile.inc",
                "etc/bash-completion/tokenctl"):
        yield rel


def test_licence_file_is_mit():
    text = read("LICENSE")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_debian_copyright_says_mit():
    text = read("debian", "copyright")
    assert "undecided" not in text and "No license" not in text
    assert "\nFiles: *\n" in text and "\nLicense: MIT\n" in text
    assert " Permission is hereby granted, free of charge" in text


def test_every_source_file_has_the_spdx_line():
    files = sorted(set(source_files()))
    assert len(files) > 150 and "daemon/tokend-main.c" in files and "man/tokend.8" in files
    missing = []
    for rel in files:
        with open(os.path.join(TOP_SRCDIR, rel), encoding="utf-8") as f:
            head = [f.readline() for _ in range(2)]
        if not any(TAG in line for line in head):
            missing.append(rel)
    assert not missing, "no %s in the first two lines of: %s" % (TAG, ", ".join(missing))
