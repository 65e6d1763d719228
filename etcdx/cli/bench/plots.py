"""PNG plots of `etcdx bench compare` (matplotlib, headless): throughput against clients, latency CDFs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend


def throughput(path: str, scenario: str, clients: list[int], series: dict[str, list[float]]) -> None:
    """One line per target: its median req/s at each client count (``series[name][i]`` at ``clients[i]``)."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, rates in series.items():
        axes.plot(clients, rates, marker="o", label=name)
    axes.set_xscale("log", base=2)
    axes.set_xticks(clients, [str(c) for c in clients])
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("requests/s (median)")
    axes.set_ylim(bottom=0)
    axes.set_title(f"throughput: {scenario}")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def latency_cdf(path: str, title: str, points: dict[str, list[tuple[float, float]]]) -> None:
    """One curve per target through its (latency ms, fraction of requests at or below) points."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, curve in points.items():
        axes.plot([ms for ms, _ in curve], [q for _, q in curve], marker=".", label=name)
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("fraction of requests")
    axes.set_ylim(0, 1.01)
    axes.set_title(f"latency CDF: {title}")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
