"""etcd 3.4's v2 store: a hierarchy of directories and values with TTLs, its event history and watchers. Pure."""
