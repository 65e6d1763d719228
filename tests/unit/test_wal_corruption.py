"""The WAL corruption suite, on real WAL files: every kind of damage at many offsets ends in exactly one of

- start-up refuses, naming the segment file and the offset, and every file is byte-for-byte unchanged; or
- a torn tail is cut and every acknowledged (fsynced) record is still there.

The log under test is written as a server writes it: one job (append + sync) per acknowledged entry, entry
sizes spread so that records straddle 512-byte sectors. ``WAL_CORRUPTION_STRIDE`` (env) thins the offsets
tried (1 = every byte of every record; CI runs a stride that still hits every field of every record).
"""

from __future__ import annotations

import os
import pathlib
import random
import shutil

import pytest
import trio

from etcdx.cli.wal_command import main as wal_main
from etcdx.pb.etcdxpb.raft_pb2 import Entry, HardState
from etcdx.wal import record
from etcdx.wal.record import RecordType
from etcdx.wal.scan import MAX_RECORD_BYTES, SECTOR
from etcdx.wal.wal import WAL, WalCorruptError, WalGapError

ACKED = 24
STRIDE = int(os.environ.get("WAL_CORRUPTION_STRIDE", "7"))


def entry(index: int) -> Entry:
    return Entry(term=2, index=index, data=bytes([65 + index % 26]) * (37 * index % 700 + 1))


async def write_log(directory: pathlib.Path, count: int, segment_bytes: int = 32768) -> None:
    wal, _ = await WAL.open(str(directory), segment_bytes=segment_bytes)
    for index in range(1, count + 1):
        wal.append([entry(index)], HardState(term=2, vote=1, commit=index))
        await wal.sync()
    await wal.close()


