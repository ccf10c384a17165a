"""Both OpenAPI 3.1 documents, the node's and HQ's, made from the shapes in
``shelter.domain.schemas``: this module lists the paths and what each answers, and every
schema in the documents comes from a shape (tests check each API route appears)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from shelter.domain.schemas import desk, hq, supplies
from shelter.domain.schemas.fields import Error
from shelter.domain.schemas.households import CodeMade, HouseholdCodeIn, HouseholdIn, Registered

REF = "#/components/schemas/{model}"
NODE_SHAPES: dict[str, tuple[Any, JsonSchemaMode]] = {
    "Error": (Error, "serialization"),
    "HouseholdIn": (HouseholdIn, "validation"), "Registered": (Registered, "serialization"),
    "ScanIn": (desk.ScanIn, "validation"), "Scanned": (desk.Scanned, "serialization"),
    "ScanAnswer": (desk.ScanAnswer, "serialization"),
    "HouseholdCodeIn": (HouseholdCodeIn, "validation"), "CodeMade": (CodeMade, "serialization"),
    "Headcount": (desk.Headcount, "serialization"),
    "SyncStatus": (desk.SyncStatus, "serialization"),
    "Stock": (supplies.Stock, "serialization"),
    "StockMovementIn": (supplies.StockMovementIn, "validation"),
    "Moved": (supplies.Moved, "serialization"),
    "SupplyRequestIn": (supplies.SupplyRequestIn, "validation"),
    "SupplyRequest": (supplies.SupplyRequest, "serialization"),
    "SupplyRequests": (supplies.SupplyRequests, "serialization"),
}
HQ_SHAPES: dict[str, tuple[Any, JsonSchemaMode]] = {
    "Error": (Error, "serialization"), "Shelters": (hq.Shelters, "serialization"),
    "Summary": (hq.Summary, "serialization"),
    "PublicShelters": (hq.PublicShelters, "serialization"),
    "HouseholdCodeIn": (HouseholdCodeIn, "validation"), "CodeMade": (CodeMade, "serialization"),
}
NO_TOKEN = "No or wrong token"


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # a property's name says it; "Family Name" adds nothing


def components(shapes: dict[str, tuple[Any, JsonSchemaMode]]) -> dict[str, Any]:
    """The JSON Schemas of ``shapes`` (and of the shapes they are made of), by name."""
    _, schemas = TypeAdapter.json_schemas(
        [(name, mode, TypeAdapter(shape)) for name, (shape, mode) in shapes.items()],
        ref_template=REF, schema_generator=_Schema)
    return dict(schemas.get("$defs", {}))


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def answer(description: str, shape: str | None = None,
           media: str = "application/json") -> dict[str, Any]:
    content: dict[str, Any] = {"schema": ref(shape)} if shape else {}
    return {"description": description, "content": {media: content}}


def path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": TypeAdapter(str).json_schema()}


def refusals(**statuses: str) -> dict[str, Any]:
    """Error answers, as ``s422="why"``."""
    return {status[1:]: answer(why, "Error") for status, why in statuses.items()}


def post(summary: str, body: str, status: str, result: str, description: str,
         **errors: str) -> dict[str, Any]:
    return {"post": {
        "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": ref(body)}}},
        "responses": {status: answer(description, result),
                      **refusals(s400="Malformed JSON", s401=NO_TOKEN, s415="Not JSON",
                                 **errors)}}}


def household_codes() -> dict[str, Any]:
    """POST /api/v1/household-codes, on a node and at HQ alike: no login."""
    made = post("Make a household code (docs/household-code.md) from a registration: no "
                "login; nothing is stored or logged", "HouseholdCodeIn", "200", "CodeMade",
                "The code", s413="Body too large",
                s422="Invalid fields (a message per field), or too much for one QR code")
    made["post"]["security"] = []
    del made["post"]["responses"]["401"]
    return made


def get(summary: str, result: str, description: str, **errors: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {
        "200": answer(description, result), **refusals(**errors)}}}


def _document(title: str, description: str, shapes: dict[str, tuple[Any, JsonSchemaMode]],
              paths: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": components(shapes)},
        "security": [{"bearer": []}],
        "paths": {"/api/v1/openapi.json": {"get": {
            "summary": "This document", "security": [],
            "responses": {"200": answer("OpenAPI 3.1")}}}, **paths},
    }


def scans() -> dict[str, Any]:
    """POST /api/v1/scans: a person (``Scanned``), or a household (a household code, or a
    card with ``household``: ``HouseholdScanned``)."""
    return post(
        "A card, short code or household code scanned at the desk (volunteer or manager)",
        "ScanIn", "200", "ScanAnswer", "The person and their presence; for a household code "
        "(or a card with household), the household and each member's",
        s403="A kiosk token, or a page without its CSRF header",
        s404="No one registered with this short code",
        s409="Going out without being checked in; a household code naming a household "
             "registered otherwise",
        s422="Garbled or forged code, unknown action or destination; a household code "
             "misread, cut off, or with fields the form would refuse")


def spec() -> dict[str, Any]:
    """The node's document, for /api/v1/openapi.json on a shelter node."""
    staff = {"s401": NO_TOKEN, "s403": "A kiosk token"}
    return _document(
        "Shelter node API",
        "Evacuation shelter node. Bearer tokens from `shelter token create`.",
        NODE_SHAPES, {
            "/api/v1/households": post(
                "Register a household", "HouseholdIn", "201", "Registered", "Registered",
                s413="Body too large", s422="Invalid fields, with a message per field"),
            "/api/v1/persons/{person_id}/card.png": {"get": {
                "summary": "One person's card as a PNG QR code",
                "parameters": [path_parameter("person_id")],
                "responses": {"200": answer("PNG", media="image/png"),
                              **refusals(s404="No such card (or not yours to see)")}}},
            "/api/v1/households/{household_id}/cards.pdf": {"get": {
                "summary": "The household's cards on an A4 sheet",
                "parameters": [path_parameter("household_id")],
                "responses": {"200": answer("PDF", media="application/pdf"),
                              **refusals(s404="No such household (or not yours to see)")}}},
            "/api/v1/scans": scans(),
            "/api/v1/household-codes": household_codes(),
            "/api/v1/headcount": get("This shelter's numbers (volunteer or manager)",
                                     "Headcount", "Headcount", **staff),
            "/api/v1/sync-status": get("This node's link to HQ (volunteer or manager)",
                                       "SyncStatus", "enabled false, or the state", **staff),
            "/api/v1/stock": get("Stock on hand and days of supply (volunteer or manager)",
                                 "Stock", "Every item", **staff),
            "/api/v1/stock-movements": post(
                "Record a movement: volunteers hand out, managers the rest",
                "StockMovementIn", "201", "Moved", "Recorded; the item's new stock",
                s403="Not allowed for this role (or override by a volunteer)",
                s404="No one registered with this short code",
                s409="More than is on hand, or a rationed item collected again within its "
                     "window",
                s422="Unknown item, bad quantity, date, reason or code"),
            "/api/v1/supply-requests": {
                **get("This shelter's requests to HQ and their steps", "SupplyRequests",
                      "Requests", **staff),
                **post("Ask HQ for supplies (manager)", "SupplyRequestIn", "201",
                       "SupplyRequest", "Requested", s403="Not a manager",
                       s422="No lines, unknown item, bad quantity")},
        })


def hq_spec() -> dict[str, Any]:
    """HQ's document, for /api/v1/openapi.json at the prefecture HQ."""
    staff = {"s401": NO_TOKEN, "s403": "Not an HQ role"}
    public = get("Open shelters and how crowded they are: no login, no personal data",
                 "PublicShelters", "open shelters")
    public["get"]["security"] = []
    return _document(
        "Shelter HQ API",
        "Prefecture HQ. Bearer tokens from `shelter token create`. Figures per shelter are "
        "as last synced and computed (`last_synced_at`, `as_of`).",
        HQ_SHAPES, {
            "/api/v1/shelters": get("Every shelter HQ knows: the registry and those "
                                    "syncing (operator or admin)", "Shelters", "shelters",
                                    **staff),
            "/api/v1/summary": get("Totals over all shelters (operator or admin)", "Summary",
                                   "totals", **staff),
            "/api/v1/public/shelters": public,
            "/api/v1/household-codes": household_codes(),
            "/sync": {"get": {"summary": "The sync websocket (docs/sync-protocol.md)",
                              "security": [], "responses": {"101": {
                                  "description": "Switching protocols"}}}},
        })
