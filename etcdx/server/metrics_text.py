"""The /metrics body as etcd's Go client writes it: Prometheus text format 0.0.4, families sorted by name,
samples by label values, no empty family, no OpenMetrics "_created" samples.

prometheus_client names every counter's samples "<family>_total"; etcd has three counters without that suffix
(NO_TOTAL), whose samples are written under the family name, as etcd writes them.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NO_TOTAL = frozenset(
    {"etcd_server_health_success", "etcd_server_health_failures", "etcd_server_learner_promote_successes"}
)


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def go_float(value: float | str) -> str:
    """A number as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it: "1", "0.25", "2.147483648e+09"."""
    text = floatToGoString(value)
    return text[:-2] if text.endswith(".0") else text


def _line(name: str, labels: dict[str, str], value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape_value(go_float(v) if k == "le" else v)}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {go_float(value)}\n"
    return f"{name} {go_float(value)}\n"


def _exposed_name(metric: Metric) -> str:
    if metric.type == "counter" and metric.name not in NO_TOTAL:
        return metric.name + "_total"
    return metric.name


def _sort_key(sample) -> tuple:
    """Go's order: by label pairs; a histogram's own samples (buckets, sum, count) keep their order (stable sort)."""
    return tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))


def render(metrics: Iterable[Metric]) -> bytes:
    families: dict[str, Metric] = {}
    for metric in metrics:
        families[_exposed_name(metric)] = metric
    out: list[str] = []
    for name in sorted(families):
        metric = families[name]
        samples = [s for s in metric.samples if not s.name.endswith("_created")]
        if not samples:
            continue
        out.append(f"# HELP {name} {_escape_help(metric.documentation)}\n")
        out.append(f"# TYPE {name} {metric.type if metric.type != 'unknown' else 'untyped'}\n")
        for sample in sorted(samples, key=_sort_key):
            sample_name = name if metric.type == "counter" else sample.name
            out.append(_line(sample_name, dict(sorted(sample.labels.items())), sample.value))
    return "".join(out).encode()
