from ragkit.cli.progress import TerminalProgress


def test_a_log_file_gets_a_plain_line_only_when_a_stage_outlasts_the_interval(capsys):
    quick = TerminalProgress(enabled=False)  # the default 30 s interval: a short stage prints nothing
    quick.stage("embedding chunks", 4)
    quick.advance(2)
    quick.done()
    assert capsys.readouterr().err == ""

    slow = TerminalProgress(enabled=False, log_every=1e-9)
    slow.stage("training", 8)
    slow.advance(2)
    slow.advance(4)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in err] == ["training: 2/8 (25%)", "training: 6/8 (75%)"]
    assert all("\r" not in line for line in err)


def test_log_lines_give_the_rate_and_the_time_left_from_an_updated_total(capsys, monkeypatch):
    import ragkit.cli.progress as progress

    clock = iter([100.0, 110.0, 120.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    p = TerminalProgress(enabled=False, log_every=1e-9)
    p.stage("embedding chunks", 100)  # t=100
    p.set_total(1000)  # a streamed ingest read more than it first guessed
    p.advance(500)  # t=110: 50/s, 500 left
    p.advance(100)  # t=120: 30/s, 400 left
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "embedding chunks: 500/1000 (50%), 10 s, 50.0/s, 10 s left"
    assert err[1] == "embedding chunks: 600/1000 (60%), 20 s, 30.0/s, 13 s left"
