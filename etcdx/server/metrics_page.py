"""The /metrics body, as etcd's promhttp handler serves it on the client and metrics URLs."""

from __future__ import annotations

from etcdx.server import metrics
from etcdx.server.metrics_text import CONTENT_TYPE, render


def scrape() -> tuple[bytes, str]:
    """(body, content type): every series, read now. Counts the scrape as promhttp does: in flight while it
    is rendered, then by status code."""
    metrics.SCRAPES_IN_FLIGHT.inc()
    try:
        body = render(metrics.REGISTRY.collect())
    finally:
        metrics.SCRAPES_IN_FLIGHT.dec()
    metrics.SCRAPES.labels(code="200").inc()
    return body, CONTENT_TYPE