def snapshot(directory: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, end, type) of every record of a segment."""
    found, offset = [], 0
    while (decoded := record.decode_at(data, offset)).kind == "record":
        found.append((offset, decoded.next_offset, decoded.record_type))
        offset = decoded.next_offset
    return found


def open_outcome(directory: pathlib.Path, acked: int) -> str:
    """Opens the log and checks the rule; returns "refused" or "opened"."""
    before = snapshot(directory)

    async def open_it():
        wal, replay = await WAL.open(str(directory))
        await wal.close()
        return replay

    try:
        replay = trio.run(open_it)
    except WalCorruptError as exc:
        assert snapshot(directory) == before, "a refused start-up changed the files"
        assert os.path.basename(exc.path) in str(exc) and f"at offset {exc.offset}" in str(exc)
        return "refused"
    indexes = [e.index for e in replay.entries]
    assert indexes[:acked] == list(range(1, acked + 1)), f"acknowledged entries lost: {indexes}"
    assert all(e == entry(e.index) for e in replay.entries)
    return "opened"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[pathlib.Path, str, bytes]:
    directory = tmp_path_factory.mktemp("pristine")
    trio.run(write_log, directory, ACKED)
    [name] = [n for n in os.listdir(directory) if n.endswith(".wal")]
    return directory, name, (directory / name).read_bytes()


def damaged_copy(tmp_path: pathlib.Path, pristine, label: str, data: bytes) -> pathlib.Path:
    source, name, _ = pristine
    directory = tmp_path / label
    shutil.copytree(source, directory)
    (directory / name).write_bytes(data)
    return directory


def different(byte: int, rng: random.Random) -> int:
    """A non-zero byte other than ``byte`` (damage that writes something, not a lost sector)."""
    return rng.choice([b for b in range(1, 256) if b != byte])


def field_damages(data: bytes, rng: random.Random):
    """(label, damaged data) for each field of each record: length, CRC, type, payload."""
    for offset, end, _ in records(data):
        length = end - offset - record.HEADER_SIZE
        for new_length in {length + 1, length - 1, length + 1000, 0, MAX_RECORD_BYTES + 1, 0xFFFFFFF0}:
            damaged = bytearray(data)
            damaged[offset : offset + 4] = new_length.to_bytes(4, "little")
            yield f"length{offset}-{new_length}", bytes(damaged)
        for position in [offset + 4 + rng.randrange(4), offset + 8] + list(range(offset + 9, end, STRIDE)):
            damaged = bytearray(data)
            damaged[position] = different(damaged[position], rng)
            kind = "crc" if position < offset + 8 else "type" if position == offset + 8 else "payload"
            yield f"{kind}{position}", bytes(damaged)


def test_every_damaged_field_is_refused_or_loses_nothing(tmp_path, pristine):
    _, _, data = pristine
    rng = random.Random(8)
    outcomes = {"refused": 0, "opened": 0}
    for label, damaged in field_damages(data, rng):
        outcomes[open_outcome(damaged_copy(tmp_path, pristine, label, damaged), ACKED)] += 1
    # Non-zero damage to acknowledged records is never taken for a torn write.
    assert outcomes["opened"] == 0, outcomes
    assert outcomes["refused"] > 200


def test_a_zeroed_sector_before_the_last_sync_is_refused(tmp_path, pristine):
    _, _, data = pristine
    last_job = max(o for o, _, t in records(data) if t == RecordType.SYNC_START)
    for sector in range(0, last_job // SECTOR):
        damaged = bytearray(data)
        damaged[sector * SECTOR : (sector + 1) * SECTOR] = bytes(SECTOR)
        directory = damaged_copy(tmp_path, pristine, f"sector{sector}", bytes(damaged))
        assert open_outcome(directory, ACKED) == "refused", sector


def test_garbage_after_the_tail_never_loses_a_record(tmp_path, pristine):
    _, _, data = pristine
    end = records(data)[-1][1]
    rng = random.Random(9)
    seen = set()
    for start in range(end, end + 2 * SECTOR, STRIDE):
        garbage = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 300)))
        damaged = data[:start] + garbage + data[start + len(garbage) :]
        seen.add(open_outcome(damaged_copy(tmp_path, pristine, f"garbage{start}", damaged), ACKED))
    assert "refused" in seen


def test_damaged_length_in_the_last_segment_stops_start_up(tmp_path):
    """The reproduction from the review: 10 records, the 2nd one's length damaged. It used to replay 2 of
    10 with no error; now start-up refuses and names the place."""
    trio.run(write_log, tmp_path, 10)
    [name] = [n for n in os.listdir(tmp_path) if n.endswith(".wal")]
    data = bytearray((tmp_path / name).read_bytes())
    second_entry = [o for o, _, t in records(bytes(data)) if t == RecordType.ENTRY][1]
    for new_length in (0x7FFFFFFF, len(data), 5000):
        data[second_entry : second_entry + 4] = new_length.to_bytes(4, "little")
        (tmp_path / name).write_bytes(bytes(data))
        before = snapshot(tmp_path)
        with pytest.raises(WalCorruptError, match=f"{name} at offset {second_entry}"):
            trio.run(WAL.open, str(tmp_path))
        assert snapshot(tmp_path) == before


def test_a_power_cut_that_loses_any_sectors_of_the_last_sync_keeps_every_acknowledged_record(tmp_path, pristine):
    """A true torn tail: the last job (entries never acknowledged) lost a random subset of its sectors."""
    source, name, acked_data = pristine
    acked_end = records(acked_data)[-1][1]

    async def unacknowledged_job(directory: pathlib.Path) -> None:
        wal, _ = await WAL.open(str(directory))
        wal.append([entry(i) for i in range(ACKED + 1, ACKED + 9)], HardState(term=2, vote=1, commit=ACKED + 8))
        await wal.sync()
        await wal.close()

    full = tmp_path / "full"
    shutil.copytree(source, full)
    trio.run(unacknowledged_job, full)
    data = (full / name).read_bytes()
    job_end = records(data)[-1][1]
    sectors = list(range(acked_end // SECTOR, (job_end - 1) // SECTOR + 1))
    rng = random.Random(10)
    cut = 0
    for case in range(60):
        lost = rng.sample(sectors, rng.randrange(1, len(sectors) + 1))
        damaged = bytearray(data)
        for sector in lost:  # a lost sector keeps what was durable before the job: the acked bytes
            start = max(sector * SECTOR, acked_end)
            damaged[start : (sector + 1) * SECTOR] = bytes((sector + 1) * SECTOR - start)
        directory = tmp_path / f"cut{case}"
        shutil.copytree(full, directory)
        (directory / name).write_bytes(bytes(damaged))
        assert open_outcome(directory, ACKED) == "opened", lost
        cut += any(n.startswith(name + ".torn-") for n in os.listdir(directory))
    assert cut > 0


def test_repair_cuts_at_the_damage_and_keeps_a_copy(tmp_path, pristine, capsys):
    _, name, data = pristine
    offset = [o for o, _, t in records(data) if t == RecordType.ENTRY][5]
    damaged = bytearray(data)
    damaged[offset + 12] ^= 0x5A
    directory = damaged_copy(tmp_path, pristine, "repair", bytes(damaged))
    data_dir = tmp_path / "data"
    (data_dir / "member").mkdir(parents=True)
    shutil.move(directory, data_dir / "member" / "wal")
    wal_dir = data_dir / "member" / "wal"
    assert open_outcome(wal_dir, ACKED) == "refused"

    assert wal_main(["repair", "--data-dir", str(data_dir)]) == 0
    assert f"cut {wal_dir / name} at offset {offset}" in capsys.readouterr().out
    [backup] = [p for p in wal_dir.iterdir() if p.is_dir()]
    assert (backup / name).read_bytes() == bytes(damaged)  # what was cut is kept

    async def reopen():
        wal, replay = await WAL.open(str(wal_dir))
        await wal.close()
        return [e.index for e in replay.entries]

    assert trio.run(reopen) == [1, 2, 3, 4, 5]
    assert wal_main(["repair", "--data-dir", str(data_dir)]) == 0
    assert "no damage found" in capsys.readouterr().out


def test_a_missing_segment_or_a_backend_ahead_stops_start_up(tmp_path):
    trio.run(write_log, tmp_path, 60, 4096)
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith(".wal"))
    assert len(names) >= 4
    with pytest.raises(WalGapError, match="backend is ahead of the WAL"):
        trio.run(lambda: WAL.open(str(tmp_path), after_index=61))
    os.rename(tmp_path / names[1], tmp_path / "elsewhere")
    with pytest.raises(WalGapError, match="segment is missing"):
        trio.run(WAL.open, str(tmp_path))
    with pytest.raises(WalGapError, match="backend is ahead of the WAL"):
        trio.run(lambda: WAL.open(str(tmp_path / "empty"), after_index=3))
