"""The shapes of what the API takes and answers, each declared once (pydantic v2): the
request bodies validate with them, and both OpenAPI documents (``shelter.web.openapi``) are
made from them, so the document says exactly what the checks accept.

    fields      the rules a field follows (a line of text, a choice, a flag...), each with
                its check and its JSON Schema, and turning refusals into messages per field
    patterns    the regular expressions that say exactly what those checks accept
    households  the vocabulary of a registration, POST /api/v1/households and its answer
    desk        scans, the headcount, the link to HQ
    supplies    stock movements, supply requests, stock
    hq          HQ's shelters, summary and public feed

Field messages are English message ids (``N_``), translated where a person reads them.
This package imports nothing of its own here, so that a domain module can use one part of
it without loading the rest.
"""
