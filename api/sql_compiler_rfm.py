"""RFM in the compiled reads (issue 14): ``Customer.rfm``, a row of the snapshot of
``cdm rfm`` (null when the customer is not in it), and ``rfmSummary``, every named segment's
size and value. Enums render as strawberry renders them (the member's name), decimals as
``str(Decimal)``, floats as Python writes them (``sql.json_read.python_float``).
"""

from __future__ import annotations

from api import sql_compiler as core
from api.sql_compiler import Env, Sel, _object
from sql import json_segments as js


def _rfm(env: Env, sel: Sel, c: str) -> str:
    return js.rfm_of_customer(env.st, c, _object(env, sel.children, "Rfm", "rf"))


def _rfm_summary(env: Env, sel: Sel, _alias: str) -> str:
    return js.rfm_summary(env.st, _object(env, sel.children, "RfmSummary", "t"))


def _rfm_segments(env: Env, sel: Sel, t: str) -> str:
    return js.rfm_segment_sizes(env.st, _object(env, sel.children, "RfmSegmentSize", "q"), t)


core._SCALARS.update(
    {"Rfm": js.RFM, "RfmSummary": js.RFM_SUMMARY, "RfmSegmentSize": js.RFM_SEGMENT_SIZE}
)
core._NESTED["Query"].add("rfm_summary")
core._NESTED["Customer"].add("rfm")
core._NESTED["RfmSummary"] = {"segments"}
core._STATIC_NESTED.update({("Customer", "rfm"), ("RfmSummary", "segments")})
core._NESTED_RENDERERS.update(
    {
        ("Customer", "rfm"): _rfm,
        ("Query", "rfm_summary"): _rfm_summary,
        ("RfmSummary", "segments"): _rfm_segments,
    }
)
