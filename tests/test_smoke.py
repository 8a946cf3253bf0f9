from avfs_git.core.operations import checkpoint, history


def test_write_checkpoint_log(vault, ws):
    ws.write("a.txt", b"a\n")
    res = checkpoint.save(vault, "main", name="one")
    assert res.created
    assert next(c.checkpoints for c in history.log(vault, "main")) == ["one"]


def test_cli_json_status(cli, vault):
    r = cli("--json", "--vault", "v", "status")
    assert r.code == 0, r.err
    assert r.json()["kind"] == "status"
