"""etcd's two proxies: `etcdx gateway start` (L4, gateway.py) and `etcdx grpc-proxy start` (L7, grpc_proxy.py)."""
