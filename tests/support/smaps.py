"""What a process maps of a file, from /proc/<pid>/smaps (tests of the backend's release_mapped_pages)."""

from __future__ import annotations

import os


def mapped_kib(path: str, pid: int | str = "self") -> int:
    """The resident KiB of process ``pid``'s maps of the file at ``path`` (matched by inode)."""
    inode = os.stat(path).st_ino
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and fields[4].isdigit():
                inside = int(fields[4]) == inode
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total
