"""etcdserverpb.Auth: etcd's Auth service. Changes go through the log; reads are served from the applied state.

Passwords never reach the log: UserAdd and UserChangePassword hash them here (bcrypt at --bcrypt-cost, off
the event loop) and propose only the hash; Authenticate checks the password here, against the hash stored at
some auth revision, and proposes only the user name and that revision (apply refuses it if the auth state
changed meanwhile, and the password is checked again, as etcd's Authenticate loops). The plaintext is
dropped when the call ends.

Access (the gate in auth_gate.py lets ADMIN methods through to root only): UserGet of oneself and RoleGet
of a role one holds are checked here (``check_user_get`` / ``check_role_get``).
"""

from __future__ import annotations

import random

import trio

from etcdx import errors
from etcdx.api.grpc.codec import decode
from etcdx.auth import passwords, simple_token
from etcdx.net.grpc_server import RpcContext, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import Authenticate, InternalRequest, UserPassword
from etcdx.server import caller
from etcdx.server.server import EtcdServer

_SALT_RNG = random.SystemRandom()


class AuthService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server
        self._cost = server.settings.bcrypt_cost

    def methods(self) -> dict[str, UnaryMethod]:
        p = "/etcdserverpb.Auth/"
        return {
            p + "AuthEnable": UnaryMethod(self.auth_enable),
            p + "AuthDisable": UnaryMethod(self.auth_disable),
            p + "AuthStatus": UnaryMethod(self.auth_status),
            p + "Authenticate": UnaryMethod(self.authenticate),
            p + "UserAdd": UnaryMethod(self.user_add),
            p + "UserGet": UnaryMethod(self.user_get),
            p + "UserList": UnaryMethod(self.user_list),
            p + "UserDelete": UnaryMethod(self.user_delete),
            p + "UserChangePassword": UnaryMethod(self.user_change_password),
            p + "UserGrantRole": UnaryMethod(self.user_grant_role),
            p + "UserRevokeRole": UnaryMethod(self.user_revoke_role),
            p + "RoleAdd": UnaryMethod(self.role_add),
            p + "RoleGet": UnaryMethod(self.role_get),
            p + "RoleList": UnaryMethod(self.role_list),
            p + "RoleDelete": UnaryMethod(self.role_delete),
            p + "RoleGrantPermission": UnaryMethod(self.role_grant_permission),
            p + "RoleRevokePermission": UnaryMethod(self.role_revoke_permission),
        }

    async def _propose(self, request: InternalRequest) -> bytes:
        return (await self._server.propose(request)).SerializeToString()

    async def _hash(self, password: str) -> bytes:
        return await trio.to_thread.run_sync(passwords.hash_password, password, self._cost, _SALT_RNG)

    async def auth_enable(self, data: bytes, ctx: RpcContext) -> bytes:
        return await self._propose(InternalRequest(auth_enable=decode(rpc_pb2.AuthEnableRequest, data)))

    async def auth_disable(self, data: bytes, ctx: RpcContext) -> bytes:
        return await self._propose(InternalRequest(auth_disable=decode(rpc_pb2.AuthDisableRequest, data)))

    async def auth_status(self, data: bytes, ctx: RpcContext) -> bytes:
        decode(rpc_pb2.AuthStatusRequest, data)
        auth = self._server.auth
        response = rpc_pb2.AuthStatusResponse(
            header=self._server.header(), enabled=auth.enabled, authRevision=auth.revision
        )
        return response.SerializeToString()

    async def authenticate(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.AuthenticateRequest, data)
        auth = self._server.auth
        while True:
            hashed, revision = auth.password_hash_of(request.name)
            if not await trio.to_thread.run_sync(passwords.password_matches, request.password, hashed):
                raise errors.ERR_AUTH_FAILED
            proposal = Authenticate(
                name=request.name, checked_revision=revision, simple_prefix=simple_token.new_prefix(_SALT_RNG)
            )
            try:
                return await self._propose(InternalRequest(authenticate=proposal))
            except errors.ERR_AUTH_OLD_REVISION:
                continue  # users or roles changed since the check: check the password against the new state

    async def user_add(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.AuthUserAddRequest, data)
        no_password = request.options.no_password
        hashed = b"" if no_password else await self._hash(request.password)
        proposal = UserPassword(name=request.name, password_hash=hashed, no_password=no_password)
        return await self._propose(InternalRequest(user_add=proposal))

    async def user_change_password(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.AuthUserChangePasswordRequest, data)
        proposal = UserPassword(name=request.name, password_hash=await self._hash(request.password))
        return await self._propose(InternalRequest(user_change_password=proposal))

    async def user_get(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.AuthUserGetRequest, data)
        auth = self._server.auth
        auth.check_user_get(caller.current(), request.name)
        response = rpc_pb2.AuthUserGetResponse(header=self._server.header(), roles=auth.user_get(request.name))
        return response.SerializeToString()

    async def user_list(self, data: bytes, ctx: RpcContext) -> bytes:
        decode(rpc_pb2.AuthUserListRequest, data)
        users = self._server.auth.user_list()
        return rpc_pb2.AuthUserListResponse(header=self._server.header(), users=users).SerializeToString()

    async def user_delete(self, data: bytes, ctx: RpcContext) -> bytes:
        return await self._propose(InternalRequest(user_delete=decode(rpc_pb2.AuthUserDeleteRequest, data)))

    async def user_grant_role(self, data: bytes, ctx: RpcContext) -> bytes:
        return await self._propose(InternalRequest(user_grant_role=decode(rpc_pb2.AuthUserGrantRoleRequest, data)))

    async def user_revoke_role(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.AuthUserRevokeRoleRequest, data)
        return await self._propose(InternalRequest(user_revoke_role=request))

    async def role_add(self, data: bytes, ctx: RpcContext) -> bytes:
        return await self._propose(InternalRequest(role_add=decode(rpc_pb2.AuthRoleAddRequest, data)))

    async def role_get(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.AuthRoleGetRequest, data)
        auth = self._server.auth
        auth.check_role_get(caller.current(), request.role)
        response = rpc_pb2.AuthRoleGetResponse(header=self._server.header(), perm=auth.role_get(request.role))
        return response.SerializeToString()

    async def role_list(self, data: bytes, ctx: RpcContext) -> bytes:
        decode(rpc_pb2.AuthRoleListRequest, data)
        roles = self._server.auth.role_list()
        return rpc_pb2.AuthRoleListResponse(header=self._server.header(), roles=roles).SerializeToString()

    async def role_delete(self, data: bytes, ctx: RpcContext) -> bytes:
        return await self._propose(InternalRequest(role_delete=decode(rpc_pb2.AuthRoleDeleteRequest, data)))

    async def role_grant_permission(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.AuthRoleGrantPermissionRequest, data)
        return await self._propose(InternalRequest(role_grant_permission=request))

    async def role_revoke_permission(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.AuthRoleRevokePermissionRequest, data)
        return await self._propose(InternalRequest(role_revoke_permission=request))
