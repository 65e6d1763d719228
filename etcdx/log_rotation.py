"""--enable-log-rotation's file output: logging.handlers.RotatingFileHandler, with the backups named, compressed
and pruned as etcd's lumberjack does it: "<name>-<2006-01-02T15-04-05.000>.<ext>" (UTC unless localtime),
gzipped with compress, the newest ``max_backups`` kept (0: all) and none older than ``max_age_days`` (0: any).
"""

from __future__ import annotations

import datetime
import glob
import gzip
import os
import shutil
import time
from logging.handlers import RotatingFileHandler

from etcdx.log_config import LogRotation

MEGABYTE = 1024 * 1024
_STAMP = "%Y-%m-%dT%H-%M-%S"


class LumberjackFileHandler(RotatingFileHandler):
    def __init__(self, path: str, rotation: LogRotation) -> None:
        super().__init__(path, maxBytes=rotation.max_size_mb * MEGABYTE, encoding="utf-8")
        self._rotation = rotation
        base, self._ext = os.path.splitext(path)
        self._prefix = base + "-"

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        if self.stream:
            self.stream.close()
            self.stream = None
        if os.path.exists(self.baseFilename):
            backup = self._backup_name()
            os.rename(self.baseFilename, backup)
            if self._rotation.compress:
                with open(backup, "rb") as source, gzip.open(backup + ".gz", "wb") as target:
                    shutil.copyfileobj(source, target)
                os.remove(backup)
            self._prune()
        self.stream = self._open()

    def _backup_name(self) -> str:
        now = datetime.datetime.now() if self._rotation.local_time else datetime.datetime.now(datetime.UTC)
        return f"{self._prefix}{now.strftime(_STAMP)}.{now.microsecond // 1000:03d}{self._ext}"

    def backups(self) -> list[str]:
        """The backup files of this log, oldest first (their names sort by time)."""
        pattern = glob.escape(self._prefix) + "*" + glob.escape(self._ext)
        return sorted(glob.glob(pattern) + glob.glob(pattern + ".gz"))

    def _prune(self) -> None:
        backups = self.backups()
        doomed = set()
        if self._rotation.max_backups > 0:
            doomed.update(backups[: -self._rotation.max_backups])
        if self._rotation.max_age_days > 0:
            cutoff = time.time() - self._rotation.max_age_days * 86400
            doomed.update(path for path in backups if os.path.getmtime(path) < cutoff)
        for path in doomed:
            os.remove(path)
