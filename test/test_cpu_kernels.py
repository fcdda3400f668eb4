"""cpu_kernels: how the package's compiled kernels are run, and what a user sees while they compile."""
import threading
import time

from lrm4d_ros import cpu_kernels


def test_a_slow_first_use_says_it_is_compiling(monkeypatch, capsys):
    monkeypatch.setattr(cpu_kernels, "COMPILE_NOTE_S", 0.05)
    monkeypatch.setattr(cpu_kernels, "_COMPILED", threading.Event())
    assert not cpu_kernels.compiled_in_process()
    calls = []

    def kernel(i, out):  # the first call stands in for numba compiling
        time.sleep(0.3 if not calls else 0.0)
        calls.append(i)
        out[i] = i * i

    out, state = {}, []
    assert cpu_kernels.run_parts(kernel, [(0, out), (1, out), (2, out)], state, "test sweep", "torch")
    assert "compiling the test sweep (first use" in capsys.readouterr().err
    assert cpu_kernels.compiled_in_process()  # the commands' timings then say they include it
    assert state == [True] and out == {0: 0, 1: 1, 2: 4}
    assert cpu_kernels.run_parts(kernel, [(3, out)], state, "test sweep", "torch") and out[3] == 9
    assert capsys.readouterr().err == ""  # said once, and not for a fast use


def test_a_kernel_that_fails_is_reported_and_its_state_recorded(recwarn):
    def kernel(_):
        raise RuntimeError("no compiler")

    state = []
    assert not cpu_kernels.run_parts(kernel, [(0,), (1,)], state, "test sweep", "torch")
    assert state == [False] and any("compiled test sweep unavailable" in str(w.message) for w in recwarn)
