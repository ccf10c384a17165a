"""The OpenAPI 3.1 document for /api/v1. Tests check every API route appears here."""

from __future__ import annotations

from typing import Any

from .registry import CONSENTS, LANGUAGES, NEEDS, SEXES, WHEREABOUTS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ERROR}}}


def spec() -> dict[str, Any]:
    person_in = {
        "type": "object",
        "required": ["family_name", "birth_date"],
        "properties": {
            "family_name": {"type": "string", "maxLength": 40},
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
                        "address": {"type": "string", "maxLength": 200},
                        "postal_code": {"type": "string", "maxLength": 10},
                        "phone": {"type": "string", "maxLength": 20},
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
        },
    }
