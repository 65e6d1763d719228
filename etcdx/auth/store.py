"""The auth store: users, roles, the enabled flag and the auth revision, as state applied from the log.

Mutations are etcd 3.5's (auth/store.go), with its errors. Each mutation either raises an EtcdError
and changes nothing, or changes the state and returns the records to write to the backend's "auth"
table (records.py) in the same transaction as the applied index. ``load(dump())`` rebuilds an
equal store.

Invariants:
- ``revision`` (etcd's authRevision) starts at 1 and grows by one with every change to users, roles
  or permissions and with AuthDisable (AuthEnable and no-op requests leave it, as in etcd);
- a user's roles are sorted and unique; a role's permissions are sorted by key;
- while enabled, user "root" exists and holds role "root" (it cannot be deleted or lose the role);
- a stored password is a bcrypt hash, made before the request was proposed: no plaintext enters here.

Authorization checks (``check_*``) read the state; the per-user merged permission cache is
rebuilt lazily and dropped on every change.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from etcdx import errors
from etcdx.auth import records
from etcdx.auth.passwords import password_matches
from etcdx.auth.rangeperms import Interval, UserPermissions
from etcdx.auth.records import Record
from etcdx.auth.tokens import AuthInfo, TokenProvider
from etcdx.pb.authpb import auth_pb2

ROOT_USER = "root"
ROOT_ROLE = "root"


class AuthStore:
    """Auth state of one member; every member applies the same entries and holds the same state."""

    def __init__(self, tokens: TokenProvider | None = None) -> None:
        self._users: dict[str, auth_pb2.User] = {}
        self._roles: dict[str, auth_pb2.Role] = {}
        self._enabled = False
        self._revision = 1  # etcd's store starts at auth revision 1: revision 0 marks a request with no user
        self._perm_cache: dict[str, UserPermissions] = {}
        self._tokens = tokens

    # -- persistence -------------------------------------------------------------------------

    @classmethod
    def load(cls, stored: Iterable[tuple[bytes, bytes]], tokens: TokenProvider | None = None) -> AuthStore:
        """A store holding what the "auth" table holds (an empty table: a new store, auth disabled)."""
        store = cls(tokens)
        for key, value in stored:
            if key == records.ENABLED_KEY:
                store._enabled = records.decode_enabled(value)
            elif key == records.REVISION_KEY:
                store._revision = records.decode_revision(value)
            elif key.startswith(records.USER_PREFIX):
                user = auth_pb2.User.FromString(value)
                store._users[key[len(records.USER_PREFIX) :].decode()] = user
            elif key.startswith(records.ROLE_PREFIX):
                role = auth_pb2.Role.FromString(value)
                store._roles[key[len(records.ROLE_PREFIX) :].decode()] = role
            else:
                raise ValueError(f"unknown auth record {key!r}")
        if store._enabled and store._tokens is not None:
            store._tokens.enable()
        return store

    def dump(self) -> list[tuple[bytes, bytes]]:
        """Every record of the state, sorted by key (what a snapshot of the "auth" table holds)."""
        out: list[Record] = [records.enabled_record(self._enabled), records.revision_record(self._revision)]
        out += [records.user_record(u) for u in self._users.values()]
        out += [records.role_record(r) for r in self._roles.values()]
        return sorted(out)  # type: ignore[return-value]

    # -- reads -------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def revision(self) -> int:
        return self._revision

    def user_get(self, name: str) -> list[str]:
        """The roles of user ``name``."""
        return list(self._get_user(name).roles)

    def user_list(self) -> list[str]:
        return sorted(self._users)

    def role_get(self, name: str) -> list[auth_pb2.Permission]:
        """The permissions of role ``name`` (copies)."""
        role = self._roles.get(name)
        if role is None:
            raise errors.ERR_ROLE_NOT_FOUND
        return [_copy_perm(p) for p in role.keyPermission]

    def role_list(self) -> list[str]:
        return sorted(self._roles)

    # -- authentication ------------------------------------------------------------------------

    def password_hash_of(self, name: str) -> tuple[bytes, int]:
        """The stored hash of ``name`` and the revision it was read at, for a password check.

        Raises ERR_AUTH_NOT_ENABLED, ERR_AUTH_FAILED (no such user) or ERR_NO_PASSWORD_USER.
        """
        if not self._enabled:
            raise errors.ERR_AUTH_NOT_ENABLED
        user = self._users.get(name)
        if user is None:
            raise errors.ERR_AUTH_FAILED
        if user.options.no_password:
            raise errors.ERR_NO_PASSWORD_USER
        return bytes(user.password), self._revision

    def check_password(self, name: str, password: str | bytes) -> int:
        """The auth revision at which ``password`` is ``name``'s (API layer, before Authenticate is proposed).

        The plaintext is compared and dropped: it is never stored or proposed. bcrypt is slow on
        purpose; a server may instead call ``password_hash_of`` and compare off its event loop.
        """
        hashed, revision = self.password_hash_of(name)
        if not password_matches(password, hashed):
            raise errors.ERR_AUTH_FAILED
        return revision

    def check_authenticate(self, name: str, checked_revision: int) -> None:
        """Apply of a committed Authenticate whose password was checked at ``checked_revision``.

        The user must still exist and have a password, and no auth change may have landed since the
        check (a password changed meanwhile must not yield a token): ERR_AUTH_OLD_REVISION then, and
        the API layer checks the password again and re-proposes, as etcd's Authenticate loops.
        """
        if not self._enabled:
            raise errors.ERR_AUTH_NOT_ENABLED
        user = self._users.get(name)
        if user is None or user.options.no_password:
            raise errors.ERR_AUTH_FAILED
        if checked_revision != self._revision:
            raise errors.ERR_AUTH_OLD_REVISION

    def auth_info_for(self, username: str) -> AuthInfo:
        """The AuthInfo of a user known by other means (simple token, client certificate CN): current revision."""
        return AuthInfo(username, self._revision)

    # -- authorization -------------------------------------------------------------------------

    def check_admin(self, info: AuthInfo | None) -> None:
        """Only a user holding role root passes (any caller, while auth is disabled)."""
        if not self._enabled:
            return
        user = self._authenticated_user(info, errors.ERR_USER_NOT_FOUND)
        if ROOT_ROLE not in user.roles:
            raise errors.ERR_PERMISSION_DENIED

    def check_authenticated(self, info: AuthInfo | None) -> None:
        """Any existing user passes, with a current auth revision (any caller, while auth is disabled)."""
        if self._enabled:
            self._authenticated_user(info)

    def check_user_get(self, info: AuthInfo | None, name: str) -> None:
        """UserGet: root, or the user asking about itself."""
        if not self._enabled:
            return
        user = self._authenticated_user(info, errors.ERR_USER_NOT_FOUND)
        if info.username != name and ROOT_ROLE not in user.roles:  # type: ignore[union-attr]
            raise errors.ERR_PERMISSION_DENIED

    def check_role_get(self, info: AuthInfo | None, role: str) -> None:
        """RoleGet: root, or a user that holds the role."""
        if not self._enabled:
            return
        user = self._authenticated_user(info, errors.ERR_USER_NOT_FOUND)
        if ROOT_ROLE not in user.roles and role not in user.roles:
            raise errors.ERR_PERMISSION_DENIED

    def check_read(self, info: AuthInfo | None, interval: Interval) -> None:
        self._check_keys(info, interval, write=False)

    def check_write(self, info: AuthInfo | None, interval: Interval) -> None:
        self._check_keys(info, interval, write=True)

    def _authenticated_user(
        self, info: AuthInfo | None, missing: type[errors.EtcdError] = errors.ERR_PERMISSION_DENIED
    ) -> auth_pb2.User:
        """The user ``info`` names; ``missing`` is raised if it does not exist (etcd: "user name not
        found" for admin checks, "permission denied" for key checks)."""
        if info is None or not info.username or info.revision == 0:
            raise errors.ERR_USER_EMPTY
        if info.revision < self._revision:
            raise errors.ERR_AUTH_OLD_REVISION
        user = self._users.get(info.username)
        if user is None:
            raise missing
        return user

    def _check_keys(self, info: AuthInfo | None, interval: Interval, *, write: bool) -> None:
        if not self._enabled:
            return
        user = self._authenticated_user(info)
        if ROOT_ROLE in user.roles:
            return
        perms = self._perm_cache.get(info.username)  # type: ignore[union-attr]
        if perms is None:
            perms = UserPermissions.from_roles(self._roles[r] for r in user.roles if r in self._roles)
            self._perm_cache[info.username] = perms  # type: ignore[union-attr]
        if not (perms.write if write else perms.read).covers(interval):
            raise errors.ERR_PERMISSION_DENIED

    # -- mutations (apply) ---------------------------------------------------------------------

    def auth_enable(self) -> list[Record]:
        if self._enabled:
            return []
        root = self._users.get(ROOT_USER)
        if root is None:
            raise errors.ERR_ROOT_USER_NOT_EXIST
        if ROOT_ROLE not in root.roles:
            raise errors.ERR_ROOT_ROLE_NOT_EXIST
        self._enabled = True
        self._perm_cache.clear()
        if self._tokens is not None:
            self._tokens.enable()
        return [records.enabled_record(True)]

    def auth_disable(self) -> list[Record]:
        if not self._enabled:
            return []
        self._enabled = False
        if self._tokens is not None:
            self._tokens.disable()
        return [records.enabled_record(False), self._bump()]

    def user_add(self, name: str, password_hash: bytes, *, no_password: bool) -> list[Record]:
        """Add a user; ``password_hash`` is the bcrypt hash made before proposing (ignored if no_password)."""
        if not name:
            raise errors.ERR_USER_EMPTY
        if name in self._users:
            raise errors.ERR_USER_ALREADY_EXIST
        user = auth_pb2.User(name=name.encode())
        user.options.no_password = no_password
        if not no_password:
            user.password = password_hash
        self._users[name] = user
        return [records.user_record(user), self._bump()]

    def user_delete(self, name: str) -> list[Record]:
        if self._enabled and name == ROOT_USER:
            raise errors.ERR_INVALID_AUTH_MGMT
        self._get_user(name)
        del self._users[name]
        if self._tokens is not None:
            self._tokens.invalidate_user(name)
        return [records.user_delete_record(name), self._bump()]

    def user_change_password(self, name: str, password_hash: bytes) -> list[Record]:
        user = self._get_user(name)
        if not user.options.no_password:
            user.password = password_hash
        if self._tokens is not None:
            self._tokens.invalidate_user(name)
        return [records.user_record(user), self._bump()]

    def user_grant_role(self, name: str, role: str) -> list[Record]:
        user = self._get_user(name)
        if role != ROOT_ROLE and role not in self._roles:
            raise errors.ERR_ROLE_NOT_FOUND
        if role in user.roles:
            return []
        roles = sorted([*user.roles, role])
        del user.roles[:]
        user.roles.extend(roles)
        return [records.user_record(user), self._bump()]

    def user_revoke_role(self, name: str, role: str) -> list[Record]:
        if self._enabled and name == ROOT_USER and role == ROOT_ROLE:
            raise errors.ERR_INVALID_AUTH_MGMT
        user = self._get_user(name)
        if role not in user.roles:
            raise errors.ERR_ROLE_NOT_GRANTED
        user.roles.remove(role)
        return [records.user_record(user), self._bump()]

    def role_add(self, name: str) -> list[Record]:
        if not name:
            raise errors.ERR_ROLE_EMPTY
        if name in self._roles:
            raise errors.ERR_ROLE_ALREADY_EXIST
        role = auth_pb2.Role(name=name.encode())
        self._roles[name] = role
        return [records.role_record(role), self._bump()]

    def role_delete(self, name: str) -> list[Record]:
        if self._enabled and name == ROOT_ROLE:
            raise errors.ERR_INVALID_AUTH_MGMT
        if name not in self._roles:
            raise errors.ERR_ROLE_NOT_FOUND
        del self._roles[name]
        out = [records.role_delete_record(name)]
        for user in self._users.values():
            if name in user.roles:
                user.roles.remove(name)
                out.append(records.user_record(user))
        out.append(self._bump())
        return out

    def role_grant_permission(self, name: str, perm: auth_pb2.Permission | None) -> list[Record]:
        """Grant ``perm``; a grant on the same (key, range_end) as the first grant at that key replaces its type."""
        role = self._roles.get(name)
        if role is None:
            raise errors.ERR_ROLE_NOT_FOUND
        if perm is None:
            raise errors.ERR_PERMISSION_NOT_GIVEN
        perms = [_copy_perm(p) for p in role.keyPermission]
        i = bisect.bisect_left([p.key for p in perms], perm.key)
        if i < len(perms) and perms[i].key == perm.key and perms[i].range_end == perm.range_end:
            role.keyPermission[i].permType = perm.permType
        else:
            perms.append(_copy_perm(perm))
            perms.sort(key=lambda p: p.key)
            del role.keyPermission[:]
            role.keyPermission.extend(perms)
        return [records.role_record(role), self._bump()]

    def role_revoke_permission(self, name: str, key: bytes, range_end: bytes) -> list[Record]:
        role = self._roles.get(name)
        if role is None:
            raise errors.ERR_ROLE_NOT_FOUND
        kept = [p for p in role.keyPermission if p.key != key or p.range_end != range_end]
        if len(kept) == len(role.keyPermission):
            raise errors.ERR_PERMISSION_NOT_GRANTED
        kept = [_copy_perm(p) for p in kept]
        del role.keyPermission[:]
        role.keyPermission.extend(kept)
        return [records.role_record(role), self._bump()]

    # -- helpers -------------------------------------------------------------------------------

    def _get_user(self, name: str) -> auth_pb2.User:
        user = self._users.get(name)
        if user is None:
            raise errors.ERR_USER_NOT_FOUND
        return user

    def _bump(self) -> Record:
        """Every change to users, roles or permissions: a new auth revision, and no stale cached permissions."""
        self._revision += 1
        self._perm_cache.clear()
        return records.revision_record(self._revision)


def _copy_perm(perm: auth_pb2.Permission) -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=perm.permType, key=perm.key, range_end=perm.range_end)
