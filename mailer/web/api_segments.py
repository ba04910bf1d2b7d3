"""API: audiences (segments): saved rules over readers, and a live count."""

from __future__ import annotations

from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Segment
from mailer.segments import checked_definition, count_readers, get_segment, save_segment, segment_json
from mailer.web.api import api_blueprint, json_body, route
from mailer.web.api_schemas import Error, SegmentCount, SegmentCountIn, SegmentIn, SegmentList, SegmentOut

api_segments = api_blueprint("api_segments")


@route(api_segments, "POST", "/segments", "Save an audience", body=SegmentIn,
       ok={201: SegmentOut}, errors={409: Error})
def create_segment(body: SegmentIn) -> tuple[SegmentOut, int]:
    # The rules' fields, operators and values are checked by the service (names the rule).
    segment = save_segment(db.session, json_body())
    return SegmentOut.model_validate(segment_json(db.session, segment)), 201


@route(api_segments, "GET", "/segments", "Audiences", ok={200: SegmentList})
def list_segments() -> SegmentList:
    rows = db.session.scalars(select(Segment).order_by(Segment.name))
    return SegmentList.model_validate(
        {"segments": [segment_json(db.session, s, with_count=False) for s in rows]})


@route(api_segments, "GET", "/segments/<int:segment_id>", "An audience with its count",
       ok={200: SegmentOut})
def show_segment(segment_id: int) -> SegmentOut:
    return SegmentOut.model_validate(segment_json(db.session, get_segment(db.session, segment_id)))


@route(api_segments, "PUT", "/segments/<int:segment_id>", "Change an audience", body=SegmentIn,
       ok={200: SegmentOut}, errors={409: Error})
def change_segment(segment_id: int, body: SegmentIn) -> SegmentOut:
    segment = save_segment(db.session, json_body(), get_segment(db.session, segment_id))
    return SegmentOut.model_validate(segment_json(db.session, segment))


@route(api_segments, "POST", "/segments/count", "Count the readers rules match (nothing saved)",
       body=SegmentCountIn, ok={200: SegmentCount})
def count_segment(body: SegmentCountIn) -> SegmentCount:
    data = {k: v for k, v in json_body().items() if k != "name"}
    return SegmentCount(count=count_readers(db.session, checked_definition(db.session, data)))
