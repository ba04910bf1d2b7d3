"""gunicorn settings read from the working directory (the Procfile's `web` and bench/web).

After a worker has loaded the app, everything allocated so far (modules, SQLAlchemy
mappings, templates) is moved out of the garbage collector's sight with
`gc.freeze()`: otherwise every full collection walks those hundreds of thousands
of long-lived objects again, a pause of tens of milliseconds that shows up in the
p99 of requests running at the time.

Threads: the Procfile runs 16 per worker. A signup answer is padded to at least
MAILER_SIGNUP_MIN_SECONDS (anti-enumeration) by sleeping, which costs no CPU but
holds a thread; with 8 threads, bursts at 300 signups/s queued new visitors
behind sleeping requests (bench/web: p99 67-125 ms at 8 threads, 36 ms at 16).
"""

import gc


def post_worker_init(worker: object) -> None:
    gc.collect()
    gc.freeze()
