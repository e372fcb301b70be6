#!/usr/bin/env python3
"""Markdown tables from the raw results of bench/compare.sh.

  summarize.py DIR CLK_TCK

reads DIR/wrk.tsv, DIR/big.tsv and DIR/cold.tsv (whichever exist).
"""

import json
import os
import statistics
import sys

TARGETS = ["direct", "nginx", "nginx-auth", "caddy", "davgate"]
LABELS = {
    "direct": "direct backend",
    "nginx": "nginx plain proxy (no auth)",
    "nginx-auth": "nginx auth_basic (bcrypt 10)",
    "caddy": "Caddy basicauth (bcrypt 14, cached)",
    "davgate": "davgate (argon2id, cached)",
}
PHASES = {
    "keepalive": "Keep-alive GET of a 200-byte file",
    "close": "`Connection: close` GET of a 200-byte file (a new TCP connection per request)",
    "propfind": "`PROPFIND Depth: 1` on a WsgiDAV collection of 20 files (direct = the backend nginx in front of WsgiDAV; its CPU column is that nginx's only)",
    "propfind-native": "`PROPFIND Depth: 1` on nginx's own WebDAV (dav_ext module) collection of the same 20 files (direct = that nginx)",
    "tls": "TLS keep-alive GET of a 200-byte file (TLS terminated by each target; direct = the backend nginx's own TLS)",
}


def med(values):
    return statistics.median(values) if values else float("nan")


def spread(values, fmt):
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def ratio(a, b):
    if not a or not b or b != b or a != a:
        return "n/a"
    r = a / b
    return f"{r:.2f}×" if r >= 0.01 else f"{r:.4f}×"


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def wrk_tables(rows, clk_tck):
    by = {}
    for phase, target, _round, requests, seconds, p99_ms, non2xx, sockerr, ticks in rows:
        requests, seconds, non2xx = int(requests), float(seconds), int(non2xx)
        ok = max(requests - non2xx, 0)
        entry = by.setdefault((phase, target), {"rps": [], "p99": [], "cpu": [], "non2xx": 0, "sockerr": 0})
        entry["rps"].append(ok / seconds if seconds else 0.0)
        if p99_ms != "nan":
            entry["p99"].append(float(p99_ms))
        if requests:
            entry["cpu"].append(int(ticks) / clk_tck * 1e6 / requests)
        entry["non2xx"] += non2xx
        entry["sockerr"] += int(sockerr)
    out = []
    for phase, title in PHASES.items():
        if not any(p == phase for p, _ in by):
            continue
        out.append(f"### {title}\n")
        out.append("| target | req/s median (min..max) | × direct | × nginx proxy | p99 ms (median) | CPU µs/req median (min..max) | × nginx CPU | non-2xx / socket errors |")
        out.append("|---|---|---|---|---|---|---|---|")
        direct = med(by.get((phase, "direct"), {}).get("rps", []))
        nginx = med(by.get((phase, "nginx"), {}).get("rps", []))
        nginx_cpu = med(by.get((phase, "nginx"), {}).get("cpu", []))
        for target in TARGETS:
            e = by.get((phase, target))
            if not e:
                continue
            rps = med(e["rps"])
            cpu = med(e["cpu"])
            out.append(
                f"| {LABELS[target]} | {spread(e['rps'], '{:.0f}')} | {ratio(rps, direct)} | {ratio(rps, nginx)} "
                f"| {med(e['p99']):.2f} | {spread(e['cpu'], '{:.1f}')} | {ratio(cpu, nginx_cpu)} | {e['non2xx']} / {e['sockerr']} |"
            )
        out.append("")
    return out


