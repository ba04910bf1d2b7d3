"""Business logic. Services take plain arguments and a session, never `flask.request`."""
