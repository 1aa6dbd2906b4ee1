# SPDX-License-Identifier: MIT
"""A real PostgreSQL server for integration tests (tests/with-postgresql).

PostgreSQL     the server of $TOKEND_TEST_DATABASE when a wrapper started one,
               else a fresh one started here (as nobody, Unix socket only;
               the module skips when that is impossible: not root, no
               postgresql-15); new_database() → the libpq URI of a new empty
               database, sql(text, uri) runs SQL through psql, rows(query,
               args, uri) reads rows as dicts, stop/start the server for fault
               tests.
Fixture        postgresql (module scope): one server per test module, removed
               at the end. Import it into a test module
               (`from pgharness import postgresql  # noqa: F401`).
"""

import csv
import io
import os
import re
import secrets
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
WITH_POSTGRESQL = os.path.join(HERE, "..", "with-postgresql")


class PostgreSQL:
    def __init__(self):
        self.owned = not os.environ.get("TOKEND_TEST_DATABASE")
        if self.owned:
            r = subprocess.run([WITH_POSTGRESQL, "--start"], capture_output=True, text=True, timeout=120)
            if r.returncode == 77:
                pytest.skip(r.stdout.strip().removeprefix("SKIP: "))
            assert r.returncode == 0, "cannot start PostgreSQL:\n%s%s" % (r.stdout, r.stderr)
            env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        else:
            env = os.environ
        self.uri = env["TOKEND_TEST_DATABASE"]
        self.data = env["TOKEND_TEST_PGDATA"]
        self.bin = env["TOKEND_TEST_PGBIN"]
        self.socket = env["TOKEND_TEST_PGSOCKET"]

    def sql(self, text, uri=None):
        """Run text through psql on uri (default: the first database); its output."""
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                            "-d", uri or self.uri, "-c", text], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "psql %r: %s" % (text, r.stderr)
        return r.stdout.strip()

    def rows(self, query, args=(), uri=None):
        """The rows of query ('?' placeholders, bound from args through psql
        variables) as dicts, numbers as int."""
        variables = []
        for i, a in enumerate(args):
            query = query.replace("?", ":'v%d'" % i, 1)
            variables += ["-v", "v%d=%s" % (i, a)]
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "--csv", "-v", "ON_ERROR_STOP=1"] +
                           variables + ["-d", uri or self.uri], input=query, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, "psql %r: %s" % (query, r.stderr)
        out = list(csv.DictReader(io.StringIO(r.stdout)))
        return [{k: int(v) if re.fullmatch(r"-?[0-9]+", v or "") else (v if v != "" else None)
                 for k, v in row.items()} for row in out]

    def new_database(self):
        name = "td_" + secrets.token_hex(6)
        self.sql("CREATE DATABASE %s" % name)
        return re.sub(r"^(postgres(?:ql)?://[^/?]*/)[^?]*", r"\g<1>" + name, self.uri)

    def _pg_ctl(self, *args):
        subprocess.run(["runuser", "-u", "nobody", "--", os.path.join(self.bin, "pg_ctl"), "-D", self.data] +
                       list(args), cwd=self.socket, check=True, stdout=subprocess.DEVNULL, timeout=120)

    def stop(self, mode="fast"):
        self._pg_ctl("-m", mode, "-w", "stop")

    def start(self):
        self._pg_ctl("-l", os.path.join(self.socket, "server.log"), "-o",
                     "-k %s -c listen_addresses='' -c max_connections=300" % self.socket, "-w", "start")

    def close(self):
        if self.owned:
            subprocess.run([WITH_POSTGRESQL, "--stop", self.socket], timeout=120)


@pytest.fixture(scope="module")
def postgresql():
    pg = PostgreSQL()
    yield pg
    pg.close()
