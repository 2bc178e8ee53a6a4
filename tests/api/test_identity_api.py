"""Duplicate candidates, merges and undo over HTTP, as a data steward's frontend uses them."""

from __future__ import annotations

from tests.factories import T0, add_customer, add_identity, add_purchase, days
from tests.http_client import data, error_codes, gql

CANDIDATES = """
query($first: Int, $minScore: Float, $customerId: ID) {
  duplicateCandidates(first: $first, minScore: $minScore, customerId: $customerId) {
    a { id fullName } b { id fullName } score blockingKeys
    evidence { field aValue bValue similarity kind }
  }
}"""

MERGE = """
mutation($survivor: ID!, $merged: [ID!]!, $dryRun: Boolean) {
  mergeCustomers(survivorId: $survivor, mergedIds: $merged, dryRun: $dryRun) {
    __typename
    ... on MergePlan { ...Plan }
    ... on MergeDone { mergeId survivor { id email phone purchaseSummary { purchaseCount } }
                       plan { ...Plan } }
    ... on ValidationFailed { errors { field code message } }
    ... on Conflict { code message }
  }
}
fragment Plan on MergePlan {
  survivorId mergedIds createdAt warnings
  fields { field value customerId source { source at } changed reason
           candidates { customerId value } }
  moves { customerId moved { purchases identities } dropped { purchases } aliases }
  duplicates { table key keptCustomerId droppedCustomerId }
  evidence { customerId score veto evidence { field kind } }
}"""

UNMERGE = """
mutation($id: ID!) {
  unmergeCustomers(mergeId: $id) {
    __typename
    ... on UnmergeDone { mergeId restoredIds survivor { id email } restored { id email } }
    ... on ValidationFailed { errors { field code } }
    ... on Conflict { code message }
  }
}"""


async def _pair(db) -> tuple[int, int]:
    a = await add_customer(db, first_name="Grace", last_name="Hopper", email="grace@navy.mil",
                           created_at=T0 + days(5))  # fmt: skip
    b = await add_customer(
        db, first_name="Grace", last_name="Hoper", email="grace@navy.mil", phone="+12025550143",
        created_at=T0, updated_at=T0 + days(9),
    )  # fmt: skip
    return a, b


async def test_duplicate_candidates(client, db):
    a, b = await _pair(db)
    await add_customer(db, first_name="Alan", last_name="Turing", email="alan@bletchley.uk")

    found = data(await gql(client, CANDIDATES, {"first": 5}))["duplicateCandidates"]
    assert len(found) == 1
    pair = found[0]
    assert (pair["a"], pair["b"]) == (
        {"id": str(a), "fullName": "Grace Hopper"}, {"id": str(b), "fullName": "Grace Hoper"},
    )  # fmt: skip
    assert pair["score"] == 0.9806
    assert sorted(pair["blockingKeys"]) == ["email", "email_local"]
    assert pair["evidence"] == [
        {"field": "name", "aValue": "Grace Hopper", "bValue": "Grace Hoper",
         "similarity": 0.9611, "kind": "FUZZY"},
        {"field": "email", "aValue": "grace@navy.mil", "bValue": "grace@navy.mil",
         "similarity": 1.0, "kind": "EXACT"},
        {"field": "country", "aValue": "GB", "bValue": "GB", "similarity": 1.0, "kind": "EXACT"},
    ]  # fmt: skip

    mine = data(await gql(client, CANDIDATES, {"customerId": str(b)}))["duplicateCandidates"]
    assert [(p["a"]["id"], p["b"]["id"]) for p in mine] == [(str(b), str(a))]
    none = data(await gql(client, CANDIDATES, {"minScore": 0.99}))["duplicateCandidates"]
    assert none == []


async def test_duplicate_candidates_argument_errors(client, db):
    body = await gql(client, CANDIDATES, {"minScore": 1.5})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "minScore"
    assert error_codes(await gql(client, CANDIDATES, {"first": 1000})) == ["PAGE_SIZE_OUT_OF_RANGE"]
    assert error_codes(await gql(client, CANDIDATES, {"customerId": "x"})) == ["INVALID_ID"]


