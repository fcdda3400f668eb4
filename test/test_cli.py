"""`lrm4d`'s dispatcher: a warning while a command runs is one line that names the command; a signal ends it with
one line; outputs that cannot be written are refused up front."""
import os
import signal
import sys
import time
import types
import warnings

from lrm4d_ros import cli
from lrm4d_ros.io.bag import BagWarning


def test_a_warning_during_a_command_is_one_line_naming_it(monkeypatch, capsys):
    command = types.ModuleType("lrm4d_fake_command")
    command.add_arguments = lambda p: None

    def run(args):
        warnings.warn("/cam1/depth: 2 of 12 depth images have no colour image\n  with their stamp: skipped",
                      BagWarning)
        return 0

    command.run = run
    monkeypatch.setitem(sys.modules, command.__name__, command)
    monkeypatch.setitem(cli.COMMANDS, "fake", (command.__name__, "a stand-in command"))
    monkeypatch.setattr(sys, "argv", ["lrm4d"])
    shown = warnings.showwarning
    assert cli.main(["fake"]) == 0
    # no file:line, no source line, no category name: the message on one line
    assert capsys.readouterr().err == ("lrm4d fake: warning: /cam1/depth: 2 of 12 depth images have no colour image "
                                       "with their stamp: skipped\n")
    assert warnings.showwarning is shown  # put back after the command


def _fake_command(monkeypatch, run) -> None:
    command = types.ModuleType("lrm4d_fake_command")
    command.add_arguments = lambda p: None
    command.run = run
    monkeypatch.setitem(sys.modules, command.__name__, command)
    monkeypatch.setitem(cli.COMMANDS, "fake", (command.__name__, "a stand-in command"))
    monkeypatch.setattr(sys, "argv", ["lrm4d"])


def test_ctrl_c_and_sigterm_end_a_command_with_one_line_and_128_plus_the_signal(monkeypatch, capsys):
    """Ctrl-C in a long command is one line, not a traceback, and exit 130; SIGTERM (a scheduler, `timeout`)
    unwinds the same way (so that `finally` and `with` close the outputs) and exits 143; the SIGTERM handler is
    put back after the command."""
    def interrupted(args):
        raise KeyboardInterrupt

    _fake_command(monkeypatch, interrupted)
    assert cli.main(["fake"]) == 130
    assert capsys.readouterr().err == "lrm4d fake: interrupted (Ctrl-C)\n"

    closed = []

    def terminated(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at the main thread's next bytecode
        finally:
            closed.append(True)
        return 0

    before = signal.getsignal(signal.SIGTERM)
    _fake_command(monkeypatch, terminated)
    assert cli.main(["fake"]) == 143
    assert capsys.readouterr().err == "lrm4d fake: interrupted (SIGTERM)\n" and closed == [True]
    assert signal.getsignal(signal.SIGTERM) is before


def test_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path, capsys):
    """check_writable: a folder in a file's place, a file in a folder's, a read-only place (/sys refuses even
    root); `lrm4d evaluate` refuses such a --json before it opens a bag."""
    import pytest

    from lrm4d_ros.outputs import check_writable

    (tmp_path / "afile").write_text("")
    check_writable(tmp_path / "new" / "deeper", "--out")  # created later, by the command
    check_writable(tmp_path / "afile", "--json", is_dir=False)
    with pytest.raises(NotADirectoryError, match="--out .*afile is a file"):
        check_writable(tmp_path / "afile", "--out")
    with pytest.raises(NotADirectoryError, match="afile is a file, not a directory"):
        check_writable(tmp_path / "afile" / "x", "--out")
    with pytest.raises(NotADirectoryError, match="is a directory, not a file name"):
        check_writable(tmp_path, "--json", is_dir=False)
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("no /sys here")
    with pytest.raises(PermissionError, match="--json /sys/kernel/x.json cannot be written"):
        check_writable("/sys/kernel/x.json", "--json", is_dir=False)
    assert cli.main(["evaluate", str(tmp_path / "no_bag_needed"), "--protocol", "rig", "--json",
                     "/sys/kernel/x.json"]) == 2
    assert "lrm4d evaluate: error: --json /sys/kernel/x.json cannot be written" in capsys.readouterr().err
