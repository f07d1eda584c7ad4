"""The translation server (`python -m nmt.serve`): limits and request fields,
dynamic batching, the engines around a loaded model, the Starlette app and its
web page (`page/`). Needs the `serve` extra (starlette, uvicorn)."""
