"""Breaking-news alerts: one article sent now, through the delivery ledger, to the
readers of its topics who asked for alerts.
"""

from mailer.alerts.sending import ALERTS_DIGEST, alert_readers, send_alert

__all__ = ["ALERTS_DIGEST", "alert_readers", "send_alert"]
