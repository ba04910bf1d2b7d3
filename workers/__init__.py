"""Celery workers. This package imports `mailer`; `mailer` never imports it."""
