#!/usr/bin/env python3
"""Write .cog/openapi_schema.json from predict.py, as `cog build` would.

The Cog runtime (coglet) validates prediction inputs (422 answers) and serves
/openapi.json only from this file, and `cog build` (a Go binary we cannot run
here) is what normally writes it. We build it from the Cog SDK's own
introspection of predict.py (cog._inspector), so it cannot drift from the
code: `--check` fails when the committed file is stale (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated_file import write_or_check  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / ".cog" / "openapi_schema.json"


def input_schema(info: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Input object schema plus one enum schema per input with choices."""
    properties: dict[str, Any] = {}
    enums: dict[str, Any] = {}
    required: list[str] = []
    for name, field in sorted(info.inputs.items(), key=lambda item: item[1].order):
        prop: dict[str, Any] = {"title": name.replace("_", " ").title(), "x-order": field.order}
        if field.choices:
            enums[name] = {
                "title": name, "description": "An enumeration.", "enum": list(field.choices),
                **field.type.json_type(),
            }
            prop["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
        else:
            prop.update(field.type.json_type())
        if field.description:
            prop["description"] = field.description
        if field.default is not None:
            prop["default"] = field.default
        elif field.type.repetition.name == "REQUIRED":
            required.append(name)
        if field.ge is not None:
            prop["minimum"] = field.ge
        if field.le is not None:
            prop["maximum"] = field.le
        properties[name] = prop
    schema: dict[str, Any] = {"title": "Input", "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema, enums


def build_schema() -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from cog import _inspector

        info = _inspector.create_predictor("predict", "Predictor")
    inputs, enums = input_schema(info)
    status = {"title": "Status", "description": "An enumeration.", "type": "string",
              "enum": ["starting", "processing", "succeeded", "canceled", "failed"]}
    envelope_common = {
        "id": {"title": "Id", "type": "string"},
        "created_at": {"title": "Created At", "type": "string", "format": "date-time"},
    }
    request = {
        "title": "PredictionRequest", "type": "object",
        "properties": {
            **envelope_common,
            "input": {"$ref": "#/components/schemas/Input"},
            "webhook": {"title": "Webhook", "type": "string", "format": "uri", "minLength": 1, "maxLength": 65536},
            "webhook_events_filter": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookEvent"},
                                      "default": ["start", "output", "logs", "completed"]},
            "output_file_prefix": {"title": "Output File Prefix", "type": "string"},
        },
    }
    response = {
        "title": "PredictionResponse", "type": "object",
        "properties": {
            **envelope_common,
            "input": {"$ref": "#/components/schemas/Input"},
            "output": {"$ref": "#/components/schemas/Output"},
            "error": {"title": "Error", "type": "string"},
            "status": {"$ref": "#/components/schemas/Status"},
            "logs": {"title": "Logs", "type": "string", "default": ""},
            "metrics": {"title": "Metrics", "type": "object"},
            "started_at": {"title": "Started At", "type": "string", "format": "date-time"},
            "completed_at": {"title": "Completed At", "type": "string", "format": "date-time"},
            "version": {"title": "Version", "type": "string"},
        },
    }
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictionRequest"}}}}
    ok = {"200": {"description": "Successful Response",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictionResponse"}}}},
          "422": {"description": "Validation Error"}}
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {
            "/": {"get": {"summary": "Root", "operationId": "root__get",
                          "responses": {"200": {"description": "Successful Response"}}}},
            "/health-check": {"get": {"summary": "Healthcheck", "operationId": "healthcheck_health_check_get",
                                      "responses": {"200": {"description": "Successful Response"}}}},
            "/predictions": {"post": {"summary": "Predict", "operationId": "predict_predictions_post",
                                      "requestBody": body, "responses": ok}},
            "/predictions/{prediction_id}": {"put": {
                "summary": "Predict Idempotent", "operationId": "predict_idempotent_predictions__prediction_id__put",
                "parameters": [{"name": "prediction_id", "in": "path", "required": True,
                                "schema": {"title": "Prediction ID", "type": "string"}}],
                "requestBody": body, "responses": ok}},
            "/predictions/{prediction_id}/cancel": {"post": {
                "summary": "Cancel", "operationId": "cancel_predictions__prediction_id__cancel_post",
                "parameters": [{"name": "prediction_id", "in": "path", "required": True,
                                "schema": {"title": "Prediction ID", "type": "string"}}],
                "responses": {"200": {"description": "Successful Response"}}}},
            "/shutdown": {"post": {"summary": "Start Shutdown", "operationId": "start_shutdown_shutdown_post",
                                   "responses": {"200": {"description": "Successful Response"}}}},
        },
        "components": {"schemas": {
            "Input": inputs,
            "Output": info.output.json_type(),
            **enums,
            "PredictionRequest": request,
            "PredictionResponse": response,
            "Status": status,
            "WebhookEvent": {"title": "WebhookEvent", "description": "An enumeration.", "type": "string",
                             "enum": ["start", "output", "logs", "completed"]},
        }},
    }


def render() -> str:
    return json.dumps(build_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="fail if the file differs from predict.py")
    args = parser.parse_args(argv)
    return write_or_check(args.out, render(), check=args.check, script="write_openapi_schema.py")

if __name__ == "__main__":
    sys.exit(main())
