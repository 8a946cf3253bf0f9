"""A home whose ``vaults/`` is a link (a person's bigger disk): followed, as a person's
dotfiles are; a link to another file system made `vault delete --force` exit 70 ("Invalid
cross-device link", after making the trash: the delete is a rename into
``<home>/trash``), and a link to nowhere made `vault create` exit 70 ("File exists").
Now both are `unusable_path` naming the link, nothing changed. docs/security.md, bad input.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]


def test_vaults_linked_to_another_file_system_work_and_a_delete_says_why_not(cli: Cli) -> None:
    home = os.environ["AVFS_HOME"]
    elsewhere = tempfile.mkdtemp(prefix="avfs-vaults-", dir="/dev/shm")  # (tmpfs: another file system)
    os.makedirs(home, exist_ok=True)
    try:
        assert os.stat(elsewhere).st_dev != os.stat(home).st_dev
        os.symlink(elsewhere, os.path.join(home, "vaults"))
        assert cli("vault", "create", "v").code == 0
        assert cli("--vault", "v", "write", "a.txt", "a").code == 0
        assert cli("--vault", "v", "checkpoint", "save").code == 0
        assert [v["name"] for v in cli("--json", "vault", "list").json()["vaults"]] == ["v"]
        before = _home_state(home)
        r = cli("--json", "vault", "delete", "v", "--force")
        assert r.code == 1 and r.out.count("\n") == 1, (r.code, r.out)  # (was 70, after making trash/)
        err = r.json()["error"]
        assert err["code"] == "unusable_path" and "another file system" in err["message"], err
        assert "nothing was changed" in err["message"] and err["hint"], err
        assert _changed(before, _home_state(home)) == [] and not os.path.exists(os.path.join(home, "trash"))
        assert cli("--vault", "v", "--json", "cat", "a.txt").json()["files"][0]["content"] == "a"
    finally:
        shutil.rmtree(elsewhere)
    # the link now leads nowhere: a create names it (was 70, "File exists")
    before = _home_state(home)
    r = cli("--json", "vault", "create", "w")
    assert r.code == 1 and r.out.count("\n") == 1, (r.code, r.out)
    err = r.json()["error"]
    assert (
        err["code"] == "unusable_path" and "does not exist" in err["message"] and elsewhere in err["message"]
    ), err
    assert _changed(before, _home_state(home)) == []
    os.unlink(os.path.join(home, "vaults"))
