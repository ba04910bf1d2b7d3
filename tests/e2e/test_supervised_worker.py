"""The worker as the Procfile runs it, under `workers.supervise`: a group-wide
SIGTERM (what honcho and many supervisors send) is a warm shutdown that leaves no
reader `unknown` and lets the next worker carry on at once; a crashed worker is
restarted instead of stopping the rest of the stack."""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest

from tests.e2e.test_faults import assert_each_once, make_stack  # noqa: F401 - fixture
from tests.support import processes

pytestmark = pytest.mark.e2e


def supervised_worker(stack, name: str) -> processes.Proc:  # type: ignore[no-untyped-def]
    proc = processes.Proc(name, [sys.executable, "-m", "workers.supervise",
                                 str(processes.BIN / "celery"), "-A", "workers.celery_app", "worker",
                                 "--loglevel", "INFO", "--concurrency", "2", "--without-gossip",
                                 "--without-mingle", "-n", f"{name}@%h"], stack.env, stack.log_dir)
    stack.procs.append(proc)
    return proc


def celery_main(proc: processes.Proc) -> int | None:
    children = psutil.Process(proc.popen.pid).children()
    return children[0].pid if children else None


def test_group_sigterm_is_a_warm_shutdown_and_the_next_worker_carries_on(make_stack):  # noqa: F811
    stack, _ = make_stack()
    emails = stack.add_readers(1500)
    stack.smtp.handler.data_delay = 0.004  # ~250/s per connection: the stop lands mid-send
    worker = supervised_worker(stack, "supervised")
    edition_id = stack.start_edition()
    stack.wait(lambda: stack.smtp.handler.count() > 150, 90, "the send to be under way")

    asked = time.monotonic()
    os.killpg(worker.popen.pid, signal.SIGTERM)  # as honcho does on Ctrl-C
    worker.popen.wait(timeout=15)
    stopped_after = time.monotonic() - asked
    assert stopped_after < 5, f"warm shutdown took {stopped_after:.1f}s (honcho kills after 5)"
    ledger = stack.ledger(edition_id)
    assert "unknown" not in ledger.values()
    assert "sending" not in ledger.values()
    sent_before = stack.smtp.handler.count()
    assert sent_before < len(emails)

    restarted = time.monotonic()
    stack.worker("plain")  # no beat: the lanes re-queued themselves
    stack.wait_done(edition_id, timeout=120)
    ledger = assert_each_once(stack, edition_id, emails)
    assert set(ledger.values()) == {"sent"}
    # No stall waiting for leases or the sweeper: the remaining readers at the sink's pace.
    assert time.monotonic() - restarted < 60


def test_a_crashed_worker_is_restarted_by_its_supervisor(make_stack):  # noqa: F811
    stack, _ = make_stack()
    worker = supervised_worker(stack, "crashy")
    first = stack.wait(lambda: celery_main(worker), 30, "celery to start")
    os.kill(int(first), signal.SIGKILL)
    second = stack.wait(lambda: (pid := celery_main(worker)) and pid != first and pid, 30,
                        "the supervisor to start celery again")
    assert second != first
    assert worker.popen.poll() is None  # the supervisor itself kept running
    assert "restarting" in worker.output()


def test_a_killed_supervisor_takes_its_worker_with_it(make_stack):  # noqa: F811
    stack, _ = make_stack()
    worker = supervised_worker(stack, "orphan")
    celery_pid = int(stack.wait(lambda: celery_main(worker), 30, "celery to start"))
    os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait(timeout=10)
    stack.wait(lambda: not psutil.pid_exists(celery_pid)
               or psutil.Process(celery_pid).status() == psutil.STATUS_ZOMBIE,
               60, "the orphaned worker to stop")
