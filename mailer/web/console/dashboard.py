"""Dashboard and reports: reader growth, recent editions and their rates, charts."""

from __future__ import annotations

from collections.abc import Sequence

from flask import render_template, request

from mailer.console import (
    EditionStats,
    activity_series,
    clicks_per_article,
    net_growth,
    reader_counts,
    reader_growth,
    recent_editions,
    unsubscribe_reasons,
)
from mailer.extensions import db
from mailer.readers import UNSUBSCRIBE_REASONS
from mailer.runtime import runtime
from mailer.web.console.auth import viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.charts import bar_chart, line_chart


def _edition_label(s: EditionStats) -> str:
    return f"#{s.id}"


@console.get("/")
@viewer_required
def dashboard() -> str:
    counts = reader_counts(db.session)
    growth = reader_growth(db.session, days=30)
    recent = recent_editions(db.session, limit=10)
    growth_chart = line_chart("New readers per day, last 30 days",
                              [d.strftime("%d %b") for d, _ in growth],
                              {"readers": [n for _, n in growth]})
    rates_chart = bar_chart("Open and click rates (%) of recent editions",
                            [(_edition_label(s), {"opens": s.open_rate, "clicks": s.click_rate})
                             for s in reversed(recent)], integer=False)
    return render_template("console/dashboard.html", counts=counts, total=sum(counts.values()),
                           growth=growth, recent=recent, growth_chart=growth_chart,
                           rates_chart=rates_chart)


REPORT_DAYS = (7, 30, 90, 365)


@console.get("/reports")
@viewer_required
def reports() -> str:
    try:
        days = int(request.args.get("days", REPORT_DAYS[0]))
    except ValueError:
        days = REPORT_DAYS[0]
    days = days if days in REPORT_DAYS else REPORT_DAYS[0]
    series = activity_series(db.session, days=days)
    labels = [d.strftime("%d %b") for d, _ in series["sends"]]
    tracking = runtime().settings.tracking
    # Without tracking, opens and clicks are unknown: no line pretends they were zero.
    measured: dict[str, Sequence[float]] = {
        name: [n for _, n in values] for name, values in series.items()
        if tracking or name not in ("opens", "clicks")}
    over_time = line_chart(f"Sends and reader actions per day, last {days} days", labels, measured)
    actions = line_chart("Reader actions per day", labels,
                         {name: values for name, values in measured.items() if name != "sends"})
    growth = net_growth(db.session, days=days)
    growth_chart = bar_chart(f"Readers gained and lost per day, last {days} days",
                             [(g.day.strftime("%d %b"), {"gained": g.gained, "lost": g.lost})
                              for g in growth])
    recent = recent_editions(db.session, limit=20)
    per_edition = bar_chart("Sends per edition",
                            [(_edition_label(s), {"sends": s.sent}) for s in reversed(recent)])
    per_edition_actions = bar_chart(
        "Opens, clicks, unsubscribes and bounces per edition",
        [(_edition_label(s), {**({"opens": s.opens, "clicks": s.clicks} if s.tracked else {}),
                              "unsubscribes": s.unsubscribes, "bounces": s.bounces})
         for s in reversed(recent)])
    return render_template("console/reports.html", days=days, day_choices=REPORT_DAYS,
                           series=series, over_time=over_time, actions=actions,
                           per_edition=per_edition, per_edition_actions=per_edition_actions,
                           recent=recent, growth=growth, growth_chart=growth_chart,
                           articles=clicks_per_article(db.session, days=days),
                           reasons=unsubscribe_reasons(db.session, days=days),
                           reason_labels=UNSUBSCRIBE_REASONS, tracking=tracking)
