"""etcd's errors: each raise is a fresh exception carrying etcd's code and text."""

from __future__ import annotations

import pytest

from etcdx import errors


def raise_compacted() -> None:
    raise errors.ERR_COMPACTED


def test_each_raise_is_a_fresh_instance_with_its_own_traceback():
    caught = []
    for _ in range(3):
        with pytest.raises(errors.EtcdError) as info:
            raise_compacted()
        caught.append(info.value)
    assert len({id(exc) for exc in caught}) == 3
    for exc in caught:
        assert (exc.code, exc.message, str(exc)) == (
            errors.StatusCode.OUT_OF_RANGE,
            "etcdserver: mvcc: required revision has been compacted",
            "etcdserver: mvcc: required revision has been compacted",
        )
        frames, tb = 0, exc.__traceback__
        while tb is not None:
            frames, tb = frames + 1, tb.tb_next
        assert frames == 2  # this test's frame and raise_compacted's: nothing from earlier raises


def test_errors_are_caught_by_their_own_type_and_as_etcd_errors():
    with pytest.raises(errors.ERR_FUTURE_REV):
        raise errors.ERR_FUTURE_REV
    assert not issubclass(errors.ERR_FUTURE_REV, errors.ERR_COMPACTED)
    assert errors.ERR_NO_SPACE.code == errors.StatusCode.RESOURCE_EXHAUSTED  # readable off the class
