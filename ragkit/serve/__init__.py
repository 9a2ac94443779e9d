"""`ragkit serve`: an OpenAI-compatible RAG API with citations, and a page for asking and reading sources.

    ragkit serve --index .ragkit/demo-index --model smollm2-135m          # http://127.0.0.1:8000/

app.py holds the routes, slots.py the one-generation-at-a-time queue per model, guard.py the body
limits, API keys and their scopes (keys.py), openai_api.py the request checks and reply shapes,
knowledge.py the knowledge bases under --data-dir, jobs.py their ingest jobs, uploads.py the
checks an upload passes, metrics.py /metrics, limits.py the upload limits, startup.py the loading,
page.html the page. FastAPI and uvicorn are imported only by this package. docs/serving.md is the guide.
"""
