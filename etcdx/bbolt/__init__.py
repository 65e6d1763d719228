"""A read-only reader of bbolt files (etcd's backend): enough to read a snapshot saved from etcd."""
