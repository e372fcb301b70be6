"""Helpers shared by the client flows: step output, failure, --header parsing."""

import sys


def step(msg):
    print(msg, flush=True)


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def parse_headers(values):
    headers = {}
    for v in values:
        name, sep, value = v.partition(":")
        if not sep or not name.strip():
            fail(f"--header wants NAME:VALUE, got {v!r}")
        headers[name.strip()] = value.strip()
    return headers
