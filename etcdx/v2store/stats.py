"""The v2 store's operation counters, as /v2/stats/store shows them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StoreStats:
    gets_success: int = 0
    gets_fail: int = 0
    sets_success: int = 0
    sets_fail: int = 0
    delete_success: int = 0
    delete_fail: int = 0
    update_success: int = 0
    update_fail: int = 0
    create_success: int = 0
    create_fail: int = 0
    compare_and_swap_success: int = 0
    compare_and_swap_fail: int = 0
    compare_and_delete_success: int = 0
    compare_and_delete_fail: int = 0
    expire_count: int = 0

    def fields(self, watchers: int) -> dict[str, int]:
        """etcd's JSON field names and order."""
        return {
            "getsSuccess": self.gets_success,
            "getsFail": self.gets_fail,
            "setsSuccess": self.sets_success,
            "setsFail": self.sets_fail,
            "deleteSuccess": self.delete_success,
            "deleteFail": self.delete_fail,
            "updateSuccess": self.update_success,
            "updateFail": self.update_fail,
            "createSuccess": self.create_success,
            "createFail": self.create_fail,
            "compareAndSwapSuccess": self.compare_and_swap_success,
            "compareAndSwapFail": self.compare_and_swap_fail,
            "compareAndDeleteSuccess": self.compare_and_delete_success,
            "compareAndDeleteFail": self.compare_and_delete_fail,
            "expireCount": self.expire_count,
            "watchers": watchers,
        }
