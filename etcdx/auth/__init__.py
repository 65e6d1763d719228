"""etcd's role-based auth as a pure core: users, roles, key-range permissions, tokens (no I/O, no clock).

Time comes in as ``now`` (seconds); randomness as a ``random.Random`` the caller passes (the server
passes ``random.SystemRandom()``); key files are read by the caller and passed as bytes.

The interface the server calls
==============================

Startup
  ``opts = options.parse_auth_token(cfg.auth_token)`` (AuthOptionsError: refuse to start);
  ``tokens = simple_token.SimpleTokens(cfg.auth_token_ttl)`` for "simple", or
  ``jwt_token.JwtTokens(opts.sign_method, public_key=<file bytes>, private_key=<file bytes>,
  ttl_seconds=opts.ttl_seconds)`` for "jwt";
  ``store = AuthStore.load(<items of the backend's "auth" table>, tokens)``.
  A snapshot holds ``store.dump()``; restoring one is ``AuthStore.load`` of it.

API layer, per request (before proposing; nothing here changes state)
  1. Who: token from metadata "token" (or "authorization") -> ``tokens.info(token, now,
     store.revision)`` (ERR_INVALID_AUTH_TOKEN); no token but a verified client certificate ->
     ``store.auth_info_for(cn)`` (a token, if also sent, wins); neither -> ``None``. Only when
     ``store.enabled``.
  2. Method gate: ``policy.METHODS[path]`` (``policy.alarm_access`` for Alarm): OPEN passes;
     AUTHENTICATED -> ``store.check_authenticated(info)``; ADMIN -> ``store.check_admin(info)``;
     SELF_OR_ADMIN / HOLDER_OR_ADMIN -> ``store.check_user_get`` / ``store.check_role_get``; KEYS ->
     the checks below. Maintenance methods send errors through ``policy.unmapped`` (etcd's code-2
     "auth: ..." texts). Methods served without the log (Status, MemberList, Alarm GET, Hash,
     Defragment, Snapshot, Watch create, LeaseTimeToLive, LeaseLeases, serializable Range) are
     checked here; everything proposed is checked again in apply.
  3. Watch create: ``checks.check_watch(store, info, req.key, req.range_end)`` with the range
     exactly as received; on refusal answer created+canceled with the error text as cancel_reason.
  4. Passwords: UserAdd / UserChangePassword -> ``passwords.hash_password(pw, cfg.bcrypt_cost, rng)``
     (skip for no_password) and propose the HASH only; drop the plaintext. Authenticate ->
     ``store.check_password(name, pw)`` (or ``password_hash_of`` + ``passwords.password_matches``
     in a worker thread), then propose {name, the revision it returned,
     ``simple_token.new_prefix(rng)``} - no password.
  5. Stamp the proposal with ``info.username`` and ``info.revision``.

Apply, per committed entry (``info`` rebuilt from the entry's stamp; deterministic on every member)
  - KV: ``checks.check_range / check_put / check_delete_range / check_txn(store, info, req,
    lease_keys)`` where ``lease_keys(lease_id)`` lists the keys the lessor has attached to the lease.
  - Lease: ``checks.check_lease_revoke(store, info, keys)``; keep-alive and time-to-live as named.
  - Compact, member changes: ``store.check_admin(info)``.
  - Auth admin requests: ``store.check_admin(info)`` first (AuthEnable: only if already enabled),
    then the mutation: ``auth_enable, auth_disable, user_add(name, hash, no_password=...),
    user_delete, user_change_password(name, hash), user_grant_role, user_revoke_role, role_add,
    role_delete, role_grant_permission(name, perm), role_revoke_permission(name, key, range_end)``.
    Each returns the records to write to the "auth" table in the apply transaction, or raises the
    EtcdError to answer with (state unchanged). Reads: ``user_get, user_list, role_get,
    role_list, enabled, revision`` (AuthStatus).
  - Authenticate: ``store.check_authenticate(name, checked_revision)`` then ``tokens.assign(name,
    store.revision, now, simple_prefix=prefix, index=entry_index)`` - the token in the response. On
    ERR_AUTH_OLD_REVISION the API layer checks the password again and re-proposes (etcd's loop).
  A failed check answers that request with its error; it never stops the member.

Periodically: ``tokens.purge_expired(now)`` for simple tokens. When ``store.revision`` changes, open
watches can be re-checked with ``checks.check_watch(store, store.auth_info_for(user), key, range_end)``
and cancelled on refusal (etcd keeps streaming to a watcher whose permission was revoked).
"""

from etcdx.auth.store import ROOT_ROLE, ROOT_USER, AuthStore
from etcdx.auth.tokens import AuthInfo, TokenProvider

__all__ = ["ROOT_ROLE", "ROOT_USER", "AuthInfo", "AuthStore", "TokenProvider"]