def big_table(rows):
    if not rows:
        return []
    by = {}
    for direction, target, _round, code, seconds, size, rss0, peak, hwm in rows:
        e = by.setdefault(target, {"put": [], "get": [], "rss0": [], "peak": [], "growth": [], "hwm": [], "codes": set()})
        e["hwm"].append(int(hwm) / 1024)
        seconds = float(seconds)
        e[direction].append(int(size) / seconds / 1e6 if seconds else 0.0)
        e["rss0"].append(int(rss0) / 1024)
        e["peak"].append(int(peak) / 1024)
        e["growth"].append((int(peak) - int(rss0)) / 1024)
        e["codes"].add(code)
    direct, nginx = by.get("direct"), by.get("nginx")
    out = [
        "### Large bodies: streamed PUT and GET of one file",
        "",
        "MB/s = 10^6 bytes per second (curl's total time). RSS is the target's resident memory (nginx: master + workers",
        "summed), sampled every 50 ms during the transfer; growth = peak during a transfer minus RSS just before it.",
        "VmHWM is the kernel's peak RSS since the process started (all phases before included; nginx: summed over processes).",
        "",
        "| target | PUT MB/s median (min..max) | GET MB/s median (min..max) | × direct PUT / GET | × nginx PUT / GET | RSS before, MiB | peak RSS, MiB (max) | RSS growth, MiB (max) | VmHWM at end, MiB | statuses |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target in TARGETS:
        e = by.get(target)
        if not e:
            continue
        put, get = med(e["put"]), med(e["get"])
        vs_direct = f"{ratio(put, med(direct['put']))} / {ratio(get, med(direct['get']))}" if direct else "n/a"
        vs_nginx = f"{ratio(put, med(nginx['put']))} / {ratio(get, med(nginx['get']))}" if nginx else "n/a"
        out.append(
            f"| {LABELS[target]} | {spread(e['put'], '{:.0f}')} | {spread(e['get'], '{:.0f}')} | {vs_direct} | {vs_nginx} "
            f"| {min(e['rss0']):.1f} | {max(e['peak']):.1f} | {max(e['growth']):.1f} | {max(e['hwm']):.1f} | {','.join(sorted(e['codes']))} |"
        )
    out.append("")
    return out


def cold_table(rows):
    if not rows:
        return []
    first = [float(r[3]) * 1000 for r in rows if r[0] == "first" and r[2].startswith("2")]
    second = [float(r[3]) * 1000 for r in rows if r[0] == "second" and r[2].startswith("2")]
    many = [float(r[3]) * 1000 for r in rows if r[0] == "many25" and r[2].startswith("2")]
    ref = [float(r[3]) * 1000 for r in rows if r[0] == "nginx-auth" and r[2].startswith("2")]
    bursts = [json.loads(r[1]) for r in rows if r[0] == "burst"]
    out = [
        "### Cold path (davgate, default argon2id m=19456 t=2 p=1, hashing on half the cores)",
        "",
        "| measurement | result |",
        "|---|---|",
        f"| first request of a new credential (argon2 verify + proxy), ms | {spread(first, '{:.1f}')} over {len(first)} credentials |",
        f"| the next request with it (cached), ms | {spread(second, '{:.1f}')} |",
        f"| first request with the 25th password of a user who has 25, ms | {spread(many, '{:.1f}')} |",
    ]
    if ref:
        out.append(f"| reference: one request through nginx auth_basic (bcrypt 10, every request), ms | {spread(ref, '{:.1f}')} |")
    for b in bursts:
        out.append(
            f"| burst of {b['credentials']} distinct new credentials at once: wall time until all succeed | "
            f"{b['wall_s']:.2f} s ({b['succeeded']} succeeded; median time to success {b['median_time_to_success_s']} s, "
            f"max {b['max_time_to_success_s']} s; {b['attempts']} attempts, statuses {b['statuses']}) |"
        )
    out.append("| wrong-password flood with valid clients alongside | see `bench/flood.sh` (table in BENCHMARKS.md) |")
    out.append("")
    return out


def main():
    directory, clk_tck = sys.argv[1], int(sys.argv[2])
    lines = []
    lines += wrk_tables(read_tsv(os.path.join(directory, "wrk.tsv")), clk_tck)
    lines += big_table(read_tsv(os.path.join(directory, "big.tsv")))
    lines += cold_table(read_tsv(os.path.join(directory, "cold.tsv")))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
