"""gunicorn settings read from the working directory (the Procfile's `web` and bench/web).

After a worker has loaded the app, everything allocated so far (modules, SQLAlchemy
mappings, templates) is moved out of the garbage collector's sight with
`gc.freeze()`: otherwise every full collection walks those hundreds of thousands
of long-lived objects again, a pause of tens of milliseconds that shows up in the
p99 of requests running at the time.
"""

import gc


def post_worker_init(worker: object) -> None:
    gc.collect()
    gc.freeze()
