"""The OpenAPI 3.1 document for /api/v1. Tests check every API route appears here."""

from __future__ import annotations

from typing import Any

from shelter.domain.households import CONSENTS, LANGUAGES, NEEDS, SEXES, WHEREABOUTS
from shelter.domain.presence import ACTIONS, AGE_BANDS, CROWDING, DESTINATIONS
from shelter.domain.supplies import (
    DISCARD_REASONS,
    KINDS,
    MAX_QUANTITY,
    REQUEST_STATUSES,
    SOURCES,
    URGENCIES,
)

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ERROR}}}


def spec() -> dict[str, Any]:
    person_in = {
        "type": "object",
        "required": ["family_name", "birth_date"],
        "properties": {
            "family_name": {"type": "string", "minLength": 1, "maxLength": 40},
            "given_name": {"type": "string", "maxLength": 40},
            "family_name_kana": {"type": "string", "maxLength": 60,
                                 "description": "hiragana or katakana; stored as katakana. "
                                                "Required when language is ja."},
            "given_name_kana": {"type": "string", "maxLength": 60},
            "birth_date": {"type": "string", "format": "date"},
            "sex": {"enum": list(SEXES)},
            "needs": {"type": "array", "items": {"enum": list(NEEDS)}},
            "allergies": {"type": "string", "maxLength": 200},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Shelter node API", "version": "1",
                 "description": "Evacuation shelter node. Bearer tokens from "
                                "`shelter token create`."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"},
                        "fields": {"type": "object",
                                   "additionalProperties": {"type": "string"}}}}}},
                "HouseholdIn": {
                    "type": "object",
                    "required": ["members", "address", "whereabouts", "consent"],
                    "properties": {
                        "members": {"type": "array", "minItems": 1, "maxItems": 20,
                                    "items": person_in},
                        "address": {"type": "string", "minLength": 1, "maxLength": 200},
                        "postal_code": {"type": "string", "maxLength": 10,
                                        "description": "seven digits, like 540-0008"},
                        "phone": {"type": "string", "maxLength": 20,
                                  "pattern": "^[0-9０-９+\\-() ]{0,20}$"},
                        "whereabouts": {"enum": list(WHEREABOUTS)},
                        "consent": {"enum": list(CONSENTS)},
                        "language": {"enum": list(LANGUAGES), "default": "ja"},
                    }},
                "Registered": {"type": "object",
                               "required": ["household_id", "members"],
                               "properties": {
                                   "household_id": {"type": "string"},
                                   "registered_at": {"type": "string"},
                                   "members": {"type": "array", "items": {
                                       "type": "object",
                                       "required": ["person_id", "code", "short_code"],
                                       "properties": {
                                           "person_id": {"type": "string"},
                                           "display_name": {"type": "string"},
                                           "code": {"type": "string",
                                                    "description": "QR payload, SHC1"},
                                           "short_code": {"type": "string"}}}}}},
                "ScanIn": {
                    "type": "object", "required": ["code", "action"],
                    "properties": {
                        "code": {"type": "string", "maxLength": 400,
                                 "description": "the QR payload (SHC1...) or the short code"},
                        "action": {"enum": [*ACTIONS, "auto"],
                                   "description": "auto: check in, or out and back, by where "
                                                  "the person is"},
                        "destination": {"enum": list(DESTINATIONS),
                                        "description": "required with check_out"},
                        "destination_detail": {"type": "string", "maxLength": 80,
                                               "description": "which shelter (required "
                                                              "for other_shelter), or a "
                                                              "note"}}},
                "Scanned": {
                    "type": "object",
                    "required": ["person_id", "display_name", "presence", "outcome", "action"],
                    "properties": {
                        "person_id": {"type": "string"},
                        "display_name": {"type": "string"},
                        "household_id": {"type": ["string", "null"]},
                        "needs": {"type": "array", "items": {"enum": list(NEEDS)}},
                        "flags": {"type": "array", "items": {"enum": list(NEEDS)}},
                        "age": {"type": ["integer", "null"]},
                        "registered_shelter": {"type": "string"},
                        "provisional": {"type": "boolean",
                                        "description": "admitted on a card from another "
                                                       "shelter"},
                        "card_verified": {"type": "boolean"},
                        "presence": {"type": "object", "properties": {
                            "status": {"enum": ["present", "out", "left", "not_arrived",
                                                "elsewhere"]},
                            "last_action": {"type": ["string", "null"]},
                            "since": {"type": ["string", "null"]},
                            "shelter_id": {"type": ["string", "null"]},
                            "destination": {"type": "string"},
                            "destination_detail": {"type": "string"}}},
                        "household": {"type": "array", "items": {"type": "object"}},
                        "outcome": {"enum": ["done", "already", "repeated"],
                                    "description": "repeated: the same scan moments ago, "
                                                   "counted once"},
                        "action": {"enum": list(ACTIONS)}}},
                "Headcount": {
                    "type": "object",
                    "required": ["present", "out", "registered", "at_home", "in_car",
                                 "capacity", "by_need", "by_age", "crowding"],
                    "properties": {
                        **{k: {"type": "integer"} for k in (
                            "present", "out", "registered", "at_home", "in_car", "capacity",
                            "provisional", "arrivals_last_hour", "departures_last_hour")},
                        "occupancy": {"type": ["number", "null"]},
                        "crowding": {"enum": [*CROWDING, "unknown"]},
                        "by_need": {"type": "object",
                                    "additionalProperties": {"type": "integer"},
                                    "description": "people in the building, per need"},
                        "by_age": {"type": "object",
                                   "properties": {b: {"type": "integer"}
                                                  for b in (*AGE_BANDS, "unknown")}},
                        "shelter_id": {"type": "string"},
                        "as_of": {"type": "string"}}},
                "StockMovementIn": {
                    "type": "object", "required": ["item_id", "kind", "quantity"],
                    "properties": {
                        "item_id": {"type": "string"},
                        "kind": {"enum": list(KINDS)},
                        "quantity": {"type": "integer", "minimum": 0,
                                     "maximum": MAX_QUANTITY,
                                     "description": "units; for counted, the number found "
                                                    "(0 allowed), else more than 0"},
                        "lot": {"type": "string", "maxLength": 40},
                        "expires_on": {"type": "string", "format": "date"},
                        "source": {"enum": list(SOURCES)},
                        "code": {"type": "string", "description": "a member's card or "
                                                                  "short code (hand-outs)"},
                        "household_id": {"type": "string"},
                        "destination": {"type": "string", "maxLength": 80},
                        "reason": {"type": "string", "maxLength": 200,
                                   "description": f"discards: {', '.join(DISCARD_REASONS)} "
                                                  "or text; required with a count that "
                                                  "differs and with override"},
                        "override": {"type": "boolean",
                                     "description": "managers: more than is on hand"},
                        "confirm_repeat": {"type": "boolean",
                                           "description": "a rationed item again within "
                                                          "its window"}}},
                "StockItem": {
                    "type": "object",
                    "required": ["item_id", "name", "unit", "on_hand", "days_of_supply"],
                    "properties": {
                        "item_id": {"type": "string"}, "name": {"type": "string"},
                        "name_ja": {"type": "string"}, "unit": {"type": "string"},
                        "on_hand": {"type": "integer"},
                        "days_of_supply": {"type": ["number", "null"]},
                        "daily_need": {"type": ["number", "null"]},
                        "consumed_24h": {"type": "integer"}, "low": {"type": "boolean"},
                        "lots": {"type": "array", "items": {"type": "object"}},
                        "suggested_lot": {"type": ["string", "null"]}}},
                "SupplyRequestIn": {
                    "type": "object", "required": ["lines"],
                    "properties": {
                        "lines": {"type": "array", "minItems": 1, "maxItems": 40,
                                  "items": {"type": "object",
                                            "required": ["item_id", "quantity"],
                                            "properties": {
                                                "item_id": {"type": "string"},
                                                "quantity": {"type": "integer", "minimum": 1,
                                                             "maximum": MAX_QUANTITY}}}},
                        "urgency": {"enum": list(URGENCIES), "default": "normal"},
                        "note": {"type": "string", "maxLength": 500}}},
                "SupplyRequest": {
                    "type": "object", "required": ["request_id", "status", "lines"],
                    "properties": {
                        "request_id": {"type": "string"},
                        "status": {"enum": list(REQUEST_STATUSES)},
                        "urgency": {"enum": list(URGENCIES)},
                        "lines": {"type": "array"}, "dispatched": {"type": ["array", "null"]},
                        "received": {"type": ["array", "null"]},
                        "expected_arrival": {"type": ["string", "null"]},
                        "history": {"type": "array"}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": {
                "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {}}}}}},
            "/api/v1/households": {"post": {
                "summary": "Register a household",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/HouseholdIn"}}}},
                "responses": {
                    "201": {"description": "Registered", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Registered"}}}},
                    "400": _error("Malformed JSON"),
                    "401": _error("No or wrong token"),
                    "413": _error("Body too large"),
                    "415": _error("Not JSON"),
                    "422": _error("Invalid fields, with a message per field"),
                }}},
            "/api/v1/persons/{person_id}/card.png": {"get": {
                "summary": "One person's card as a PNG QR code",
                "parameters": [{"name": "person_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "PNG",
                                      "content": {"image/png": {}}},
                              "404": _error("No such card (or not yours to see)")}}},
            "/api/v1/households/{household_id}/cards.pdf": {"get": {
                "summary": "The household's cards on an A4 sheet",
                "parameters": [{"name": "household_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "PDF",
                                      "content": {"application/pdf": {}}},
                              "404": _error("No such household (or not yours to see)")}}},
            "/api/v1/scans": {"post": {
                "summary": "A card or short code scanned at the desk (volunteer or manager)",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ScanIn"}}}},
                "responses": {
                    "200": {"description": "The person and their presence",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Scanned"}}}},
                    "400": _error("Malformed JSON"),
                    "401": _error("No or wrong token"),
                    "403": _error("A kiosk token, or a page without its CSRF header"),
                    "404": _error("No one registered with this short code"),
                    "409": _error("Going out without being checked in"),
                    "415": _error("Not JSON"),
                    "422": _error("Garbled or forged code, unknown action or destination"),
                }}},
            "/api/v1/headcount": {"get": {
                "summary": "This shelter's numbers (volunteer or manager)",
                "responses": {
                    "200": {"description": "Headcount", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Headcount"}}}},
                    "401": _error("No or wrong token"),
                    "403": _error("A kiosk token")}}},
            "/api/v1/sync-status": {"get": {
                "summary": "This node's link to HQ (volunteer or manager)",
                "responses": {
                    "200": {"description": "enabled false, or the state", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "enabled": {"type": "boolean"}, "state": {"type": "string"},
                            "connected": {"type": "boolean"},
                            "last_ok_at": {"type": ["string", "null"]},
                            "waiting": {"type": "integer"},
                            "problems": {"type": "integer"}}}}}},
                    "401": _error("No or wrong token"),
                    "403": _error("A kiosk token")}}},
            "/api/v1/stock": {"get": {
                "summary": "Stock on hand and days of supply (volunteer or manager)",
                "responses": {
                    "200": {"description": "Every item", "content": {"application/json": {
                        "schema": {"type": "object", "required": ["items"], "properties": {
                            "items": {"type": "array", "items": {
                                "$ref": "#/components/schemas/StockItem"}},
                            "population": {"type": "object"},
                            "low_stock_days": {"type": "number"}}}}}},
                    "401": _error("No or wrong token"),
                    "403": _error("A kiosk token")}}},
            "/api/v1/stock-movements": {"post": {
                "summary": "Record a movement: volunteers hand out, managers the rest",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/StockMovementIn"}}}},
                "responses": {
                    "201": {"description": "Recorded; the item's new stock",
                            "content": {"application/json": {"schema": {
                                "type": "object", "properties": {
                                    "movements": {"type": "array"},
                                    "item": {"$ref": "#/components/schemas/StockItem"}}}}}},
                    "400": _error("Malformed JSON"),
                    "401": _error("No or wrong token"),
                    "403": _error("Not allowed for this role (or override by a volunteer)"),
                    "404": _error("No one registered with this short code"),
                    "409": _error("More than is on hand, or a rationed item collected "
                                  "again within its window"),
                    "415": _error("Not JSON"),
                    "422": _error("Unknown item, bad quantity, date, reason or code")}}},
            "/api/v1/supply-requests": {
                "get": {"summary": "This shelter's requests to HQ and their steps",
                        "responses": {
                            "200": {"description": "Requests", "content": {
                                "application/json": {"schema": {
                                    "type": "object", "properties": {"requests": {
                                        "type": "array", "items": {
                                            "$ref": "#/components/schemas/SupplyRequest"}}}}}}},
                            "401": _error("No or wrong token"),
                            "403": _error("A kiosk token")}},
                "post": {"summary": "Ask HQ for supplies (manager)",
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/SupplyRequestIn"}}}},
                         "responses": {
                             "201": {"description": "Requested", "content": {
                                 "application/json": {"schema": {
                                     "$ref": "#/components/schemas/SupplyRequest"}}}},
                             "400": _error("Malformed JSON"),
                             "401": _error("No or wrong token"),
                             "403": _error("Not a manager"),
                             "415": _error("Not JSON"),
                             "422": _error("No lines, unknown item, bad quantity")}}},
        },
    }
