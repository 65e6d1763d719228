"""Fault injectors and the fault campaign (in the style of etcd's robustness tests).

- ``proxy``: a frame-aware TCP proxy in front of each member's peer port, cutting (sender, receiver) pairs;
- ``cluster``: a 3-member etcdx cluster whose peers talk through those proxies, one member on LazyFS;
- ``traffic``: recording KV clients (failover between endpoints) and recording watchers;
- ``injectors``: one function per fault kind (inject, hold, heal);
- ``campaign``: the seeded schedule, the runs, the checks and the summary.
"""
