"""`lrm4d`'s dispatcher: a warning while a command runs is one line that names the command."""
import sys
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
