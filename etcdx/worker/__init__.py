"""Read workers (--experimental-read-workers; by default one per core beyond the member's own): extra processes
that accept client connections on the member's client port (SO_REUSEPORT: the kernel spreads connections), serve
Range from the member's LMDB file and relay everything else to the member over its private unix sockets. Pure
pieces: ``follower`` (the key index that follows the writer). Member side: ``member_side`` (the internal
socket's barrier method), ``supervisor`` (the worker processes). Shared memory: ``applied_mark`` (the member's
applied index) and ``served_counts`` (the Ranges workers answered, for /metrics), both on ``shared_words``.
Worker side: ``local_range``, ``relay``, ``routes``, ``run`` (the process's entry point). docs/architecture.md
("Read workers") says why a worker's linearizable read is linearizable.
"""
