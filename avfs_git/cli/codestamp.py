"""What names the avfs code a CLI call runs: the resident server (:mod:`.resident`) serves
only calls whose stamp is its own, and only while its code is unchanged on disk
(ops/codewatch.py). The stamp itself is computed by the console script's module,
:mod:`.client` (:func:`stamp`, :func:`package_dir`: re-exported here), before it knows
whether a server answers, with nothing imported: a served call loads that one module of
avfs (see :mod:`.launcher`)."""

from ..ops.codewatch import files_stamp
from .client import package_dir, stamp

__all__ = ["files_stamp", "package_dir", "stamp"]