async def test_merge_dry_run_then_merge_then_lookups_by_the_old_id(client, db):
    a, b = await _pair(db)
    await add_purchase(db, a, T0 + days(1), external_id="o-1")
    await add_purchase(db, b, T0 + days(1), external_id="o-1")
    await add_purchase(db, b, T0 + days(2), external_id="o-2")
    await add_identity(db, b, "phone", "crm", "+12025550143")
    variables = {"survivor": str(a), "merged": [str(b)], "dryRun": True}

    plan = data(await gql(client, MERGE, variables))["mergeCustomers"]
    assert plan["__typename"] == "MergePlan"
    fields = {f["field"]: f for f in plan["fields"]}
    # b was updated later, so under most_recent its (unrecorded) values win.
    assert fields["last_name"] == {
        "field": "last_name", "value": "Hoper", "customerId": str(b), "source": None,
        "changed": True, "reason": "most_recent: newer observation",
        "candidates": [{"customerId": str(a), "value": "Hopper"},
                       {"customerId": str(b), "value": "Hoper"}],
    }  # fmt: skip
    assert fields["phone"]["reason"] == "field was empty"
    assert fields["email"]["changed"] is False
    assert plan["createdAt"] == "2025-01-01T00:00:00+00:00"
    assert plan["moves"] == [{"customerId": str(b), "moved": {"purchases": 1, "identities": 1},
                              "dropped": {"purchases": 1}, "aliases": 0}]  # fmt: skip
    assert plan["duplicates"] == [
        {"table": "purchases", "key": "shop / o-1", "keptCustomerId": str(a),
         "droppedCustomerId": str(b)},
    ]  # fmt: skip
    assert plan["evidence"][0]["customerId"] == str(b)
    assert plan["evidence"][0]["veto"] is None
    assert await db.fetchval("SELECT count(*) FROM customers") == 2  # nothing written

    done = data(await gql(client, MERGE, {**variables, "dryRun": False}))["mergeCustomers"]
    assert done["__typename"] == "MergeDone"
    assert done["survivor"] == {"id": str(a), "email": "grace@navy.mil", "phone": "+12025550143",
                                "purchaseSummary": {"purchaseCount": 2}}  # fmt: skip
    assert done["plan"]["fields"] == plan["fields"]
    record = await db.fetchrow("SELECT merged_by, merged_ids FROM merges WHERE id = $1",
                               int(done["mergeId"]))  # fmt: skip
    assert (record["merged_by"], record["merged_ids"]) == ("key:test admin", [b])  # the caller

    # The merged id still resolves, to the survivor.
    old = data(await gql(client, "query($id: ID!) { customer(id: $id) { id lastName } }",
                         {"id": str(b)}))["customer"]  # fmt: skip
    assert old == {"id": str(a), "lastName": "Hoper"}

    again = data(await gql(client, MERGE, {**variables, "dryRun": False}))["mergeCustomers"]
    assert again == {"__typename": "ValidationFailed", "errors": [{
        "field": "mergedIds.0", "code": "already_merged",
        "message": f"customer {b} was merged into customer {a} (merge {done['mergeId']})",
    }]}  # fmt: skip


async def test_merge_validation_is_typed(client, db):
    a, b = await _pair(db)
    result = data(await gql(client, MERGE, {"survivor": str(a), "merged": [str(b), str(a), "99"]}))
    assert result["mergeCustomers"] == {"__typename": "ValidationFailed", "errors": [
        {"field": "mergedIds.1", "code": "is_survivor", "message": f"customer {a} is the survivor"},
    ]}  # fmt: skip
    result = data(await gql(client, MERGE, {"survivor": str(a), "merged": [str(b), "99"]}))
    assert result["mergeCustomers"]["errors"] == [
        {"field": "mergedIds.1", "code": "unknown_customer", "message": "no customer with id 99"}
    ]
    result = data(await gql(client, MERGE, {"survivor": "zero", "merged": []}))
    codes = [(e["field"], e["code"]) for e in result["mergeCustomers"]["errors"]]
    assert codes == [("survivorId", "invalid_id"), ("mergedIds", "empty")]
    assert await db.fetchval("SELECT count(*) FROM merges") == 0


async def test_unmerge_over_http(client, db):
    a, b = await _pair(db)
    done = data(await gql(client, MERGE, {"survivor": str(a), "merged": [str(b)]}))
    merge_id = done["mergeCustomers"]["mergeId"]

    undone = data(await gql(client, UNMERGE, {"id": merge_id}))["unmergeCustomers"]
    assert undone == {
        "__typename": "UnmergeDone", "mergeId": merge_id, "restoredIds": [str(b)],
        "survivor": {"id": str(a), "email": "grace@navy.mil"},
        "restored": [{"id": str(b), "email": "grace@navy.mil"}],
    }  # fmt: skip
    record = await db.fetchrow("SELECT undone_by FROM merges WHERE id = $1", int(merge_id))
    assert record["undone_by"] == "key:test admin"
    back = data(await gql(client, "query($id: ID!) { customer(id: $id) { id lastName } }",
                          {"id": str(b)}))["customer"]  # fmt: skip
    assert back == {"id": str(b), "lastName": "Hoper"}

    again = data(await gql(client, UNMERGE, {"id": merge_id}))["unmergeCustomers"]
    assert again["__typename"] == "Conflict"
    assert again["code"] == "already_undone"
    unknown = data(await gql(client, UNMERGE, {"id": "777"}))["unmergeCustomers"]
    assert unknown == {"__typename": "ValidationFailed",
                       "errors": [{"field": "mergeId", "code": "unknown_merge"}]}  # fmt: skip
    bad = data(await gql(client, UNMERGE, {"id": "-1"}))["unmergeCustomers"]
    assert bad["errors"] == [{"field": "mergeId", "code": "invalid_id"}]
