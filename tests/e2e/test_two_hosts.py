"""Scale-out, shown: workers on two separate hosts (network namespaces with their
own addresses, created here) share one PostgreSQL, Redis and SMTP server over a
network. One host's workers are killed mid-send; the other host finishes the
edition and every reader gets the message exactly once (a message whose SMTP
transaction was cut by the kill may be `unknown`, never sent twice)."""

from __future__ import annotations

import os
import signal
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.test_faults import assert_each_once, make_stack  # noqa: F401 - fixture
from tests.support import netns, processes, services

pytestmark = pytest.mark.e2e

NET = 77


def _move(url: str, host: str) -> str:
    """The same service URL, reached at `host` (the forwarder) instead of 127.0.0.1."""
    parts = urlsplit(url)
    netloc = parts.netloc.replace("127.0.0.1", host).replace("localhost", host)
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def hosts():  # type: ignore[no-untyped-def]
    if not netns.available():
        if os.environ.get("CI"):
            pytest.fail("network namespaces are needed (root and iproute2)")
        pytest.skip("needs root and iproute2 for network namespaces")
    made = [netns.Host(NET, 1), netns.Host(NET, 2)]
    try:
        for host in made:
            host.create()
        yield made
    finally:
        for host in made:
            host.destroy()


def test_workers_on_two_hosts_one_killed_mid_send(make_stack, hosts):  # noqa: F811
    stack, _ = make_stack()
    emails = stack.add_readers(2000)
    stack.smtp.handler.data_delay = 0.003
    pg_port = urlsplit(stack.env["MAILER_DATABASE_URL"]).port or 5432
    redis_port = urlsplit(services.REDIS_URL).port or 6379
    smtp_port = urlsplit(stack.env["MAILER_SMTP_URL"]).port
    assert smtp_port is not None
    with netns.Forwarder() as forwarder:
        workers = {}
        for host in hosts:
            for port in (pg_port, redis_port, smtp_port):
                forwarder.forward(host.host_ip, port, port)
            env = dict(stack.env)
            for name in ("MAILER_DATABASE_URL", "MAILER_BROKER_URL", "MAILER_SMTP_URL"):
                env[name] = _move(env[name], host.host_ip)
            args = [str(processes.BIN / "celery"), "-A", "workers.celery_app", "worker",
                    "--loglevel", "INFO", "--concurrency", "2", "--without-gossip",
                    "--without-mingle", "-n", f"{host.name}@%h"]
            proc = processes.Proc(host.name, host.command(args), env, stack.log_dir)
            stack.procs.append(proc)
            workers[host.name] = proc
        beat_env = dict(stack.env)
        for name in ("MAILER_DATABASE_URL", "MAILER_BROKER_URL", "MAILER_SMTP_URL"):
            beat_env[name] = _move(beat_env[name], hosts[1].host_ip)
        beat = processes.Proc("beat", hosts[1].command(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel",
             "INFO"]), beat_env, stack.log_dir)
        stack.procs.append(beat)

        edition_id = stack.start_edition()
        # Both hosts at work: each has opened SMTP connections through its own address.
        stack.wait(lambda: all(forwarder.connections[(h.host_ip, smtp_port)] for h in hosts)
                   and stack.smtp.handler.count() > 300, 120, "both hosts to be sending")
        killed = workers[hosts[0].name]
        os.killpg(killed.popen.pid, signal.SIGKILL)
        killed.popen.wait(timeout=20)
        count_at_kill = stack.smtp.handler.count()
        assert count_at_kill < len(emails)

        stack.wait_done(edition_id, timeout=240)
        ledger = assert_each_once(stack, edition_id, emails)
        statuses = set(ledger.values())
        assert statuses <= {"sent", "unknown"}
        # A kill -9 cuts at most one SMTP transaction per connection of that host
        # (two pool processes, each running one lane with its connections).
        settings = stack.app.extensions["mailer"].settings
        assert list(ledger.values()).count("unknown") <= 2 * settings.lane_connections
