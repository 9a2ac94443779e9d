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
