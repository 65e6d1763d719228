"""The report of a bench run: a readable summary in the shape of etcd's benchmark tool, or JSON."""

from __future__ import annotations

import json

from etcdx.cli.bench.histogram import Histogram
from etcdx.cli.bench.scenarios import CAS_FAILED, CAS_SUCCEEDED

PERCENTILES = (10, 25, 50, 75, 90, 95, 99, 99.9)


def summary(
    scenario: str,
    histogram: Histogram,
    requests: int,
    errors: dict[str, int],
    elapsed: float,
    tool_cpu: float,
    extra: dict,
    server_cpu: float | None = None,
) -> dict:
    """``server_cpu``: the server's CPU seconds over the run when it is a local process we were told of.
    ``extra`` may hold ``outcomes`` (label -> answers); with compare labels the summary gets their success share."""
    outcomes = extra.get("outcomes", {})
    compares = outcomes.get(CAS_SUCCEEDED, 0) + outcomes.get(CAS_FAILED, 0)
    if compares:
        extra = {**extra, "compare_success_share": outcomes.get(CAS_SUCCEEDED, 0) / compares}
    return {
        "scenario": scenario,
        "requests": requests,
        "succeeded": histogram.total,
        "errors": errors,
        "seconds": elapsed,
        "requests_per_second": histogram.total / elapsed if elapsed else 0.0,
        "latency_seconds": {
            "fastest": histogram.min_ns / 1e9 if histogram.total else 0.0,
            "slowest": histogram.max_ns / 1e9,
            "average": histogram.mean(),
            **{f"p{p:g}": histogram.percentile(p) for p in PERCENTILES},
        },
        "histogram": [{"le_seconds": le, "count": n} for le, n in histogram.distribution()],
        "tool_cpu_seconds": tool_cpu,
        "tool_cpu_us_per_request": 1e6 * tool_cpu / requests if requests else 0.0,
        "server_cpu_seconds": server_cpu,
        "server_cpu_us_per_request": 1e6 * server_cpu / requests if server_cpu is not None and requests else None,
        **extra,
    }


def render(result: dict) -> str:
    lat = result["latency_seconds"]
    lines = [
        "",
        f"Summary ({result['scenario']}):",
        f"  Total:\t{result['seconds']:.4f} secs.",
        f"  Slowest:\t{lat['slowest']:.4f} secs.",
        f"  Fastest:\t{lat['fastest']:.4f} secs.",
        f"  Average:\t{lat['average']:.4f} secs.",
        f"  Requests/sec:\t{result['requests_per_second']:.4f}",
        "",
        "Response time histogram:",
    ]
    peak = max((b["count"] for b in result["histogram"]), default=0) or 1
    for bucket in result["histogram"]:
        bar = "∎" * round(40 * bucket["count"] / peak)
        lines.append(f"  {bucket['le_seconds']:.4f} [{bucket['count']}]\t|{bar}")
    lines += ["", "Latency distribution:"]
    lines += [f"  {p:g}% in {lat[f'p{p:g}']:.4f} secs." for p in (10, 25, 50, 75, 90, 95, 99, 99.9)]
    for key in (
        "watchers",
        "streams",
        "puts",
        "events_expected",
        "events_received",
        "put_seconds",
        "watchers_per_second",
    ):
        if key in result:
            lines.append(f"{key.replace('_', ' ').capitalize()}: {result[key]:g}")
    for label, n in sorted(result.get("outcomes", {}).items()):
        lines.append(f"Outcome: {label}: {n}")
    if "compare_success_share" in result:
        lines.append(f"Compare success share: {result['compare_success_share']:.4f}")
    cpu, per_request = result["tool_cpu_seconds"], result["tool_cpu_us_per_request"]
    lines.append(f"Tool CPU: {cpu:.2f} s, {per_request:.1f} us per request")
    if result.get("server_cpu_seconds") is not None:
        server, per_request = result["server_cpu_seconds"], result["server_cpu_us_per_request"] or 0.0
        lines.append(f"Server CPU: {server:.2f} s, {per_request:.1f} us per request")
    if result["errors"]:
        lines.append("Error distribution:")
        lines += [f"  [{n}]\t{label}" for label, n in sorted(result["errors"].items())]
    return "\n".join(lines) + "\n"


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, sort_keys=True)
