"""`ragkit serve`: an OpenAI-compatible RAG API with citations, and a page for asking and reading sources.

    ragkit serve --index .ragkit/demo-index --model smollm2-135m          # http://127.0.0.1:8000/

app.py holds the routes, slots.py the one-generation-at-a-time queue per model, guard.py the body
limit and API key, openai_api.py the request checks and reply shapes, startup.py the loading,
page.html the page. FastAPI and uvicorn are imported only by this package.
"""
