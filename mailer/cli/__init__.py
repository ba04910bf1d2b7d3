"""The `flask --app mailer …` commands (and the `mailer` console script)."""
